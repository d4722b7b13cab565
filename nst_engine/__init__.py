"""nst_engine: neural style transfer (Gatys et al.) as a small library.

The public API is what this module exports: parameters in (:class:`StyleParams`), an image and
stats out (:class:`Result`), a progress callback and a cancellation event in between. Nothing here
knows about Discord.

The names are loaded on first use (PEP 562), so that importing a light module of the package
(``nst_engine.params``, ``nst_engine.cli``) does not load torch: ``nst --help`` answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .animation import ClipResult, stylize_clip
    from .cache import StyleTargetCache
    from .clips import Clip, ClipLimits, ClipParams, decode_clip, encode_clip, probe_clip
    from .engine import Progress, Result, RunStats, StyleImage, preload, stylize
    from .errors import (
        Cancelled,
        InvalidImage,
        NSTError,
        ParameterError,
        PresetError,
        WeightsUnavailable,
    )
    from .params import StyleParams

#: Where each public name lives; ``from nst_engine import X`` imports that module when X is asked for.
_HOMES = {
    "ClipResult": ".animation",
    "stylize_clip": ".animation",
    "Clip": ".clips",
    "ClipLimits": ".clips",
    "ClipParams": ".clips",
    "decode_clip": ".clips",
    "encode_clip": ".clips",
    "probe_clip": ".clips",
    "StyleTargetCache": ".cache",
    "Progress": ".engine",
    "Result": ".engine",
    "RunStats": ".engine",
    "StyleImage": ".engine",
    "preload": ".engine",
    "stylize": ".engine",
    "Cancelled": ".errors",
    "InvalidImage": ".errors",
    "NSTError": ".errors",
    "ParameterError": ".errors",
    "PresetError": ".errors",
    "WeightsUnavailable": ".errors",
    "StyleParams": ".params",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nst_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__all__ = [
    "Cancelled",
    "Clip",
    "ClipLimits",
    "ClipParams",
    "ClipResult",
    "InvalidImage",
    "NSTError",
    "ParameterError",
    "PresetError",
    "Progress",
    "Result",
    "RunStats",
    "StyleImage",
    "StyleParams",
    "StyleTargetCache",
    "WeightsUnavailable",
    "decode_clip",
    "encode_clip",
    "preload",
    "probe_clip",
    "stylize",
    "stylize_clip",
]
