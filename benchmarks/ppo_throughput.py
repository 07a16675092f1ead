"""Throughput of whole PPO iterations (rollout, scoring, update): agents.ppo vs TRL's RLOOTrainer.

Both trainers get the same randomly initialised GPT-2 (built from a config, saved locally), the
same reward model (``textbandit.reward_model.RewardModel`` on the same trunk), the same prompts,
``batch`` responses per iteration, ``response_len`` new tokens, ``epochs`` passes over each batch
in minibatches of ``minibatch``, and a KL penalty to a reference copy of the model (beta 0.05).
Each runs in its own subprocess (so peak RSS is its own), ``warmup`` iterations are not timed.

Reported per trainer: samples/s and response tokens/s of whole iterations, the update step's
model-FLOPs utilisation (6 * params * tokens per update / update time, against the peak of a
large matmul measured on this machine in the same precision; with LoRA the frozen weights get no
weight gradients, so this overstates the work), and peak memory (RSS on CPU, max allocated on
CUDA). ``--lora-r`` trains agents.ppo's policy as LoRA adapters (its reference the base with
them off); ``--trl false`` times agents.ppo alone. Run::

    python benchmarks/ppo_throughput.py                      # the task's model size, minutes on 2 cores
    python benchmarks/ppo_throughput.py --size gpt2-small --device cuda
    python benchmarks/ppo_throughput.py --size qwen2-0.5b --lora-r 16 --trl false --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SIZES = {  # GPT-2s: (n_layer, n_embd, n_head, vocab)
    "task-small": (4, 128, 4, 727),  # the default task's small model (agents.pretrain --size small)
    "cpu": (4, 256, 4, 2048),
    "gpt2-small": (12, 768, 12, 50257),
}
QWEN2 = {  # Qwen2s: Qwen2-0.5B's shape (494M parameters), and a tiny one for a check on a CPU
    "qwen2-0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "qwen2-tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
    ),
}


def build_assets(directory: Path, size: str, prompt_len: int, n_prompts: int = 256) -> None:
    """A word-level tokenizer, a random GPT-2 of ``size``, a reward model on it, and prompts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from textbandit.reward_model import RewardModel

    vocab = QWEN2[size].get("vocab_size", 2048) if size in QWEN2 else SIZES[size][3]
    words = [f"w{i}" for i in range(vocab - 3)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>"] + words)}, "<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.WhitespaceSplit(), decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tokenizer.save_pretrained(directory / "tokenizer")
    torch.manual_seed(0)
    ids = dict(bos_token_id=1, eos_token_id=1, pad_token_id=0)
    if size in QWEN2:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        lm = Qwen2ForCausalLM(Qwen2Config(**{"vocab_size": vocab, **QWEN2[size]}, max_position_embeddings=512, **ids))
    else:
        n_layer, n_embd, n_head, _ = SIZES[size]
        config = GPT2Config(
            vocab_size=vocab,
            n_layer=n_layer,
            n_embd=n_embd,
            n_head=n_head,
            n_positions=512,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **ids,
        )
        lm = GPT2LMHeadModel(config)
    lm.save_pretrained(directory / "model")
    tokenizer.save_pretrained(directory / "model")
    RewardModel.from_causal_lm(lm).save_pretrained(directory / "rm")
    rng = np.random.default_rng(0)
    prompts = [" ".join(rng.choice(words, size=prompt_len)) for _ in range(n_prompts)]
    (directory / "prompts.json").write_text(json.dumps(prompts))


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Measured FLOP/s of an n x n matmul: the machine's practical peak for MFU."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load(directory: Path, device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textbandit.reward_model import RewardModel

    tok = AutoTokenizer.from_pretrained(str(directory / "tokenizer"))
    lm = AutoModelForCausalLM.from_pretrained(str(directory / "model"))
    rm = RewardModel.from_pretrained(str(directory / "rm")).to(device).eval()
    return tok, lm, rm, json.loads((directory / "prompts.json").read_text())


def run_ours(a, directory: Path, device: torch.device) -> dict:
    from transformers import AutoModelForCausalLM

    from agents.ppo import PPOConfig, train
    from textbandit.task import Task

    tok, lm, rm, prompts = load(directory, device)
    if a.lora_r:  # the reference is the policy's base with its adapters off: no second copy
        ref = str(directory / "model")
    else:
        ref = AutoModelForCausalLM.from_pretrained(str(directory / "model"))
    if device.type == "cuda":  # the frozen models need no fp32 master weights: run them in bf16
        rm = rm.to(torch.bfloat16)
        ref = ref if a.lora_r else ref.to(torch.bfloat16)
    cfg = PPOConfig(
        lora_r=a.lora_r,
        batch_size=a.batch,
        minibatch_size=a.minibatch,
        update_epochs=a.epochs,
        total_iterations=a.warmup + a.iterations,
        max_new_tokens=a.response_len,
        kl_coef=0.05,
        learning_rate=1e-5,
        missing_eos_penalty=None,
        device=str(device),
        out=str(directory / "ours"),
        progress=False,
        tensorboard=False,
        samples_every=0,
        bf16=True,
    )
    task = Task(
        tokenizer=tok,
        prompts={"train": prompts},
        reference_model=ref,
        reward_model=rm,
        max_prompt_len=a.prompt_len,
        max_new_tokens=a.response_len,
    )
    env_kwargs = {} if a.lora_r else {"reference_model": ref}
    history = train(cfg, policy=lm, task=task, env_kwargs=env_kwargs)["history"][a.warmup :]
    total = sum(h["time/iteration_s"] for h in history)
    tokens = sum(h["env/response_len"] * a.batch for h in history)
    return {
        "samples_per_s": a.batch * len(history) / total,
        "tokens_per_s": tokens / total,
        "update_s": sum(h["time/update_s"] for h in history),
        "update_tokens": sum(h["time/update_tokens"] for h in history),
        "n_params": sum(p.numel() for p in lm.parameters()),
        "peak_mem_mb": peak_memory_mb(device),
    }


def run_trl(a, directory: Path, device: torch.device) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import RLOOConfig, RLOOTrainer

    from textbandit.layout import join, response_mask

    tok, _, rm, prompts = load(directory, device)
    if device.type == "cuda":  # as for ours: the reward model in bf16
        rm = rm.to(torch.bfloat16)
    lm = AutoModelForCausalLM.from_pretrained(str(directory / "model"))  # _name_or_path: TRL's reference copy
    tok.padding_side = "left"
    completion_tokens = []

    @torch.no_grad()
    def reward(prompts, completions, completion_ids, **_):
        enc = tok(prompts, add_special_tokens=False, return_tensors="pt", padding=True)
        resp = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(c) for c in completion_ids], batch_first=True, padding_value=tok.pad_token_id
        )
        completion_tokens.append(sum(len(c) for c in completion_ids))
        ids, mask, pos = join(
            enc["input_ids"], enc["attention_mask"], resp, response_mask(resp, tok.eos_token_id), tok.pad_token_id
        )
        return rm.score(ids.to(device), mask.to(device), pos.to(device)).float().cpu().tolist()

    steps_per_iter = a.batch // a.minibatch * a.epochs
    args = RLOOConfig(
        output_dir=str(directory / "trl"),
        per_device_train_batch_size=a.minibatch,
        steps_per_generation=a.batch // a.minibatch,
        num_generations=2,
        num_iterations=a.epochs,
        max_completion_length=a.response_len,
        max_steps=(a.warmup + a.iterations) * steps_per_iter,
        beta=0.05,
        learning_rate=1e-5,
        temperature=1.0,
        disable_dropout=True,
        logging_steps=10**6,
        save_strategy="no",
        report_to="none",
        use_cpu=device.type == "cpu",
        bf16=device.type == "cuda",
        seed=0,
        dataloader_num_workers=0,
    )
    times = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            times.append(["begin", time.perf_counter()])

        def on_step_end(self, *_, **__):
            times.append(["end", time.perf_counter()])

    trainer = RLOOTrainer(
        model=lm,
        reward_funcs=reward,
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        callbacks=[Clock()],
    )
    trainer.train()
    ends = [t for kind, t in times if kind == "end"]
    begins = [t for kind, t in times if kind == "begin"]
    first = a.warmup * steps_per_iter  # timed steps: after the warm-up iterations
    total = ends[-1] - ends[first - 1] if first else ends[-1] - begins[0]
    # Update-only steps: every step of an iteration but the first, which also generates and scores.
    update_steps = [e - b for i, (b, e) in enumerate(zip(begins, ends)) if i >= first and i % steps_per_iter]
    mean_update_step = float(np.mean(update_steps)) if update_steps else float("nan")
    mean_len = float(np.mean(completion_tokens[a.warmup :])) / a.batch if completion_tokens else a.response_len
    return {
        "samples_per_s": a.batch * a.iterations / total,
        "tokens_per_s": sum(completion_tokens[-a.iterations :]) / total,
        "update_s": mean_update_step * steps_per_iter * a.iterations,
        "update_tokens": a.iterations * a.batch * a.epochs * (a.prompt_len + mean_len),
        "n_params": sum(p.numel() for p in lm.parameters()),
        "peak_mem_mb": peak_memory_mb(device),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES) + sorted(QWEN2), default="task-small")
    p.add_argument("--lora-r", type=int, default=0, help="agents.ppo with LoRA adapters of this rank (0: off)")
    p.add_argument("--trl", default="true", help="also time TRL's RLOOTrainer (true/false)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--minibatch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--prompt-len", type=int, default=24)
    p.add_argument("--response-len", type=int, default=24)
    p.add_argument("--iterations", type=int, default=3, help="timed iterations")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--repeats", type=int, default=2, help="runs of each trainer, alternated; the best is kept")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default, all cores)")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", choices=["ours", "trl"], help="run one trainer (the subprocess mode)")
    p.add_argument("--assets", help="(subprocess mode) the directory of models and prompts")
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)
    device = torch.device(
        "cuda" if a.device == "auto" and torch.cuda.is_available() else "cpu" if a.device == "auto" else a.device
    )
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.only:
        run = run_ours if a.only == "ours" else run_trl
        print("RESULT " + json.dumps(run(a, Path(a.assets), device)), flush=True)
        return None

    with tempfile.TemporaryDirectory() as tmp:
        build_assets(Path(tmp), a.size, a.prompt_len)
        results = {}
        try:
            import trl  # noqa: F401

            names = ("ours", "trl") if a.trl == "true" else ("ours",)
        except ImportError:  # e.g. an offline GPU machine without the benchmarks extra
            print("TRL is not installed (pip install 'textbandit[benchmarks]'); timing agents.ppo alone")
            names = ("ours",)
        # Alternate the trainers and keep each one's best run: other processes on a shared
        # machine slow whichever runs beside them; best-of-repeats compares the code, not the noise.
        for name in names * a.repeats:
            argv_child = [sys.executable, __file__, "--only", name, "--assets", tmp, "--device", str(device)] + [
                f"--{k.replace('_', '-')}={getattr(a, k)}"
                for k in (
                    "size",
                    "batch",
                    "minibatch",
                    "epochs",
                    "prompt_len",
                    "response_len",
                    "iterations",
                    "warmup",
                    "threads",
                    "lora_r",
                )
            ]
            out = subprocess.run(argv_child, capture_output=True, text=True, env=os.environ.copy())
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode or not lines:
                raise RuntimeError(f"{name} failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
            r = json.loads(lines[-1][len("RESULT ") :])
            if name not in results or r["samples_per_s"] > results[name]["samples_per_s"]:
                results[name] = r
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    # the best of several tries: a busy neighbour can only make a measurement slower
    sizes = (4096, 8192, 8192) if device.type == "cuda" else (1024, 2048, 2048)  # a GPU needs big ones to peak
    peak = max(matmul_peak(device, dtype, n) for n in sizes)
    for r in results.values():
        r["update_mfu"] = 6 * r["n_params"] * r["update_tokens"] / r["update_s"] / peak
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(
        f"machine: {name}; model {a.size} ({results['ours']['n_params'] / 1e6:.1f}M params"
        f"{f', agents.ppo with LoRA r={a.lora_r}' if a.lora_r else ''}); batch {a.batch}, "
        f"minibatch {a.minibatch}, epochs {a.epochs}, prompt {a.prompt_len}, response {a.response_len} tokens; "
        f"matmul peak {peak / 1e12:.3f} TFLOP/s ({dtype})"
    )
    print(f"{'':22}{'agents.ppo':>14}{'TRL RLOO':>14}{'ratio':>10}")
    for key, label in [
        ("samples_per_s", "samples/s"),
        ("tokens_per_s", "tokens/s"),
        ("update_mfu", "update MFU"),
        ("peak_mem_mb", "peak memory (MiB)"),
    ]:
        o, t = results["ours"][key], results.get("trl", {}).get(key, float("nan"))
        fmt = "{:>14.2%}" if key == "update_mfu" else "{:>14.1f}"
        print(f"{label:22}" + fmt.format(o) + fmt.format(t) + f"{o / t:>10.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "machine": name, "peak_flops": peak, **results}, indent=1))
    return results


if __name__ == "__main__":
    main()
