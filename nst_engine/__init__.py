"""nst_engine: neural style transfer (Gatys et al.) as a small library.

The public API is what this module exports: parameters in (:class:`StyleParams`), an image and
stats out (:class:`Result`), a progress callback and a cancellation event in between. Nothing here
knows about Discord.
"""

from .cache import StyleTargetCache
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

__all__ = [
    "Cancelled",
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
    "preload",
    "stylize",
]
