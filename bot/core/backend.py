"""Where paintings are made, behind one small interface.

:class:`Backend` is all the job runner (:mod:`bot.core.runner`) knows of painting: admit a job,
submit it with an observer (queue position, start, progress), wait for its
:class:`~nst_engine.Result`, cancel it, ask where it stands in line. Two implementations:

- :class:`~bot.core.local_backend.LocalBackend` (the default): the engine in this process, on
  worker threads (:class:`~bot.core.thread_queue.ThreadQueue`); nothing else to run.
- :class:`~bot.core.arq_backend.ArqBackend`: the job goes to Redis and one of any number of
  ``nst-worker`` processes paints it; chosen when the ``queue_url`` setting is set.

Both admit jobs by the same rule (:class:`~bot.core.admission.Admission`). PIL images and
``StyleParams`` go in and a ``Result`` comes out; nothing of Discord reaches a backend.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from nst_engine import Progress, Result, StyleParams

if TYPE_CHECKING:
    from PIL import Image

    from nst_engine.clips import Clip, ClipFormat, ClipLimits, ClipParams

    from .admission import Reservation
    from .records import JobRecord


@dataclass(frozen=True)
class PaintJob:
    """One painting to make: decoded inputs and the engine's parameters, nothing of Discord."""

    job_id: str
    user_id: int
    content: Image.Image
    style: Image.Image | None  #: None: paint with ``preset``
    preset: str | None
    params: StyleParams
    preview_every: int
    preview_size: int
    #: An animation (JobKind.ANIMATE): ``content`` is then its first frame.
    animation: ClipJob | None = None
    #: An upscale's starting picture (the result it enlarges); the engine's ``start_from``.
    start_from: Image.Image | None = None


@dataclass(frozen=True)
class ClipJob:
    """What an animation job paints beyond a still's inputs; its result is an
    :class:`~bot.core.animation.AnimatedResult`."""

    clip: Clip  #: the decoded frames (painted by this process)
    #: The kept file (:mod:`bot.core.clip_inputs`): what travels to the workers, which decode it
    #: with ``limits`` as the bot did.
    data: bytes
    limits: ClipLimits
    params: ClipParams
    #: What the workers encode the painted clip as (the ``animation_format`` setting).
    output_format: ClipFormat


class JobObserver(Protocol):
    """What a backend tells about a job while it waits and runs (called on the event loop)."""

    async def on_position(self, position: int) -> None: ...

    def on_start(self) -> None: ...

    async def on_progress(self, progress: Progress) -> None: ...


class Backend(Protocol):
    """The painting service as the runner sees it."""

    def reserve(self, user_id: int) -> Reservation:
        """Take a place for a request of ``user_id`` before its inputs are fetched (limits, cap,
        cooldown), or raise the :class:`~bot.core.errors.JobRefused` it meets."""

    async def submit(
        self, job: PaintJob, observer: JobObserver, reservation: Reservation | None = None
    ) -> asyncio.Future[Result]:
        """Admit and enqueue ``job`` (or raise :class:`~bot.core.errors.JobRefused`); the future
        gives its result. The job takes over ``reservation``'s place."""

    async def resume(self, record: JobRecord, observer: JobObserver) -> asyncio.Future[Result] | None:
        """Follow again a job a previous bot process started; None when it cannot go on."""

    def position(self, job_id: str) -> int:
        """Jobs ahead of this one (0: running or next; -1: unknown)."""

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job, or stop a running one; False when the job is unknown or over."""

    def stopped_by_shutdown(self, job_id: str) -> bool:
        """Whether the job ended because the bot is shutting down (its user is told so)."""

    async def ping(self) -> None:
        """Raise :class:`~bot.core.errors.ServiceUnavailable` when the painting service cannot be reached."""

    async def shutdown(self, timeout: float) -> int:
        """Stop admitting and let go of every job; returns how many were stopped or left running."""
