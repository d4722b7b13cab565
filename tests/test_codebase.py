"""The codebase gate: lint, format, types and dead code, run as ordinary tests so CI fails on drift.

Each tool is configured in pyproject.toml and run from the interpreter running the tests
(``sys.executable -m TOOL``), so the venv's pinned versions are the ones that judge. A failure prints
the tool's own report; fix the code (see CONTRIBUTING.md), not the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["nst_engine", "nst_queue", "bot"]


def run_tool(*args: str, timeout: float = 240) -> None:
    """Run ``python -m ARGS`` at the repository root; fail with its output when it reports anything."""
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` found problems:\n{result.stdout}{result.stderr}", pytrace=False)


def test_ruff_lint() -> None:
    run_tool("ruff", "check", "--no-fix", "--output-format", "concise", ".")


def test_ruff_format() -> None:
    run_tool("ruff", "format", "--check", "--diff", ".")


def test_mypy() -> None:
    # The incremental cache (.mypy_cache, gitignored) makes a warm run take a few seconds; CI starts cold.
    run_tool("mypy", *PACKAGES)


def test_no_dead_code() -> None:
    run_tool("vulture")


def test_run_tool_reports_a_finding(tmp_path: Path) -> None:
    """The gate can fail: a tool that reports something turns into a test failure with its output."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    with pytest.raises(pytest.fail.Exception, match="F401"):
        run_tool("ruff", "check", "--no-fix", "--isolated", "--select", "F401", str(bad))
