"""Helpers shared by the tests: tiny images (images.py), a local preset server (preset_http.py)."""

from pathlib import Path

#: The checkout's root: where ``python -m bot`` and ``python -m nst_engine`` run from in tests.
REPO_ROOT = Path(__file__).resolve().parents[2]
