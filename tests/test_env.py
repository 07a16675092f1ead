"""TextBandit-v0 (the single env): API checks, the reward's arithmetic, and where prompts come from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny import PROMPTS, tiny_lm

import textbandit  # noqa: F401  (registers TextBandit-v0)
from textbandit.data import DataFormatError
from textbandit.env import TOKEN_KEYS, TextBanditEnv
from textbandit.scoring import response_logprobs

PAD, EOS = 0, 1
L = 6  # conftest.MAX_NEW_TOKENS
TOL = dict(rtol=1e-5, atol=1e-5)


def hand_logprobs(model, obs, action, temperature=1.0):
    """log pi(a_t | prompt, a_<t) from one forward over the UNPADDED prompt ++ response (cut after the first EOS)."""
    prompt = [int(t) for t, m in zip(obs["input_ids"], obs["attention_mask"]) if m]
    response = []
    for t in action:
        response.append(int(t))
        if t == EOS:
            break
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + response])).logits[0].float()
    logp = F.log_softmax(logits / temperature, dim=-1)
    out = np.zeros(len(action), dtype=np.float64)
    for t, tok in enumerate(response):
        out[t] = logp[len(prompt) + t - 1, tok].item()
    return out, len(response)


# --- the API checkers ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_policy", [False, True])
def test_gymnasium_and_sb3_check_env_pass_without_warnings(env_kwargs, policy_lm, with_policy):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("TextBandit-v0", **env_kwargs(policy=policy_lm if with_policy else None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)


def test_spaces_and_episode_end(env_kwargs, vocab_size):
    env = gym.make("TextBandit-v0", **env_kwargs())
    assert env.action_space == gym.spaces.MultiDiscrete([vocab_size] * L)
    assert env.observation_space["input_ids"].shape == (12,)
    obs, info = env.reset(seed=0)
    assert info["prompt"] in PROMPTS
    assert obs in env.observation_space
    obs2, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert (terminated, truncated) == (True, False)
    assert isinstance(reward, float) and np.isfinite(reward)
    assert obs2 is not obs and obs2["input_ids"] is not obs["input_ids"]  # a step returns fresh arrays
    for key in TOKEN_KEYS:
        assert info[key].shape == (L,), key
    for key in ("score", "kl", "prompt", "response", "truncated_response", "policy_attached"):
        assert key in info


# --- the reward's arithmetic --------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_reward_kl_and_logprobs_match_a_hand_computation(env_kwargs, reference, policy_lm, temperature):
    env = gym.make("TextBandit-v0", **env_kwargs(policy=policy_lm, temperature=temperature, kl_coef=0.3))
    actions = [
        [5, 6, EOS, 7, 8, 9],  # EOS in the middle: the tail is padding
        [5, 6, 7, 8, 9, 10],  # no EOS: a truncated response
        [EOS, 3, 3, 3, 3, 3],  # EOS first
        [4, 4, 4, 4, 4, EOS],  # EOS last
    ]
    for i, action in enumerate(actions):
        obs, info0 = env.reset(options={"prompt_index": i % len(PROMPTS)})
        action = np.array(action, dtype=np.int64)
        _, reward, _, _, info = env.step(action)

        ref, n = hand_logprobs(reference, obs, action, temperature)
        pol, _ = hand_logprobs(policy_lm, obs, action, temperature)
        mask = (np.arange(L) < n).astype(np.int64)
        np.testing.assert_array_equal(info["response_mask"], mask)
        np.testing.assert_allclose(info["ref_logprobs"], ref, **TOL)
        np.testing.assert_allclose(info["logprobs"], pol, **TOL)
        np.testing.assert_allclose(info["token_kl"], (pol - ref) * mask, **TOL)
        assert info["kl"] == pytest.approx(float(np.sum(info["token_kl"])), abs=1e-5)
        assert reward == pytest.approx(info["score"] - 0.3 * float(np.sum(info["token_kl"])), abs=1e-5)
        assert float(np.sum(info["token_rewards"], dtype=np.float64)) == pytest.approx(reward, abs=1e-5)
        expected_tr = -0.3 * info["token_kl"]
        expected_tr[n - 1] += info["score"]  # the score lands on the last response token
        np.testing.assert_allclose(info["token_rewards"], expected_tr, **TOL)
        assert info["truncated_response"] == (EOS not in action)
        assert info["policy_attached"] is True
        assert info["prompt"] == info0["prompt"]


def test_reward_model_reads_the_unpadded_sequence(env_kwargs, reward_model):
    env = gym.make("TextBandit-v0", **env_kwargs())
    obs, _ = env.reset(options={"prompt_index": 3})
    action = np.array([5, EOS, 9, 9, 9, 9])
    _, reward, _, _, info = env.step(action)
    prompt = obs["input_ids"][obs["attention_mask"] == 1].tolist()
    ids = torch.tensor([prompt + [5, EOS]])
    with torch.no_grad():
        expected = reward_model.score(ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None]).item()
    assert info["score"] == pytest.approx(expected, abs=1e-5)
    assert reward == pytest.approx(expected, abs=1e-5)  # no policy: KL = 0
    assert info["response"] == "cat"  # decoded up to the EOS, special tokens skipped


def test_missing_eos_penalty_is_subtracted_from_the_score(env_kwargs):
    plain = gym.make("TextBandit-v0", **env_kwargs())
    penalised = gym.make("TextBandit-v0", **env_kwargs(missing_eos_penalty=2.5))
    for action, penalty in (([5, 6, 7, 8, 9, 10], 2.5), ([5, EOS, 7, 8, 9, 10], 0.0)):
        plain.reset(seed=1)
        penalised.reset(seed=1)
        _, r0, _, _, i0 = plain.step(np.array(action))
        _, r1, _, _, i1 = penalised.step(np.array(action))
        assert i1["score"] == pytest.approx(i0["score"] - penalty, abs=1e-5)
        assert r1 == pytest.approx(r0 - penalty, abs=1e-5)


def test_same_seed_gives_same_prompts_and_rewards(env_kwargs, policy_lm):
    def rollout(seed):
        env = gym.make("TextBandit-v0", **env_kwargs(policy=policy_lm))
        rng = np.random.default_rng(0)
        out = []
        obs, info = env.reset(seed=seed)
        for _ in range(6):
            _, reward, _, _, step_info = env.step(rng.integers(0, 28, size=L))
            out.append((info["prompt"], obs["input_ids"].tolist(), reward, step_info["token_rewards"].tolist()))
            obs, info = env.reset()
        return out

    first = rollout(7)
    assert first == rollout(7)
    assert len({p for p, *_ in first}) > 1  # the draws do vary


def test_without_policy_kl_is_zero_and_policy_attached_false(env_kwargs, policy_lm):
    env = gym.make("TextBandit-v0", **env_kwargs(kl_coef=1.0))
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([5, 6, 7, EOS, 0, 0]))
    assert info["policy_attached"] is False
    assert info["kl"] == 0.0 and not info["token_kl"].any()
    np.testing.assert_array_equal(info["logprobs"], info["ref_logprobs"])
    assert reward == pytest.approx(info["score"])

    env.unwrapped.set_policy(policy_lm)
    env.reset(seed=0)
    info = env.step(np.array([5, 6, 7, EOS, 0, 0]))[4]
    assert info["policy_attached"] is True and info["kl"] != 0.0
    env.unwrapped.set_policy(None)
    env.reset(seed=0)
    assert env.step(np.array([5, 6, 7, EOS, 0, 0]))[4]["policy_attached"] is False


class ShiftedReference:
    """A policy given as a protocol object (not an nn.Module): the reference's log-probs minus 0.25."""

    def __init__(self, model):
        self._model = model

    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature):
        lp = response_logprobs(self._model, prompt_ids, prompt_mask, response_ids, response_mask, temperature, PAD)
        return lp - 0.25  # the env masks what lies after the EOS


def test_policy_as_a_protocol_object(env_kwargs, reference):
    policy = ShiftedReference(reference)
    assert not isinstance(policy, torch.nn.Module)
    env = gym.make("TextBandit-v0", **env_kwargs(policy=policy, kl_coef=0.5))
    env.reset(seed=3)
    _, reward, _, _, info = env.step(np.array([5, 6, EOS, 7, 7, 7]))
    np.testing.assert_allclose(info["token_kl"], [-0.25, -0.25, -0.25, 0, 0, 0], atol=1e-6)
    assert info["kl"] == pytest.approx(-0.75, abs=1e-6)
    assert reward == pytest.approx(info["score"] + 0.5 * 0.75, abs=1e-5)
    assert info["policy_attached"] is True


class MinusInfAfterEos(ShiftedReference):
    """A protocol policy that puts -inf after the EOS (the pad token is impossible under it)."""

    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature):
        lp = super().response_logprobs(prompt_ids, prompt_mask, response_ids, response_mask, temperature)
        return lp.masked_fill(response_mask == 0, float("-inf"))


class WrongShape(ShiftedReference):
    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature):
        return torch.zeros(response_ids.shape[0], response_ids.shape[1] + 1)


def test_a_policy_with_minus_inf_after_the_eos_gives_a_finite_reward(env_kwargs, reference):
    env = gym.make("TextBandit-v0", **env_kwargs(policy=MinusInfAfterEos(reference)))
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([5, EOS, 7, 7, 7, 7]))
    assert np.isfinite(reward) and np.isfinite(info["token_rewards"]).all()
    np.testing.assert_allclose(info["token_kl"], [-0.25, -0.25, 0, 0, 0, 0], atol=1e-6)


def test_a_policy_returning_the_wrong_shape_raises(env_kwargs, reference):
    env = gym.make("TextBandit-v0", **env_kwargs(policy=WrongShape(reference)))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="response_logprobs returned shape"):
        env.step(np.array([5, EOS, 7, 7, 7, 7]))


def test_a_duck_typed_reward_model_is_accepted(env_kwargs, vocab_size):
    from conftest import DuckRewardModel

    env = gym.make("TextBandit-v0", **env_kwargs(reward_model=DuckRewardModel(tiny_lm(vocab_size, seed=5))))
    env.reset(seed=0)
    assert np.isfinite(env.step(np.array([5, EOS, 0, 0, 0, 0]))[1])


def test_kl_coef_is_settable_and_validated(env_kwargs, policy_lm):
    env = gym.make("TextBandit-v0", **env_kwargs(policy=policy_lm))
    env.unwrapped.kl_coef = 2.0
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([5, 6, 7, 8, EOS, 0]))
    assert reward == pytest.approx(info["score"] - 2.0 * info["kl"], abs=1e-5)
    with pytest.raises(ValueError, match="kl_coef"):
        env.unwrapped.kl_coef = -1.0
    with pytest.raises(ValueError, match="kl_coef"):
        gym.make("TextBandit-v0", **env_kwargs(kl_coef=-0.1))
    with pytest.raises(ValueError, match="temperature"):
        gym.make("TextBandit-v0", **env_kwargs(temperature=0.0))


def test_render_ansi(env_kwargs):
    env = gym.make("TextBandit-v0", render_mode="ansi", **env_kwargs())
    env.reset(seed=0)
    env.step(np.array([5, 6, EOS, 0, 0, 0]))
    text = env.render()
    assert "cat dog" in text and "reward:" in text
    with pytest.raises(ValueError, match="render_mode"):
        TextBanditEnv(render_mode="human", **env_kwargs())


# --- where the prompts and the env come from ----------------------------------------------------


def test_prompts_from_a_dataset_and_from_jsonl(env_kwargs, tmp_path):
    datasets = pytest.importorskip("datasets")
    from_list = TextBanditEnv(**env_kwargs())
    from_ds = TextBanditEnv(**env_kwargs(prompts=datasets.Dataset.from_dict({"prompt": list(PROMPTS)})))
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "customer": i}) + "\n" for i, p in enumerate(PROMPTS)))
    from_str = TextBanditEnv(**env_kwargs(prompts=str(path)))
    from_path = TextBanditEnv(**env_kwargs(prompts=path))
    for env in (from_ds, from_str, from_path):
        assert env.prompts == list(PROMPTS)
        np.testing.assert_array_equal(env.scorer.prompt_ids, from_list.scorer.prompt_ids)
    with pytest.raises(ValueError, match="'prompt' column"):
        TextBanditEnv(**env_kwargs(prompts=datasets.Dataset.from_dict({"text": list(PROMPTS)})))


def test_jsonl_with_a_bad_record_names_the_line(env_kwargs, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "the cat"}\n\n{"prompt": 3}\n')
    with pytest.raises(DataFormatError, match=r"prompts\.jsonl:3: field 'prompt'"):
        TextBanditEnv(**env_kwargs(prompts=path))


def test_make_with_module_prefix_in_a_fresh_process():
    tests_dir = Path(__file__).parent
    code = textwrap.dedent(
        """
        import sys, torch
        import gymnasium as gym
        from tiny import PROMPTS, tiny_lm, tiny_tokenizer

        class RM(torch.nn.Module):  # any module with score() will do
            def __init__(self, lm):
                super().__init__()
                self.lm = lm
            def score(self, input_ids, attention_mask, position_ids=None):
                return self.lm(input_ids=input_ids, attention_mask=attention_mask).logits[:, -1, 0]

        tok = tiny_tokenizer()
        assert "textbandit" not in sys.modules
        assert "TextBandit-v0" not in gym.registry
        env = gym.make("textbandit:TextBandit-v0", task=None, tokenizer=tok, reference_model=tiny_lm(len(tok)),
                       reward_model=RM(tiny_lm(len(tok), seed=1)), prompts=PROMPTS, max_prompt_len=12, max_new_tokens=4)
        env.reset(seed=0)
        print("ok", env.step(env.action_space.sample())[2])
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests_dir), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok True")
