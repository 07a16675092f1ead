"""The one sampler: batched sampling from a causal LM with a KV cache.

One prompt forward, then one token per step for all rows at once; rows that have emitted EOS
keep producing ``pad_token_id`` and the loop stops when every row is done. Positions follow
``textbandit.layout.position_ids``, so left-padded prompts sample exactly as unpadded ones,
and logits are divided by the temperature before top-k / top-p filtering (the same
temperature the environment applies when it scores the response). :func:`sample` works on
token ids (what the env's observations are); :func:`sample_texts` on prompt texts.

Any Hugging Face causal LM whose forward takes ``attention_mask``, ``position_ids`` and a KV
cache samples here (GPT-2, Llama, Qwen2, GPT-NeoX are tested). Data-parallel ranks that each
sample their rows of one global batch pass ``draw_rows`` and then :func:`skip_draws`, so that
every row gets the random numbers one process sampling the whole batch would have drawn for it.
"""

from __future__ import annotations

import inspect

import torch

from textbandit.layout import encode_prompt, left_pad, position_ids


def _cache_kwarg(model) -> str:
    """The name of the KV-cache argument: ``cache`` in transformers 5, ``past_key_values`` before
    (read off the Hugging Face model itself: a PEFT model's forward passes it on by name)."""
    inner = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    params = inspect.signature(inner.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(out):
    return out.cache if hasattr(out, "cache") else out.past_key_values


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k / nucleus (top-p) set to -inf. (N, V) -> (N, V)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass strictly before it already reaches top_p (keeps >= 1 token)
        drop_sorted = (torch.cumsum(probs, dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def draw(
    probs: torch.Tensor, generator: torch.Generator | None = None, draw_rows: tuple[int, int] | None = None
) -> torch.Tensor:
    """One index per row of ``probs`` (N, V), drawn with probability ``probs[i] / sum(probs)``.

    Inverse-CDF sampling: one uniform number per row against the row's cumulative sum (in
    float64, so rounding cannot shift mass between tokens of a 50k vocabulary). Exact, and
    about 10x faster than ``torch.multinomial`` on a CPU, whose cost is drawing random numbers.
    Tokens of probability 0 are never drawn. ``draw_rows=(offset, total)``: these N rows are rows
    ``offset`` to ``offset + N`` of a batch of ``total``; the numbers of all ``total`` are drawn
    and these rows take theirs.
    """
    cdf = probs.double().cumsum(dim=-1)
    offset, total = draw_rows if draw_rows is not None else (0, probs.shape[0])
    u = torch.rand(total, 1, generator=generator, device=probs.device, dtype=torch.float64)
    u = u[offset : offset + probs.shape[0]]
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    return index.clamp_(max=probs.shape[-1] - 1)


@torch.no_grad()
def sample(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    draw_rows: tuple[int, int] | None = None,
    all_done=None,
    cache: str = "dynamic",
    compile: bool = False,
) -> torch.Tensor:
    """Sample responses: (N, P) left-padded prompts -> (N, max_new_tokens) token ids.

    Each response ends at its first EOS (kept); later slots hold ``pad_token_id``.
    ``temperature=0`` means greedy decoding. ``draw_rows=(offset, total)``: these rows are part of
    a batch of ``total`` sampled by several processes (see :func:`draw` and :func:`skip_draws`).
    ``all_done(done) -> bool`` decides when to stop (default: when every row here has ended); a
    sharded model (FSDP2), whose every forward is a collective, passes one that asks every rank.

    ``cache='static'``: a KV cache preallocated for ``P + max_new_tokens`` positions (transformers'
    ``StaticCache``) and a full-length attention mask, so every decoding step has the same shapes;
    ``compile=True`` (static cache only) runs the decoding step through ``torch.compile`` (mode
    ``reduce-overhead``: CUDA graphs on a GPU), worth its compile time only on long GPU runs.
    The distribution sampled is the same; the float rounding of the padded attention may differ.
    """
    if cache not in ("dynamic", "static"):
        raise ValueError(f"cache={cache!r}; use 'dynamic' or 'static'")
    if compile and cache != "static":
        raise ValueError("compile=True needs cache='static' (compiled steps need fixed shapes)")
    n = prompt_ids.shape[0]
    device = prompt_ids.device
    cache_kw = _cache_kwarg(model)
    attention_mask = prompt_mask.long()
    P = attention_mask.shape[1]
    static = {}
    if cache == "static":
        full_mask = torch.cat([attention_mask, attention_mask.new_zeros(n, max_new_tokens)], dim=1)
        static = {cache_kw: _static_cache(model, n, P + max_new_tokens, device)}
    out = model(
        input_ids=prompt_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        use_cache=True,
        **static,
    )
    past, logits = _cache_of(out), out.logits[:, -1]
    step = _compiled(model) if compile else model
    next_pos = attention_mask.sum(dim=1, keepdim=True)  # (N, 1) position of the next token
    response = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(max_new_tokens):
        logits = logits.float()
        if temperature == 0:
            token = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            token = draw(probs, generator, draw_rows)
        token = torch.where(done, pad_token_id, token)
        response[:, t] = token
        done |= token == eos_token_id
        if (all_done(done) if all_done is not None else bool(done.all())) or t == max_new_tokens - 1:
            break
        if cache == "static":  # the same shapes every step: the mask covers every position
            full_mask[:, P + t] = 1
            out = step(
                input_ids=token.unsqueeze(1),
                attention_mask=full_mask,
                position_ids=next_pos,
                cache_position=torch.full((1,), P + t, dtype=torch.long, device=device),
                **{cache_kw: past},
                use_cache=True,
            )
        else:
            attention_mask = torch.cat([attention_mask, torch.ones_like(next_pos)], dim=1)
            out = model(
                input_ids=token.unsqueeze(1),
                attention_mask=attention_mask,
                position_ids=next_pos,
                **{cache_kw: past},
                use_cache=True,
            )
            past = _cache_of(out)
        logits = out.logits[:, -1]
        next_pos = next_pos + 1
    return response


def _static_cache(model, batch: int, length: int, device):
    """A transformers ``StaticCache`` for ``batch`` rows of ``length`` positions (its arguments
    differ between transformers versions; the ones this version takes are passed)."""
    from transformers import StaticCache

    inner = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    params = inspect.signature(StaticCache.__init__).parameters
    offered = {
        "config": inner.config,
        "max_cache_len": length,
        "max_batch_size": batch,
        "batch_size": batch,
        "device": device,
        "dtype": next(inner.parameters()).dtype,
    }
    return StaticCache(**{k: v for k, v in offered.items() if k in params})


_COMPILED: dict[int, tuple] = {}  # id(model) -> (model, compiled): compiled once per model object


def _compiled(model):
    """``model`` through ``torch.compile`` (reduce-overhead), compiled once per model object."""
    entry = _COMPILED.get(id(model))
    if entry is None or entry[0] is not model:
        entry = _COMPILED[id(model)] = (model, torch.compile(model, mode="reduce-overhead", dynamic=False))
    return entry[1]


def decoding_steps(response_mask: torch.Tensor) -> int:
    """The decoding steps :func:`sample` took for responses with this mask (the longest response:
    it stops when every row has ended, or after ``max_new_tokens``)."""
    return int(response_mask.sum(dim=1).max()) if response_mask.numel() else 0


def skip_draws(generator: torch.Generator | None, total: int, steps: int, device) -> None:
    """Advance ``generator`` as ``steps`` sampling steps over a batch of ``total`` rows would (one
    uniform number per row and step, as :func:`draw` takes them). A rank whose rows all ended
    before the global batch's did calls it, so every rank's generator ends where one process's would."""
    for _ in range(steps):
        torch.rand(total, 1, generator=generator, device=device, dtype=torch.float64)


def decode_response(tokenizer, row: list[int]) -> tuple[str, bool]:
    """A sampled row's text (up to its first EOS, excluded; special tokens skipped) and whether it ended with EOS."""
    eos = tokenizer.eos_token_id
    ended = eos in row
    ids = row[: row.index(eos)] if ended else row
    return tokenizer.decode(ids, skip_special_tokens=True), ended


@torch.no_grad()
def sample_texts(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    max_prompt_len: int = 64,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    device=None,
    progress: bool = False,
) -> tuple[list[str], list[bool]]:
    """One response per prompt text (repeat a prompt for several): ``(texts, ended_with_eos)``,
    sampled in batches of ``batch_size`` rows with one generator seeded with ``seed``."""
    from tqdm.auto import tqdm

    device = device if device is not None else next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    texts, ended = [], []
    model.eval()
    for i in tqdm(range(0, len(prompts), batch_size), desc="sampling", disable=not progress):
        ids, mask = left_pad(
            [encode_prompt(tokenizer, p, max_prompt_len) for p in prompts[i : i + batch_size]],
            tokenizer.pad_token_id,
            device=device,
        )
        rows = sample(
            model,
            ids,
            mask,
            max_new_tokens,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
        )
        for text, end in (decode_response(tokenizer, row) for row in rows.tolist()):
            texts.append(text)
            ended.append(end)
    return texts, ended
