"""Language-model measurements on plain text: the corpus cut into blocks, and perplexity on them.

Pretraining trains on :func:`blocks` of the corpus; the task report and the alignment-tax column
of the pipeline's report measure :func:`perplexity` on held-out blocks.
"""

from __future__ import annotations

import math

import torch

from textbandit.runtime import eval_mode


def blocks(texts: list[str], tokenizer, n: int) -> torch.Tensor:
    """All texts, each followed by EOS, concatenated and cut into (B, n) blocks."""
    ids = tokenizer(texts, add_special_tokens=False).input_ids
    flat = [t for seq in ids for t in seq + [tokenizer.eos_token_id]]
    m = len(flat) // n
    if m == 0:
        raise ValueError(f"corpus of {len(flat)} tokens is shorter than one block of {n}")
    return torch.tensor(flat[: m * n]).view(m, n)


@torch.no_grad()
def perplexity(model, data: torch.Tensor, batch_size: int = 64) -> float:
    """Token-level perplexity of ``model`` on (B, n) blocks (in eval mode)."""
    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(data), batch_size):
            x = data[i : i + batch_size]
            loss = model(input_ids=x, labels=x).loss
            k = x.numel() - x.shape[0]  # predicted tokens: all but the first of each block
            total += loss.item() * k
            count += k
    return math.exp(total / count)
