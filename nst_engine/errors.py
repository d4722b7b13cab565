"""Every error the engine raises on purpose derives from :class:`NSTError`.

Callers (the CLI, the bot) catch ``NSTError`` and show ``str(error)`` to a person: messages are
written to be read by a user, never contain tracebacks, and name what to fix.
"""

from __future__ import annotations


class NSTError(Exception):
    """Base class of the engine's deliberate errors; the message is safe to show a user."""


class InvalidImage(NSTError):
    """An input could not be used as an image (not an image, truncated, too small, too large...)."""


class ParameterError(NSTError, ValueError):
    """A parameter has a bad value. ``parameter`` names it so UIs can point at the right field."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class Cancelled(NSTError):
    """The run was cancelled through its ``cancel`` event."""

    def __init__(self, message: str = "the run was cancelled") -> None:
        super().__init__(message)


class WeightsUnavailable(NSTError):
    """The VGG19 weights could not be loaded (missing package, no network for a download...)."""


class PresetError(NSTError):
    """A preset is unknown, or its image could not be fetched or decoded."""


#: How PyTorch words running out of memory: CUDA and MPS ("out of memory"), the CPU allocator
#: ("DefaultCPUAllocator: not enough memory: you tried to allocate ...").
_OUT_OF_MEMORY_WORDS = ("out of memory", "not enough memory")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means the device ran out of memory (a smaller size may fit)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(words in text for words in _OUT_OF_MEMORY_WORDS)
