"""TextBandit-v0 (the single env): API checks, the reward's arithmetic, and every documented error."""

from __future__ import annotations

import json
import math
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
from gymnasium.error import ResetNeeded
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tiny import PROMPTS, tiny_lm, tiny_tokenizer

import textbandit  # noqa: F401  (registers TextBandit-v0)
from textbandit.data import DataFormatError
from textbandit.env import TOKEN_KEYS, TextBanditEnv
from textbandit.scorer import Settings
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


# --- bad actions --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_env(tokenizer, reference, reward_model):
    env = TextBanditEnv(
        task=None,
        tokenizer=tokenizer,
        reference_model=reference,
        reward_model=reward_model,
        prompts=list(PROMPTS),
        max_prompt_len=12,
        max_new_tokens=L,
    )
    return env


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=8).filter(lambda s: s not in ((L,), (1, L))))
def test_action_of_wrong_shape_raises(raw_env, shape):
    raw_env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        raw_env.step(np.full(shape, 5, dtype=np.int64))


@settings(max_examples=30, deadline=None)
@given(action=hnp.arrays(np.float64, (L,), elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_float_actions_raise_type_error(raw_env, action):
    raw_env.reset(seed=0)
    with pytest.raises(TypeError, match="integer token ids"):
        raw_env.step(action)


def test_nan_and_object_actions_raise_type_error(raw_env):
    raw_env.reset(seed=0)
    with pytest.raises(TypeError):
        raw_env.step(np.array([5, np.nan, 5, 5, 5, 5]))
    raw_env.reset(seed=0)
    with pytest.raises(TypeError):
        raw_env.step(np.array([5, "x", 5, 5, 5, 5], dtype=object))


@settings(max_examples=40, deadline=None)
@given(
    action=hnp.arrays(np.int64, (L,), elements=st.integers(-(2**40), 2**40)).filter(
        lambda a: a.min() < 0 or a.max() >= 28
    )
)
def test_token_ids_outside_the_vocabulary_raise(raw_env, action):
    raw_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 28\)"):
        raw_env.step(action)


@settings(max_examples=20, deadline=None)
@given(action=hnp.arrays(np.int64, (L,), elements=st.integers(0, 27)))
def test_any_valid_action_gives_a_finite_reward(raw_env, action):
    raw_env.reset(seed=0)
    _, reward, terminated, _, info = raw_env.step(action)
    assert terminated and np.isfinite(reward)
    assert info["response_mask"].sum() == (list(action).index(EOS) + 1 if EOS in action else L)


def test_torch_and_list_actions_are_accepted(raw_env):
    raw_env.reset(seed=0)
    r1 = raw_env.step(torch.tensor([5, 6, EOS, 0, 0, 0]))[1]
    raw_env.reset(seed=0)
    r2 = raw_env.step([5, 6, EOS, 0, 0, 0])[1]
    assert r1 == r2


def test_step_before_reset_raises(env_kwargs):
    with pytest.raises(ResetNeeded):
        TextBanditEnv(**env_kwargs()).step(np.zeros(L, dtype=np.int64))
    with pytest.raises(ResetNeeded):
        gym.make("TextBandit-v0", **env_kwargs()).step(np.zeros(L, dtype=np.int64))
    env = TextBanditEnv(**env_kwargs())
    env.reset(seed=0)
    env.step(np.zeros(L, dtype=np.int64))
    with pytest.raises(ResetNeeded):  # each episode is one step
        env.step(np.zeros(L, dtype=np.int64))


# --- bad construction arguments -----------------------------------------------------------------


class _ProtocolPolicy:  # the protocol: its class (not an instance) is not a policy
    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature):
        return torch.zeros(response_ids.shape)


def test_a_policy_that_is_not_one_raises_type_error(env_kwargs, vocab_size):
    not_policies = (
        42,
        "not a policy",
        object(),
        torch.nn.Linear(4, 4),
        lambda *args: None,
        _ProtocolPolicy,
        tiny_lm(vocab_size).transformer,
    )  # a module but not a causal LM (no LM head)
    for bad in not_policies:
        with pytest.raises(TypeError, match=rf"response_logprobs.*got {type(bad).__name__}"):
            TextBanditEnv(**env_kwargs(policy=bad))
    env = TextBanditEnv(**env_kwargs())
    for bad in (3.5, torch.nn.Linear(4, 4)):
        with pytest.raises(TypeError, match="response_logprobs"):
            env.set_policy(bad)


def test_a_reward_model_passed_as_the_policy_raises_type_error(env_kwargs, reward_model):
    # it takes the inputs of a causal LM (input_ids, attention_mask, position_ids) but returns scores
    with pytest.raises(TypeError, match="got RewardModel.*reward model scores responses"):
        TextBanditEnv(**env_kwargs(policy=reward_model))


def test_a_module_with_a_causal_lm_forward_is_accepted_as_a_policy(env_kwargs, vocab_size):
    class Wrapped(torch.nn.Module):  # not a transformers model, but called like one
        def __init__(self):
            super().__init__()
            self.lm = tiny_lm(vocab_size, seed=1)

        def forward(self, input_ids, attention_mask, position_ids, **kwargs):
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)

    env = TextBanditEnv(**env_kwargs(policy=Wrapped()))
    env.reset(seed=0)
    assert np.isfinite(env.step(np.array([5, 6, EOS, 0, 0, 0]))[1])


def test_a_reference_model_that_is_not_a_causal_lm_raises_type_error(env_kwargs):
    with pytest.raises(TypeError, match="reference_model.*Linear"):
        TextBanditEnv(**env_kwargs(reference_model=torch.nn.Linear(4, 4)))


SETTINGS = dict(
    kl_coef=0.1,
    max_prompt_len=12,
    max_new_tokens=L,
    temperature=1.0,
    missing_eos_penalty=None,
    prompt_truncation="error",
)
NOT_A_FINITE_NUMBER = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, True, False, np.float32("nan"), torch.tensor(1.0)]),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["kl_coef", "temperature", "missing_eos_penalty"]),
    value=st.one_of(NOT_A_FINITE_NUMBER, st.floats(max_value=0, exclude_max=True, allow_infinity=False)),
)
def test_settings_refuse_what_is_not_a_finite_number_in_range(name, value):
    with pytest.raises(ValueError, match=rf"{name}=.*finite number"):
        Settings(**{**SETTINGS, name: value})


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["kl_coef", "temperature", "missing_eos_penalty"]),
    value=st.one_of(
        st.floats(min_value=0, max_value=1e6, exclude_min=True),
        st.integers(1, 10**6),
        st.sampled_from([np.float32(0.5), np.float64(2.0)]),
    ),
)
def test_settings_accept_finite_positive_numbers(name, value):
    assert getattr(Settings(**{**SETTINGS, name: value}), name) == value


def test_bad_settings_are_refused_at_construction_and_by_the_kl_coef_setter(env_kwargs):
    for name, value in (
        ("missing_eos_penalty", "1.0"),
        ("missing_eos_penalty", math.nan),
        ("missing_eos_penalty", -1.0),
        ("temperature", math.inf),
        ("kl_coef", math.inf),
    ):
        with pytest.raises(ValueError, match=name):
            TextBanditEnv(**env_kwargs(**{name: value}))
    assert TextBanditEnv(**env_kwargs(missing_eos_penalty=0)).scorer.settings.missing_eos_penalty == 0
    env = TextBanditEnv(**env_kwargs())
    for bad in (math.inf, math.nan, "0.1", -1.0):
        with pytest.raises(ValueError, match="kl_coef"):
            env.kl_coef = bad
    assert env.kl_coef == 0.1


def test_policy_with_another_vocabulary_raises(env_kwargs, vocab_size):
    with pytest.raises(ValueError, match="vocabulary"):
        TextBanditEnv(**env_kwargs(policy=tiny_lm(vocab_size + 3)))


def test_reference_with_a_smaller_vocabulary_raises(env_kwargs, vocab_size):
    with pytest.raises(ValueError, match="vocabulary"):
        TextBanditEnv(**env_kwargs(reference_model=tiny_lm(vocab_size - 3)))


@pytest.mark.parametrize("prompts", [[], ["the cat", "   "], ["the cat", 3]])
def test_empty_prompt_set_or_empty_prompt_raises(env_kwargs, prompts):
    with pytest.raises(ValueError, match="prompt"):
        TextBanditEnv(**env_kwargs(prompts=prompts))


def test_prompts_of_another_type_raise_type_error(env_kwargs):
    with pytest.raises(TypeError, match="prompts"):
        TextBanditEnv(**env_kwargs(prompts=42))


def test_long_prompt_raises_unless_truncated_left(env_kwargs, tokenizer):
    long_prompt = " ".join(["the", "cat", "sees", "a", "dog", "."] * 3)  # 18 tokens > 12
    with pytest.raises(ValueError, match="max_prompt_len"):
        TextBanditEnv(**env_kwargs(prompts=[long_prompt]))
    env = TextBanditEnv(**env_kwargs(prompts=[long_prompt], prompt_truncation="left"))
    obs, _ = env.reset(seed=0)
    expected = tokenizer(long_prompt, add_special_tokens=False)["input_ids"][-12:]
    assert obs["input_ids"].tolist() == expected and obs["attention_mask"].all()
    with pytest.raises(ValueError, match="prompt_truncation"):
        TextBanditEnv(**env_kwargs(prompt_truncation="right"))


@pytest.mark.parametrize("bad", [3, 2.5, object(), ["<pad>", "<eos>"]])
def test_a_tokenizer_that_is_not_one_raises_type_error(env_kwargs, bad):
    with pytest.raises(TypeError, match=r"tokenizer must be a Hugging Face tokenizer or a local path.*got"):
        TextBanditEnv(**env_kwargs(tokenizer=bad))


def test_tokenizer_whose_pad_is_eos_raises(env_kwargs):
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    with pytest.raises(ValueError, match="pad token"):
        TextBanditEnv(**env_kwargs(tokenizer=tok))


def test_task_none_requires_every_component(env_kwargs):
    with pytest.raises(ValueError, match="reward_model"):
        TextBanditEnv(**env_kwargs(reward_model=None))
    with pytest.raises(ValueError, match="task"):
        TextBanditEnv(**env_kwargs(task="nope"))


def test_bad_reset_option_raises(env_kwargs):
    env = TextBanditEnv(**env_kwargs())
    with pytest.raises(ValueError, match="prompt_index"):
        env.reset(options={"prompt_index": len(PROMPTS)})
    for bad in (1.7, 1.0, "1", True, None):  # never rounded or parsed into some other prompt
        with pytest.raises(TypeError, match="prompt_index"):
            env.reset(options={"prompt_index": bad})
    assert env.reset(options={"prompt_index": np.int64(2)})[1]["prompt_index"] == 2


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


def test_a_reward_model_with_a_smaller_vocabulary_raises(env_kwargs, vocab_size):
    from conftest import make_reward_model

    with pytest.raises(ValueError, match=r"reward model's vocabulary \(%d\) is smaller" % (vocab_size - 3)):
        TextBanditEnv(**env_kwargs(reward_model=make_reward_model(vocab_size - 3)))


def test_prompt_plus_response_longer_than_the_positions_raises(env_kwargs, vocab_size, policy_lm):
    from transformers import GPT2Config, GPT2LMHeadModel

    short = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=16, n_layer=1, n_head=2, n_positions=16))
    with pytest.raises(ValueError, match=r"12 \+ 6 = 18 tokens, more than the reference model's 16 positions"):
        TextBanditEnv(**env_kwargs(reference_model=short))
    env = TextBanditEnv(**env_kwargs())
    with pytest.raises(ValueError, match="policy's 16 positions"):
        env.set_policy(short)


class NaNPolicy:
    def response_logprobs(self, prompt_ids, prompt_mask, response_ids, response_mask, temperature):
        out = torch.zeros(response_ids.shape)
        out[:, 0] = float("nan")
        return out


class NaNReward(torch.nn.Module):
    def score(self, input_ids, attention_mask, position_ids=None):
        return torch.full((input_ids.shape[0],), float("nan"))


def test_nan_log_probs_scores_and_gold_are_refused(env_kwargs):
    env = TextBanditEnv(**env_kwargs(policy=NaNPolicy()))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="the policy's response_logprobs returned non-finite log-probs"):
        env.step(np.full(L, EOS))
    env = TextBanditEnv(**env_kwargs(reward_model=NaNReward()))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"the reward model \(reward_model\) returned non-finite scores"):
        env.step(np.full(L, EOS))
    for gold, match in (  # the gold judge is a reward function (TRL's signature) that must score every response
        (lambda prompts, completions, **kw: [0.5, 0.5], "'gold_fn' returned 2 rewards for 1 responses"),
        (lambda prompts, completions, **kw: [float("nan")], "'gold_fn' returned nan"),
        (lambda prompts, completions, **kw: ["good"], "'gold_fn' returned 'good'"),
        (lambda prompts, completions, **kw: [None], "'gold_fn' returned None"),
    ):
        env = TextBanditEnv(**env_kwargs(gold_fn=gold))
        env.reset(seed=0)
        with pytest.raises(ValueError, match=match):
            env.step(np.full(L, EOS))


def test_a_missing_local_model_path_says_so(env_kwargs, tmp_path):
    for name in ("/no/such/sft", "./runs/no_such_sft", str(tmp_path / "missing")):
        with pytest.raises(FileNotFoundError, match="no such local folder"):
            TextBanditEnv(**env_kwargs(reference_model=name))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        TextBanditEnv(**env_kwargs(reference_model=str(tmp_path / "empty")))
    with pytest.raises(FileNotFoundError, match="reward_model=.*no such local folder"):
        TextBanditEnv(**env_kwargs(reward_model=str(tmp_path / "missing")))


def test_reset_refuses_unknown_options_and_seeds_that_are_not_ints(env_kwargs):
    env = TextBanditEnv(**env_kwargs())
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['prompt_indices'\]"):
        env.reset(options={"prompt_indices": [0]})
    for seed in ("3", 1.5, [1]):
        with pytest.raises(TypeError, match="seed="):
            env.reset(seed=seed)
    a, _ = env.reset(seed=np.int64(4))  # NumPy ints are ints
    b, _ = env.reset(seed=4)
    assert np.array_equal(a["input_ids"], b["input_ids"])
