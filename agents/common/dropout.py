"""Residual dropout on a Hugging Face config or model (InstructGPT trained SFT with 0.2).

Dropout modules read their probability from the config when the model is built, so changing a
built model's config is not enough: :func:`with_dropout` rebuilds the model from the edited
config and copies the weights. ``model.eval()`` turns dropout off, as always.
"""

from __future__ import annotations

import copy

import torch

# Names of residual-dropout settings across Hugging Face configs (GPT-2, GPT-J/Neo, BERT-likes, Llama-likes, ...).
RESIDUAL_DROPOUT_FIELDS = ("resid_pdrop", "resid_dropout", "hidden_dropout", "hidden_dropout_prob", "dropout")


def set_dropout(config, p: float) -> list[str]:
    """Set every residual-dropout field of ``config`` to ``p``; returns the field names set.

    Raises ``ValueError`` when the config has none of :data:`RESIDUAL_DROPOUT_FIELDS`.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p={p}; use 0 <= p < 1 (0 turns it off)")
    names = [n for n in RESIDUAL_DROPOUT_FIELDS if isinstance(getattr(config, n, None), (int, float))]
    if not names:
        raise ValueError(f"{type(config).__name__} has no residual-dropout field among {RESIDUAL_DROPOUT_FIELDS}; "
                         "pass dropout=None to keep the model as it is")
    for n in names:
        setattr(config, n, float(p))
    return names


def with_dropout(model: torch.nn.Module, p: float) -> torch.nn.Module:
    """A copy of a Hugging Face ``model`` built with residual dropout ``p`` (same weights, device, dtype, mode)."""
    config = copy.deepcopy(model.config)
    set_dropout(config, p)
    param = next(model.parameters())
    new = type(model)(config)
    new.load_state_dict(model.state_dict())
    return new.to(device=param.device, dtype=param.dtype).train(model.training)
