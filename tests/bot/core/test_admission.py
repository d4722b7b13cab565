"""The one admission rule, as both backends apply it: per-user limit, cooldown, queue cap, shutdown."""

from __future__ import annotations

import pytest

from bot.core.admission import RERUN_BUDGET_WINDOW, Admission, Load, RerunRule
from bot.core.arq_backend import ArqBackend
from bot.core.errors import (
    CoolingDown,
    QueueFull,
    RerunBudgetSpent,
    RerunInProgress,
    ShuttingDown,
    TooManyJobs,
)
from bot.core.local_backend import LocalBackend
from tests.bot.conftest import tiny_settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


IDLE = Load(user_in_flight=0, waiting=0)


def admission(load: Load = IDLE, **limits: float) -> tuple[Admission, Clock]:
    clock = Clock()
    values = {"queue_cap": 3, "per_user_limit": 2, "cooldown_seconds": 0.0, **limits}
    return Admission(lambda user_id: load, clock=clock, **values), clock


def test_reservations_count_towards_the_per_user_limit_and_the_queue_cap() -> None:
    rule, _ = admission(queue_cap=3, per_user_limit=2)
    rule.reserve(1)
    rule.reserve(1)
    with pytest.raises(TooManyJobs):
        rule.reserve(1)
    rule.reserve(2)
    with pytest.raises(QueueFull):  # three places held, none submitted yet
        rule.reserve(3)


def test_the_backends_jobs_count_as_the_backend_reports_them() -> None:
    busy, _ = admission(Load(user_in_flight=2, waiting=0), per_user_limit=2)
    with pytest.raises(TooManyJobs):
        busy.reserve(1)
    full, _ = admission(Load(user_in_flight=0, waiting=3), queue_cap=3)
    with pytest.raises(QueueFull):
        full.reserve(1)


def test_a_reservation_given_back_unused_gives_back_its_cooldown() -> None:
    rule, clock = admission(cooldown_seconds=10)
    with rule.reserve(1):
        pass  # the request failed before its job was submitted
    rule.reserve(1).taken_over()  # a job was submitted: the cooldown runs from now
    clock.now += 4
    with pytest.raises(CoolingDown) as refused:
        rule.reserve(1)
    assert refused.value.retry_after == pytest.approx(6)
    clock.now += 6
    rule.reserve(1)


def test_a_held_reservation_admits_its_job_without_a_second_check() -> None:
    rule, _ = admission(per_user_limit=1)
    reservation = rule.reserve(1)
    with pytest.raises(TooManyJobs):  # the reservation holds the user's one place...
        rule.check(1)
    rule.admit(1, reservation)  # ...which its job takes over
    assert not reservation.held
    rule.closed = True
    with pytest.raises(ShuttingDown):
        rule.admit(2, None)
    with pytest.raises(ShuttingDown):
        rule.reserve(3)


def test_both_backends_apply_the_same_rule(tmp_path) -> None:
    settings = tiny_settings(tmp_path, queue_url="redis://localhost:1/0", per_user_limit=1, queue_cap=2)
    local = LocalBackend(settings, resolver=None, style_cache=None)
    remote = ArqBackend(settings, resolver=None)
    for rule in (local.queue.admission, remote.admission):
        assert isinstance(rule, Admission)
        assert (rule.per_user_limit, rule.queue_cap) == (1, 2)
        rule.reserve(1)
        with pytest.raises(TooManyJobs):
            rule.reserve(1)


# ---------------------------------------------------------------------------- re-runs
def test_one_rerun_of_a_result_at_a_time_until_its_claim_is_released() -> None:
    rule = RerunRule(per_hour=5, clock=Clock())
    claim = rule.claim("job-a", requester_id=1, user_id=2, channel_id=30)
    for user_id in (1, 2, 3):  # the requester, the same member, anyone else
        with pytest.raises(RerunInProgress) as refused:
            rule.claim("job-a", requester_id=1, user_id=user_id, channel_id=31)
        assert "<#30>" in str(refused.value), "the refusal says where the re-run is"
    rule.claim("job-b", requester_id=1, user_id=3, channel_id=30)  # another result is free
    claim.release(spent=True)
    claim.release(spent=True)  # idempotent
    rule.claim("job-a", requester_id=1, user_id=3, channel_id=30)


def test_the_budget_counts_reruns_of_others_results_per_hour() -> None:
    clock = Clock()
    rule = RerunRule(per_hour=2, clock=clock)
    for number in range(5):  # one's own results never count
        rule.claim(f"own-{number}", requester_id=7, user_id=7, channel_id=None).release(spent=True)
    rule.claim("a", requester_id=1, user_id=7, channel_id=None).release(spent=True)
    clock.now += 600
    rule.claim("b", requester_id=2, user_id=7, channel_id=None).release(spent=True)
    with pytest.raises(RerunBudgetSpent) as refused:
        rule.claim("c", requester_id=3, user_id=7, channel_id=None)
    assert refused.value.retry_after == pytest.approx(RERUN_BUDGET_WINDOW - 600)
    assert "2 pictures of other people per hour" in str(refused.value)
    rule.claim("c", requester_id=3, user_id=8, channel_id=None)  # another member has their own
    rule.claim("mine", requester_id=7, user_id=7, channel_id=None)  # and 7's own still work
    clock.now += RERUN_BUDGET_WINDOW - 600  # the first one is an hour old
    rule.claim("d", requester_id=3, user_id=7, channel_id=None)
    with pytest.raises(RerunBudgetSpent):
        rule.claim("e", requester_id=3, user_id=7, channel_id=None)


def test_a_rerun_that_submitted_no_job_gives_its_budget_back() -> None:
    rule = RerunRule(per_hour=1, clock=Clock())
    rule.claim("a", requester_id=1, user_id=7, channel_id=None).release(spent=False)  # refused later
    rule.claim("a", requester_id=1, user_id=7, channel_id=None).release(spent=True)
    with pytest.raises(RerunBudgetSpent):
        rule.claim("b", requester_id=1, user_id=7, channel_id=None)


def test_a_budget_of_zero_allows_only_ones_own_results() -> None:
    rule = RerunRule(per_hour=0, clock=Clock())
    rule.claim("mine", requester_id=7, user_id=7, channel_id=None)
    with pytest.raises(RerunBudgetSpent) as refused:
        rule.claim("theirs", requester_id=1, user_id=7, channel_id=None)
    assert str(refused.value) == "Here you can re-run only your own pictures."
