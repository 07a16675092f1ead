"""Fixtures for the environment tests: tiny models and a tokenizer built locally (no network).

``env_kwargs(...)`` gives the keyword arguments of ``TextBanditEnv`` with ``task=None`` and the
tiny tokenizer, reference model, reward model and prompts; keyword overrides replace any of them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from tiny import PROMPTS, tiny_lm, tiny_tokenizer

MAX_PROMPT_LEN = 12
MAX_NEW_TOKENS = 6


class DuckRewardModel(torch.nn.Module):
    """Any module with ``score(input_ids, attention_mask, position_ids) -> (N,)`` is a reward model.

    Used where ``textbandit.reward_model`` is absent, and to check that the environment accepts
    a reward model that is not ours.
    """

    def __init__(self, lm: torch.nn.Module):
        super().__init__()
        self.trunk = lm.transformer
        self.head = torch.nn.Linear(lm.config.n_embd, 1)

    def score(self, input_ids, attention_mask, position_ids=None):
        hidden = self.trunk(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        ).last_hidden_state
        last = attention_mask.shape[1] - 1 - attention_mask.flip(1).argmax(dim=1)  # the last attended token
        return self.head(hidden[torch.arange(len(hidden)), last]).squeeze(-1)


def make_reward_model(vocab_size: int, seed: int = 2) -> torch.nn.Module:
    """The real ``RewardModel`` on a tiny GPT-2 trunk when it exists, the duck-typed one otherwise."""
    if importlib.util.find_spec("textbandit.reward_model") is not None:
        from textbandit.reward_model import RewardModel

        rm = RewardModel.from_causal_lm(tiny_lm(vocab_size, seed=seed))
        torch.manual_seed(seed)
        torch.nn.init.normal_(rm.head.bias, std=1.0)  # a non-zero bias, so a score of 0 cannot pass by accident
        return rm.eval()
    torch.manual_seed(seed)
    return DuckRewardModel(tiny_lm(vocab_size, seed=seed)).eval()


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared machine OpenMP threads
    spinning against other processes slow them down a hundredfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def vocab_size(tokenizer):
    return len(tokenizer)


@pytest.fixture(scope="session")
def reference(vocab_size):
    return tiny_lm(vocab_size, seed=0)


@pytest.fixture(scope="session")
def policy_lm(vocab_size):
    return tiny_lm(vocab_size, seed=1)


@pytest.fixture(scope="session")
def reward_model(vocab_size):
    return make_reward_model(vocab_size)


@pytest.fixture
def env_kwargs(tokenizer, reference, reward_model):
    """``env_kwargs(**overrides)``: the kwargs of a tiny ``TextBandit-v0`` with ``task=None``."""

    def make(**overrides):
        kwargs = dict(
            task=None,
            tokenizer=tokenizer,
            reference_model=reference,
            reward_model=reward_model,
            prompts=list(PROMPTS),
            kl_coef=0.1,
            max_prompt_len=MAX_PROMPT_LEN,
            max_new_tokens=MAX_NEW_TOKENS,
        )
        kwargs.update(overrides)
        return kwargs

    return make


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (benchmarks is not a package)."""
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
