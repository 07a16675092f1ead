"""The ``prompt ++ response`` layout of docs/architecture.md, from text to padded tensors.

Prompts are tokenized without special tokens and left-padded; responses are tokenized without
special tokens, EOS is appended (where the response ended), and they are right-padded. Positions
come from :func:`textbandit.scoring.join`, so padding never shifts them.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from textbandit.scoring import join


class Batch(NamedTuple):
    """A joined batch: ``(N, P + L)`` input ids, attention mask and positions, plus the parts."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    prompt_len: int  # P: response token t sits at column P + t
    response_ids: torch.Tensor  # (N, L), pad after the end
    response_mask: torch.Tensor  # (N, L), 1 on response tokens (EOS included)


def encode_prompt(tokenizer, text: str, max_len: int) -> list[int]:
    """Prompt token ids (no special tokens), keeping the last ``max_len`` when too long."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[-max_len:]


def encode_response(tokenizer, text: str, max_len: int, add_eos: bool = True) -> list[int]:
    """Response token ids (no special tokens) cut to ``max_len`` tokens, EOS last when ``add_eos``."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if add_eos:
        return ids[: max_len - 1] + [tokenizer.eos_token_id]
    return ids[:max_len]


def collate(prompts: Sequence[list[int]], responses: Sequence[list[int]], pad_token_id: int, device=None) -> Batch:
    """Left-pad ``prompts``, right-pad ``responses`` and join them (one row per pair)."""
    if len(prompts) != len(responses) or not prompts:
        raise ValueError(f"need equally many prompts and responses (>0), got {len(prompts)} and {len(responses)}")
    P = max(len(p) for p in prompts)
    L = max(len(r) for r in responses)
    n = len(prompts)
    prompt_ids = torch.full((n, P), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((n, P), dtype=torch.long)
    response_ids = torch.full((n, L), pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((n, L), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if p:
            prompt_ids[i, P - len(p):] = torch.tensor(p)
            prompt_mask[i, P - len(p):] = 1
        response_ids[i, : len(r)] = torch.tensor(r)
        response_mask[i, : len(r)] = 1
    if device is not None:
        prompt_ids, prompt_mask, response_ids, response_mask = (
            t.to(device) for t in (prompt_ids, prompt_mask, response_ids, response_mask))
    input_ids, attention_mask, pos = join(prompt_ids, prompt_mask, response_ids, response_mask, pad_token_id)
    return Batch(input_ids, attention_mask, pos, P, response_ids, response_mask)


def left_pad(prompts: Sequence[list[int]], pad_token_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompt_ids, prompt_mask)``: prompts left-padded to the longest, for sampling."""
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), P), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, P - len(p):] = torch.tensor(p)
            mask[i, P - len(p):] = 1
    return ids.to(device), mask.to(device)


def check_model_fits(model, tokenizer, lengths, what: str = "model") -> None:
    """Refuse, before training, a model whose embedding has fewer rows than the tokenizer has tokens,
    or whose position embeddings are shorter than the longest ``prompt + response`` in ``lengths``."""
    from textbandit.policy import max_positions, vocab_size_of

    vocab = vocab_size_of(model)
    if vocab is not None and vocab < len(tokenizer):
        raise ValueError(f"the {what}'s vocabulary ({vocab}) is smaller than the tokenizer's ({len(tokenizer)}); "
                         "pass the tokenizer the model was trained with, or resize its embeddings "
                         "(model.resize_token_embeddings(len(tokenizer)))")
    n, longest = max_positions(model), max(lengths, default=0)
    if n is not None and longest > n:
        raise ValueError(f"the longest prompt + response in the data has {longest} tokens, more than the {what}'s "
                         f"{n} positions; lower max_prompt_len or max_response_len so they sum to at most {n}")


def check_tokenizer(tokenizer) -> None:
    """Raise ``ValueError`` unless the tokenizer has an EOS and a distinct pad token."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; set tokenizer.eos_token (responses end at EOS)")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError("the tokenizer needs a pad token distinct from EOS; add one with "
                         "tokenizer.add_special_tokens({'pad_token': '<pad>'}) and resize the model's embeddings")
