"""💪 cannot flood: many members reacting to one result start at most one re-run, leave the queue
free for everyone else, and get at most one public notice; a press meanwhile is told where the
re-run is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.core.records import JobStatus
from bot.core.settings import Settings
from bot.core.texts import REQUESTER_ONLY_TEXT, already_rerunning, rerun_budget_spent
from tests.e2e.conftest import let_anyone_rerun, painting, photo, results, started
from tests.fakediscord import FakeDiscord, FakeMessage, FakeUser

#: Members reacting to one picture, as in the report that 40 members started 21 re-runs.
MEMBERS = 40


def public_messages(fake: FakeDiscord) -> list[FakeMessage]:
    return fake.channel_messages(include_ephemeral=False)


async def everyone_reacts(fake: FakeDiscord, message: FakeMessage, members: list[FakeUser]) -> None:
    """Every member reacts at once (each reaction is its own gateway event)."""
    await asyncio.gather(*(fake.react(message, "💪", user=member) for member in members))


def cancel_buttons(fake: FakeDiscord) -> list[FakeMessage]:
    return [m for m in public_messages(fake) if any(b["label"] == "Cancel" for b in m.buttons())]


async def test_many_reactions_on_one_result_start_one_rerun_and_one_notice_at_most(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    fake = fake_discord
    members = [fake.add_member(f"member{number}") for number in range(MEMBERS)]
    async with started(make_settings(), fake) as bot:
        await fake.slash_command(
            "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.alice
        )
        [first] = await fake.wait_for(lambda: results(fake), timeout=60)
        await fake.wait_for(lambda: not bot.queue.jobs(), timeout=60)

        # The default: only alice may re-run her picture; forty refusals, one public notice.
        before = len(public_messages(fake))
        await everyone_reacts(fake, first, members)
        await fake.wait_for(
            lambda: [m for m in public_messages(fake) if REQUESTER_ONLY_TEXT in m.content], timeout=30
        )
        await asyncio.sleep(1.0)  # every reaction has been handled by now; none may add a message
        assert len(public_messages(fake)) == before + 1, fake.describe()
        assert not bot.queue.jobs() and len(bot.store.with_status(*JobStatus)) == 1
        await let_anyone_rerun(fake)

    # A server that lets anyone re-run, and re-runs that paint until cancelled: every reaction
    # arrives while the first re-run is in flight.
    async with started(make_settings(iterations=100_000), fake) as bot:
        before = len(public_messages(fake))
        await everyone_reacts(fake, first, members)
        await fake.wait_for(lambda: bot.queue.jobs(), timeout=30)
        await asyncio.sleep(1.0)
        assert len(bot.queue.jobs()) == 1, "the queue must hold no flood"
        [rerun] = bot.store.with_status(JobStatus.QUEUED, JobStatus.RUNNING)
        assert len(bot.store.with_status(*JobStatus)) == 2, "exactly one re-run"
        new_public = public_messages(fake)[before:]
        assert [m.id for m in new_public] == [m.id for m in cancel_buttons(fake)], [
            m.content for m in new_public
        ]  # the re-run's progress message, and no notice

        # A press on the same result meanwhile is told privately where the re-run is.
        press = await fake.click(first, "Re-roll", user=fake.bob)
        answer = await fake.wait_for(lambda: fake.original(press), timeout=30)
        assert answer.ephemeral and answer.content == already_rerunning(first.channel_id)
        assert f"<#{first.channel_id}>" in answer.content

        # Cancelled, the re-run lets the next one in.
        [progress] = cancel_buttons(fake)
        await fake.click(progress, "Cancel", user=fake.users[rerun.user_id])
        await fake.wait_for(lambda: "Cancelled" in progress.content, timeout=60)
        await fake.wait_for(lambda: not bot.runner.reruns.rerunning, timeout=30)  # its job has ended
        await fake.react(first, "💪", user=fake.bob)
        await fake.wait_for(lambda: len(bot.store.with_status(*JobStatus)) == 3, timeout=30)
        await fake.wait_for(lambda: bot.queue.jobs(), timeout=30)
        [progress] = await fake.wait_for(lambda: cancel_buttons(fake), timeout=30)
        await fake.click(progress, "Cancel", user=fake.bob)
        await fake.wait_for(lambda: not bot.queue.jobs(), timeout=60)


async def test_the_budget_for_others_pictures_is_told_privately_on_a_press_and_once_on_a_reaction(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    fake = fake_discord
    async with started(make_settings(others_reruns_per_hour=1), fake) as bot:
        await let_anyone_rerun(fake)
        await fake.slash_command(
            "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.alice
        )
        [first] = await fake.wait_for(lambda: results(fake), timeout=60)
        await fake.click(first, "Stronger", user=fake.bob)  # bob's one re-run of others' this hour
        await fake.wait_for(lambda: len(results(fake)) == 2 and not bot.queue.jobs(), timeout=60)
        spent = rerun_budget_spent(1, 3600).split(";")[0]  # "...per hour" (the minutes left vary)
        press = await fake.click(first, "Re-roll", user=fake.bob)
        answer = await fake.wait_for(lambda: fake.original(press), timeout=30)
        assert answer.ephemeral and answer.content.startswith(spent)
        for _ in range(3):
            await fake.react(first, "💪", user=fake.bob)
        [notice] = await fake.wait_for(lambda: [m for m in public_messages(fake) if spent in m.content])
        assert fake.bob.mention in notice.content
        await fake.click(first, "Re-roll", user=fake.alice)  # alice's own picture: not counted
        await fake.wait_for(lambda: len(results(fake)) == 3, timeout=60)
        await asyncio.sleep(0.5)
        assert len([m for m in public_messages(fake) if spent in m.content]) == 1
