"""Small language-model helpers for the task: corpus blocks, perplexity, plain sampling.

Sampling follows the project's layout (``docs/architecture.md``): prompts left-padded,
positions ``cumsum(mask) - 1``, the response ends at its first EOS. It uses the KV cache,
passing each new token's position explicitly (``use_cache=False`` recomputes everything).
"""

from __future__ import annotations

import math

import torch


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
    """Token-level perplexity of ``model`` on (B, n) blocks."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        x = data[i: i + batch_size]
        loss = model(input_ids=x, labels=x).loss
        k = x.numel() - x.shape[0]  # predicted tokens: all but the first of each block
        total += loss.item() * k
        count += k
    return math.exp(total / count)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], max_new_tokens: int = 24,
           temperature: float = 1.0, seed: int = 0, batch_size: int = 64,
           use_cache: bool = True):
    """Sample one response per prompt; returns ``(texts, ended_with_eos)``.
    ``use_cache=False`` recomputes the whole sequence each step (the reference)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    eos = tokenizer.eos_token_id
    texts, ended = [], []
    for i in range(0, len(prompts), batch_size):
        enc = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts[i: i + batch_size]]
        P = max(map(len, enc))
        ids = torch.tensor([[tokenizer.pad_token_id] * (P - len(e)) + e for e in enc])
        mask = (torch.arange(P)[None, :] >= torch.tensor([P - len(e) for e in enc])[:, None])
        mask = mask.long()
        done = torch.zeros(len(enc), dtype=torch.bool)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=use_cache)
        for step in range(max_new_tokens):
            if step > 0:
                pos = pos[:, -1:] + 1
                if use_cache:
                    # transformers 5 names the cache `cache`, 4.x `past_key_values`
                    key = "cache" if "cache" in out else "past_key_values"
                    out = model(input_ids=ids[:, -1:], attention_mask=mask, position_ids=pos,
                                use_cache=True, **{key: out[key]})
                else:
                    full = (mask.cumsum(1) - 1).clamp(min=0)
                    out = model(input_ids=ids, attention_mask=mask, position_ids=full)
            logits = out.logits[:, -1]
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=g).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, tokenizer.pad_token_id), nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, (~done).long()[:, None]], 1)
            done |= nxt == eos
            if done.all():
                break
        for row in ids[:, P:].tolist():
            cut = row.index(eos) if eos in row else len(row)
            texts.append(tokenizer.decode([t for t in row[:cut] if t != tokenizer.pad_token_id]))
            ended.append(eos in row)
    return texts, ended
