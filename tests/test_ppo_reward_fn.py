"""PPO against a rule-based reward function on the default task raises that reward (a behaviour test)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.ppo import PPOConfig, train
from textbandit.task import load_task

RULES = '''
def brevity(prompts, completions, completion_ids, **kwargs):
    """1 for an answer that is just the EOS, 0 for one of 24 tokens: shorter is better."""
    return [1.0 - len(ids) / 24 for ids in completion_ids]
'''


@pytest.mark.skipif(load_task("default").reference_model is None, reason="the default task's models are not exported")
def test_ppo_raises_a_rule_based_reward_within_a_few_iterations(tmp_path, one_thread):
    (tmp_path / "rules.py").write_text(RULES)
    cfg = PPOConfig(
        reward_fn=(f"{tmp_path / 'rules.py'}:brevity",),  # instead of the task's reward model
        batch_size=32,
        minibatch_size=8,
        total_iterations=6,
        learning_rate=1e-4,
        kl_coef=0.02,
        out=str(tmp_path / "ppo"),
        device="cpu",
        progress=False,
        tensorboard=False,
        samples_every=3,
    )
    result = train(cfg)
    assert result["envs"].unwrapped.reward_model is None
    scores = [row["env/score"] for row in result["history"]]
    assert np.mean(scores[-2:]) > scores[0] + 0.1, scores  # measured: 0.55 -> 0.73 in 5 iterations
    samples = [json.loads(line) for line in (tmp_path / "ppo" / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [3, 6] and "gold" not in samples[0]["samples"][0]
