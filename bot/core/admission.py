"""Admission: the one rule that says whether a user's new job may join, for every backend.

The rule: nothing while the bot shuts down; at most ``per_user_limit`` jobs of one user in flight;
one request per ``cooldown_seconds`` per user; at most ``queue_cap`` jobs waiting. A backend only
counts (:data:`Count`: the user's jobs in flight and the jobs waiting); :class:`Admission` judges.

A request takes a :class:`Reservation` before anything is downloaded: it counts as one of the
user's jobs (and one waiting job) until the job itself is submitted, or until it is given back
because the request failed. So simultaneous requests over the limit are refused before any of
them is downloaded or decoded.

A re-run (a button or the reaction on a result) meets two more rules first (:class:`RerunRule`):
one re-run of a result at a time, and at most ``per_hour`` re-runs of other people's results per
user in any hour. So forty members reacting to one picture start one job, not forty.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from .errors import CoolingDown, QueueFull, RerunBudgetSpent, RerunInProgress, ShuttingDown, TooManyJobs


@dataclass(frozen=True)
class Load:
    """What a backend has in hand, as the rule needs it."""

    #: Jobs of the asking user submitted and not finished (waiting or running).
    user_in_flight: int
    #: Jobs submitted and not started yet, of every user.
    waiting: int


#: ``count(user_id)``: the backend's :class:`Load` for a request of ``user_id``.
Count = Callable[[int], Load]


class Reservation:
    """A user's place in the limits, taken before a request downloads anything.

    Given back with :meth:`release` (idempotent: call it on every path, a ``finally``), unless a
    submitted job took it over first. Given back unused, it also gives back the cooldown it started.
    """

    def __init__(self, book: Reservations, user_id: int, previous_submit: float | None, at: float) -> None:
        self._book = book
        self.user_id = user_id
        self._previous_submit = previous_submit
        self._at = at
        self.held = True

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def taken_over(self) -> None:
        """A job was submitted with it: the job counts from now on."""
        if self.held:
            self.held = False
            self._book.held[self.user_id] -= 1

    def release(self) -> None:
        if not self.held:
            return
        self.taken_over()
        if self._book.last_submit.get(self.user_id) == self._at:
            if self._previous_submit is None:
                del self._book.last_submit[self.user_id]
            else:
                self._book.last_submit[self.user_id] = self._previous_submit


class Reservations:
    """The reservations held and each user's last request time (for the cooldown)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.held: Counter[int] = Counter()
        self.last_submit: dict[int, float] = {}

    @property
    def total(self) -> int:
        return sum(self.held.values())


class Admission:
    """The admission rule of one backend, with its reservations."""

    def __init__(
        self,
        count: Count,
        *,
        queue_cap: int,
        per_user_limit: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.count = count
        self.queue_cap = queue_cap
        self.per_user_limit = per_user_limit
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self.reservations = Reservations(clock)
        #: Set when the backend shuts down: every request is refused from then on.
        self.closed = False

    def check(self, user_id: int) -> None:
        """Raise the :class:`~bot.core.errors.JobRefused` a new job of ``user_id`` meets now."""
        if self.closed:
            raise ShuttingDown()
        load = self.count(user_id)
        book = self.reservations
        if load.user_in_flight + book.held[user_id] >= self.per_user_limit:
            raise TooManyJobs(self.per_user_limit)
        last = book.last_submit.get(user_id)
        if last is not None and self.cooldown_seconds > 0:
            remaining = self.cooldown_seconds - (self.clock() - last)
            if remaining > 0:
                raise CoolingDown(remaining)
        if load.waiting + book.total >= self.queue_cap:
            raise QueueFull()

    def reserve(self, user_id: int) -> Reservation:
        """Admit a request of ``user_id`` before its inputs are fetched (or raise)."""
        self.check(user_id)
        book = self.reservations
        now = self.clock()
        reservation = Reservation(book, user_id, book.last_submit.get(user_id), now)
        book.held[user_id] += 1
        book.last_submit[user_id] = now
        return reservation

    def admit(self, user_id: int, reservation: Reservation | None) -> None:
        """Admit a job being submitted: with a held ``reservation`` it takes that place (the limits
        were checked when it was made); without one the rule is checked now."""
        if self.closed:
            raise ShuttingDown()
        if reservation is not None and reservation.held:
            reservation.taken_over()
            return
        self.check(user_id)
        self.reservations.last_submit[user_id] = self.clock()


#: The window of the re-run budget (:attr:`RerunRule.per_hour`), in seconds.
RERUN_BUDGET_WINDOW = 3600.0


class RerunClaim:
    """One re-run's hold on its result (no other re-run of it starts) and, for someone else's
    result, on one of the user's re-runs this hour.

    Given back with :meth:`release` (idempotent) when the re-run's job ends, however it ends; with
    ``spent=False`` (no job was submitted) the budget is given back too.
    """

    def __init__(self, rule: RerunRule, job_id: str, user_id: int, budget_at: float | None) -> None:
        self._rule = rule
        self.job_id = job_id
        self.user_id = user_id
        self._budget_at = budget_at
        self.held = True

    def release(self, *, spent: bool) -> None:
        if not self.held:
            return
        self.held = False
        self._rule.rerunning.pop(self.job_id, None)
        if not spent and self._budget_at is not None:
            times = self._rule.spent.get(self.user_id)
            if times is not None and self._budget_at in times:
                times.remove(self._budget_at)
                if not times:
                    del self._rule.spent[self.user_id]


class RerunRule:
    """The results being re-run now, and each user's re-runs of other people's results.

    Kept in memory: a restart forgets both, which at worst lets one more re-run start.
    """

    def __init__(self, *, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        #: Re-runs of other people's results one user may start per hour (0: none).
        self.per_hour = per_hour
        self.clock = clock
        #: Job id of a result being re-run -> the channel its re-run was asked in.
        self.rerunning: dict[str, int | None] = {}
        #: User -> when they started each re-run of someone else's result in the last hour.
        self.spent: dict[int, deque[float]] = {}

    def check(self, job_id: str, requester_id: int, user_id: int) -> None:
        """Raise the refusal a re-run of ``job_id`` (asked for by ``requester_id``) by ``user_id``
        meets now: :class:`RerunInProgress` first, then :class:`RerunBudgetSpent`."""
        if job_id in self.rerunning:
            raise RerunInProgress(self.rerunning[job_id])
        if user_id == requester_id:
            return
        times = self._recent(user_id)
        if len(times) >= self.per_hour:
            retry_after = RERUN_BUDGET_WINDOW if not times else times[0] + RERUN_BUDGET_WINDOW - self.clock()
            raise RerunBudgetSpent(self.per_hour, retry_after)

    def claim(self, job_id: str, requester_id: int, user_id: int, channel_id: int | None) -> RerunClaim:
        """Mark ``job_id`` as being re-run by ``user_id`` (asked in ``channel_id``), or raise."""
        self.check(job_id, requester_id, user_id)
        budget_at = None
        if user_id != requester_id:
            budget_at = self.clock()
            self.spent.setdefault(user_id, deque()).append(budget_at)
        self.rerunning[job_id] = channel_id
        return RerunClaim(self, job_id, user_id, budget_at)

    def _recent(self, user_id: int) -> deque[float]:
        """``user_id``'s re-runs of others' results in the last hour (older ones forgotten)."""
        times = self.spent.get(user_id)
        if times is None:
            return deque()
        horizon = self.clock() - RERUN_BUDGET_WINDOW
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self.spent[user_id]
        return times
