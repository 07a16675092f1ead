"""Reward-model training on ranked comparisons (InstructGPT stage 2).

The model is the SFT model with its unembedding replaced by a scalar head
(:class:`textbandit.reward_model.RewardModel`). With ``batching='kwise'`` (the paper) the
C(K,2) pairs of one prompt are one batch element: the K completions are forwarded once and the
loss is the mean of ``-log sigmoid(r_w - r_l)`` over the pairs. ``batching='pairs'`` shuffles
every pair as an independent data point (the paper's ablation, which overfits and costs
2 * C(K,2) / K times more forwards). After training, the head's bias is shifted so that the
demonstrations score 0 on average. Under ``torchrun`` it is data-parallel (DDP, or FSDP2 with
``fsdp``; see :mod:`agents.common.training`); with ``lora_r > 0`` only LoRA adapters on the trunk
and the scalar head train, and the output folder holds the merged reward model (its adapter and
head in ``OUT/adapter``).

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

import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from agents.common import distributed
from agents.common.checkpoint import seed_everything
from agents.common.device import adamw
from agents.common.distributed import Dist
from agents.common.dropout import with_dropout
from agents.common.fused import fuse_gelu_
from agents.common.lora import ADAPTER_DIR, add_adapters, is_peft, merged
from agents.common.scale import enable_gradient_checkpointing
from agents.common.training import Run, accumulate, check_model_fits, claim, load_tokenizer, optimizer_step
from agents.reward.config import RewardConfig
from agents.reward.data import (
    ScoreForward,
    encode_comparisons,
    evaluate,
    expand_to_pairs,
    mean_score,
    score_comparisons,
    score_pairs,
)
from agents.reward.loss import kwise_ranking_loss, ranked_pairs
from textbandit.data import load_comparisons, load_demonstrations
from textbandit.formats import LazyTokenizer
from textbandit.layout import encode_prompt, encode_response
from textbandit.reward_model import RewardModel


def _load(config: RewardConfig, model) -> RewardModel:
    if model is None and config.model is None:
        raise ValueError("pass a model object or set config.model to the SFT model's directory")
    if not isinstance(model, RewardModel):
        model = RewardModel.from_causal_lm(model if model is not None else config.model)
    rm = model
    if config.dropout is not None:
        rm.trunk = with_dropout(rm.trunk, config.dropout)
    fuse_gelu_(rm.trunk)
    if config.lora:  # adapters on the trunk; the scalar head trains in full
        rm.trunk = add_adapters(rm.trunk, config, task_type=None)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(rm.trunk)
    return rm


def _step_size(chosen: list, config: RewardConfig) -> int:
    """What a step's summed loss is divided by: its comparisons, or its pairs (``kwise_weighting='pair'``)."""
    if config.batching == "kwise" and config.kwise_weighting == "pair":
        return sum(len(ranked_pairs(c.ranking)) for c in chosen)
    return len(chosen)


def _micro_loss(rm, items, config: RewardConfig, pad: int, device, group_size: int):
    """A micro-batch's summed loss divided by the optimizer step's size, and its (pairs, correct, rows)."""
    if config.batching == "kwise":
        losses, n_pairs, n_correct = kwise_ranking_loss(*score_comparisons(rm, items, pad, device))
        if config.kwise_weighting == "pair":  # a comparison's mean times its pairs: its pairs' summed loss
            losses = losses * n_pairs
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
    Under ``torchrun`` every rank calls it alike; rank 0 writes.
    """
    d = distributed.setup(config.device, config.dist_timeout_s)
    with claim(config, "reward-model run", d):
        return _train_reward_model(config, model, tokenizer, d)


def _train_reward_model(config: RewardConfig, model, tokenizer, d: Dist) -> str:
    device = d.device
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
    scorer = distributed.wrap(ScoreForward(rm), d, fsdp=config.fsdp)  # what a step's forward goes through
    trainable = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = adamw(trainable, device, lr=config.lr, weight_decay=config.weight_decay)

    def validate(tag: dict) -> dict:
        m = evaluate(scorer, val, pad, device, config.eval_batch_size, d)
        run.logger.log(pos["step"], {"val/accuracy": m["accuracy"], "val/loss": m["loss"], **tag})
        return m

    pos = {"step": 0, "epoch": 0, "group": 0, "rows": 0, "history": []}
    group = micro * config.grad_accum
    with Run(config, scorer, optimizer, pos, len(items), group, f"reward ({config.batching})", d) as run:
        for epoch in run.epochs():
            for chosen in run.steps(items):
                lr = run.lr()
                optimizer.zero_grad(set_to_none=True)
                n = _step_size(chosen, config)  # each micro-batch's loss is its share of the step's mean
                stats = accumulate(
                    chosen,
                    micro,
                    lambda chunk, n=n: _micro_loss(scorer, chunk, config, pad, device, n),
                    device,
                    config.bf16,
                    scorer,
                    d,
                )
                pos["rows"] += stats["rows"]
                norm = optimizer_step(scorer.parameters(), optimizer, lr, config.max_grad_norm)
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
                scorer,
                [encode_prompt(tokenizer, d["prompt"], config.max_prompt_len) for d in demos],
                [encode_response(tokenizer, d["response"], config.max_response_len) for d in demos],
                pad,
                device,
                config.eval_batch_size,
                d,
            )
            if not distributed.is_sharded(scorer):  # a sharded head is shifted in the copy rank 0 saves
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
    save_reward_model(scorer, out, tokenizer, d, offset)
    if d.is_main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    distributed.barrier()  # every rank returns once the model is written
    return str(out)


def save_reward_model(scorer, out: Path, tokenizer, d: Dist, offset: float = 0.0) -> None:
    """Rank 0 writes the reward model (merged, with its adapter and head in ``out/adapter``, under
    LoRA); under FSDP2 every rank helps gather the weights and the saved copy's head is shifted by
    ``offset`` (the normalisation, which the sharded head did not take)."""
    weights = distributed.full_state_dict(scorer) if distributed.is_sharded(scorer) else None
    if not d.is_main:
        return
    rm = distributed.unwrap(scorer).rm.eval()
    if weights is not None:
        trunk = distributed.plain_copy(
            rm.trunk, {k[len("rm.trunk.") :]: v for k, v in weights.items() if k.startswith("rm.trunk.")}
        )
        head = torch.nn.Linear(rm.head.in_features, 1)
        head.load_state_dict({k[len("rm.head.") :]: v.cpu() for k, v in weights.items() if k.startswith("rm.head.")})
        plain = RewardModel(trunk, head)
        plain.normalize_(offset)
        plain.save_pretrained(out, tokenizer)
    elif is_peft(rm.trunk):
        from safetensors.torch import save_file

        from textbandit.reward_model import HEAD_FILE

        rm.trunk.save_pretrained(str(out / ADAPTER_DIR))
        head = {k: v.detach().float().cpu().contiguous() for k, v in rm.head.state_dict().items()}
        save_file(head, str(out / ADAPTER_DIR / HEAD_FILE))  # the head trained beside the adapter
        RewardModel(merged(rm.trunk), copy.deepcopy(rm.head)).save_pretrained(out, tokenizer)
    else:
        rm.save_pretrained(out, tokenizer)
