"""The job queue: admission rules, ordering, positions, progress crossing threads, cancel, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.core.errors import CoolingDown, JobCancelled, QueueFull, TooManyJobs
from bot.core.thread_queue import ThreadJob, ThreadQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def blocking_work(gate: threading.Event, result: str = "done"):
    """Work that waits for ``gate`` (or its cancel event) in the worker thread."""

    def work(cancel: threading.Event, report) -> str:
        while not gate.wait(0.01):
            if cancel.is_set():
                raise RuntimeError("stopped")
        return result

    return work


async def test_runs_work_in_a_worker_thread_and_returns_its_result() -> None:
    queue = ThreadQueue(threads=1)
    main_thread = threading.get_ident()
    future = queue.submit(ThreadJob("a", 1, lambda cancel, report: threading.get_ident()))
    assert await future != main_thread
    await queue.shutdown()


async def test_per_user_limit_refuses_a_second_job_in_flight() -> None:
    gate = threading.Event()
    queue = ThreadQueue(threads=1, per_user_limit=1)
    first = queue.submit(ThreadJob("a", 7, blocking_work(gate)))
    with pytest.raises(TooManyJobs):
        queue.submit(ThreadJob("b", 7, blocking_work(gate)))
    queue.submit(ThreadJob("c", 8, blocking_work(gate)))  # another user is fine
    gate.set()
    assert await first == "done"
    await asyncio.sleep(0.05)
    queue.submit(ThreadJob("d", 7, blocking_work(gate)))  # finished: allowed again
    await queue.shutdown()


async def test_queue_cap_counts_waiting_jobs() -> None:
    gate = threading.Event()
    queue = ThreadQueue(threads=1, queue_cap=2, per_user_limit=5)
    for index in range(3):  # one runs, two wait
        queue.submit(ThreadJob(f"j{index}", index, blocking_work(gate)))
    assert [queue.position(f"j{index}") for index in range(3)] == [0, 1, 2]
    with pytest.raises(QueueFull):
        queue.submit(ThreadJob("x", 99, blocking_work(gate)))
    gate.set()
    await queue.shutdown()


async def test_cooldown_refuses_until_the_time_has_passed() -> None:
    clock = FakeClock()
    queue = ThreadQueue(threads=1, per_user_limit=3, cooldown_seconds=10, clock=clock)
    await queue.submit(ThreadJob("a", 1, lambda c, r: 1))
    clock.now += 4
    with pytest.raises(CoolingDown) as refused:
        queue.admission.check(1)
    assert refused.value.retry_after == pytest.approx(6)
    clock.now += 6
    queue.admission.check(1)
    await queue.shutdown()


async def test_a_reservation_holds_the_place_until_its_job_takes_it_or_it_is_given_back() -> None:
    clock = FakeClock()
    queue = ThreadQueue(threads=1, queue_cap=2, per_user_limit=1, cooldown_seconds=10, clock=clock)
    held = queue.reserve(1)
    with pytest.raises(TooManyJobs):  # the place is taken before anything was downloaded
        queue.reserve(1)
    held.release()  # the request failed: place and cooldown given back
    with queue.reserve(1) as reservation:
        await queue.submit(ThreadJob("a", 1, lambda c, r: 1), reservation)  # the job takes it over
        assert not reservation.held
    with pytest.raises(CoolingDown):  # a used reservation keeps its cooldown
        queue.reserve(1)
    others = [queue.reserve(user) for user in (2, 3)]
    with pytest.raises(QueueFull):  # reservations count as waiting jobs
        queue.reserve(4)
    for other in others:
        other.release()
    queue.reserve(4).release()
    await queue.shutdown()


async def test_positions_are_reported_and_move_up() -> None:
    gate = threading.Event()
    queue = ThreadQueue(threads=1, per_user_limit=5)
    seen: dict[str, list[int]] = {"b": [], "c": []}
    first = queue.submit(ThreadJob("a", 1, blocking_work(gate)))
    queue.submit(ThreadJob("b", 2, blocking_work(gate), on_position=seen["b"].append))
    last = queue.submit(ThreadJob("c", 3, blocking_work(gate), on_position=seen["c"].append))
    assert queue.position("a") == 0 and queue.position("b") == 1 and queue.position("c") == 2
    gate.set()
    await first
    await last
    assert seen["b"][0] == 1
    assert seen["c"][:2] == [2, 1]
    await queue.shutdown()


async def test_progress_crosses_to_the_event_loop_thread() -> None:
    loop_thread = threading.get_ident()
    received: list[tuple[int, int]] = []

    def work(cancel, report):
        for step in range(3):
            report(step)
        return "ok"

    queue = ThreadQueue(threads=1)
    await queue.submit(
        ThreadJob("p", 1, work, on_progress=lambda step: received.append((step, threading.get_ident())))
    )
    await asyncio.sleep(0.01)
    assert [step for step, _ in received] == [0, 1, 2]
    assert {thread for _, thread in received} == {loop_thread}
    await queue.shutdown()


async def test_cancel_waiting_job_and_running_job() -> None:
    gate = threading.Event()
    queue = ThreadQueue(threads=1, per_user_limit=5)
    running = queue.submit(ThreadJob("a", 1, blocking_work(gate)))
    waiting = queue.submit(ThreadJob("b", 2, blocking_work(gate)))
    assert queue.cancel("b")
    with pytest.raises(JobCancelled):
        await waiting
    assert queue.cancel("a")
    with pytest.raises(RuntimeError, match="stopped"):
        await running
    assert not queue.cancel("nope")
    await queue.shutdown()


async def test_a_failing_job_frees_its_slot_for_the_next() -> None:
    queue = ThreadQueue(threads=1, per_user_limit=5)

    def boom(cancel, report):
        raise MemoryError("CUDA out of memory")

    failing = queue.submit(ThreadJob("a", 1, boom))
    following = queue.submit(ThreadJob("b", 2, lambda c, r: "fine"))
    with pytest.raises(MemoryError):
        await failing
    assert await following == "fine"
    await queue.shutdown()


async def test_shutdown_stops_and_reports_every_job() -> None:
    gate = threading.Event()
    queue = ThreadQueue(threads=1, per_user_limit=5)
    running = queue.submit(ThreadJob("a", 1, blocking_work(gate)))
    waiting = queue.submit(ThreadJob("b", 2, blocking_work(gate)))
    stopped = await queue.shutdown(timeout=5)
    assert {job.job_id for job in stopped} == {"a", "b"}
    assert all(job.stopped_by_shutdown for job in stopped)
    for future in (running, waiting):
        assert future.done() and future.exception() is not None
    with pytest.raises(Exception, match="shutting down"):
        queue.admission.check(3)
