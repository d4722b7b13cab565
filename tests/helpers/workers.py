"""``nst-worker`` processes for the tests: started on the test Redis, ready once they report health."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from tests.helpers import REPO_ROOT


class WorkerProcess:
    """One ``python -m nst_queue.worker`` child; its log goes to a file the test can show."""

    def __init__(self, url: str, name: str, log_dir: Path, *extra: str, cpu: int | None = None) -> None:
        """``cpu``: pin the process to that core (``taskset``), for throughput measurements."""
        self.url = url
        self.name = name
        self.log_path = log_dir / f"worker-{name}.log"
        environment = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "OMP_NUM_THREADS": "1",
            "NST_QUEUE_URL": url,
        }
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [
                    *(["taskset", "-c", str(cpu)] if cpu is not None else []),
                    *[sys.executable, "-m", "nst_queue.worker", "--device", "cpu", "--name", name, *extra],
                ],
                env=environment,
                cwd=REPO_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited:\n{self.log()}")
        try:
            with Redis.from_url(self.url, socket_connect_timeout=1) as redis:
                return bool(redis.exists(f"nst:worker:{self.name}"))
        except OSError:
            return False
        except Exception:
            return False

    def kill(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def wait_ready(workers: list[WorkerProcess], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(worker.ready() for worker in workers):
        if time.monotonic() > deadline:
            raise AssertionError("workers not ready:\n" + "\n".join(w.log() for w in workers))
        time.sleep(0.2)
