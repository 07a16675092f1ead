"""Pretrain a GPT-2-style base model on the default task's corpus.

    python -m agents.pretrain --size small --out runs/base-small [--task DIR] [--steps N]
    python -m agents.pretrain --size all --out runs/default --seed 0   # every artifact

``--size all`` is the one seeded command that rebuilds everything: the task's files
(``OUT/task``, corpus included, via :func:`textbandit.task.build.build`) and both base
models (``OUT/base-small``, ``OUT/base-large``) pretrained on that corpus.

The model is a plain ``GPT2LMHeadModel`` built from a local ``GPT2Config`` (nothing is
downloaded), trained with AdamW and a cosine learning-rate schedule on the corpus texts
joined by EOS and cut into blocks of ``n_positions`` tokens, like GPT-2's pretraining. It
sees only corpus text, never an instruction, so it knows the language and not the task (as
GPT-3 before InstructGPT). Saved with ``save_pretrained`` next to the task's tokenizer, so
``AutoModelForCausalLM.from_pretrained(out)`` and ``AutoTokenizer.from_pretrained(out)`` work.

On a CPU that multiplies bf16 in hardware (Intel AMX) the steps run under bf16 autocast, as on a
GPU, with float32 weights (``--cpu-bf16``): the large model's 300 steps take 101 s instead of 202 s
on one core, to the same validation perplexity (14.61); elsewhere they run in float32.

Sizes (vocab 727, 64 positions): ``small`` 0.89M parameters, ``large`` 10.95M (12x). Their
pretraining times on 2 CPU cores are in benchmarks/README.md.

Under ``torchrun`` it is data-parallel (DDP, or FSDP2 with ``--fsdp true``): every rank draws the
same global batch of blocks and trains on its share of the rows; rank 0 writes the model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from agents.common import distributed
from agents.common.device import adamw, autocast, cpu_multiplies_bf16
from agents.common.fused import fuse_gelu_
from agents.common.scale import ScaleConfig, enable_gradient_checkpointing
from agents.common.schedule import learning_rate, set_lr

SIZES = {"small": dict(n_embd=128, n_layer=4, n_head=4), "large": dict(n_embd=384, n_layer=6, n_head=6)}


@dataclass
class PretrainArgs(ScaleConfig):
    """Pretraining a base model (the memory and torchrun fields are :class:`agents.common.scale.ScaleConfig`'s)."""

    size: str = "small"
    """model size: small (about 1M parameters), large (about 11M), or all (task + both)"""
    out: str = "runs/base-small"
    """output directory (model + tokenizer)"""
    task: str | None = None
    """task directory (default: the shipped textbandit/assets/default)"""
    steps: int = 0
    """optimizer steps; 0 picks the size's default (small 600, large 400)"""
    batch_size: int = 0
    """blocks of n_positions tokens per step over all ranks; 0 picks the size's default (small 32, large 16)"""
    lr: float = 0.0
    """peak learning rate; 0 picks the size's default (small 3e-3, large 1.5e-3)"""
    warmup: int = 50
    """linear warm-up steps before the cosine decay"""
    n_positions: int = 64
    """context length (prompts of <= 28 tokens + responses of <= 32)"""
    seed: int = 0
    """seed of initialisation and batch order"""
    threads: int = 0
    """torch threads (0: torch's default)"""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu' or 'cuda' (bf16 autocast there)"""
    cpu_bf16: bool | None = None
    """bf16 autocast on a CPU too (the weights stay float32): None turns it on where the CPU
    multiplies bf16 in hardware (Intel AMX), where the large model's steps take half the time and
    reach the same validation perplexity (benchmarks/README.md, "Ninth pass"); false: float32"""
    progress: bool = True
    """show a tqdm progress bar"""

    def __post_init__(self):
        super().__post_init__()
        if self.size not in SIZES and self.size != "all":
            raise ValueError(f"size={self.size!r}: use one of {sorted(SIZES)} or 'all'")
        if self.size == "all":
            return
        if self.steps < 0 or self.batch_size < 0 or self.lr < 0:
            raise ValueError("steps, batch_size and lr must be >= 0 (0: the size's default)")
        self.steps = self.steps or {"small": 600, "large": 400}[self.size]
        self.batch_size = self.batch_size or {"small": 32, "large": 16}[self.size]
        self.lr = self.lr or {"small": 3e-3, "large": 1.5e-3}[self.size]


def pretrain(args: PretrainArgs) -> dict:
    from tqdm import tqdm
    from transformers import GPT2Config, GPT2LMHeadModel

    from agents.common.lm import blocks, perplexity
    from textbandit.task import load_task

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    task = load_task(args.task or "default")
    tok = task.load_tokenizer()
    corpus = task.corpus()
    train, val = (blocks(corpus[s], tok, args.n_positions) for s in ("train", "validation"))
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=args.n_positions,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **SIZES[args.size],
    )
    d = distributed.setup(args.device, args.dist_timeout_s)
    device = d.device
    model = fuse_gelu_(GPT2LMHeadModel(cfg)).to(device)
    if args.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    n_params = sum(p.numel() for p in model.parameters())
    trained = distributed.wrap(model, d, fsdp=args.fsdp)  # what a step's forward goes through
    opt = adamw(trained.parameters(), device, lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(args.seed)
    cpu_bf16 = device.type == "cpu" and (cpu_multiplies_bf16() if args.cpu_bf16 is None else args.cpu_bf16)
    t0 = time.time()
    model.train()
    desc = f"pretrain {args.size} ({n_params / 1e6:.2f}M)"
    bar = tqdm(range(args.steps), desc=desc, disable=not (args.progress and d.is_main))
    for step in bar:
        rows = torch.randint(len(train), (args.batch_size,), generator=g)  # the global batch, on every rank
        mine = distributed.share(rows, d.rank, d.world_size)
        x = train[mine if len(mine) else rows[:1]].to(device)
        with autocast(device, bf16=True, cpu=cpu_bf16):
            loss = trained(input_ids=x, labels=x).loss
        # every block has n_positions tokens: this rank's share of the global mean (DDP divides by the ranks)
        weight = len(mine) * d.world_size / args.batch_size
        opt.zero_grad(set_to_none=True)
        (loss * weight).backward()
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        set_lr(opt, learning_rate(step, args.steps, args.lr, args.warmup, "cosine"))
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.time() - t0
    ppl = perplexity(distributed.unwrap(trained), val[:256].to(device))
    weights = distributed.full_state_dict(trained) if distributed.is_sharded(trained) else None
    out = Path(args.out)
    if d.is_main:
        (model.cpu() if weights is None else distributed.plain_copy(model, weights)).save_pretrained(str(out))
        tok.save_pretrained(str(out))
    summary = {
        "size": args.size,
        "parameters": n_params,
        "validation_perplexity": ppl,
        "train_seconds": seconds,
        "precision": "bf16 autocast" if cpu_bf16 or device.type == "cuda" else "float32",
        "args": asdict(args),
    }
    if d.is_main:
        (out / "pretrain_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    distributed.barrier()  # every rank returns once the model is written
    return summary


def rebuild_all(args: PretrainArgs) -> dict:
    """Build the task into ``OUT/task`` and pretrain both sizes on it (seeded)."""
    from textbandit.task import TaskConfig
    from textbandit.task.build import build

    out = Path(args.out)
    build(out / "task", TaskConfig(seed=args.seed))
    return {
        size: pretrain(
            PretrainArgs(
                size=size,
                out=str(out / f"base-{size}"),
                task=str(out / "task"),
                seed=args.seed,
                threads=args.threads,
                device=args.device,
            )
        )
        for size in ("small", "large")
    }


def main(argv=None) -> None:
    from agents.common.cli import parse_config

    args = parse_config(PretrainArgs, argv, description=__doc__.split("\n\n")[0], prog="textbandit pretrain")
    if args.size == "all":
        for summary in rebuild_all(args).values():
            print(json.dumps({k: v for k, v in summary.items() if k != "args"}))
        return
    summary = pretrain(args)
    print(json.dumps({k: v for k, v in summary.items() if k != "args"}))


if __name__ == "__main__":
    main()
