"""Numeric precision of a run: what ``run.train.precision`` resolves to on this machine, and why.

``auto`` (the default) picks bf16 autocast only where the device computes bf16 natively: a GPU that
supports it, or a CPU on which both oneDNN (matrix products) and ATen (everything else) run bf16 kernels
— the CPU has AVX-512 BF16 or AMX, and neither ``ONEDNN_MAX_CPU_ISA`` nor ``ATEN_CPU_CAPABILITY`` holds
them back. Elsewhere bf16 is emulated: on a 2-core AVX2 CPU one FewGLUE CB training step took 34.4 s in
bf16 against 1.22 s in fp32 (benchmarks/README.md). A GPU without bf16 gets fp16 with a gradient scaler;
any other device fp32.
"""

from __future__ import annotations

import contextlib

import torch

from prompttune.results import Precision, cpu_info

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU runs bf16 natively for torch here, and the evidence."""
    flags = set(cpu_info()["flags"].split())
    native = [flag for flag in NATIVE_BF16_FLAGS if flag in flags]
    capability = torch.backends.cpu.get_cpu_capability()
    onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    evidence = f"CPU flags {'+'.join(native) or 'without avx512_bf16/amx_bf16'}, ATen {capability}, " + (
        "oneDNN bf16 on" if onednn else "oneDNN bf16 off"
    )
    return bool(native) and onednn and capability.startswith("AVX512"), evidence


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """The precision a run uses for ``run.train.precision`` on ``device``, with the reason."""
    if requested != "auto":
        return Precision(used=requested, reason="set in run.train.precision")  # type: ignore[arg-type]
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", f"auto: {torch.cuda.get_device_name(device)} supports bf16")
        name = torch.cuda.get_device_name(device)
        return Precision("fp16", f"auto: {name} has no bf16; fp16 with a gradient scaler")
    if device.type == "cpu":
        native, evidence = cpu_bf16()
        return Precision("bf16" if native else "fp32", f"auto: {evidence}")
    return Precision("fp32", f"auto: {device.type} device")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's autocast context for ``precision`` (fp32: none)."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16 scales the loss against underflow; any other precision gets a scaler that does nothing."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
