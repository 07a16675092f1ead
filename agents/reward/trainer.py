"""Reward-model training on ranked comparisons (InstructGPT stage 2).

The model is the SFT model with its unembedding replaced by a scalar head
(:class:`textbandit.reward_model.RewardModel`). With ``batching='kwise'`` (the paper) the
C(K,2) pairs of one prompt are one batch element: the K completions are forwarded once and the
loss is the mean of ``-log sigmoid(r_w - r_l)`` over the pairs. ``batching='pairs'`` shuffles
every pair as an independent data point (the paper's ablation, which overfits and costs
2 * C(K,2) / K times more forwards). After training, the head's bias is shifted so that the
demonstrations score 0 on average.

    >>> import json, tempfile
    >>> from agents.reward import RewardConfig, train_reward_model
    >>> from textbandit.reward_model import RewardModel
    >>> from textbandit.task import load_task
    >>> task, work = load_task("default"), tempfile.mkdtemp()
    >>> prompt = task.prompt_records("train")[0]["prompt"]
    >>> comparisons = [{"prompt": prompt, "responses": ["the cat is red .", "cat cat", "the"], "ranking": [0, 1, 2]}]
    >>> _ = open(f"{work}/c.jsonl", "w").write("".join(json.dumps(c) + "\\n" for c in comparisons * 4))
    >>> path = train_reward_model(RewardConfig(model=task.reference_model, train=f"{work}/c.jsonl", out=f"{work}/rm",
    ...                                        device="cpu", progress=False, tensorboard=False))
    >>> RewardModel.from_pretrained(path).config.model_type
    'gpt2'
"""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn.functional as F

from agents.common.checkpoint import seed_everything
from agents.common.device import adamw
from agents.common.dropout import with_dropout
from agents.common.fused import fuse_gelu_
from agents.common.training import Run, accumulate, check_model_fits, claim, load_tokenizer, optimizer_step
from agents.reward.config import RewardConfig
from agents.reward.data import encode_comparisons, evaluate, expand_to_pairs, mean_score, score_comparisons, score_pairs
from agents.reward.loss import kwise_ranking_loss
from textbandit.data import load_comparisons, load_demonstrations
from textbandit.formats import LazyTokenizer
from textbandit.layout import encode_prompt, encode_response
from textbandit.reward_model import RewardModel
from textbandit.runtime import resolve_device


def _load(config: RewardConfig, model) -> RewardModel:
    if model is None and config.model is None:
        raise ValueError("pass a model object or set config.model to the SFT model's directory")
    if not isinstance(model, RewardModel):
        model = RewardModel.from_causal_lm(model if model is not None else config.model)
    rm = model
    if config.dropout is not None:
        rm.trunk = with_dropout(rm.trunk, config.dropout)
    fuse_gelu_(rm.trunk)
    return rm


def _micro_loss(rm, items, config: RewardConfig, pad: int, device, group_size: int):
    """A micro-batch's summed loss divided by the optimizer step's size, and its (pairs, correct, rows)."""
    if config.batching == "kwise":
        losses, n_pairs, n_correct = kwise_ranking_loss(*score_comparisons(rm, items, pad, device))
        loss = losses.sum() / group_size
        stats = {
            "pairs": int(n_pairs.sum()),
            "correct": int(n_correct.sum()),
            "rows": sum(len(c.responses) for c in items),
        }
    else:
        chosen, rejected = score_pairs(rm, items, pad, device)
        loss = -F.logsigmoid(chosen - rejected).sum() / group_size
        stats = {"pairs": len(items), "correct": int((chosen > rejected).sum()), "rows": 2 * len(items)}
    return loss, {"loss": float(loss.detach()), **stats}


def train_reward_model(config: RewardConfig, model=None, tokenizer=None) -> str:
    """Train a reward model; returns ``config.out`` (the model, ``summary.json`` and logs).

    ``model`` may be a causal LM or a :class:`RewardModel` object (overrides ``config.model``).
    """
    with claim(config, "reward-model run"):
        return _train_reward_model(config, model, tokenizer)


def _train_reward_model(config: RewardConfig, model, tokenizer) -> str:
    device = resolve_device(config.device)
    out = Path(config.out)
    seed_everything(config.seed)  # the head's initialisation
    # bad data is named before any model is loaded (the tokenizer too, unless a chat template must render it)
    lazy = LazyTokenizer(lambda: load_tokenizer(config, tokenizer))
    records = load_comparisons(config.train, lazy)
    val_records = load_comparisons(config.val, lazy) if config.val else None
    demos = load_demonstrations(config.normalize_with, lazy) if config.normalize_with else None
    tokenizer = lazy.get()
    rm = _load(config, model)
    rm.to(device).train()
    pad = tokenizer.pad_token_id
    lengths = (config.max_prompt_len, config.max_response_len)
    comps = encode_comparisons(records, tokenizer, *lengths)
    if not comps:
        raise ValueError(f"{config.train} holds no comparison with a non-tied pair")
    val = encode_comparisons(val_records, tokenizer, *lengths) if val_records is not None else None
    check_model_fits(
        rm, tokenizer, [len(c.prompt) + len(r) for c in comps + (val or []) for r in c.responses], "reward model"
    )
    if config.batching == "kwise":
        items, micro = comps, config.batch_size
    else:
        items = expand_to_pairs(comps)
        micro = config.pair_batch_size or max(1, round(config.batch_size * len(items) / len(comps)))
    optimizer = adamw(rm.parameters(), device, lr=config.lr, weight_decay=config.weight_decay)

    def validate(tag: dict) -> dict:
        m = evaluate(rm, val, pad, device, config.eval_batch_size)
        run.logger.log(pos["step"], {"val/accuracy": m["accuracy"], "val/loss": m["loss"], **tag})
        return m

    pos = {"step": 0, "epoch": 0, "group": 0, "rows": 0, "history": []}
    with Run(config, rm, optimizer, pos, len(items), micro * config.grad_accum, f"reward ({config.batching})") as run:
        for epoch in run.epochs():
            for chosen in run.steps(items):
                lr = run.lr()
                optimizer.zero_grad(set_to_none=True)
                n = len(chosen)  # the step's size: each micro-batch's loss is its share of the mean
                stats = accumulate(
                    chosen,
                    micro,
                    lambda chunk, n=n: _micro_loss(rm, chunk, config, pad, device, n),
                    device,
                    config.bf16,
                )
                pos["rows"] += stats["rows"]
                norm = optimizer_step(rm.parameters(), optimizer, lr, config.max_grad_norm)
                run.log_step(
                    {
                        "train/loss": stats["loss"],
                        "train/accuracy": stats["correct"] / max(stats["pairs"], 1),
                        "train/lr": lr,
                        "train/grad_norm": norm,
                    },
                    loss=f"{stats['loss']:.3f}",
                )
                if val and config.eval_every and pos["step"] % config.eval_every == 0:
                    validate({})
                if run.checkpoint_if_due():
                    return str(out)
            if val:
                pos["history"].append({"epoch": epoch + 1, **validate({"epoch": epoch + 1})})
        offset = 0.0
        if demos is not None:
            offset = mean_score(
                rm,
                [encode_prompt(tokenizer, d["prompt"], config.max_prompt_len) for d in demos],
                [encode_response(tokenizer, d["response"], config.max_response_len) for d in demos],
                pad,
                device,
                config.eval_batch_size,
            )
            rm.normalize_(offset)
            run.logger.log(pos["step"], {"normalize/offset": offset})
    n_comparisons = len(comps) * config.epochs
    summary = {
        "batching": config.batching,
        "epochs": config.epochs,
        "steps": pos["step"],
        "comparisons": len(comps),
        # completions forwarded per comparison seen (K for 'kwise', 2 * C(K,2) for 'pairs'); a resumed run counts all
        "forwards_per_comparison": pos["rows"] / n_comparisons,
        "normalize_offset": offset,
        "val_history": pos["history"],
        **({"val": pos["history"][-1]} if pos["history"] else {}),
    }
    rm.eval().save_pretrained(out, tokenizer)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return str(out)
