"""TextBandit-v0 (the single env): every documented error, for bad actions, construction arguments and options."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.error import ResetNeeded
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tiny import PROMPTS, tiny_lm, tiny_tokenizer

import textbandit  # noqa: F401  (registers TextBandit-v0)
from textbandit.env import TextBanditEnv
from textbandit.scorer import Settings

EOS = 1
L = 6  # conftest.MAX_NEW_TOKENS


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


# --- more bad inputs ----------------------------------------------------------------------------


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
