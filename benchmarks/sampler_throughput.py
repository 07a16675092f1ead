"""Sampling throughput: ``agents.sampling.sample`` (the KV-cache sampler PPO uses; dynamic cache,
static cache, and on a GPU the static cache with ``torch.compile``) against Hugging Face
``generate`` (the same variants).

Every sampler gets the same randomly initialised model, ``batch`` left-padded prompts of
``prompt_len`` tokens, temperature 1 and ``new_tokens`` new tokens per row (a random model
almost never emits EOS, so every row runs to the end; EOS is set to an id outside the prompt's
words anyway). Reported: generated tokens per second (best of ``repeats`` after a warm-up run),
and peak memory on a GPU. Run::

    python benchmarks/sampler_throughput.py --size tiny --device cpu      # seconds, a check on a CPU
    python benchmarks/sampler_throughput.py --size gpt2-small --device cuda
    python benchmarks/sampler_throughput.py --size qwen2-0.5b --device cuda --batch 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

SIZES = {
    "tiny": ("gpt2", dict(n_layer=2, n_embd=64, n_head=2, vocab_size=1000)),
    "gpt2-small": ("gpt2", dict(n_layer=12, n_embd=768, n_head=12, vocab_size=50257)),
    "qwen2-0.5b": (  # Qwen2-0.5B's shape (494M parameters), randomly initialised
        "qwen2",
        dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            tie_word_embeddings=True,
        ),
    ),
}


def build_model(size: str, max_positions: int):
    """A random causal LM of ``size`` (pad 0, EOS 1)."""
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    arch, shape = SIZES[size]
    torch.manual_seed(0)
    ids = dict(pad_token_id=0, eos_token_id=1, bos_token_id=1)
    if arch == "gpt2":
        config = GPT2Config(n_positions=max_positions, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids, **shape)
        return GPT2LMHeadModel(config)
    return Qwen2ForCausalLM(Qwen2Config(max_position_embeddings=max_positions, **ids, **shape))


def timed(fn, device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="tiny")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", default="auto", help="'auto' (on CUDA), 'true' or 'false': the model's dtype")
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)
    from agents.sampling import sample

    device = torch.device(
        "cuda" if a.device == "auto" and torch.cuda.is_available() else a.device.replace("auto", "cpu")
    )
    bf16 = device.type == "cuda" if a.bf16 == "auto" else a.bf16 == "true"
    model = build_model(a.size, a.prompt_len + a.new_tokens + 8).to(device, torch.bfloat16 if bf16 else torch.float32)
    model.eval()
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompts = torch.randint(2, vocab, (a.batch, a.prompt_len), generator=g)
    lengths = torch.randint(a.prompt_len // 2, a.prompt_len + 1, (a.batch,), generator=g)
    mask = (torch.arange(a.prompt_len)[None, :] >= (a.prompt_len - lengths)[:, None]).long()  # left padding
    prompts = torch.where(mask.bool(), prompts, 0).to(device)
    mask = mask.to(device)
    gen = torch.Generator(device=device)
    tokens = a.batch * a.new_tokens
    results: dict[str, dict] = {}

    def run(name, fn):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            seconds = timed(fn, device, a.repeats)
        except Exception as e:  # an HF variant this transformers or device does not offer
            print(f"{name}: skipped ({type(e).__name__}: {str(e)[:160]})")
            return
        results[name] = {
            "tokens_per_s": tokens / seconds,
            "seconds": seconds,
            **({"peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20} if device.type == "cuda" else {}),
        }

    def ours(**kwargs):
        def call():
            gen.manual_seed(0)
            with torch.no_grad():
                out = sample(
                    model, prompts, mask, a.new_tokens, eos_token_id=1, pad_token_id=0, generator=gen, **kwargs
                )
            assert out.shape == (a.batch, a.new_tokens)

        return call

    def hf(**kwargs):
        def call():
            with torch.no_grad():
                model.generate(
                    input_ids=prompts,
                    attention_mask=mask,
                    do_sample=True,
                    top_k=0,
                    max_new_tokens=a.new_tokens,
                    min_new_tokens=a.new_tokens,
                    pad_token_id=0,
                    eos_token_id=1,
                    **kwargs,
                )

        return call

    run("agents.sampling.sample", ours())
    run("agents.sampling.sample (static cache)", ours(cache="static"))
    run("HF generate (dynamic cache)", hf())
    if device.type == "cuda":  # compiling on a CPU takes minutes and is not what a GPU run measures
        run("agents.sampling.sample (static, compiled)", ours(cache="static", compile=True))
        run("HF generate (static cache, compiled)", hf(cache_implementation="static"))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"machine: {name}; model {a.size} ({n_params / 1e6:.1f}M params, {'bf16' if bf16 else 'fp32'}); "
        f"batch {a.batch}, prompt {a.prompt_len}, {a.new_tokens} new tokens"
    )
    base = results.get("agents.sampling.sample", {}).get("tokens_per_s")
    for key, r in results.items():
        mem = f", peak {r['peak_mem_mb']:,.0f} MiB" if "peak_mem_mb" in r else ""
        ratio = f" ({r['tokens_per_s'] / base:.2f}x ours)" if base and key != "agents.sampling.sample" else ""
        print(f"{key:40} {r['tokens_per_s']:>12,.0f} tokens/s{ratio}{mem}")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "machine": name, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
