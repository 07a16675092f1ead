"""Supervised fine-tuning of a Hugging Face causal LM on demonstrations (InstructGPT stage 1).

The loss is the mean negative log-likelihood of the response tokens (EOS included): prompt and
pad tokens never count. AdamW with linear warmup and cosine decay, gradient clipping and
accumulation, residual dropout (off in evaluation), validation loss each epoch, optional choice
of the epoch whose samples the reward model likes best, and exact stop-and-resume. Under
``torchrun`` it is data-parallel (DDP, or FSDP2 with ``fsdp``; see :mod:`agents.common.training`);
with ``lora_r > 0`` only LoRA adapters train (:mod:`agents.common.lora`) and the output folder
holds the merged model, its adapter in ``OUT/adapter``.

    >>> import json, os, tempfile
    >>> from agents.sft import SFTConfig, train_sft
    >>> from textbandit.task import load_task
    >>> task, work = load_task("default"), tempfile.mkdtemp()
    >>> demos = f"{work}/demos.jsonl"
    >>> _ = open(demos, "w").write("".join(json.dumps(d) + "\\n" for d in task.demonstrations("train")[:8]))
    >>> path = train_sft(SFTConfig(model=task.reference_model, train=demos, out=f"{work}/sft", epochs=1,
    ...                            batch_size=4, device="cpu", progress=False, tensorboard=False))
    >>> {"config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"} <= set(os.listdir(path))
    True
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch

from agents.common import distributed
from agents.common.checkpoint import seed_everything
from agents.common.device import adamw, autocast
from agents.common.distributed import Dist
from agents.common.dropout import with_dropout
from agents.common.fused import fuse_gelu_
from agents.common.lora import add_adapters, save_merged
from agents.common.scale import enable_gradient_checkpointing, frozen_dtype
from agents.common.training import Run, accumulate, check_model_fits, claim, load_tokenizer, optimizer_step
from agents.sampling import sample
from agents.sft.config import SFTConfig
from textbandit.data import load_demonstrations
from textbandit.formats import LazyTokenizer
from textbandit.layout import collate, encode_prompt, encode_response, left_pad
from textbandit.loading import load
from textbandit.runtime import eval_mode
from textbandit.scoring import gather_logprobs, response_logits


def encode_demonstrations(records: list[dict], tokenizer, config: SFTConfig) -> list[tuple[list[int], list[int]]]:
    """``(prompt_ids, response_ids + [EOS])`` of each demonstration."""
    return [
        (
            encode_prompt(tokenizer, r["prompt"], config.max_prompt_len),
            encode_response(tokenizer, r["response"], config.max_response_len),
        )
        for r in records
    ]


def sft_loss_sum(model, examples, pad_token_id: int, device) -> tuple[torch.Tensor, int]:
    """Summed NLL of the response tokens of ``examples`` and their count (prompt and pad excluded)."""
    batch = collate([p for p, _ in examples], [r for _, r in examples], pad_token_id, device)
    logits = response_logits(model, batch.input_ids, batch.attention_mask, batch.position_ids, batch.prompt_len)
    logp = gather_logprobs(logits, batch.response_ids) * batch.response_mask
    return -logp.sum(), int(batch.response_mask.sum())


@torch.no_grad()
def validation_loss(
    model, data, pad_token_id: int, batch_size: int, device, bf16: bool, d: Dist | None = None
) -> float:
    """Token-weighted mean response NLL over ``data`` in eval mode (dropout off); each rank of ``d``
    scores its share of ``data`` and the sums are added up."""
    rank, world = (d.rank, d.world_size) if d is not None else (0, 1)
    total, count = 0.0, 0
    with eval_mode(model):
        for batch, real in distributed.share_batches(data, batch_size, rank, world):
            with autocast(device, bf16):
                s, n = sft_loss_sum(model, batch, pad_token_id, device)
            if real:
                total, count = total + float(s), count + n
    if world > 1:
        sums = distributed.all_reduce_sums({"total": total, "count": count})
        total, count = sums["total"], int(sums["count"])
    return total / max(count, 1)


@torch.no_grad()
def mean_rm_score(
    model,
    tokenizer,
    reward_model,
    prompts: list[list[int]],
    max_new_tokens: int,
    seed: int,
    device,
    batch_size: int = 32,
) -> float:
    """Mean reward-model score of one sample (temperature 1) per prompt, with a fixed generator."""
    gen = torch.Generator(device=device).manual_seed(seed)
    scores = []
    with eval_mode(model):
        for i in range(0, len(prompts), batch_size):
            ids, mask = left_pad(prompts[i : i + batch_size], tokenizer.pad_token_id, device=device)
            resp = sample(
                model, ids, mask, max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, generator=gen
            )
            resp_lists = [[t for t in row if t != tokenizer.pad_token_id] for row in resp.tolist()]
            resp_lists = [r if r else [tokenizer.eos_token_id] for r in resp_lists]
            batch = collate(prompts[i : i + batch_size], resp_lists, tokenizer.pad_token_id, device)
            scores.append(reward_model.score(batch.input_ids, batch.attention_mask, batch.position_ids).float())
    return float(torch.cat(scores).mean())


def _load(config: SFTConfig, model):  # the model to train: dropout set, LoRA adapters added
    from transformers import AutoModelForCausalLM

    if model is None:
        if config.model is None:
            raise ValueError("pass a model object or set config.model to a local model directory")
        model = load(AutoModelForCausalLM.from_pretrained, config.model, "model")
    if config.dropout is not None:
        model = with_dropout(model, config.dropout)
    model = fuse_gelu_(model)
    if config.lora:
        model = add_adapters(model, config)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


def train_sft(config: SFTConfig, model=None, tokenizer=None) -> str:
    """Fine-tune on ``config.train``; returns ``config.out``, where the model is saved in HF format.

    ``model``/``tokenizer`` objects override ``config.model``. With ``config.stop_after`` the run
    ends early with only a checkpoint in ``OUT/checkpoint``; ``resume_from`` continues it. Under
    ``torchrun`` every rank calls it alike; rank 0 writes.
    """
    d = distributed.setup(config.device, config.dist_timeout_s)
    with claim(config, "SFT run", d):
        return _train_sft(config, model, tokenizer, d)


def _train_sft(config: SFTConfig, model, tokenizer, d: Dist) -> str:
    device = d.device
    out = Path(config.out)
    seed_everything(config.seed)
    # bad data is named before any model is loaded (the tokenizer too, unless a chat template must render it)
    lazy = LazyTokenizer(lambda: load_tokenizer(config, tokenizer))
    records = load_demonstrations(config.train, lazy)
    val_records = load_demonstrations(config.val, lazy) if config.val else None
    tokenizer = lazy.get()
    if not records:
        raise ValueError(f"{config.train} holds no demonstrations")
    model = _load(config, model)
    model.to(device).train()
    pad = tokenizer.pad_token_id
    train = encode_demonstrations(records, tokenizer, config)
    val = encode_demonstrations(val_records, tokenizer, config) if val_records is not None else None
    check_model_fits(model, tokenizer, [len(p) + len(r) for p, r in train + (val or [])])
    trained = distributed.wrap(model, d, fsdp=config.fsdp)  # what a step's forward goes through

    decay, no_decay = [], []
    for p in trained.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    optimizer = adamw(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        device,
        lr=config.lr,
    )
    reward_model = None
    if config.select_by_rm is not None:
        from textbandit.reward_model import RewardModel

        dtype = frozen_dtype(device, config.bf16)
        reward_model = RewardModel.from_pretrained(config.select_by_rm, torch_dtype=dtype).to(device).eval()
        sel_prompts = [p for p, _ in val][: config.select_prompts]

    def loss(examples, n_tokens):  # the step's mean NLL per response token (all ranks'), over its micro-batches
        s, _ = sft_loss_sum(trained, examples, pad, device)
        return s / n_tokens, {"nll": float(s.detach())}

    pos = {"step": 0, "epoch": 0, "group": 0, "best_score": -math.inf, "best_epoch": None}
    group = config.batch_size * config.grad_accum  # demonstrations per optimizer step
    with Run(config, trained, optimizer, pos, len(train), group, "sft", d) as run:
        for epoch in run.epochs():
            for examples in run.steps(train):
                lr = run.lr()
                n_tokens = sum(len(r) for _, r in examples)
                optimizer.zero_grad(set_to_none=True)
                stats = accumulate(
                    examples,
                    config.batch_size,
                    lambda chunk, n=n_tokens: loss(chunk, n),
                    device,
                    config.bf16,
                    trained,
                    d,
                )
                norm = optimizer_step(trained.parameters(), optimizer, lr, config.max_grad_norm)
                run.log_step(
                    {
                        "train/loss": stats["nll"] / n_tokens,
                        "train/lr": lr,
                        "train/grad_norm": norm,
                        "train/epoch": epoch,
                    },
                    epoch=epoch,
                    loss=f"{stats['nll'] / n_tokens:.3f}",
                )
                if run.checkpoint_if_due():
                    return str(out)
            metrics = {}
            if val:
                metrics["val/loss"] = validation_loss(trained, val, pad, config.batch_size, device, config.bf16, d)
            if reward_model is not None:  # every rank samples alike (a sharded model forwards together)
                score = mean_rm_score(
                    distributed.unwrap(trained),
                    tokenizer,
                    reward_model,
                    sel_prompts,
                    config.select_max_new_tokens,
                    config.seed,
                    device,
                )
                metrics["val/rm_score"] = score
                if score > pos["best_score"]:
                    pos["best_score"], pos["best_epoch"] = score, epoch
                    save_model(trained, out / "best", None, d)
            run.logger.log(pos["step"], {**metrics, "epoch": epoch + 1})
    if reward_model is not None:  # the chosen epoch's model becomes the output
        if d.is_main:
            for f in (out / "best").iterdir():
                shutil.move(str(f), str(out / f.name))
            shutil.rmtree(out / "best")
        if d.is_main:
            tokenizer.save_pretrained(str(out))
    else:
        save_model(trained, out, tokenizer, d)
    distributed.barrier()  # every rank returns once the model is written
    return str(out)


def save_model(model, directory: Path, tokenizer, d: Dist) -> None:
    """Rank 0 writes the causal LM in Hugging Face format (merged, with its adapter in
    ``directory/adapter``, under LoRA); every rank helps gather the weights under FSDP2."""
    weights = distributed.full_state_dict(model) if distributed.is_sharded(model) else None
    if not d.is_main:
        return
    inner = distributed.unwrap(model)
    save_merged(inner if weights is None else distributed.plain_copy(inner, weights), directory, tokenizer)
