"""``gym.make_vec("TextBandit-v0")``: same numbers as single envs, SAME_STEP autoreset, info layout."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import PROMPTS

import textbandit  # noqa: F401  (registers TextBandit-v0)
from textbandit.env import TOKEN_KEYS
from textbandit.vector_env import TextBanditVectorEnv

N, L, EOS = 4, 6, 1
TOL = dict(rtol=1e-5, atol=1e-5)
SCALAR_KEYS = ("score", "kl", "truncated_response", "policy_attached")


def make_actions(rng, n):
    actions = rng.integers(3, 28, size=(n, L))
    actions[0, 2] = EOS  # an EOS in the middle
    actions[-1, 0] = EOS  # and one first
    return actions


@pytest.fixture
def vec_kwargs(env_kwargs, policy_lm):
    return env_kwargs(policy=policy_lm, temperature=0.8)


def test_make_vec_returns_the_batched_env_with_same_step_autoreset(vec_kwargs):
    envs = gym.make_vec("TextBandit-v0", num_envs=N, **vec_kwargs)
    assert isinstance(envs.unwrapped, TextBanditVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.num_envs == N
    assert envs.action_space.shape == (N, L)
    assert envs.observation_space["input_ids"].shape == (N, 12)


def test_vector_env_matches_single_envs_seeded_seed_plus_i(vec_kwargs):
    seed, steps = 11, 3
    envs = gym.make_vec("TextBandit-v0", num_envs=N, **vec_kwargs)
    singles = [gym.make("TextBandit-v0", **vec_kwargs) for _ in range(N)]
    rng = np.random.default_rng(0)

    obs, info = envs.reset(seed=seed)
    single = [env.reset(seed=seed + i) for i, env in enumerate(singles)]
    for _ in range(steps):
        for i, (o, inf) in enumerate(single):
            np.testing.assert_array_equal(obs["input_ids"][i], o["input_ids"])
            np.testing.assert_array_equal(obs["attention_mask"][i], o["attention_mask"])
            assert info["prompt"][i] == inf["prompt"] and info["prompt_index"][i] == inf["prompt_index"]
        actions = make_actions(rng, N)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        assert terminated.all() and not truncated.any()
        final = info["final_info"]
        for i, env in enumerate(singles):
            _, r, _, _, step_info = env.step(actions[i])
            assert rewards[i] == pytest.approx(r, abs=1e-5)
            for key in TOKEN_KEYS:
                np.testing.assert_allclose(final[key][i], step_info[key], **TOL, err_msg=key)
            for key in SCALAR_KEYS:
                assert final[key][i] == pytest.approx(step_info[key], abs=1e-5), key
            assert final["prompt"][i] == step_info["prompt"] and final["response"][i] == step_info["response"]
        single = [env.reset() for env in singles]  # SAME_STEP: the next prompts are already in obs


def test_matches_gymnasium_sync_vector_env_in_same_step_mode(vec_kwargs):
    envs = gym.make_vec("TextBandit-v0", num_envs=N, **vec_kwargs)
    sync = SyncVectorEnv(
        [lambda: gym.make("TextBandit-v0", **vec_kwargs) for _ in range(N)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    rng = np.random.default_rng(1)
    obs_a, info_a = envs.reset(seed=5)
    obs_b, info_b = sync.reset(seed=5)
    for _ in range(2):
        np.testing.assert_array_equal(obs_a["input_ids"], obs_b["input_ids"])
        assert list(info_a["prompt"]) == list(info_b["prompt"])
        actions = make_actions(rng, N)
        obs_a, r_a, term_a, trunc_a, info_a = envs.step(actions)
        obs_b, r_b, term_b, trunc_b, info_b = sync.step(actions)
        np.testing.assert_allclose(r_a, r_b, **TOL)
        np.testing.assert_array_equal(term_a, term_b)
        np.testing.assert_array_equal(trunc_a, trunc_b)
        np.testing.assert_array_equal(obs_a["input_ids"], obs_b["input_ids"])
        assert set(info_a) == set(info_b)  # the same layout: final_obs, final_info, their masks, reset info
        assert set(info_a["final_info"]) == set(info_b["final_info"])
        for key, value in info_b["final_info"].items():
            if value.dtype == object:
                assert list(info_a["final_info"][key]) == list(value), key
            else:
                np.testing.assert_allclose(info_a["final_info"][key], value, **TOL, err_msg=key)
        for i in range(N):
            for k in ("input_ids", "attention_mask"):
                np.testing.assert_array_equal(info_a["final_obs"][i][k], info_b["final_obs"][i][k])


def test_info_layout(vec_kwargs):
    envs = gym.make_vec("TextBandit-v0", num_envs=N, **vec_kwargs)
    obs0, info0 = envs.reset(seed=0)
    assert info0["_prompt"].all() and info0["prompt"].shape == (N,)
    obs1, rewards, _, _, info = envs.step(make_actions(np.random.default_rng(0), N))
    assert rewards.shape == (N,) and np.isfinite(rewards).all()
    assert info["_final_info"].all() and info["_final_obs"].all()
    final = info["final_info"]
    for key in TOKEN_KEYS:
        assert final[key].shape == (N, L) and final[f"_{key}"].all(), key
    for key in SCALAR_KEYS + ("prompt", "response"):
        assert final[key].shape == (N,), key
    assert final["policy_attached"].all()
    assert info["final_obs"].dtype == object and info["final_obs"].shape == (N,)
    for i in range(N):  # final_obs is the observation the action answered
        np.testing.assert_array_equal(info["final_obs"][i]["input_ids"], obs0["input_ids"][i])
        assert final["prompt"][i] == info0["prompt"][i]
    np.testing.assert_allclose(final["token_rewards"].sum(axis=1), rewards, atol=1e-5)
    assert obs1 in envs.observation_space


def test_reset_with_a_list_of_seeds_and_prompt_indices(vec_kwargs):
    envs = gym.make_vec("TextBandit-v0", num_envs=N, **vec_kwargs)
    _, a = envs.reset(seed=[3, 4, 5, 6])
    _, b = envs.reset(seed=3)
    np.testing.assert_array_equal(a["prompt_index"], b["prompt_index"])
    _, info = envs.reset(options={"prompt_indices": [4, 3, 2, 1]})
    assert info["prompt_index"].tolist() == [4, 3, 2, 1]
    with pytest.raises(ValueError, match="seeds"):
        envs.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="prompt_indices"):
        envs.reset(options={"prompt_indices": [0, 1, 2, 99]})


def test_without_policy_kl_is_zero(env_kwargs):
    envs = gym.make_vec("TextBandit-v0", num_envs=N, **env_kwargs())
    envs.reset(seed=0)
    _, rewards, _, _, info = envs.step(make_actions(np.random.default_rng(0), N))
    assert not info["final_info"]["policy_attached"].any()
    assert not info["final_info"]["kl"].any()
    np.testing.assert_allclose(rewards, info["final_info"]["score"], atol=1e-6)


def test_bad_actions_and_step_before_reset(vec_kwargs):
    envs = TextBanditVectorEnv(num_envs=N, **vec_kwargs)
    with pytest.raises(ResetNeeded):
        envs.step(np.zeros((N, L), dtype=np.int64))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros((N - 1, L), dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros(L, dtype=np.int64))
    with pytest.raises(TypeError):
        envs.step(np.zeros((N, L)))
    with pytest.raises(ValueError, match=r"\[0, 28\)"):
        envs.step(np.full((N, L), 28))
    for bad in (0, -1, True, 2.0, "4"):
        with pytest.raises(ValueError, match="num_envs"):
            TextBanditVectorEnv(num_envs=bad, **vec_kwargs)


@pytest.fixture(scope="module")
def raw_vec_env(tokenizer, reference, reward_model):
    return TextBanditVectorEnv(
        num_envs=N,
        task=None,
        tokenizer=tokenizer,
        reference_model=reference,
        reward_model=reward_model,
        prompts=list(PROMPTS),
        max_prompt_len=12,
        max_new_tokens=L,
    )


@settings(max_examples=30, deadline=None)
@given(indices=st.lists(st.floats(0, 4), min_size=N, max_size=N))
def test_float_prompt_indices_are_refused_not_truncated(raw_vec_env, indices):
    with pytest.raises(TypeError, match="prompt_indices"):
        raw_vec_env.reset(options={"prompt_indices": indices})
    with pytest.raises(TypeError, match="prompt_indices"):
        raw_vec_env.reset(options={"prompt_indices": np.array(indices)})


def test_forward_batch_size_splits_the_scoring_forwards_without_changing_the_numbers(vec_kwargs):
    whole = gym.make_vec("TextBandit-v0", num_envs=N, forward_batch_size=None, **vec_kwargs)
    split = gym.make_vec("TextBandit-v0", num_envs=N, forward_batch_size=3, **vec_kwargs)  # 3 + 1 rows
    actions = make_actions(np.random.default_rng(1), N)
    whole.reset(seed=5)
    split.reset(seed=5)
    a, b = whole.step(actions)[4]["final_info"], split.step(actions)[4]["final_info"]
    for key in TOKEN_KEYS + ("score", "kl"):
        np.testing.assert_allclose(a[key], b[key], **TOL, err_msg=key)
    for bad in (0, -2, 1.5, "16", True):
        with pytest.raises(ValueError, match="forward_batch_size"):
            gym.make_vec("TextBandit-v0", num_envs=N, forward_batch_size=bad, **vec_kwargs)


def test_scoring_chunks_are_length_sorted_and_cut_to_their_longest_row(vec_kwargs):
    envs = gym.make_vec("TextBandit-v0", num_envs=N, forward_batch_size=2, **vec_kwargs)
    env = envs.unwrapped
    widths = {"reference": [], "policy": [], "reward": []}
    hooks = [
        model.register_forward_pre_hook(
            lambda m, args, kw, k=key: widths[k].append(kw["input_ids"].shape), with_kwargs=True
        )
        for key, model in (
            ("reference", env.reference_model),
            ("policy", env.policy.model),
            ("reward", env.reward_model.trunk),
        )
    ]
    actions = make_actions(np.random.default_rng(1), N)  # responses of 3, 1 and L tokens
    obs, _ = envs.reset(seed=5)
    info = envs.step(actions)[4]["final_info"]
    for h in hooks:
        h.remove()
    lengths = obs["attention_mask"].sum(1) + info["response_mask"].sum(1)
    short = np.argsort(lengths, kind="stable")[:2]  # the first chunk: the two shortest rows
    P = int(obs["attention_mask"][short].sum(1).max())
    R = int(info["response_mask"][short].sum(1).max())
    for key, shapes in widths.items():
        assert [tuple(x) for x in shapes][0] == (2, P + R), key  # no column of padding in every row
        assert len(shapes) == 2, key
    whole = gym.make_vec("TextBandit-v0", num_envs=N, forward_batch_size=None, **vec_kwargs)
    whole.reset(seed=5)
    ref = whole.step(actions)[4]["final_info"]
    for key in TOKEN_KEYS + ("score", "kl"):
        np.testing.assert_allclose(info[key], ref[key], **TOL, err_msg=key)


def test_reset_refuses_unknown_options_and_seeds_that_are_not_ints(vec_kwargs):
    envs = gym.make_vec("TextBandit-v0", num_envs=N, **vec_kwargs)
    for options in ({"prompt_index": 1}, {"prompt_indices": [0, 1, 2, 3], "shuffle": True}):
        with pytest.raises(ValueError, match=r"unknown reset option\(s\)"):  # never silently ignored
            envs.reset(options=options)
    for seed in ("3", 1.5, [1, 2, "3", 4], [0.5] * N, {"a": 1}):
        with pytest.raises(TypeError, match="seed"):
            envs.reset(seed=seed)
    _, a = envs.reset(seed=np.int64(3))  # NumPy ints are ints, alone or in a list
    _, b = envs.reset(seed=[np.int64(s) for s in range(3, 3 + N)])
    _, c = envs.reset(seed=3)
    np.testing.assert_array_equal(a["prompt_index"], c["prompt_index"])
    np.testing.assert_array_equal(b["prompt_index"], c["prompt_index"])
