"""A task: what ``TextBandit-v0`` serves, as one value.

A :class:`Task` owns everything an environment needs that is not the agent: its prompts per
split, its tokenizer, its reference (SFT) and reward models, its environment settings (lengths
and the default KL coefficient) and, optionally, a hidden gold judge for evaluation. The env
takes one (``gym.make("TextBandit-v0", task=...)``) as ``"default"`` (the shipped task), a path to
a built task folder (:func:`textbandit.task.load_task`), or a ``Task`` object; any component
passed beside it replaces the task's. Your own task in a few lines::

    task = Task(tokenizer="my/sft", prompts={"train": "prompts.jsonl"}, reference_model="my/sft",
                reward_model="my/rm", max_prompt_len=128, max_new_tokens=64)
    env = gym.make("TextBandit-v0", task=task)

>>> task = Task(tokenizer="tok", prompts={"train": ["write about the cat ."]})
>>> task.prompt_records("train")
[{'prompt': 'write about the cat .'}]
>>> task.replace(kl_coef=0.1).kl_coef
0.1
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

SPLITS = ("train", "validation", "test")

GoldFn = Callable[..., list]
"""``gold_fn(prompts, completions, **kwargs) -> scores``: a task's hidden judge, for evaluation only; a
reward function with TRL's signature (:mod:`textbandit.rewards`), which gets ``ended_with_eos`` too."""


@dataclass
class Task:
    """The prompts, tokenizer, models, settings and gold judge of an environment (module docstring)."""

    tokenizer: Any
    """a Hugging Face tokenizer or a local path to one; its pad token must differ from EOS"""
    prompts: dict[str, Any] = field(default_factory=dict)
    """split name -> prompts: a data file (JSONL with a "prompt" per line, or TRL's formats), a list of strings,
    or a datasets.Dataset (textbandit.data)"""
    reference_model: Any = None
    """the SFT model the KL penalty is measured against (a causal LM or a local path)"""
    reward_model: Any = None
    """a textbandit RewardModel, a Hugging Face sequence-classification model with one label, or a local path
    to either (textbandit.rewards)"""
    gold_fn: GoldFn | None = None
    """the hidden judge of the task's own prompts, for evaluation only (no learner may train on it)"""
    kl_coef: float = 0.05
    """the default KL coefficient of the env's reward"""
    max_prompt_len: int = 64
    """prompts are left-padded to this many tokens"""
    max_new_tokens: int = 32
    """the response length L of the action"""
    name: str = "task"
    """a name for messages"""

    def prompt_source(self, split: str):
        """The prompts of ``split`` as given (a path, a list or a dataset)."""
        if split not in self.prompts:
            raise ValueError(f"split={split!r}; the task {self.name!r} has prompts for {sorted(self.prompts)}")
        return self.prompts[split]

    def prompt_records(self, split: str) -> list[dict]:
        """The prompt records of ``split`` (dicts with a ``prompt`` text; the rest of each row as given;
        conversational prompts rendered with the tokenizer's chat template)."""
        from textbandit.data import is_conversational, load_prompt_records, read_rows

        source = self.prompt_source(split)
        chat = any(is_conversational(r.get("prompt") or r.get("messages")) for _, r in read_rows(source)[:1])
        return load_prompt_records(source, self.load_tokenizer() if chat else None)

    def load_tokenizer(self):
        """The tokenizer object (loaded from its path, once)."""
        if not isinstance(self.tokenizer, (str, os.PathLike)):
            return self.tokenizer
        if "_loaded_tokenizer" not in self.__dict__:
            from transformers import AutoTokenizer

            from textbandit.loading import load

            self._loaded_tokenizer = load(AutoTokenizer.from_pretrained, self.tokenizer, "tokenizer", needs=None)
        return self._loaded_tokenizer

    def settings(self) -> dict:
        """The environment settings this task sets: ``kl_coef``, ``max_prompt_len``, ``max_new_tokens``."""
        return {"kl_coef": self.kl_coef, "max_prompt_len": self.max_prompt_len, "max_new_tokens": self.max_new_tokens}

    def replace(self, **changes) -> "Task":
        """A copy with some fields changed, e.g. ``task.replace(reward_model="runs/rm")``."""
        return dataclasses.replace(self, **changes)
