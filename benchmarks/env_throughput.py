"""Responses scored per second: the batched vector env against N single envs in SyncVectorEnv.

``gym.make_vec("TextBandit-v0", num_envs=N)`` scores all N responses with batched forward passes
of each model (reference, policy, reward model), in chunks of ``forward_batch_size`` rows.
Gymnasium's ``SyncVectorEnv`` over N single envs (``AutoresetMode.SAME_STEP``, so neither wastes
a step) runs N forward passes per model. Both
get the same models, prompts, seeds and actions, in the same process, and must give the same
rewards; the script prints the machine, each throughput and their ratio.

Models: the default task's (``textbandit/assets/default/``) when shipped, otherwise locally
built GPT-2s as reference, policy and reward-model trunk: ``--size 1m`` (4 layers, d=128, the
default task's "small" model; with the default 2,000-word ``--vocab``, about 1M parameters
each) or ``--size tiny`` (2 layers, d=32, the size of the test models). Timings are the best of
``--repeats`` alternating runs (shared machines are noisy); the process's CPU time is printed too,
as it is less sensitive to other load.

    python benchmarks/env_throughput.py                 # N=64, 32-token responses, 1M-param models
    python benchmarks/env_throughput.py --threads 1 --size tiny
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import textbandit  # noqa: F401  (registers TextBandit-v0)
from textbandit.task import load_task

SIZES = {"1m": dict(n_embd=128, n_layer=4, n_head=4), "tiny": dict(n_embd=32, n_layer=2, n_head=2)}


def local_models(size: str, vocab_words: int, max_len: int, seed: int = 0) -> dict:
    """A word-level tokenizer and three GPT-2s of ``SIZES[size]`` (reference, policy, reward trunk)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from textbandit.reward_model import RewardModel

    vocab = {tok: i for i, tok in enumerate(["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(vocab_words)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")

    def lm(s: int) -> GPT2LMHeadModel:
        torch.manual_seed(s)
        config = GPT2Config(
            vocab_size=len(vocab), n_positions=max_len, bos_token_id=1, eos_token_id=1, pad_token_id=0, **SIZES[size]
        )
        return GPT2LMHeadModel(config).eval()

    rng = np.random.default_rng(seed)
    prompts = [" ".join(f"w{j}" for j in rng.integers(0, vocab_words, size=rng.integers(8, 33))) for _ in range(512)]
    return dict(
        task=None,
        tokenizer=tokenizer,
        reference_model=lm(seed),
        policy=lm(seed + 1),
        reward_model=RewardModel.from_causal_lm(lm(seed + 2)),
        prompts=prompts,
        max_prompt_len=32,
    )


def default_task_models() -> dict:
    from transformers import AutoModelForCausalLM

    return dict(
        task="default", policy=AutoModelForCausalLM.from_pretrained(load_task("default").reference_model).eval()
    )


def make_actions(rng: np.random.Generator, steps: int, n: int, L: int, V: int, eos: int) -> np.ndarray:
    """Random responses (tokens 3..V-1), each with an EOS at a random place or none (a truncated one)."""
    actions = rng.integers(3, V, size=(steps, n, L))
    ends = rng.integers(1, L + 8, size=(steps, n))  # about a fifth have no EOS
    for s in range(steps):
        for i in range(n):
            if ends[s, i] < L:
                actions[s, i, ends[s, i]] = eos
    return actions


def run(envs, actions: np.ndarray, seed: int, eos: int) -> tuple[float, float, np.ndarray, int]:
    """Wall and process-CPU seconds of ``len(actions) - 1`` timed steps (the first is a warm-up), the
    rewards, and the real (unpadded) prompt + response tokens the timed steps scored."""
    obs, _ = envs.reset(seed=seed)
    obs, reward = envs.step(actions[0])[:2]
    rewards, prompt_tokens = [reward], 0
    wall, cpu = time.perf_counter(), time.process_time()
    for a in actions[1:]:
        prompt_tokens += int(obs["attention_mask"].sum())  # SAME_STEP autoreset: the prompts this step scores
        obs, reward = envs.step(a)[:2]
        rewards.append(reward)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    is_eos = actions[1:] == eos
    response_tokens = np.where(is_eos.any(2), is_eos.argmax(2) + 1, actions.shape[2]).sum()
    return wall, cpu, np.stack(rewards), prompt_tokens + int(response_tokens)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the best is reported")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--models",
        choices=["auto", "local", "default"],
        default="auto",
        help="'default': the shipped default task; 'local': GPT-2s built here (auto: default if shipped)",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="1m", help="size of the local models")
    parser.add_argument("--vocab", type=int, default=2000, help="words in the local models' vocabulary")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where the models run (cpu, cuda)")
    parser.add_argument(
        "--forward-batch-size",
        default="auto",
        type=lambda v: v if v == "auto" else None if v == "none" else int(v),
        help="the batched env's rows per forward pass: an int, 'none' (the whole batch) or 'auto' (the env's default)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    use_default = args.models == "default" or (args.models == "auto" and load_task("default").reward_model is not None)
    kwargs = default_task_models() if use_default else local_models(args.size, args.vocab, 32 + args.max_new_tokens)
    kwargs["max_new_tokens"] = args.max_new_tokens
    kwargs["device"] = args.device
    kwargs["policy"] = kwargs["policy"].to(args.device)
    n = args.num_envs

    batched = gym.make_vec("TextBandit-v0", num_envs=n, forward_batch_size=args.forward_batch_size, **kwargs)
    env = batched.unwrapped
    sync = SyncVectorEnv([lambda: gym.make("TextBandit-v0", **kwargs)] * n, autoreset_mode=AutoresetMode.SAME_STEP)
    n_params = sum(p.numel() for p in env.reference_model.parameters())

    actions = make_actions(
        np.random.default_rng(args.seed),
        args.steps + 1,
        n,
        args.max_new_tokens,
        len(env.tokenizer),
        env.tokenizer.eos_token_id,
    )
    best = {"batched": (np.inf, np.inf), "sync": (np.inf, np.inf)}
    rewards = {}
    for _ in range(args.repeats):  # alternate, so that a burst of other load hits both alike
        for name, envs in (("batched", batched), ("sync", sync)):
            wall, cpu, rewards[name], tokens = run(envs, actions, args.seed, env.tokenizer.eos_token_id)
            best[name] = min(best[name], (wall, cpu))
    responses = n * args.steps
    max_diff = float(np.abs(rewards["batched"] - rewards["sync"]).max())
    (wb, cb), (ws, cs) = best["batched"], best["sync"]

    gpu = f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""
    print(
        f"machine   : {platform.machine()} {platform.system()}{gpu}, os.cpu_count()={os.cpu_count()}, "
        f"torch {torch.__version__}, torch threads={torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"models    : {'default task' if use_default else f'local GPT-2 ({args.size})'} reference/policy/RM, "
        f"{n_params / 1e6:.2f}M params each, vocab {len(env.tokenizer)}; "
        f"prompts <= {env.max_prompt_len} tokens, responses <= {args.max_new_tokens} tokens"
    )
    print(
        f"workload  : {n} envs x {args.steps} timed steps = {responses} responses per run, best of {args.repeats}; "
        f"batched env forward_batch_size={args.forward_batch_size}"
    )
    print(
        f"batched   : gym.make_vec('TextBandit-v0', num_envs={n})  {responses / wb:8.1f} responses/s "
        f"(wall {wb:.2f} s, cpu {cb:.2f} s)"
    )
    print(
        f"sync      : SyncVectorEnv({n} x gym.make, SAME_STEP)     {responses / ws:8.1f} responses/s "
        f"(wall {ws:.2f} s, cpu {cs:.2f} s)"
    )
    print(f"ratio     : {ws / wb:.1f}x wall, {cs / cb:.1f}x cpu   (max |reward difference| {max_diff:.2e})")
    # Is the batched env bound by arithmetic? Model FLOPs ~ 2 * params * tokens for each of the three
    # forwards (reference, policy, reward model; attention's own FLOPs left out), against the
    # machine's fp32 matmul peak measured the way ppo_throughput.py measures it.
    from ppo_throughput import matmul_peak

    flops = 3 * 2 * n_params * tokens  # the same prompts and actions for both envs
    device = torch.device(args.device)
    peak = max(
        matmul_peak(device, torch.float32, size)
        for size in ((1024, 2048, 2048) if device.type == "cpu" else (4096, 8192, 8192))
    )
    print(
        f"arithmetic: batched env {flops / wb / 1e9:.1f} GFLOP/s of model FLOPs = {flops / wb / peak:.0%} of the "
        f"fp32 matmul peak ({peak / 1e9:.0f} GFLOP/s); 8x the single envs would need "
        f"{8 * flops / ws / 1e9:.1f} GFLOP/s = {8 * flops / ws / peak:.0%} of it"
    )


if __name__ == "__main__":
    main()
