"""Supervised fine-tuning of a Hugging Face causal LM on demonstrations (InstructGPT stage 1).

The loss is the mean negative log-likelihood of the response tokens (EOS included): prompt and
pad tokens never count. AdamW with linear warmup and cosine decay, gradient clipping and
accumulation, residual dropout (off in evaluation), validation loss each epoch, optional choice
of the epoch whose samples the reward model likes best, and exact stop-and-resume.

    >>> from agents.sft import SFTConfig, train_sft
    >>> path = train_sft(SFTConfig(model="base", train="demos.jsonl", val="val.jsonl", out="sft"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch
from tqdm.auto import tqdm

from agents.common import (MetricLogger, learning_rate, load_checkpoint, rng_state, save_checkpoint_atomic,
                           fuse_gelu_, seed_everything, set_lr, set_rng_state, with_dropout)
from agents.common.rundir import claim_run_dir
from agents.common.device import adamw, autocast, resolve_device
from agents.common.text import check_model_fits, check_tokenizer, collate, encode_prompt, encode_response, left_pad
from agents.sampling import sample
from agents.sft.config import SFTConfig
from textbandit.data import load_demonstrations
from textbandit.loading import load
from textbandit.scoring import gather_logprobs, response_logits


def encode_demonstrations(records: list[dict], tokenizer, config: SFTConfig) -> list[tuple[list[int], list[int]]]:
    """``(prompt_ids, response_ids + [EOS])`` of each demonstration."""
    return [(encode_prompt(tokenizer, r["prompt"], config.max_prompt_len),
             encode_response(tokenizer, r["response"], config.max_response_len)) for r in records]


def sft_loss_sum(model, examples, pad_token_id: int, device) -> tuple[torch.Tensor, int]:
    """Summed NLL of the response tokens of ``examples`` and their count (prompt and pad excluded)."""
    batch = collate([p for p, _ in examples], [r for _, r in examples], pad_token_id, device)
    logits = response_logits(model, batch.input_ids, batch.attention_mask, batch.position_ids, batch.prompt_len)
    logp = gather_logprobs(logits, batch.response_ids) * batch.response_mask
    return -logp.sum(), int(batch.response_mask.sum())


@torch.no_grad()
def validation_loss(model, data, pad_token_id: int, batch_size: int, device, bf16: bool) -> float:
    """Token-weighted mean response NLL over ``data`` in eval mode (dropout off)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        with autocast(device, bf16):
            s, n = sft_loss_sum(model, data[i: i + batch_size], pad_token_id, device)
        total, count = total + float(s), count + n
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def mean_rm_score(model, tokenizer, reward_model, prompts: list[list[int]], max_new_tokens: int, seed: int,
                  device, batch_size: int = 32) -> float:
    """Mean reward-model score of one sample (temperature 1) per prompt, with a fixed generator."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    scores = []
    for i in range(0, len(prompts), batch_size):
        ids, mask = left_pad(prompts[i: i + batch_size], tokenizer.pad_token_id, device)
        resp = sample(model, ids, mask, max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, generator=gen)
        resp_lists = [[t for t in row if t != tokenizer.pad_token_id] for row in resp.tolist()]
        resp_lists = [r if r else [tokenizer.eos_token_id] for r in resp_lists]
        batch = collate(prompts[i: i + batch_size], resp_lists, tokenizer.pad_token_id, device)
        scores.append(reward_model.score(batch.input_ids, batch.attention_mask, batch.position_ids).float())
    model.train(was_training)
    return float(torch.cat(scores).mean())


def _load(config: SFTConfig, model, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model is None:
        if config.model is None:
            raise ValueError("pass a model object or set config.model to a local model directory")
        model = load(AutoModelForCausalLM.from_pretrained, config.model, "model")
    if tokenizer is None:
        if config.model is None:
            raise ValueError("pass a tokenizer object when the model is not given by path")
        tokenizer = load(AutoTokenizer.from_pretrained, config.model, "model", needs=None)
    check_tokenizer(tokenizer)
    if config.dropout is not None:
        model = with_dropout(model, config.dropout)
    return fuse_gelu_(model), tokenizer


def train_sft(config: SFTConfig, model=None, tokenizer=None) -> str:
    """Fine-tune on ``config.train``; returns ``config.out``, where the model is saved in HF format.

    ``model``/``tokenizer`` objects override ``config.model``. With ``config.stop_after`` the run
    ends early with only a checkpoint in ``OUT/checkpoint``; ``resume_from`` continues it.
    """
    with claim_run_dir(config.out, resume=config.resume_from is not None, overwrite=config.overwrite,
                       what="SFT run", resume_flag="--resume-from OUT/checkpoint"):
        return _train_sft(config, model, tokenizer)


def _train_sft(config: SFTConfig, model, tokenizer) -> str:
    device = resolve_device(config.device)
    out = Path(config.out)
    seed_everything(config.seed)
    records = load_demonstrations(config.train)  # bad data is named before any model is loaded
    val_records = load_demonstrations(config.val) if config.val else None
    if not records:
        raise ValueError(f"{config.train} holds no demonstrations")
    model, tokenizer = _load(config, model, tokenizer)
    model.to(device).train()
    pad = tokenizer.pad_token_id
    train = encode_demonstrations(records, tokenizer, config)
    val = encode_demonstrations(val_records, tokenizer, config) if val_records is not None else None
    check_model_fits(model, tokenizer, [len(p) + len(r) for p, r in train + (val or [])])

    group = config.batch_size * config.grad_accum  # demonstrations per optimizer step
    steps_per_epoch = math.ceil(len(train) / group)
    total = steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    optimizer = adamw([{"params": decay, "weight_decay": config.weight_decay},
                       {"params": no_decay, "weight_decay": 0.0}], device, lr=config.lr)
    reward_model = None
    if config.select_by_rm is not None:
        from textbandit.reward_model import RewardModel

        reward_model = RewardModel.from_pretrained(config.select_by_rm).to(device).eval()
        sel_prompts = [p for p, _ in val][: config.select_prompts]
    pos = {"step": 0, "epoch": 0, "group": 0, "best_score": -math.inf, "best_epoch": None}
    if config.resume_from is not None:
        ckpt = load_checkpoint(config.resume_from)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        pos = ckpt["position"]
        set_rng_state(ckpt["rng"])

    def checkpoint():
        save_checkpoint_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "position": dict(pos),
                                "rng": rng_state(), "log_rows": logger.rows, "config": config.to_dict()},
                               out / "checkpoint" / "state.pt")

    resumed = config.resume_from is not None  # the steps after the checkpoint are logged again, once
    logger = MetricLogger(out, tensorboard=config.tensorboard, resume_step=pos["step"] if resumed else None,
                          resume_rows=ckpt["log_rows"] if resumed else None)
    bar = tqdm(total=total, initial=pos["step"], desc="sft", disable=not config.progress)
    try:
        while pos["epoch"] < config.epochs:
            epoch = pos["epoch"]
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
            groups = [order[i: i + group].tolist() for i in range(0, len(train), group)]
            while pos["group"] < len(groups):
                examples = [train[i] for i in groups[pos["group"]]]
                lr = learning_rate(pos["step"], total, config.lr, warmup, "cosine", config.min_lr_ratio)
                set_lr(optimizer, lr)
                n_tokens = sum(len(r) for _, r in examples)
                loss_total = 0.0
                optimizer.zero_grad(set_to_none=True)
                for j in range(0, len(examples), config.batch_size):
                    with autocast(device, config.bf16):
                        s, _ = sft_loss_sum(model, examples[j: j + config.batch_size], pad, device)
                    (s / n_tokens).backward()
                    loss_total += float(s.detach())
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm or float("inf"))
                optimizer.step()
                pos["step"] += 1
                pos["group"] += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss_total / n_tokens:.3f}")
                logger.log(pos["step"], {"train/loss": loss_total / n_tokens, "train/lr": lr,
                                         "train/grad_norm": float(norm), "train/epoch": epoch})
                if config.checkpoint_every and pos["step"] % config.checkpoint_every == 0:
                    checkpoint()
                if config.stop_after is not None and pos["step"] >= config.stop_after:
                    checkpoint()
                    return str(out)
            metrics = {}
            if val:
                metrics["val/loss"] = validation_loss(model, val, pad, config.batch_size, device, config.bf16)
            if reward_model is not None:
                score = mean_rm_score(model, tokenizer, reward_model, sel_prompts, config.select_max_new_tokens,
                                      config.seed, device)
                metrics["val/rm_score"] = score
                if score > pos["best_score"]:
                    pos["best_score"], pos["best_epoch"] = score, epoch
                    model.save_pretrained(str(out / "best"))
            logger.log(pos["step"], {**metrics, "epoch": epoch + 1})
            pos["epoch"], pos["group"] = epoch + 1, 0
            checkpoint()
    finally:
        bar.close()
        logger.close()
    if reward_model is not None:  # the chosen epoch's weights become the output
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(out / "best"))
        shutil.rmtree(out / "best")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return str(out)
