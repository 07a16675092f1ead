"""Reward functions with TRL's signature wherever a reward model goes: what they are called with, how
their rewards combine (weights, None), and the errors that name a bad one."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import MAX_NEW_TOKENS as L
from tiny import PROMPTS, tiny_chat_tokenizer, tiny_lm

import textbandit  # noqa: F401
from textbandit.rewards import load_reward_fn
from textbandit.wrappers import encode_actions


class Recorder:
    """A reward function that remembers its calls: 1 for a response that mentions 'cat', else 0."""

    __name__ = "mentions_cat"

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, completions, **kwargs):
        self.calls.append({"prompts": prompts, "completions": completions, **kwargs})
        return [float("cat" in c if isinstance(c, str) else "cat" in c[0]["content"]) for c in completions]


def records():
    return [{"prompt": p, "customer": i, "solution": f"s{i}"} for i, p in enumerate(PROMPTS)]


def test_a_vector_step_calls_each_function_once_with_the_batch_its_columns_and_ids(env_kwargs, tokenizer):
    fn = Recorder()
    envs = gym.make_vec(
        "TextBandit-v0", num_envs=3, **env_kwargs(reward_model=None, reward_fns=[fn], prompts=records())
    )
    envs.reset(seed=0, options={"prompt_indices": [0, 3, 4]})
    texts = ["the cat runs", "a dog", "two fish fish fish fish fish fish"]  # the last runs out of tokens
    info = envs.step(encode_actions(tokenizer, texts, L))[-1]["final_info"]
    assert len(fn.calls) == 1  # one call for the whole batch
    call = fn.calls[0]
    assert call["prompts"] == [PROMPTS[0], PROMPTS[3], PROMPTS[4]]
    assert call["completions"] == list(info["response"]) == ["the cat runs", "a dog", "two fish fish fish fish fish"]
    assert call["customer"] == [0, 3, 4] and call["solution"] == ["s0", "s3", "s4"]  # the other columns
    assert call["ended_with_eos"] == [True, True, False]
    ids = tokenizer("the cat runs", add_special_tokens=False)["input_ids"]
    assert call["completion_ids"][0] == ids + [tokenizer.eos_token_id]  # up to and including the EOS, as TRL
    assert len(call["completion_ids"][2]) == L
    np.testing.assert_array_equal(info["score"], [1.0, 0.0, 0.0])  # no reward model: the function alone
    assert envs.unwrapped.reward_model is None and envs.unwrapped.reward_names == ["mentions_cat"]


def test_weights_none_and_a_reward_model_beside_the_functions(env_kwargs, tokenizer, reward_model):
    only_cats = lambda prompts, completions, **kw: [1.0 if "cat" in p else None for p in prompts]  # noqa: E731
    length = lambda prompts, completions, completion_ids, **kw: [float(len(i)) for i in completion_ids]  # noqa: E731
    kwargs = env_kwargs(reward_fns=[only_cats, length], reward_weights=[0.5, 2.0, -0.1])
    envs = gym.make_vec("TextBandit-v0", num_envs=2, **kwargs)
    envs.reset(seed=0, options={"prompt_indices": [0, 1]})  # "write about the cat ." and "list two fish ?"
    info = envs.step(encode_actions(tokenizer, ["a cat", "one"], L))[-1]["final_info"]
    parts = info["score_parts"]
    assert parts.shape == (2, 3) and envs.unwrapped.reward_names == ["reward_model", "<lambda>", "<lambda>"]
    assert parts[0, 1] == 1.0 and np.isnan(parts[1, 1])  # None: not applicable, NaN in the parts
    np.testing.assert_array_equal(parts[:, 2], [3.0, 2.0])
    want = 0.5 * parts[:, 0] + np.nan_to_num(2.0 * parts[:, 1]) - 0.1 * parts[:, 2]  # None adds nothing (TRL's nansum)
    np.testing.assert_allclose(info["score"], want, rtol=1e-6, atol=1e-6)  # float32 sums
    single = gym.make("TextBandit-v0", **env_kwargs(reward_fns=[length]))  # the single env: the same info
    single.reset(options={"prompt_index": 0})
    assert single.step(encode_actions(tokenizer, ["a cat"], L)[0])[-1]["score_parts"].shape == (2,)


def raises(prompts, completions, **kwargs):
    return {}["missing"]


@pytest.mark.parametrize(
    "fn,message",
    [
        (raises, r"reward function 'raises' raised KeyError: 'missing'"),
        (lambda prompts, completions, **kw: [1.0], r"'<lambda>' returned 1 rewards for 2 responses"),
        (lambda prompts, completions, **kw: [1.0, float("nan")], r"'<lambda>' returned nan \(NaN or infinite\)"),
        (lambda prompts, completions, **kw: [1.0, "good"], r"'<lambda>' returned 'good' \(a str\) for response 1"),
        (lambda prompts, completions, **kw: "1.0 2.0", r"'<lambda>' returned str '1.0 2.0'"),
        (lambda prompts, completions, **kw: [None, 1.0], r"no reward source applies to response 0"),
    ],
)
def test_a_bad_reward_function_is_an_error_naming_it(env_kwargs, tokenizer, fn, message):
    envs = gym.make_vec("TextBandit-v0", num_envs=2, **env_kwargs(reward_model=None, reward_fns=fn))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        envs.step(encode_actions(tokenizer, ["a cat", "one"], L))


def test_bad_reward_arguments(env_kwargs):
    fn = lambda prompts, completions, **kw: [0.0] * len(prompts)  # noqa: E731
    with pytest.raises(ValueError, match="reward_weights has 1 weights for 2 reward sources"):
        gym.make("TextBandit-v0", **env_kwargs(reward_fns=[fn], reward_weights=[1.0]))
    with pytest.raises(ValueError, match=r"pass reward_model \(or reward_fns\) too"):
        gym.make("TextBandit-v0", **env_kwargs(reward_model=None))
    with pytest.raises(TypeError, match="reward_fns must be"):
        gym.make("TextBandit-v0", **env_kwargs(reward_fns=3))
    with pytest.raises(ValueError, match="write it as package.module:function"):
        gym.make("TextBandit-v0", **env_kwargs(reward_fns=["no_colon"]))
    with pytest.raises(ValueError, match="cannot import 'no_such_module_x'"):
        gym.make("TextBandit-v0", **env_kwargs(reward_fns=["no_such_module_x:f"]))


def test_reward_functions_by_name_and_from_a_file(tmp_path, env_kwargs):
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "def brevity(prompts, completions, completion_ids, **kwargs):\n    return [-len(i) for i in completion_ids]\n"
    )
    fn = load_reward_fn(f"{path}:brevity")
    assert fn(["p"], ["c"], completion_ids=[[1, 2]]) == [-2]
    with pytest.raises(ValueError, match="has no function 'nope'"):
        load_reward_fn(f"{path}:nope")
    env = gym.make("TextBandit-v0", **env_kwargs(reward_model=None, reward_fns=[f"{path}:brevity"]))
    env.reset(seed=0)
    assert env.step(np.full(L, 1))[-1]["score"] == -1.0  # one token: the EOS
    assert env.unwrapped.reward_names == [f"{path}:brevity"]


def test_the_default_tasks_gold_judge_is_a_reward_function():
    task = textbandit.load_task("default")
    env = gym.make("TextBandit-v0", reward_fns=[task.gold_fn])  # the gold judge as the reward
    env.reset(seed=0)
    info = env.step(env.action_space.sample())[-1]
    assert info["score"] == pytest.approx(info["gold_score"], abs=1e-6)


def test_conversational_prompts_reach_reward_functions_as_messages(tmp_path):
    tok = tiny_chat_tokenizer()
    fn = Recorder()
    chats = [{"prompt": [{"role": "user", "content": p}], "kind": i} for i, p in enumerate(PROMPTS)]
    kwargs = dict(task=None, tokenizer=tok, reference_model=tiny_lm(len(tok)), prompts=chats, reward_fns=[fn])
    env = gym.make("TextBandit-v0", max_prompt_len=16, max_new_tokens=L, **kwargs)
    assert env.unwrapped.prompts[0] == "user : write about the cat . assistant :"  # rendered with the chat template
    obs, info = env.reset(options={"prompt_index": 0})
    assert info["prompt"] == env.unwrapped.prompts[0]
    info = env.step(encode_actions(tok, ["the cat"], L)[0])[-1]
    call = fn.calls[0]
    assert call["prompts"] == [chats[0]["prompt"]] and call["kind"] == [0]
    assert call["completions"] == [[{"role": "assistant", "content": "the cat"}]]  # as TRL passes them
    assert info["score"] == 1.0
    plain = dict(kwargs, tokenizer=tiny_chat_tokenizer())
    plain["tokenizer"].chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        gym.make("TextBandit-v0", max_prompt_len=16, max_new_tokens=L, **plain)
