"""Choosing where (device) and how (precision) a run computes.

``auto`` must never pick something slow: reduced precision is chosen only where the hardware has
native support for it (bf16 on CPUs with AVX512-BF16 or AMX, bf16 on Ampere+ GPUs, fp16 on older
GPUs). Everywhere else ``auto`` means fp32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .errors import ParameterError

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ComputeSetup:
    """The resolved device and precision of one run."""

    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return None if self.precision == "fp32" else _DTYPES[self.precision]

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """The autocast context the VGG forward pass runs in (a no-op for fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device must exist or it is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError("device", "a CUDA GPU was asked for, but none is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParameterError(
                "device", f"{name} does not exist ({torch.cuda.device_count()} CUDA GPU(s) found)"
            )
    if device.type == "mps" and not mps_available():
        raise ParameterError("device", "Apple MPS was asked for, but it is not available")
    return device


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for check in checks:
        probe = getattr(cpu, check, None)
        if probe is not None:
            with contextlib.suppress(Exception):
                if probe():
                    return True
    return False


def auto_precision(device: torch.device) -> str:
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    # MPS: fp16 autocast support differs between macOS/torch releases; fp32 is the safe choice.
    return "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return auto_precision(device)
    if precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        log.warning("bf16 was asked for on a CPU without native bf16 support; it will be slow")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ParameterError("precision", "this GPU does not support bf16; use fp16 or fp32")
    return precision


def resolve(device: str, precision: str) -> ComputeSetup:
    resolved = resolve_device(device)
    return ComputeSetup(device=resolved, precision=resolve_precision(precision, resolved))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall-clock timing covers it (GPUs run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of the run: GPU allocator peak on CUDA, the process's peak RSS elsewhere."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "mps":
        with contextlib.suppress(Exception):
            return int(torch.mps.driver_allocated_memory())
    return process_peak_rss_bytes()


def process_peak_rss_bytes() -> int:
    try:
        import resource
    except ImportError:  # Windows
        return 0
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


@contextlib.contextmanager
def no_grad_autocast(setup: ComputeSetup) -> Iterator[None]:
    with torch.no_grad(), setup.autocast():
        yield
