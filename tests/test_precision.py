"""``run.train.precision: auto``: bf16 only where the device computes it natively, the reason recorded."""

from __future__ import annotations

import pytest
import torch

from prompttune import precision
from prompttune.precision import grad_scaler, resolve_precision

CPU = torch.device("cpu")
SAPPHIRE_RAPIDS = "fpu sse avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile"
EPYC_AVX2 = "fpu sse avx avx2 fma"


def machine(monkeypatch: pytest.MonkeyPatch, flags: str, capability: str, onednn_bf16: bool) -> None:
    """Pretend to be a CPU with these flags, ATen capability and oneDNN bf16 support."""
    monkeypatch.setattr(precision, "cpu_info", lambda: {"model": "test CPU", "flags": flags})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)


def test_auto_picks_fp32_on_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, EPYC_AVX2, "AVX2", onednn_bf16=False)
    chosen = resolve_precision("auto", CPU)
    assert chosen.used == "fp32"
    assert chosen.reason == "auto: CPU flags without avx512_bf16/amx_bf16, ATen AVX2, oneDNN bf16 off"


def test_auto_picks_bf16_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, SAPPHIRE_RAPIDS, "AVX512", onednn_bf16=True)
    chosen = resolve_precision("auto", CPU)
    assert chosen.used == "bf16"
    assert chosen.reason == "auto: CPU flags avx512_bf16+amx_bf16, ATen AVX512, oneDNN bf16 on"


@pytest.mark.parametrize(
    ("capability", "onednn_bf16"),
    [("AVX2", True), ("AVX512", False)],
    ids=["ATEN_CPU_CAPABILITY=avx2", "ONEDNN_MAX_CPU_ISA=AVX2"],
)
def test_auto_picks_fp32_when_the_environment_holds_a_bf16_cpu_back(
    monkeypatch: pytest.MonkeyPatch, capability: str, onednn_bf16: bool
) -> None:
    machine(monkeypatch, SAPPHIRE_RAPIDS, capability, onednn_bf16)
    assert resolve_precision("auto", CPU).used == "fp32"


@pytest.mark.parametrize("requested", ["fp32", "bf16", "fp16"])
def test_an_explicit_precision_is_used_as_set(monkeypatch: pytest.MonkeyPatch, requested: str) -> None:
    machine(monkeypatch, EPYC_AVX2, "AVX2", onednn_bf16=False)
    chosen = resolve_precision(requested, CPU)
    assert (chosen.used, chosen.reason) == (requested, "set in run.train.precision")


@pytest.mark.parametrize(
    ("bf16", "name", "used"), [(True, "NVIDIA H100 80GB HBM3", "bf16"), (False, "Tesla T4", "fp16")]
)
def test_auto_on_a_gpu_takes_bf16_where_supported_else_fp16(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, name: str, used: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    chosen = resolve_precision("auto", torch.device("cuda"))
    assert chosen.used == used and name in chosen.reason


def test_only_fp16_scales_the_loss() -> None:
    assert grad_scaler(CPU, "fp16").is_enabled()
    assert not grad_scaler(CPU, "bf16").is_enabled() and not grad_scaler(CPU, "fp32").is_enabled()
