"""Comparisons as token ids, and their scoring by a reward model in K-wise or pair batches."""

from __future__ import annotations

from typing import NamedTuple

import torch

from agents.common import distributed
from agents.reward.loss import kwise_ranking_loss, ranked_pairs
from textbandit.layout import collate, encode_prompt, encode_response
from textbandit.runtime import eval_mode


class Comparison(NamedTuple):
    """One prompt's K ranked completions, tokenized (``responses`` end with EOS unless truncated)."""

    prompt: list[int]
    responses: list[list[int]]
    ranking: list[int]


def encode_comparisons(records: list[dict], tokenizer, max_prompt_len: int, max_response_len: int) -> list[Comparison]:
    """Tokenize comparison records; records whose completions are all tied (no pair) are dropped.

    EOS is appended to each response unless the record's optional ``ended_with_eos[i]`` is False
    (a truncated sample, which must be scored as it was sampled).
    """
    out = []
    for r in records:
        if not ranked_pairs(r["ranking"]):
            continue
        ended = r.get("ended_with_eos")
        ended = [True] * len(r["responses"]) if ended is None else ended
        if len(ended) != len(r["responses"]) or not all(isinstance(e, bool) for e in ended):
            raise ValueError(
                f"ended_with_eos={ended!r} of the comparison of {r['prompt'][:60]!r}: give one boolean "
                f"per response ({len(r['responses'])})"
            )
        responses = [
            encode_response(tokenizer, text, max_response_len, add_eos=bool(e))
            for text, e in zip(r["responses"], ended)
        ]
        responses = [x if x else [tokenizer.eos_token_id] for x in responses]
        out.append(Comparison(encode_prompt(tokenizer, r["prompt"], max_prompt_len), responses, list(r["ranking"])))
    return out


def scores_of(rm):
    """What scores a batch: ``rm.score``, or ``rm`` itself when it is a module whose forward is the
    score (the trainer's :class:`ScoreForward`, in DDP or FSDP2)."""
    return rm.score if hasattr(rm, "score") else rm


class ScoreForward(torch.nn.Module):
    """A reward model whose ``forward`` is its ``score``: the module DDP and FSDP2 wrap, since they
    act on a module's forward (the reward model's forward gives every token's reward)."""

    def __init__(self, rm):
        super().__init__()
        self.rm = rm

    def forward(self, input_ids, attention_mask, position_ids=None):
        return self.rm.score(input_ids, attention_mask, position_ids)


def score_comparisons(rm, comps: list[Comparison], pad_token_id: int, device):
    """Forward every completion of ``comps`` once: ``(scores, ranks, valid)``, each (B, Kmax)."""
    prompts = [c.prompt for c in comps for _ in c.responses]
    responses = [x for c in comps for x in c.responses]
    batch = collate(prompts, responses, pad_token_id, device)
    flat = scores_of(rm)(batch.input_ids, batch.attention_mask, batch.position_ids).float()
    kmax = max(len(c.responses) for c in comps)
    scores = torch.zeros(len(comps), kmax, device=flat.device)
    ranks = torch.zeros(len(comps), kmax, dtype=torch.long, device=flat.device)
    valid = torch.zeros(len(comps), kmax, dtype=torch.bool, device=flat.device)
    start = 0
    for b, c in enumerate(comps):
        k = len(c.responses)
        scores[b, :k] = flat[start : start + k]
        ranks[b, :k] = torch.tensor(c.ranking, device=flat.device)
        valid[b, :k] = True
        start += k
    return scores, ranks, valid


def expand_to_pairs(comps: list[Comparison]) -> list[tuple[list[int], list[int], list[int]]]:
    """``(prompt, chosen, rejected)`` for every non-tied pair of every comparison."""
    return [(c.prompt, c.responses[w], c.responses[lose]) for c in comps for w, lose in ranked_pairs(c.ranking)]


def score_pairs(rm, pairs, pad_token_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r_chosen, r_rejected)``, (N,) each, from one forward of the 2N rows."""
    prompts = [p for p, _, _ in pairs] * 2
    responses = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
    batch = collate(prompts, responses, pad_token_id, device)
    flat = scores_of(rm)(batch.input_ids, batch.attention_mask, batch.position_ids).float()
    return flat[: len(pairs)], flat[len(pairs) :]


def chunk_by_rows(comps: list[Comparison], max_rows: int) -> list[list[Comparison]]:
    """Consecutive groups of comparisons with at most ``max_rows`` completions each (at least one comparison)."""
    groups, cur, rows = [], [], 0
    for c in comps:
        if cur and rows + len(c.responses) > max_rows:
            groups.append(cur)
            cur, rows = [], 0
        cur.append(c)
        rows += len(c.responses)
    if cur:
        groups.append(cur)
    return groups


@torch.no_grad()
def evaluate(rm, comps: list[Comparison], pad_token_id: int, device, max_rows: int = 64, d=None) -> dict:
    """Pair accuracy (``r_w > r_l`` over non-tied pairs), mean K-wise loss and pair count, in eval mode;
    each rank of ``d`` (an :class:`agents.common.distributed.Dist`) scores its share and the sums are added."""
    rank, world = (d.rank, d.world_size) if d is not None else (0, 1)
    sums = {"loss": 0.0, "pairs": 0, "correct": 0}
    with eval_mode(rm):
        for groups, real in distributed.share_batches(chunk_by_rows(comps, max_rows), 1, rank, world):
            losses, n_pairs, n_correct = kwise_ranking_loss(*score_comparisons(rm, groups[0], pad_token_id, device))
            if real:
                sums["loss"] += float(losses.sum())
                sums["pairs"] += int(n_pairs.sum())
                sums["correct"] += int(n_correct.sum())
    sums = distributed.all_reduce_sums(sums) if world > 1 else sums
    pairs = int(sums["pairs"])
    return {"accuracy": sums["correct"] / max(pairs, 1), "loss": sums["loss"] / max(len(comps), 1), "pairs": pairs}


@torch.no_grad()
def mean_score(
    rm, prompts: list[list[int]], responses: list[list[int]], pad_token_id: int, device, batch_size: int = 64, d=None
) -> float:
    """Mean reward of ``prompt ++ response`` rows (e.g. the demonstrations, for normalisation); each
    rank of ``d`` scores its share."""
    rank, world = (d.rank, d.world_size) if d is not None else (0, 1)
    total = 0.0
    with eval_mode(rm):
        for rows, real in distributed.share_batches(list(zip(prompts, responses)), batch_size, rank, world):
            batch = collate([p for p, _ in rows], [r for _, r in rows], pad_token_id, device)
            score = float(scores_of(rm)(batch.input_ids, batch.attention_mask, batch.position_ids).float().sum())
            total += score if real else 0.0
    if world > 1:
        total = distributed.all_reduce_sums({"total": total})["total"]
    return total / max(len(prompts), 1)
