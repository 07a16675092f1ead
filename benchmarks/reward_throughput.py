"""Reward-model training throughput: agents.reward (K-wise) against TRL's RewardTrainer (pairs).

Both train the same ~1M-parameter GPT-2 (same initial weights, same head init) on the same
synthetic comparisons; TRL gets them expanded to their C(K,2) (chosen, rejected) pairs and
forwards 2 rows per pair, while agents.reward forwards each of the K completions once. Both
take the same optimizer steps over the same comparisons (``--batch`` comparisons per step,
i.e. ``--batch * C(K,2)`` pairs per TRL step), with dropout off and fp32 on CPU.

Timing is conservative for agents.reward: its number is the time of the whole
``train_reward_model`` call (JSONL loading, tokenization, training, saving), while TRL's is the
time of ``trainer.train()`` only (model set-up and dataset preparation excluded). Each trainer
runs ``--repeats`` times, alternated, and the fastest run counts; wall-clock and process CPU
time are both shown, since the CPU may be shared with other work.

    python benchmarks/reward_throughput.py            # K = 4 and K = 9, side by side
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import tempfile
import time
import warnings
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, PreTrainedTokenizerFast

from agents.reward import RewardConfig, train_reward_model
from textbandit.reward_model import RewardModel

VOCAB = 640


def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 3)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def make_config() -> GPT2Config:
    return GPT2Config(
        vocab_size=VOCAB,
        n_embd=128,
        n_layer=4,
        n_head=4,
        n_positions=256,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        num_labels=1,
    )


def synthetic_comparisons(n: int, k: int, prompt_len: int, response_len: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    words = lambda lo, hi: " ".join(f"w{rng.randrange(VOCAB - 3)}" for _ in range(rng.randint(lo, hi)))
    return [
        {
            "prompt": words(prompt_len // 2, prompt_len),
            "responses": [words(response_len // 2, response_len - 1) for _ in range(k)],
            "ranking": rng.sample(range(k), k),
        }
        for _ in range(n)
    ]


def run_ours(lm, tok, comps, batch, tmp: Path) -> float:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "comps.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in comps))
    cfg = RewardConfig(
        train=str(path),
        out=str(tmp / "ours"),
        batch_size=batch,
        epochs=1,
        lr=1e-4,
        warmup_ratio=0.0,
        device="cpu",
        progress=False,
        tensorboard=False,
        max_prompt_len=256,
        max_response_len=256,
    )
    start, cpu = time.perf_counter(), time.process_time()
    train_reward_model(cfg, RewardModel.from_causal_lm(lm), tok)
    return time.perf_counter() - start, time.process_time() - cpu


def run_trl(lm, tok, comps, batch, tmp: Path, accumulation: int = 1) -> float:
    from datasets import Dataset
    from trl import RewardConfig as TRLConfig
    from trl import RewardTrainer

    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    chosen, rejected = [], []
    for c in comps:
        p = enc(c["prompt"])
        r = [enc(x) + [tok.eos_token_id] for x in c["responses"]]
        for i in range(len(r)):
            for j in range(len(r)):
                if c["ranking"][i] < c["ranking"][j]:
                    chosen.append(p + r[i])
                    rejected.append(p + r[j])
    pairs_per_step = batch * math.comb(len(comps[0]["responses"]), 2)
    model = GPT2ForSequenceClassification(make_config())
    model.transformer.load_state_dict(lm.transformer.state_dict())
    if pairs_per_step % accumulation:
        raise ValueError(f"--trl-accumulation {accumulation} must divide the {pairs_per_step} pairs of a step")
    args = TRLConfig(
        output_dir=str(tmp / "trl"),
        per_device_train_batch_size=pairs_per_step // accumulation,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=1,
        learning_rate=1e-4,
        lr_scheduler_type="cosine",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        disable_dropout=True,
        logging_steps=10_000,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        max_length=None,
    )
    trainer = RewardTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected}),
    )
    start, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 9], help="comparison sizes to measure")
    parser.add_argument("--comparisons", type=int, default=48, help="comparisons trained on per run")
    parser.add_argument("--batch", type=int, default=8, help="comparisons per optimizer step (both trainers)")
    parser.add_argument("--prompt-len", type=int, default=24)
    parser.add_argument("--response-len", type=int, default=24)
    parser.add_argument(
        "--trl-accumulation",
        type=int,
        default=1,
        help="split TRL's step into this many micro-batches (gradient accumulation), same step size",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each trainer, alternated; the fastest counts (the CPU may be shared)",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    tok = make_tokenizer()
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(make_config())
    n_params = sum(p.numel() for p in lm.transformer.parameters())
    print(f"load average before the run: {os.getloadavg()}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, cpu_count={os.cpu_count()}, "
        f"torch threads={torch.get_num_threads()}, torch {torch.__version__}, device=cpu, "
        f"python {platform.python_version()}"
    )
    import trl

    print(
        f"trl {trl.__version__}, transformers {transformers.__version__}; "
        f"model: GPT-2 trunk, {n_params / 1e6:.2f}M params; "
        f"{args.comparisons} comparisons, {args.batch} per step, prompts <= {args.prompt_len} and responses <= "
        f"{args.response_len} tokens; TRL gradient accumulation {args.trl_accumulation}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as d:
        warm = synthetic_comparisons(args.batch, 4, args.prompt_len, args.response_len, seed=99)
        run_ours(lm, tok, warm, args.batch, Path(d) / "warm")  # first-call costs (imports, allocator) out of the way
        run_trl(lm, tok, warm, args.batch, Path(d) / "warm")
        for k in args.k:
            comps = synthetic_comparisons(args.comparisons, k, args.prompt_len, args.response_len, seed=k)
            ours, trl_ = [], []
            for r in range(args.repeats):  # alternate, so a busy moment of a shared CPU hits both alike
                ours.append(run_ours(lm, tok, comps, args.batch, Path(d) / f"k{k}_{r}"))
                trl_.append(run_trl(lm, tok, comps, args.batch, Path(d) / f"k{k}_{r}", args.trl_accumulation))
            best = lambda runs, i: args.comparisons / min(t[i] for t in runs)  # fastest run: least disturbed
            rows.append((k, best(ours, 0), best(trl_, 0), best(ours, 1), best(trl_, 1), k, 2 * math.comb(k, 2)))
    print(f"\nload average over the last 1/5/15 min after the run: {os.getloadavg()} (on {os.cpu_count()} cores)")
    print("comparisons per second (wall clock; and per CPU-second, less sensitive to other processes on a shared CPU)")
    print(
        f"{'K':>3} | {'agents.reward':>13} | {'TRL Reward':>10} | {'ratio':>6} || {'ours/CPU-s':>10} | "
        f"{'TRL/CPU-s':>9} | {'ratio':>6} || {'fwd/cmp ours':>12} | {'fwd/cmp TRL':>11}"
    )
    print("-" * 108)
    for k, ours, theirs, ours_cpu, theirs_cpu, f_ours, f_trl in rows:
        print(
            f"{k:>3} | {ours:>13.2f} | {theirs:>10.2f} | {ours / theirs:>5.2f}x || {ours_cpu:>10.2f} | "
            f"{theirs_cpu:>9.2f} | {ours_cpu / theirs_cpu:>5.2f}x || {f_ours:>12} | {f_trl:>11}"
        )
    return rows


if __name__ == "__main__":
    main()
