"""The ``prompt ++ response`` layout that every model in textbandit sees, in one place.

The environment, the reward model and every trainer build their model inputs with these
functions, so they agree on positions, masks and padding to the last bit (docs/architecture.md):

- a prompt is tokenized without special tokens and **left-padded** (:func:`left_pad`);
- a response ends at its **first EOS (kept)**; what follows is padding (:func:`response_mask`);
- ``prompt ++ response`` is joined with position ids that ignore padding (:func:`join`);
- texts become padded batches with :func:`encode_prompt`, :func:`encode_response` and :func:`collate`.

Shapes: ``N`` rows, prompts of ``P`` tokens, responses of ``L`` tokens.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch


def check_tokenizer(tokenizer) -> None:
    """Raise ``ValueError`` unless ``tokenizer`` has an EOS token and a pad token distinct from it."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; set tokenizer.eos_token (responses end at EOS)")
    if pad is None or pad == eos:
        raise ValueError(
            f"the tokenizer's pad token id ({pad}) must exist and differ from its EOS id ({eos}), or padding "
            "could not be told from a response's end; add one: tokenizer.add_special_tokens("
            "{'pad_token': '<pad>'}) and model.resize_token_embeddings(len(tokenizer))"
        )


def left_pad(
    prompts: Sequence[Sequence[int]], pad_token_id: int, *, width: int | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompt_ids, prompt_mask)``, (N, width) int64 each: token lists left-padded to ``width``
    (default: the longest), so that every prompt ends where its response begins.

    >>> ids, mask = left_pad([[5, 6], [7]], pad_token_id=0)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    width = max((len(p) for p in prompts), default=0) if width is None else width
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if len(p) > width:
            raise ValueError(f"prompt {i} has {len(p)} tokens, more than the width {width}")
        if len(p):
            ids[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def response_mask(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 for every response token up to and including the first EOS, 0 after it.

    >>> response_mask(torch.tensor([[5, 2, 7, 7], [5, 6, 6, 6]]), eos_token_id=2).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 1]]
    """
    is_eos = (response_ids == eos_token_id).long()
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos  # EOS tokens strictly before t
    return (eos_before == 0).long()


def ends_with_eos(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """(N,) bool: whether each response contains an EOS (False means truncated)."""
    return (response_ids == eos_token_id).any(dim=1)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding: ``cumsum(mask) - 1`` clamped at 0.

    >>> position_ids(torch.tensor([[0, 0, 1, 1, 1]])).tolist()
    [[0, 0, 0, 1, 2]]
    """
    return (torch.cumsum(attention_mask, dim=1) - 1).clamp(min=0)


def join(
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    resp_mask: torch.Tensor,
    pad_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, position_ids)`` of ``prompt ++ response``, (N, P+L) each.

    Response tokens after the first EOS become ``pad_token_id`` and are masked out.
    """
    response_ids = torch.where(resp_mask.bool(), response_ids, pad_token_id)
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, resp_mask], dim=1).long()
    return input_ids, attention_mask, position_ids(attention_mask)


def used_columns(prompt_mask: torch.Tensor, response_mask: torch.Tensor) -> tuple[slice, slice]:
    """The columns some row uses: prompt columns from the first one any row's prompt fills (they
    are left-padded), response columns up to the last one any row's response fills. A batch cut
    to them gives every row the same outputs (padding is masked out and positions ignore it) at
    less cost: a rollout's rows are padded to the env's fixed widths, most rows are shorter.

    >>> used_columns(torch.tensor([[0, 0, 1], [0, 1, 1]]), torch.tensor([[1, 0, 0], [1, 1, 0]]))
    (slice(1, 3, None), slice(0, 2, None))
    """
    prompt_used = prompt_mask.bool().any(dim=0).nonzero()
    response_used = response_mask.bool().any(dim=0).nonzero()
    first = int(prompt_used[0]) if len(prompt_used) else prompt_mask.shape[1]
    last = int(response_used[-1]) + 1 if len(response_used) else 1
    return slice(first, prompt_mask.shape[1]), slice(0, min(last, response_mask.shape[1]))


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
    prompt_ids, prompt_mask = left_pad(prompts, pad_token_id)
    width = max(len(r) for r in responses)
    response_ids = torch.full((len(responses), width), pad_token_id, dtype=torch.long)
    resp_mask = torch.zeros((len(responses), width), dtype=torch.long)
    for i, r in enumerate(responses):
        response_ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        resp_mask[i, : len(r)] = 1
    if device is not None:
        prompt_ids, prompt_mask, response_ids, resp_mask = (
            t.to(device) for t in (prompt_ids, prompt_mask, response_ids, resp_mask)
        )
    input_ids, attention_mask, pos = join(prompt_ids, prompt_mask, response_ids, resp_mask, pad_token_id)
    return Batch(input_ids, attention_mask, pos, prompt_ids.shape[1], response_ids, resp_mask)
