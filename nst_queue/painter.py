"""``nst --queue``: the ``nst`` command paints on ``nst-worker`` processes through Redis.

The engine's command line (:mod:`nst_engine.cli`) finds :class:`QueuePainter` through the
``nst.painters`` entry point in pyproject.toml, so the engine never imports the queue. This module
is imported by every ``nst`` start, ``--help`` included: arq and redis are imported only when a job
is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nst_engine.errors import NSTError

if TYPE_CHECKING:
    from PIL import Image

    from nst_engine import Progress, Result, StyleParams

#: The Redis URL when ``--queue`` is not given, as for ``nst-worker``: it keeps the password out of ``ps``.
QUEUE_URL_ENV = "NST_QUEUE_URL"
DEFAULT_START_TIMEOUT = 60.0


class QueueFailed(NSTError):
    """The queue could not be reached, or no worker took the job: exit status 1."""


class QueuePainter:
    """The ``--queue`` flags, and painting one picture on the workers with the same progress bar."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(
            "painting on nst-worker processes",
            f"  nst photo.jpg painting.jpg -o painted.png --queue redis://:PASSWORD@redis-host:6379/0\n"
            f"  {QUEUE_URL_ENV}=redis://... nst photo.jpg painting.jpg -o painted.png\n"
            "exit status 1 when Redis cannot be reached or no worker starts the job in time",
        )
        group.add_argument(
            "--queue",
            metavar="URL",
            default=os.environ.get(QUEUE_URL_ENV) or None,
            help=(
                "paint on nst-worker processes through this Redis (redis://[:password@]host:port/db); "
                f"default: ${QUEUE_URL_ENV}, which keeps the password out of the process list"
            ),
        )
        group.add_argument(
            "--local",
            action="store_true",
            help=f"paint in this process even when ${QUEUE_URL_ENV} is set",
        )
        group.add_argument(
            "--queue-timeout",
            type=float,
            default=DEFAULT_START_TIMEOUT,
            metavar="S",
            help=(
                "with --queue: give up (exit 1) when no worker starts the job within S seconds "
                f"(default: {DEFAULT_START_TIMEOUT:g})"
            ),
        )

    def wanted(self, args: argparse.Namespace) -> bool:
        return bool(args.queue) and not args.local

    def paint(
        self,
        args: argparse.Namespace,
        content: Image.Image,
        styles: list[Image.Image],
        params: StyleParams,
        on_progress: Callable[[Progress], None],
    ) -> Result:
        from .client import NoWorker, Unavailable, run_job
        from .protocol import RemoteFailure

        relay: Callable[[Any], Any] = on_progress
        try:
            result: Result = asyncio.run(
                run_job(
                    args.queue,
                    content,
                    styles,
                    params.to_dict(),
                    on_progress=relay,
                    start_timeout=args.queue_timeout,
                )
            )
        except Unavailable as error:
            raise QueueFailed(f"cannot reach the queue: {error}") from None
        except (NoWorker, RemoteFailure) as error:
            raise QueueFailed(str(error)) from None
        return result
