"""LoRA through PEFT: low-rank adapters trained on a frozen model, saved as adapters, merged on demand.

SFT, the reward model and PPO take the same settings (:class:`LoraSettings`, fields of their
configs). With ``lora_r > 0`` the model's weights are frozen and PEFT adds rank-``r`` adapters
to the layers ``lora_target_modules`` names (PEFT's choice for the architecture when empty:
GPT-2's ``c_attn``, Llama's and Qwen2's ``q_proj`` and ``v_proj``, GPT-NeoX's
``query_key_value``); only the adapters (and the heads the trainer adds: the reward model's
scalar head, PPO's value head) are trained.

- :func:`add_adapters`: the model with fresh adapters (a ``peft.PeftModel``);
- :func:`merged`: a plain Hugging Face model with the adapters merged into its weights
  (``merge_and_unload`` on a copy): what the trainers save as their output, so every next stage
  and ``AutoModelForCausalLM`` load it as before;
- :func:`merge_adapters`: the same from an adapter folder on disk (``textbandit merge-lora``);
- :class:`AdaptersOff`: the frozen base under a PEFT model, as a causal LM with the adapters
  disabled. PPO hands it to the environment as the KL reference, so policy and reference share
  one copy of the weights (as TRL does); the environment sees an ordinary causal LM and needs
  neither PEFT nor ``agents``.

PEFT is an optional dependency (``pip install 'textbandit[lora]'``), imported only when LoRA is asked for.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from textbandit.runtime import eval_mode

ADAPTER_DIR = "adapter"
"""the sub-folder of a trainer's output that holds its adapter (PEFT format)"""


@dataclass
class LoraSettings:
    """The LoRA fields of the SFT, reward-model and PPO configs (each documented once, here)."""

    lora_r: int = 0
    """LoRA rank: train rank-r adapters on the frozen model instead of all its weights (0: full
    fine-tuning); needs peft (pip install 'textbandit[lora]'). The output folder holds the merged
    model, and its adapter in OUT/adapter"""
    lora_alpha: float = 16.0
    """LoRA scaling numerator: the adapters' update is scaled by lora_alpha / lora_r"""
    lora_dropout: float = 0.0
    """dropout on the adapters' input in training (PPO turns every dropout off, this one too)"""
    lora_target_modules: tuple[str, ...] = ()
    """names of the layers that get adapters (e.g. q_proj v_proj); empty: PEFT's default for the architecture"""

    def __post_init__(self):
        if not (isinstance(self.lora_r, int) and not isinstance(self.lora_r, bool) and self.lora_r >= 0):
            raise ValueError(f"lora_r={self.lora_r!r}; use an int >= 0 (0 trains every weight)")
        if not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha={self.lora_alpha!r}; it must be > 0 (e.g. 2 * lora_r)")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout={self.lora_dropout!r}; use 0 <= lora_dropout < 1")
        if self.lora_r:
            require_peft()

    @property
    def lora(self) -> bool:
        """Whether LoRA is on (``lora_r > 0``)."""
        return self.lora_r > 0


def require_peft():
    """The ``peft`` module, or an ``ImportError`` that says how to install it."""
    try:
        import peft
    except ImportError:
        raise ImportError(
            "LoRA (lora_r > 0) needs the peft package: pip install 'textbandit[lora]' (or pip install peft), "
            "or set lora_r=0 to train every weight"
        ) from None
    return peft


def is_peft(model) -> bool:
    """Whether ``model`` is a PEFT model (adapters on a base model)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def add_adapters(model: nn.Module, settings: LoraSettings, task_type: str | None = "CAUSAL_LM") -> nn.Module:
    """``model`` with fresh LoRA adapters (PEFT), its own weights frozen. ``task_type``:
    ``'CAUSAL_LM'`` for a causal LM, ``None`` for a trunk without an LM head (the reward model's)."""
    peft = require_peft()
    config = peft.LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_target_modules) or None,
        task_type=task_type,
        fan_in_fan_out=getattr(model.config, "model_type", None) == "gpt2",  # GPT-2's Conv1D stores W transposed
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as e:
        raise ValueError(
            f"PEFT could not add LoRA adapters to {type(model).__name__} ({e}); name the layers to adapt with "
            "lora_target_modules (e.g. --lora-target-modules q_proj v_proj)"
        ) from e


def base_model_of(model: nn.Module) -> nn.Module:
    """The Hugging Face model under a PEFT model (its layers carry the adapters), or ``model`` itself."""
    return model.get_base_model() if is_peft(model) else model


def merged(model: nn.Module) -> nn.Module:
    """A plain Hugging Face model with ``model``'s adapters merged into its weights, on the CPU
    (``model`` itself is left as it is); ``model`` itself when it has no adapters."""
    if not is_peft(model):
        return model
    clone = copy.deepcopy(model).to("cpu")
    return clone.merge_and_unload()


def save_merged(model: nn.Module, directory: str | os.PathLike, tokenizer=None) -> None:
    """Write ``model`` with its adapters merged (a plain HF model) to ``directory`` and its adapter
    (PEFT format) to ``directory/adapter``; a model without adapters is saved as it is."""
    directory = Path(directory)
    if is_peft(model):
        model.save_pretrained(str(directory / ADAPTER_DIR))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(directory / ADAPTER_DIR))
    merged(model).save_pretrained(str(directory))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))


def merge_adapters(adapter: str | os.PathLike, out: str | os.PathLike, base=None) -> str:
    """Merge the adapter folder ``adapter`` into its base model (``base``: a model or a path; by
    default the path its ``adapter_config.json`` records) and save a plain Hugging Face model to
    ``out``, with the tokenizer when the adapter folder or the base has one. Returns ``out``."""
    peft = require_peft()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textbandit.loading import load

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} holds no adapter_config.json: not a PEFT adapter folder")
    config = peft.PeftConfig.from_pretrained(str(adapter))
    source = base if base is not None else config.base_model_name_or_path
    if not source:
        raise ValueError(f"{adapter}/adapter_config.json names no base model; pass base= (a model or a path)")
    if isinstance(source, (str, os.PathLike)):
        base_model = load(AutoModelForCausalLM.from_pretrained, source, "base")
    else:
        base_model = copy.deepcopy(source)  # merging writes into the base: never into the caller's model
    model = peft.PeftModel.from_pretrained(base_model, str(adapter)).merge_and_unload()
    model.save_pretrained(str(out))
    for where in (adapter, source if isinstance(source, (str, os.PathLike)) else None):
        if where is not None and any((Path(where) / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
            AutoTokenizer.from_pretrained(str(where)).save_pretrained(str(out))
            break
    return str(out)


class AdaptersOff(nn.Module):
    """The frozen base model under a PEFT causal LM, with its adapters disabled: a causal LM.

    Its forward runs the PEFT model inside ``disable_adapter()`` (and in eval mode), so its
    log-probs are the base model's to the bit while the adapters train on. The PEFT model is
    held without being registered as a submodule: the environment's ``.to()`` and ``.eval()``
    of its reference leave the policy alone, and the reference has no parameters of its own.
    """

    def __init__(self, peft_model: nn.Module):
        super().__init__()
        if not is_peft(peft_model):
            raise TypeError(f"AdaptersOff wraps a PEFT model, got {type(peft_model).__name__}")
        self.__dict__["peft_model"] = peft_model  # not a submodule (see the class docstring)

    @property
    def config(self):
        """The base model's config (the environment reads ``vocab_size`` and the positions from it)."""
        return self.peft_model.config

    def get_output_embeddings(self):
        return self.peft_model.get_output_embeddings()

    @torch.no_grad()
    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0, use_cache=None, **kwargs):
        with self.peft_model.disable_adapter(), eval_mode(self.peft_model):
            return self.peft_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                logits_to_keep=logits_to_keep,
                use_cache=use_cache,
                **kwargs,
            )
