"""The embedded default task's shipped artifacts, as the environment loads them.

``textbandit/assets/default/`` holds the tokenizer, the prompts of each customer split and the
trained SFT (reference) and reward models of the default task. They are rebuilt by the
pipeline (``textbandit pipeline --preset quick --export-defaults true``); see the README.
"""

from __future__ import annotations

import json
from pathlib import Path

ASSETS = Path(__file__).parent / "assets" / "default"
SPLITS = ("train", "validation", "test")

# Used when neither the caller nor the task says otherwise.
GENERIC_SETTINGS = {"kl_coef": 0.05, "max_prompt_len": 64, "max_new_tokens": 32}


def _require(path: Path, what: str) -> str:
    if not path.exists():
        raise FileNotFoundError(
            f"the default task's {what} is missing ({path}); rebuild the shipped artifacts with "
            "`textbandit pipeline --preset quick --export-defaults true`, or pass your own "
            "reward_model=, reference_model=, tokenizer= and prompts= (with task=None)"
        )
    return str(path)


def env_settings() -> dict:
    """The default task's environment settings (kl_coef, max_prompt_len, max_new_tokens)."""
    path = ASSETS / "env_config.json"
    settings = dict(GENERIC_SETTINGS)
    if path.exists():
        settings.update(json.loads(path.read_text()))
    return settings


def tokenizer_path() -> str:
    return _require(ASSETS / "tokenizer", "tokenizer")


def prompts_path(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; use one of {SPLITS} (customers are split, as in the paper)")
    return _require(ASSETS / f"prompts_{split}.jsonl", f"{split} prompts")


def reference_path() -> str:
    return _require(ASSETS / "sft", "SFT (reference) model")


def reward_model_path() -> str:
    return _require(ASSETS / "reward_model", "reward model")


def gold_fn():
    """The default task's gold labeler as ``gold_fn(prompts, responses, ended_with_eos)``."""
    from textbandit.task import gold_scores  # the task module is heavy; load it only when used

    return gold_scores
