"""Residual dropout on a Hugging Face config or model (InstructGPT trained SFT with 0.2).

Dropout modules read their probability from the config when the model is built, so changing a
built model's config is not enough: :func:`with_dropout` rebuilds the model from the edited
config and copies the weights. ``model.eval()`` turns dropout off, as always.

Some architectures have no residual dropout (Llama, Qwen2, Mistral, ...: only
``attention_dropout``); there ``p`` goes to their attention dropout instead, with a warning.
"""

from __future__ import annotations

import copy
import warnings

import torch

# Names of residual-dropout settings across Hugging Face configs (GPT-2, GPT-J/Neo, BERT-likes, OPT, Falcon, ...).
RESIDUAL_DROPOUT_FIELDS = ("resid_pdrop", "resid_dropout", "hidden_dropout", "hidden_dropout_prob", "dropout")
# Set instead when a config has none of the above (Llama, Qwen2, Mistral and Gemma configs only have attention_dropout).
ATTENTION_DROPOUT_FIELDS = ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob")


def _fields(config, names) -> list[str]:
    return [n for n in names if isinstance(getattr(config, n, None), (int, float))
            and not isinstance(getattr(config, n), bool)]


def set_dropout(config, p: float) -> list[str]:
    """Set every residual-dropout field of ``config`` to ``p``; returns the field names set.

    A config without one gets ``p`` on its attention-dropout fields instead (with a warning).
    Raises ``ValueError`` when the config has neither.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p={p}; use 0 <= p < 1 (0 turns it off)")
    names = _fields(config, RESIDUAL_DROPOUT_FIELDS)
    if not names:
        names = _fields(config, ATTENTION_DROPOUT_FIELDS)
        if not names:
            raise ValueError(f"{type(config).__name__} has no residual-dropout field among {RESIDUAL_DROPOUT_FIELDS} "
                             f"nor attention-dropout field among {ATTENTION_DROPOUT_FIELDS}; "
                             "pass dropout=None to keep the model as it is")
        warnings.warn(f"{type(config).__name__} has no residual dropout; dropout {p} is set on {', '.join(names)} "
                      "instead", stacklevel=2)
    for n in names:
        setattr(config, n, float(p))
    return names


def with_dropout(model: torch.nn.Module, p: float) -> torch.nn.Module:
    """A copy of a Hugging Face ``model`` built with residual dropout ``p`` (same weights, device, dtype, mode).

    A model whose config has no dropout field at all is returned as it is, with a warning naming its type.
    """
    config = copy.deepcopy(model.config)
    if not _fields(config, RESIDUAL_DROPOUT_FIELDS + ATTENTION_DROPOUT_FIELDS) and 0.0 <= p < 1.0:
        warnings.warn(f"{getattr(config, 'model_type', None) or type(model).__name__} has no dropout setting in its "
                      f"config; dropout {p} is not applied and the model keeps its own", stacklevel=2)
        return model
    set_dropout(config, p)
    param = next(model.parameters())
    new = type(model)(config)
    new.load_state_dict(model.state_dict())
    return new.to(device=param.device, dtype=param.dtype).train(model.training)
