"""Reward-model training on ranked comparisons (InstructGPT stage 2).

The model is the SFT model with its unembedding replaced by a scalar head
(:class:`textbandit.reward_model.RewardModel`). With ``batching='kwise'`` (the paper) the
C(K,2) pairs of one prompt are one batch element: the K completions are forwarded once and the
loss is the mean of ``-log sigmoid(r_w - r_l)`` over the pairs. ``batching='pairs'`` shuffles
every pair as an independent data point (the paper's ablation, which overfits and costs
2 * C(K,2) / K times more forwards). After training, the head's bias is shifted so that the
demonstrations score 0 on average.

    >>> from agents.reward import RewardConfig, train_reward_model
    >>> path = train_reward_model(RewardConfig(model="sft", train="c.jsonl", val="c_val.jsonl",
    ...                                        normalize_with="demos.jsonl", out="rm"))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from agents.common import (MetricLogger, learning_rate, load_checkpoint, rng_state, save_checkpoint_atomic,
                           fuse_gelu_, seed_everything, set_lr, set_rng_state, with_dropout)
from agents.common.rundir import claim_run_dir
from agents.common.device import adamw, autocast, resolve_device
from agents.common.text import check_model_fits, check_tokenizer, encode_prompt, encode_response
from agents.reward.config import RewardConfig
from agents.reward.data import encode_comparisons, evaluate, expand_to_pairs, mean_score, score_comparisons, score_pairs
from agents.reward.loss import kwise_ranking_loss
from textbandit.data import load_comparisons, load_demonstrations
from textbandit.loading import load
from textbandit.reward_model import RewardModel


def _load(config: RewardConfig, model, tokenizer) -> tuple[RewardModel, object]:
    from transformers import AutoTokenizer

    if model is None and config.model is None:
        raise ValueError("pass a model object or set config.model to the SFT model's directory")
    if tokenizer is None:
        if config.model is None:
            raise ValueError("pass a tokenizer object when the model is not given by path")
        tokenizer = load(AutoTokenizer.from_pretrained, config.model, "model", needs=None)
    check_tokenizer(tokenizer)
    if not isinstance(model, RewardModel):
        model = RewardModel.from_causal_lm(model if model is not None else config.model)
    rm = model
    if config.dropout is not None:
        rm.trunk = with_dropout(rm.trunk, config.dropout)
    fuse_gelu_(rm.trunk)
    return rm, tokenizer


def _micro_loss(rm, items, config: RewardConfig, pad: int, device, group_size: int):
    """Summed loss of a micro-batch divided by the optimizer step's size; also (pairs, correct, rows)."""
    if config.batching == "kwise":
        losses, n_pairs, n_correct = kwise_ranking_loss(*score_comparisons(rm, items, pad, device))
        return losses.sum() / group_size, int(n_pairs.sum()), int(n_correct.sum()), sum(len(c.responses) for c in items)
    chosen, rejected = score_pairs(rm, items, pad, device)
    loss = -F.logsigmoid(chosen - rejected).sum() / group_size
    return loss, len(items), int((chosen > rejected).sum()), 2 * len(items)


def train_reward_model(config: RewardConfig, model=None, tokenizer=None) -> str:
    """Train a reward model; returns ``config.out`` (the model, ``summary.json`` and logs).

    ``model`` may be a causal LM or a :class:`RewardModel` object (overrides ``config.model``).
    """
    with claim_run_dir(config.out, resume=config.resume_from is not None, overwrite=config.overwrite,
                       what="reward-model run", resume_flag="--resume-from OUT/checkpoint"):
        return _train_reward_model(config, model, tokenizer)


def _train_reward_model(config: RewardConfig, model, tokenizer) -> str:
    device = resolve_device(config.device)
    out = Path(config.out)
    seed_everything(config.seed)  # the head's initialisation
    records = load_comparisons(config.train)  # bad data is named before any model is loaded
    val_records = load_comparisons(config.val) if config.val else None
    demos = load_demonstrations(config.normalize_with) if config.normalize_with else None
    rm, tokenizer = _load(config, model, tokenizer)
    rm.to(device).train()
    pad = tokenizer.pad_token_id
    lengths = (config.max_prompt_len, config.max_response_len)
    comps = encode_comparisons(records, tokenizer, *lengths)
    if not comps:
        raise ValueError(f"{config.train} holds no comparison with a non-tied pair")
    val = encode_comparisons(val_records, tokenizer, *lengths) if val_records is not None else None
    check_model_fits(rm, tokenizer, [len(c.prompt) + len(r) for c in comps + (val or []) for r in c.responses],
                     "reward model")
    if config.batching == "kwise":
        items, micro = comps, config.batch_size
    else:
        items = expand_to_pairs(comps)
        micro = config.pair_batch_size or max(1, round(config.batch_size * len(items) / len(comps)))
    group = micro * config.grad_accum
    steps_per_epoch = math.ceil(len(items) / group)
    total = steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total)
    optimizer = adamw(rm.parameters(), device, lr=config.lr, weight_decay=config.weight_decay)
    pos = {"step": 0, "epoch": 0, "group": 0, "rows": 0, "history": []}
    if config.resume_from is not None:
        ckpt = load_checkpoint(config.resume_from)
        rm.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        pos = ckpt["position"]
        set_rng_state(ckpt["rng"])

    def checkpoint():
        state = {"model": rm.state_dict(), "optimizer": optimizer.state_dict(), "position": copy.deepcopy(pos),
                 "rng": rng_state(), "log_rows": logger.rows, "config": config.to_dict()}
        save_checkpoint_atomic(state, out / "checkpoint" / "state.pt")

    def validate(tag: dict) -> dict:
        m = evaluate(rm, val, pad, device, config.eval_batch_size)
        logger.log(pos["step"], {"val/accuracy": m["accuracy"], "val/loss": m["loss"], **tag})
        return m

    resumed = config.resume_from is not None  # the steps after the checkpoint are logged again, once
    logger = MetricLogger(out, tensorboard=config.tensorboard, resume_step=pos["step"] if resumed else None,
                          resume_rows=ckpt["log_rows"] if resumed else None)
    bar = tqdm(total=total, initial=pos["step"], desc=f"reward ({config.batching})", disable=not config.progress)
    try:
        while pos["epoch"] < config.epochs:
            epoch = pos["epoch"]
            order = torch.randperm(len(items), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
            groups = [order[i: i + group].tolist() for i in range(0, len(items), group)]
            while pos["group"] < len(groups):
                chosen_items = [items[i] for i in groups[pos["group"]]]
                lr = learning_rate(pos["step"], total, config.lr, warmup, "cosine", config.min_lr_ratio)
                set_lr(optimizer, lr)
                optimizer.zero_grad(set_to_none=True)
                loss_sum, pairs, correct = 0.0, 0, 0
                for j in range(0, len(chosen_items), micro):
                    with autocast(device, config.bf16):
                        loss, n_pairs, n_correct, rows = _micro_loss(rm, chosen_items[j: j + micro], config, pad,
                                                                     device, len(chosen_items))
                    loss.backward()
                    loss_sum, pairs, correct = loss_sum + float(loss.detach()), pairs + n_pairs, correct + n_correct
                    pos["rows"] += rows
                norm = torch.nn.utils.clip_grad_norm_(rm.parameters(), config.max_grad_norm or float("inf"))
                optimizer.step()
                pos["step"] += 1
                pos["group"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum:.3f}")
                logger.log(pos["step"], {"train/loss": loss_sum, "train/accuracy": correct / max(pairs, 1),
                                         "train/lr": lr, "train/grad_norm": float(norm)})
                if val and config.eval_every and pos["step"] % config.eval_every == 0:
                    validate({})
                if config.checkpoint_every and pos["step"] % config.checkpoint_every == 0:
                    checkpoint()
                if config.stop_after is not None and pos["step"] >= config.stop_after:
                    checkpoint()
                    return str(out)
            if val:
                pos["history"].append({"epoch": epoch + 1, **validate({"epoch": epoch + 1})})
            pos["epoch"], pos["group"] = epoch + 1, 0
            checkpoint()
        offset = 0.0
        if demos is not None:
            offset = mean_score(rm, [encode_prompt(tokenizer, d["prompt"], config.max_prompt_len) for d in demos],
                                [encode_response(tokenizer, d["response"], config.max_response_len) for d in demos],
                                pad, device, config.eval_batch_size)
            rm.normalize_(offset)
            logger.log(pos["step"], {"normalize/offset": offset})
    finally:
        bar.close()
        logger.close()
    n_comparisons = len(comps) * config.epochs
    summary = {
        "batching": config.batching, "epochs": config.epochs, "steps": pos["step"], "comparisons": len(comps),
        # completions forwarded per comparison seen (K for 'kwise', 2 * C(K,2) for 'pairs'); a resumed run counts all
        "forwards_per_comparison": pos["rows"] / n_comparisons,
        "normalize_offset": offset, "val_history": pos["history"],
        **({"val": pos["history"][-1]} if pos["history"] else {}),
    }
    rm.eval().save_pretrained(out, tokenizer)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return str(out)
