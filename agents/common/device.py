"""Mixed precision and the optimizer of the trainers (the device resolver is :mod:`textbandit.runtime`'s)."""

from __future__ import annotations

import torch


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when ``bf16``; a no-op context on CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def adamw(params, device: torch.device, **kwargs) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel on CPU and CUDA (one kernel for all parameters: on a CPU
    about 4x faster per step than the ``foreach`` loop at the task's model sizes; same update)."""
    return torch.optim.AdamW(params, fused=torch.device(device).type in ("cpu", "cuda"), **kwargs)
