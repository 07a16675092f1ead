"""The settings every trainer has for memory and for several processes (:class:`ScaleConfig`), and
the model preparations they ask for (gradient checkpointing, frozen models in bf16 on a GPU)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from agents.common.distributed import DEFAULT_TIMEOUT_S


@dataclass
class ScaleConfig:
    """Memory and parallelism fields of the pretraining, SFT, reward-model and PPO configs (each
    documented once, here). Under ``torchrun`` every trainer is data-parallel (DDP) by itself."""

    fsdp: bool = False
    """under torchrun, shard weights, gradients and optimizer state over the ranks with FSDP2
    (fully_shard, block by block) instead of replicating them (DDP): for models that do not fit one device"""
    gradient_checkpointing: bool = False
    """recompute each transformer block's activations in the backward pass instead of keeping
    them: less memory for about a third more compute; the same gradients"""
    dist_timeout_s: float = DEFAULT_TIMEOUT_S
    """under torchrun, seconds a rank waits for the others in a collective before the run stops
    with an error (a hung rank never hangs the run)"""

    def __post_init__(self):
        if not (isinstance(self.dist_timeout_s, (int, float)) and self.dist_timeout_s > 0):
            raise ValueError(f"dist_timeout_s={self.dist_timeout_s!r}; use a number of seconds > 0")


def enable_gradient_checkpointing(model: nn.Module) -> nn.Module:
    """Turn on Hugging Face gradient checkpointing (non-reentrant) in every transformers model
    inside ``model`` (a causal LM, a PEFT model, a reward model's trunk); returns ``model``."""
    found = False
    for module in model.modules():
        if getattr(module, "supports_gradient_checkpointing", False) and hasattr(
            module, "gradient_checkpointing_enable"
        ):
            kwargs = {"use_reentrant": False}
            if hasattr(module, "activation_checkpointing_enable"):  # its name from transformers 5.x on
                module.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            found = True
            break  # the outermost transformers model sets it on all its layers
    if not found:
        raise ValueError(
            f"gradient_checkpointing=True but {type(model).__name__} holds no Hugging Face model that supports "
            "it; set gradient_checkpointing=False"
        )
    return model


def frozen_dtype(device: torch.device, bf16: bool) -> torch.dtype | None:
    """The dtype of models that are only ever run forward (reference, reward model) on ``device``:
    bf16 on a GPU when ``bf16`` (they need no float32 master weights), else unchanged (``None``)."""
    return torch.bfloat16 if (device.type == "cuda" and bf16) else None
