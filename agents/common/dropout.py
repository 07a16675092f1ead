"""One dropout probability for every dropout of a model (InstructGPT trained SFT with 0.2).

A dropout setting means what it says for the whole architecture: :func:`set_dropout` sets ``p``
on every dropout module of a Hugging Face model (``nn.Dropout`` layers: residual, embedding,
attention-probability and MLP dropout; and the float ``*dropout`` attributes that attention
modules such as Llama's read at forward time) and on every dropout field of its config, so
``p = 0`` leaves no dropout anywhere and a saved model keeps the setting. ``model.eval()`` turns
dropout off, as always.

Some architectures have no residual dropout (Llama, Qwen2, Mistral, ...: only attention
dropout); there ``p`` lands on what they have, with a warning that the paper's residual dropout
does not exist in them. LayerDrop (``layerdrop``: skipping whole layers) is not a dropout
probability and is left alone.
"""

from __future__ import annotations

import copy
import warnings

from torch import nn

# Residual-dropout settings across Hugging Face configs (GPT-2, GPT-J/Neo, BERT-likes, OPT, Falcon, GPT-NeoX, ...).
RESIDUAL_DROPOUT_FIELDS = ("resid_pdrop", "resid_dropout", "hidden_dropout", "hidden_dropout_prob", "dropout")
DROPOUT_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _is_rate(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def dropout_fields(config) -> list[str]:
    """The names of a config's dropout probabilities (every numeric field with ``drop`` in its name but LayerDrop)."""
    names = vars(config) if hasattr(config, "__dict__") else {}
    return sorted(n for n, v in names.items() if "drop" in n and "layerdrop" not in n and _is_rate(v))


def dropout_sites(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every place a model reads a dropout probability at forward time: ``(module, attribute)``."""
    sites = []
    for module in model.modules():
        if isinstance(module, DROPOUT_LAYERS):
            sites.append((module, "p"))
        for name, value in vars(module).items():
            if "dropout" in name and _is_rate(value):
                sites.append((module, name))
    return sites


def set_dropout(model: nn.Module, p: float) -> nn.Module:
    """Set dropout ``p`` on every dropout module and config field of ``model``, in place; returns it.

    Warns when the architecture has no residual dropout (``p`` then applies to what it has) or
    no dropout at all (nothing to set). Raises ``ValueError`` unless ``0 <= p < 1``.
    """
    if not (_is_rate(p) and 0.0 <= p < 1.0):
        raise ValueError(f"dropout p={p!r}; use 0 <= p < 1 (0 turns it off)")
    config = getattr(model, "config", None)
    fields = dropout_fields(config) if config is not None else []
    sites = dropout_sites(model)
    kind = getattr(config, "model_type", None) or type(model).__name__
    if not fields and not sites:
        if p > 0:
            warnings.warn(
                f"{kind} has no dropout anywhere (no dropout module, no dropout field in its config); "
                f"dropout {p} is not applied",
                stacklevel=2,
            )
        return model
    if p > 0 and config is not None and not any(f in RESIDUAL_DROPOUT_FIELDS for f in fields):
        warnings.warn(
            f"{type(config).__name__} has no residual dropout; dropout {p} is set on what it has "
            f"({', '.join(fields) or 'its dropout modules'}) instead",
            stacklevel=2,
        )
    for name in fields:
        setattr(config, name, float(p))
    for module, name in sites:
        setattr(module, name, float(p))
    return model


def with_dropout(model: nn.Module, p: float) -> nn.Module:
    """A copy of ``model`` (same weights, device, dtype and mode) with dropout ``p`` everywhere
    (:func:`set_dropout`)."""
    if not (_is_rate(p) and 0.0 <= p < 1.0):
        raise ValueError(f"dropout p={p!r}; use 0 <= p < 1 (0 turns it off)")
    return set_dropout(copy.deepcopy(model), p)


def has_dropout(model: nn.Module) -> bool:
    """Whether any dropout of ``model`` is on (a probability above 0 at a dropout site)."""
    return any(getattr(m, name) > 0 for m, name in dropout_sites(model))
