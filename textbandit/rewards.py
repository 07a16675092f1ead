"""Reward sources: what turns a batch of responses into the scores of ``TextBandit-v0``.

The score of a response is the weighted sum of one or more *reward sources* (TRL's
``reward_funcs`` with ``reward_weights``), each called once per step of the env with the whole
batch (the vector env: all its envs at once):

- a reward model on token ids: a :class:`textbandit.reward_model.RewardModel`, or any module with
  ``score(input_ids, attention_mask, position_ids) -> (N,)``, read at the last attended token;
- a Hugging Face ``AutoModelForSequenceClassification`` with one label (what TRL's
  ``RewardTrainer`` trains), read as Hugging Face reads it: at the last non-pad token;
- a reward function with TRL's signature, on text::

      def my_reward(prompts, completions, **kwargs) -> list[float | None]: ...

  ``prompts`` are the prompts as the dataset holds them (strings, or lists of messages for a
  conversational dataset) and ``completions`` the decoded responses (for a conversational dataset
  ``[{"role": "assistant", "content": text}]``, as TRL passes them). The keyword arguments are
  every other column of the prompt's dataset row (one value per response, e.g. a ``solution``
  column), ``completion_ids`` (each response's token ids up to and including its EOS, as in TRL)
  and ``ended_with_eos`` (whether it has one; textbandit's addition). ``None`` means "does not
  apply to this response".

``score = sum_i w_i * r_i`` over the sources that apply to the response, as TRL's ``nansum``. A
response that no source applies to is an error here (TRL warns and gives it no advantage; an
environment must return a number, and 0 would be a made-up one). A function that raises, or
returns the wrong number of rewards, NaN, infinity or something that is not a number, is an error
naming it.

>>> def brevity(prompts, completions, completion_ids, **kwargs):
...     return [1.0 - len(ids) / 10 for ids in completion_ids]
>>> def cat(prompts, completions, **kwargs):
...     return [float("cat" in c) if "cat" in p else None for p, c in zip(prompts, completions)]
>>> rewards = Rewards([FunctionReward(brevity), FunctionReward(cat)], weights=[1.0, 2.0])
>>> batch = Responses(prompts=["about a cat", "about a dog"], completions=["the cat", "a dog ."],
...                   completion_ids=[[5, 6, 1], [7, 8, 9, 1]], ended_with_eos=[True, True])
>>> total, parts = rewards.score(batch)
>>> total.round(3).tolist(), parts.round(3).tolist()
([2.7, 0.6], [[0.7, 1.0], [0.6, nan]])
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import numbers
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

RewardFn = Callable[..., Sequence[float | None]]
"""``fn(prompts, completions, **kwargs) -> list[float | None]``: TRL's reward-function signature."""

RESERVED = ("prompt", "prompts", "completion", "completions", "completion_ids", "ended_with_eos")
"""Keyword arguments the env passes itself: dataset columns of these names are not passed on (as in TRL)."""


@dataclass
class Responses:
    """A batch of responses as the reward sources see them."""

    prompts: list
    """the prompts as the dataset holds them: strings, or message lists (conversational)"""
    completions: list
    """the decoded responses, or ``[{"role": "assistant", "content": text}]`` each (conversational)"""
    completion_ids: list[list[int]]
    """each response's token ids, up to and including its first EOS"""
    ended_with_eos: list[bool]
    """whether each response has an EOS (False: cut off at max_new_tokens)"""
    columns: dict[str, list] = field(default_factory=dict)
    """the prompts' other dataset columns, one value per response"""
    forward: Callable | None = None
    """``forward(fn)``: ``fn(input_ids, attention_mask, position_ids)`` of the joined prompt ++ response rows,
    run in chunks by the env (what the reward models use)"""

    def __len__(self) -> int:
        return len(self.completion_ids)


class RewardFunctionError(ValueError):
    """A reward function raised, or returned something that is not one reward per response."""


def callable_name(fn) -> str:
    """A reward function's name for messages and logs (a partial's function's, or its class name)."""
    if isinstance(fn, str):
        return fn
    for obj in (fn, getattr(fn, "func", None)):  # a functools.partial names its function
        name = getattr(obj, "__name__", None)
        if name:
            return name
    return type(fn).__name__


def check_rewards(values: Any, n: int, name: str, allow_none: bool = True) -> np.ndarray:
    """``values`` as an (n,) float64 array (``None`` -> NaN where ``allow_none``), or a
    :class:`RewardFunctionError` naming ``name`` and what is wrong.

    >>> check_rewards([1, 0.5, None], 3, "f").tolist()
    [1.0, 0.5, nan]
    >>> try:
    ...     check_rewards([1.0], 2, "f")
    ... except ValueError as e:
    ...     print(e)
    reward function 'f' returned 1 rewards for 2 responses; return one number (or None) per response
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    elif isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
        raise RewardFunctionError(
            f"reward function {name!r} returned {type(values).__name__} {str(values)[:80]!r}; return a list of "
            f"{n} numbers (or None where it does not apply)"
        )
    if len(values) != n:
        raise RewardFunctionError(
            f"reward function {name!r} returned {len(values)} rewards for {n} responses; return one number "
            "(or None) per response"
        )
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        if v is None and allow_none:
            out[i] = np.nan
        elif isinstance(v, numbers.Real) and math.isfinite(v):  # bools count as 0/1, as in TRL
            out[i] = float(v)
        else:
            what = "NaN or infinite" if isinstance(v, numbers.Real) else f"a {type(v).__name__}"
            raise RewardFunctionError(
                f"reward function {name!r} returned {v!r} ({what}) for response {i}; each reward must be a finite "
                "number" + (", or None where the function does not apply" if allow_none else "")
            )
    return out


class FunctionReward:
    """A reward function with TRL's signature as a reward source (see the module docstring)."""

    def __init__(self, fn: RewardFn | str, name: str | None = None):
        self.fn = load_reward_fn(fn) if isinstance(fn, str) else fn
        if not callable(self.fn):
            raise TypeError(
                f"a reward function must be callable as fn(prompts, completions, **kwargs), got {type(fn).__name__}"
            )
        self.name = name or callable_name(fn)

    def __call__(self, batch: Responses, allow_none: bool = True) -> np.ndarray:
        kwargs = {k: v for k, v in batch.columns.items() if k not in RESERVED}
        try:
            values = self.fn(
                prompts=list(batch.prompts),
                completions=list(batch.completions),
                completion_ids=[list(ids) for ids in batch.completion_ids],
                ended_with_eos=list(batch.ended_with_eos),
                **kwargs,
            )
        except Exception as e:
            raise RewardFunctionError(
                f"reward function {self.name!r} raised {type(e).__name__}: {e} (called with {len(batch)} responses "
                f"and keyword arguments completion_ids, ended_with_eos{''.join(', ' + k for k in kwargs)})"
            ) from e
        return check_rewards(values, len(batch), self.name, allow_none)


class ModelReward:
    """A reward model on token ids: ``model.score(input_ids, attention_mask, position_ids) -> (N,)``."""

    def __init__(self, model, name: str = "reward_model"):
        self.model, self.name = model, name

    def __call__(self, batch: Responses) -> np.ndarray:
        scores = batch.forward(lambda ids, mask, pos: self.model.score(ids, mask, pos).float().reshape(-1))
        return _finite(scores, self.name)


class SequenceClassifierReward:
    """A Hugging Face sequence-classification model with one label, read at the last non-pad token
    (as its own forward pools). Its config's pad token id is set to the env tokenizer's, as TRL does,
    so that the pooling finds each row's last token."""

    def __init__(self, model, pad_token_id: int, name: str = "reward_model"):
        check_sequence_classifier(model)
        model.config.get_text_config().pad_token_id = pad_token_id
        self.model, self.name = model, name
        self._extra = {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}

    def __call__(self, batch: Responses) -> np.ndarray:
        def forward(ids, mask, pos):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, **self._extra)
            return out.logits[:, 0].float()

        return _finite(batch.forward(forward), self.name)


def _finite(scores: torch.Tensor, name: str) -> np.ndarray:
    scores = scores.detach().double().cpu().numpy()
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"the reward model ({name}) returned non-finite scores (NaN or inf) for rows "
            f"{np.flatnonzero(bad)[:10].tolist()} of the batch; a reward built on them would be meaningless "
            "(check the model's dtype and weights)"
        )
    return scores


class Rewards:
    """Reward sources with their weights; :meth:`score` is their weighted sum (module docstring)."""

    def __init__(self, sources: list, weights: Sequence[float] | None = None):
        if not sources:
            raise ValueError("no reward source: pass a reward_model, reward functions (reward_fns), or both")
        weights = [1.0] * len(sources) if weights is None or len(weights) == 0 else list(weights)
        names = [s.name for s in sources]
        if len(weights) != len(sources):
            raise ValueError(
                f"reward_weights has {len(weights)} weights for {len(sources)} reward sources ({', '.join(names)}); "
                "give one weight per source, the reward model first when there is one"
            )
        for w in weights:
            if not (isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w)):
                raise ValueError(f"reward_weights={weights!r}; each weight must be a finite number")
        self.sources, self.weights, self.names = list(sources), [float(w) for w in weights], names

    def score(self, batch: Responses) -> tuple[np.ndarray, np.ndarray]:
        """``(score, parts)``: the (n,) weighted sums and the (n, S) rewards of each source (NaN: None)."""
        parts = np.stack([source(batch) for source in self.sources], axis=1)
        unscored = np.isnan(parts).all(axis=1)
        if unscored.any():
            i = int(np.flatnonzero(unscored)[0])
            raise ValueError(
                f"no reward source applies to response {i} (every one of {', '.join(self.names)} returned None): "
                f"prompt {str(batch.prompts[i])[:80]!r}, completion {str(batch.completions[i])[:80]!r}; add a "
                "reward function that scores it"
            )
        return np.nansum(parts * np.array(self.weights), axis=1), parts


def load_reward_fn(spec: str) -> RewardFn:
    """The function a ``module:function`` spec names: ``package.module:function`` (importable) or
    ``path/to/file.py:function``, as the command line's ``--reward-fn`` takes it.

    >>> load_reward_fn("textbandit.task.gold:gold_scores").__name__
    'gold_scores'
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"reward function {spec!r}: write it as package.module:function or path/to/file.py:function")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"reward function {spec!r}: no such file {path}")
        name = f"textbandit_reward_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            sys.modules[name] = module
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(
                f"reward function {spec!r}: cannot import {module_name!r} ({e}); put it on PYTHONPATH, "
                "or name a .py file"
            ) from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"reward function {spec!r}: {module_name} has no function {attr!r}")
    return fn


def is_sequence_classifier(model) -> bool:
    """Whether ``model`` is a Hugging Face ``...ForSequenceClassification`` model."""
    return isinstance(model, torch.nn.Module) and type(model).__name__.endswith("ForSequenceClassification")


def check_sequence_classifier(model) -> None:
    """Refuse a sequence-classification model with more than one label: a reward is one number."""
    labels = getattr(model.config, "num_labels", None)
    if labels != 1:
        raise ValueError(
            f"the reward model is a {type(model).__name__} with {labels} labels; a reward model has one "
            "(AutoModelForSequenceClassification.from_pretrained(path, num_labels=1), as TRL's RewardTrainer trains)"
        )


def load_reward_model(source, dtype=None):
    """A reward model from a local folder or hub name: textbandit's (old format, with
    ``reward_head.safetensors``), or any Hugging Face sequence-classification checkpoint with one
    label (textbandit's current format, TRL's ``RewardTrainer`` output)."""
    from textbandit.loading import check_source, load
    from textbandit.reward_model import HEAD_FILE, RewardModel

    name = check_source(source, "reward_model")
    path = Path(name)
    if (path / HEAD_FILE).is_file():
        return RewardModel.from_pretrained(path, torch_dtype=dtype)
    if path.is_dir():
        import json

        architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            raise ValueError(
                f"reward_model={os.fspath(source)!r} holds a {'/'.join(architectures) or 'model'} checkpoint, not a "
                "reward model (a sequence-classification model with one label, or a textbandit reward model); "
                "train one with `textbandit rm` or TRL's RewardTrainer"
            )
    from transformers import AutoModelForSequenceClassification

    model = load(AutoModelForSequenceClassification.from_pretrained, name, "reward_model", dtype=dtype)
    check_sequence_classifier(model)
    return model
