"""The job runner's re-run reservations: a result marked while its re-run is in flight, the budget
spent only by a re-run whose job was submitted, nothing held after a refusal."""

from __future__ import annotations

import pytest

from bot.core.errors import RerunInProgress, TooManyJobs
from bot.core.records import JobRecord


def record_of(user_id: int) -> JobRecord:
    return JobRecord(job_id="painted", user_id=user_id, guild_id=1, channel_id=2, params={})


async def test_a_rerun_refused_by_the_limits_holds_nothing(make_bot) -> None:
    bot = await make_bot(per_user_limit=1)
    runner = bot.runner
    in_flight = runner.reserve(7)  # user 7 has a request of their own in flight
    with pytest.raises(TooManyJobs):
        runner.reserve_rerun(record_of(1), 7, channel_id=2)
    assert not runner.reruns.rerunning and 7 not in runner.reruns.spent
    in_flight.release()
    runner.reserve_rerun(record_of(1), 7, channel_id=2).release()


async def test_the_result_is_held_until_the_reservation_is_left_and_the_budget_kept_once_submitted(
    make_bot,
) -> None:
    bot = await make_bot(others_reruns_per_hour=3)
    runner = bot.runner
    with runner.reserve_rerun(record_of(1), 7, channel_id=2) as reservation:
        with pytest.raises(RerunInProgress):
            runner.reserve_rerun(record_of(1), 8, channel_id=2)
        reservation.place.taken_over()  # its job was submitted: it counts from now on
    assert not runner.reruns.rerunning
    assert len(runner.reruns.spent[7]) == 1, "a submitted re-run spends the budget"
    with runner.reserve_rerun(record_of(1), 8, channel_id=2):
        pass  # given back unused (the inputs had expired, say)
    assert 8 not in runner.reruns.spent
