"""Mixed precision and the optimizer of the trainers (the device resolver is :mod:`textbandit.runtime`'s)."""

from __future__ import annotations

import torch


def autocast(device: torch.device, bf16: bool, cpu: bool = False):
    """bf16 autocast on CUDA when ``bf16``, and on a CPU when ``cpu`` as well; else a no-op context."""
    on = bf16 and (device.type == "cuda" or (cpu and device.type == "cpu"))
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def cpu_multiplies_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX tiles). There, bf16
    autocast halves a training step of the task's 11M-parameter model; a CPU without them
    emulates bf16 and gains nothing (benchmarks/README.md, "Ninth pass")."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


def adamw(params, device: torch.device, **kwargs) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel on CPU and CUDA (one kernel for all parameters: on a CPU
    about 4x faster per step than the ``foreach`` loop at the task's model sizes; same update)."""
    return torch.optim.AdamW(params, fused=torch.device(device).type in ("cpu", "cuda"), **kwargs)
