import pytest
import torch

from nst_engine import ParameterError
from nst_engine import device as devices


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert devices.resolve_device("auto").type == "cpu"
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert devices.resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto").type == "cuda"


def test_an_explicit_missing_gpu_is_a_parameter_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    for name in ("cuda", "cuda:1", "mps"):
        with pytest.raises(ParameterError) as caught:
            devices.resolve_device(name)
        assert caught.value.parameter == "device"


@pytest.mark.parametrize(("fast_bf16", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_uses_bf16_only_with_native_support(monkeypatch, fast_bf16, expected):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: fast_bf16)
    assert devices.resolve_precision("auto", torch.device("cpu")) == expected


@pytest.mark.parametrize(("bf16_ok", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_cuda_picks_bf16_or_fp16(monkeypatch, bf16_ok, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    assert devices.auto_precision(torch.device("cuda")) == expected


def test_auto_precision_on_mps_is_fp32():
    assert devices.auto_precision(torch.device("mps")) == "fp32"


def test_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    assert devices.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert devices.resolve_precision("bf16", torch.device("cpu")) == "bf16"  # slow but allowed


def test_bf16_on_a_gpu_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ParameterError):
        devices.resolve_precision("bf16", torch.device("cuda"))


def test_fp32_has_no_autocast_and_bf16_does():
    cpu = torch.device("cpu")
    assert devices.ComputeSetup(cpu, "fp32").autocast_dtype is None
    with devices.ComputeSetup(cpu, "bf16").autocast():
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.bfloat16


def test_cpu_bf16_probe_matches_cpuinfo():
    flags = ""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    has = ("avx512_bf16" in flags) or ("amx_bf16" in flags)
    assert devices.cpu_has_fast_bf16() == has
