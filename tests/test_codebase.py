"""The codebase gate: lint, format, types, dead code and the layering, run as ordinary tests so CI
fails on drift.

Each tool is configured in pyproject.toml and run from the interpreter running the tests
(``sys.executable -m TOOL``), so the venv's pinned versions are the ones that judge. A failure prints
the tool's own report; fix the code (see CONTRIBUTING.md), not the test.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------- layering
# The layers, each importing only those below it: nst_engine (the ground floor), nst_queue, the
# bot's painting core (bot.core, no discord), the bot's Discord layer (bot.chat, bot.__main__).
# Imports are read with ast from every place they can hide: the top of a module, inside
# functions, and under ``if TYPE_CHECKING:`` (an import only the type checker follows is still a
# dependency, and still a circle when it closes one).
CORE = "bot.core"
BOT_PACKAGES = ("bot",)
LAYERED_PACKAGES = ("nst_engine", "nst_queue", "bot")


@dataclass(frozen=True)
class Module:
    """One module's source, and whether it is a package's ``__init__`` (relative imports differ)."""

    source: str
    is_package: bool = False


def read_modules(root: Path, packages: tuple[str, ...] = LAYERED_PACKAGES) -> dict[str, Module]:
    """Every module of ``packages`` under ``root``, by dotted name."""
    found: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = Module(path.read_text(encoding="utf-8"), is_package)
    return found


def imported_names(name: str, module: Module, known: set[str]) -> set[str]:
    """The absolute names ``module`` imports anywhere in it. ``from X import y`` counts as ``X.y``
    where that is a known module (a submodule), else as ``X``."""
    package = name if module.is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layering_problems(modules: dict[str, Module]) -> list[str]:
    """Every broken layering rule, one line each (empty: the layers hold)."""
    known = set(modules)
    graph = {name: imported_names(name, module, known) for name, module in modules.items()}
    problems: list[str] = []
    for name, imports in sorted(graph.items()):
        for imported in sorted(imports):
            if _within(name, CORE) and _within(imported, "discord"):
                problems.append(f"{name} imports {imported}: the bot's core never imports discord")
            elif _within(name, CORE) and _within(imported, "bot") and not _within(imported, CORE):
                problems.append(f"{name} imports {imported}: the bot's core imports nothing above it")
            elif _within(name, "nst_engine") and (_within(imported, "nst_queue") or _within(imported, "bot")):
                problems.append(f"{name} imports {imported}: nst_engine imports neither nst_queue nor bot")
    problems.extend(f"import circle: {' -> '.join(circle)}" for circle in import_circles(graph))
    return problems


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles among the bot's modules (each once, as the path that closes it)."""
    bot_graph = {
        name: sorted(imported for imported in imports if imported in graph and imported != name)
        for name, imports in graph.items()
        if any(_within(name, package) for package in BOT_PACKAGES)
    }
    circles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for imported in bot_graph.get(name, []):
            if state.get(imported) == "open":
                circle = [*path[path.index(imported) :], imported]
                if frozenset(circle) not in seen:
                    seen.add(frozenset(circle))
                    circles.append(circle)
            elif imported not in state:
                visit(imported)
        path.pop()
        state[name] = "done"

    for name in sorted(bot_graph):
        if name not in state:
            visit(name)
    return circles


def test_the_layers_hold() -> None:
    problems = layering_problems(read_modules(ROOT))
    assert not problems, "\n".join(problems)


def _planted(**sources: str) -> list[str]:
    """The problems that ``sources`` (module name -> text), planted among the real packages, add."""
    modules = read_modules(ROOT)
    before = set(layering_problems(modules))
    for name, source in sources.items():
        modules[name] = Module(source)
    return [problem for problem in layering_problems(modules) if problem not in before]


def test_the_core_importing_discord_fails_the_gate() -> None:
    planted = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import discord.ui\n"
    assert _planted(**{"bot.core.planted": planted}) == [
        "bot.core.planted imports discord.ui: the bot's core never imports discord"
    ]


def test_the_core_importing_the_discord_layer_fails_the_gate() -> None:
    planted = "def later():\n    from ..chat import buttons\n    return buttons\n"
    assert _planted(**{"bot.core.planted": planted}) == [
        "bot.core.planted imports bot.chat.buttons: the bot's core imports nothing above it"
    ]


@pytest.mark.parametrize("upward", ["import nst_queue.client", "from bot.core import texts"])
def test_the_engine_importing_the_queue_or_the_bot_fails_the_gate(upward: str) -> None:
    planted = f"def later():\n    {upward}\n"
    [problem] = _planted(**{"nst_engine.planted": planted})
    assert problem.startswith("nst_engine.planted imports ") and "imports neither" in problem


def test_an_import_circle_in_the_bot_fails_the_gate_also_under_type_checking() -> None:
    first = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .planted_b import B\n"
    second = "from .planted_a import A\n"
    assert _planted(**{"bot.chat.planted_a": first, "bot.chat.planted_b": second}) == [
        "import circle: bot.chat.planted_a -> bot.chat.planted_b -> bot.chat.planted_a"
    ]
