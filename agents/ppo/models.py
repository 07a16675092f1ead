"""The models of a PPO run: where the policy starts, its KL reference, the environment's
arguments, the policy itself (full or LoRA) and the value model it may start from.

:mod:`agents.ppo.learner` builds them once per run and then only trains.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from agents.common.scale import enable_gradient_checkpointing, frozen_dtype
from agents.ppo.config import PPOConfig
from agents.ppo.policy import VALUE_MODEL_DIR, PolicyWithValueHead
from textbandit.task import Task, load_task


def start_model(cfg: PPOConfig, policy=None, task: Task | None = None):
    """What the policy starts from: ``policy`` (a model or path), else ``cfg.sft_model``, else the task's SFT model."""
    source = policy if policy is not None else cfg.sft_model
    if source is None and task is not None:
        source = task.reference_model
    if source is None:
        raise ValueError(
            "no model to start the policy from: set sft_model (--sft-model), or use a task that has an SFT model"
        )
    return source


def reference_model(cfg: PPOConfig, start, dtype: torch.dtype | None = None):
    """The KL reference: ``cfg.reference_model`` when set, else the policy's starting model (as in
    lm-human-preferences and TRL), so the first iteration's KL is 0 whatever the policy starts from.
    A copy made here is cast to ``dtype`` (bf16 on a GPU: a frozen model needs no float32 weights)."""
    if cfg.reference_model is not None:
        return cfg.reference_model
    if isinstance(start, PolicyWithValueHead):
        ref = copy.deepcopy(start.lm)  # frozen at the start; the policy itself trains on
        return ref.to(dtype) if dtype is not None else ref
    return start


def env_arguments(cfg: PPOConfig, device, start=None, **overrides) -> dict:
    """The ``gym.make_vec("TextBandit-v0")`` arguments of a run: its task (``overrides["task"]`` when
    given, else ``cfg.task``), the config's own models and prompts beside it, its settings, then the
    other ``overrides``. Models the env loads from paths are loaded in bf16 on a GPU (``cfg.bf16``)."""
    task = load_task(overrides.pop("task") if "task" in overrides else cfg.task)
    device = torch.device(device)
    kwargs = dict(
        task=task,
        kl_coef=cfg.kl_coef,
        max_new_tokens=cfg.max_new_tokens,
        max_prompt_len=cfg.max_prompt_len,
        temperature=cfg.temperature,
        missing_eos_penalty=cfg.missing_eos_penalty,
        device=str(device),
        forward_batch_size=cfg.local_minibatch_size,
    )  # the reference and RM forwards in minibatches too
    if frozen_dtype(device, cfg.bf16) is not None:
        kwargs["torch_dtype"] = frozen_dtype(device, cfg.bf16)
    if task is not None:
        kwargs["split"] = cfg.split
    for name in ("reward_model", "tokenizer", "prompts"):
        if getattr(cfg, name) is not None:
            kwargs[name] = getattr(cfg, name)
    if cfg.reward_fn:  # "module:function" strings: the env imports them
        kwargs["reward_fns"] = list(cfg.reward_fn)
    if cfg.reward_weights:
        kwargs["reward_weights"] = list(cfg.reward_weights)
    if task is None and cfg.tokenizer is None and cfg.sft_model is not None:
        kwargs["tokenizer"] = cfg.sft_model  # the SFT model's folder holds its tokenizer
    if "reference_model" not in overrides:
        kwargs["reference_model"] = reference_model(cfg, start_model(cfg, start, task), frozen_dtype(device, cfg.bf16))
    return {**kwargs, **overrides}


def autocast_dtype(cfg: PPOConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA when ``cfg.bf16``, else none."""
    return torch.bfloat16 if (device.type == "cuda" and cfg.bf16) else None


def build_policy(cfg: PPOConfig, tokenizer, device, source, reward_model=None) -> PolicyWithValueHead:
    """The policy from ``source`` (a model or a path: the start, or a checkpoint), on ``device``.

    ``value_model='reward'``: the value model starts as a trainable copy of ``reward_model`` (the
    environment's), unless ``source`` is a saved policy with its own (a checkpoint: its trained one).
    """
    value_model = None
    saved_value_model = isinstance(source, (str, os.PathLike)) and (Path(source) / VALUE_MODEL_DIR).is_dir()
    if cfg.value_model == "reward" and not isinstance(source, PolicyWithValueHead) and not saved_value_model:
        value_model = value_model_from(reward_model)
    autocast = autocast_dtype(cfg, device)
    if isinstance(source, PolicyWithValueHead):
        policy = source
        policy.forward_batch_size, policy.autocast_dtype = cfg.local_minibatch_size, autocast
        policy.pad_token_id = tokenizer.pad_token_id
    else:
        policy = PolicyWithValueHead.from_pretrained(
            source,
            value_model=value_model,
            pad_token_id=tokenizer.pad_token_id,
            forward_batch_size=cfg.local_minibatch_size,
            autocast_dtype=autocast,
        )
    policy.tokenizer = tokenizer  # saved with the policy: its folders load with AutoTokenizer too
    vocab = policy.config.vocab_size
    if vocab < len(tokenizer):
        raise ValueError(
            f"the policy's vocabulary ({vocab}) is smaller than the environment tokenizer's "
            f"({len(tokenizer)}); start the policy from the SFT model trained with that tokenizer"
        )
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(policy.lm)
    return policy.to(device)


def lora_policy(cfg: PPOConfig, start, device: torch.device) -> PolicyWithValueHead:
    """The policy as LoRA adapters on the starting model (frozen; in bf16 on a GPU with ``cfg.bf16``),
    with a fresh value head beside them: its base with the adapters off is the KL reference."""
    from agents.common.lora import add_adapters

    if isinstance(start, PolicyWithValueHead):
        raise ValueError("LoRA PPO starts from a causal LM (a model or a path), not a PolicyWithValueHead")
    dtype = frozen_dtype(device, cfg.bf16)
    if isinstance(start, (str, os.PathLike)):
        from transformers import AutoModelForCausalLM

        from textbandit.loading import load

        lm = load(AutoModelForCausalLM.from_pretrained, start, "sft_model", **({"dtype": dtype} if dtype else {}))
    else:
        lm = copy.deepcopy(start)  # never train (or cast) the caller's model
        if dtype is not None:
            lm = lm.to(dtype)
    lm = add_adapters(lm.to(device), cfg)
    return PolicyWithValueHead(lm, pad_token_id=lm.config.pad_token_id or 0).to(device)


def value_model_from(reward_model) -> torch.nn.Module:
    """A trainable float32 copy of the environment's reward model (the paper's value initialisation)."""
    from textbandit.reward_model import RewardModel
    from textbandit.rewards import is_sequence_classifier

    if is_sequence_classifier(reward_model):  # a Hugging Face reward model (ours as saved, or TRL's)
        return RewardModel.from_sequence_classifier(copy.deepcopy(reward_model)).float().requires_grad_(True)
    if not isinstance(reward_model, RewardModel):
        raise ValueError(
            f"value_model='reward' initialises the value model from the environment's reward model, "
            f"which must be a textbandit.reward_model.RewardModel or a Hugging Face sequence classifier "
            f"(got {type(reward_model).__name__}); pass one (or a path to one) as reward_model, or use "
            "value_model='shared'"
        )
    return copy.deepcopy(reward_model).float().requires_grad_(True)  # never train the env's reward
