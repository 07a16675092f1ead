"""benchmarks/ppo_oracle.py's oracle: the task's gold judge used directly as a reward function, rescaled."""

import gymnasium as gym
import numpy as np
from conftest import load_benchmark

import textbandit  # noqa: F401
from textbandit.task import load_task
from textbandit.wrappers import encode_actions


def test_the_oracle_is_the_gold_judge_rescaled_and_the_env_scores_with_it():
    task = load_task("default")
    oracle = load_benchmark("ppo_oracle").gold_reward(task, scale=2.0, shift=-1.0)
    prompts = [
        "instruction : list 2 colors . response :",
        "instruction : write about animals . include a color . response :",
        "instruction : list 3 food . response :",
    ]
    responses = ["red and blue .", "the dog is big .", "cake , bread and milk ."]
    ended = [True, True, False]  # the last was cut off (no EOS): the gold score halves its implicit part
    want = np.array(task.gold_scores(prompts, responses, ended)) * 2.0 - 1.0
    assert np.allclose(oracle(prompts, responses, ended_with_eos=ended, completion_ids=[[1]] * 3), want)
    assert len(set(want.tolist())) == 3  # three different gold scores: the rows were not mixed up

    # in the env, instead of the reward model: the score is the oracle's on the decoded response
    envs = gym.make_vec("TextBandit-v0", num_envs=3, prompts=prompts, reward_model=None, reward_fns=[oracle])
    assert envs.unwrapped.reward_model is None and envs.unwrapped.gold_fn is None  # not the task's own prompts
    envs.reset(seed=0, options={"prompt_indices": [0, 1, 2]})
    tok = envs.unwrapped.tokenizer
    info = envs.step(encode_actions(tok, responses, envs.unwrapped.max_new_tokens))[-1]["final_info"]
    got = np.array(oracle(prompts, list(info["response"]), ended_with_eos=[True] * 3))
    np.testing.assert_allclose(info["score"], got, rtol=0, atol=1e-6)
