"""The sampler, the env and PPO on other Hugging Face architectures than GPT-2: tiny random Llama,
Qwen2 and GPT-NeoX models (rotary positions, grouped-query attention, no residual dropout), end to
end: sample with a KV cache -> env step -> PPO update, with the first ratio exactly 1."""

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import PROMPTS, tiny_tokenizer  # noqa: E402

from agents.ppo import PPOConfig, train  # noqa: E402
from agents.sampling import sample  # noqa: E402
from textbandit.layout import join, response_mask  # noqa: E402

TOK = tiny_tokenizer()
pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def tiny(arch: str, seed: int = 0):
    from transformers import (
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(seed)
    common = dict(vocab_size=len(TOK), hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    common.update(num_attention_heads=4, max_position_embeddings=64, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **common)).eval()
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=2, **common)).eval()
    return GPTNeoXForCausalLM(GPTNeoXConfig(**common)).eval()


ARCHS = ["llama", "qwen2", "gpt_neox"]


@pytest.mark.parametrize("cache", ["dynamic", "static"])
@pytest.mark.parametrize("arch", ARCHS + ["gpt2"])
def test_kv_cached_greedy_sampling_matches_full_forwards(arch, cache):
    from tiny import tiny_lm

    model = tiny_lm(len(TOK)) if arch == "gpt2" else tiny(arch)
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12], [0, 0, 0, 0, 4]])  # left padding
    mask = (ids != 0).long()
    out = sample(model, ids, mask, 6, TOK.eos_token_id, TOK.pad_token_id, temperature=0, cache=cache)
    rmask = response_mask(out, TOK.eos_token_id)
    full_ids, full_mask, pos = join(ids, mask, out, rmask, TOK.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=full_ids, attention_mask=full_mask, position_ids=pos).logits
    greedy = logits[:, ids.shape[1] - 1 : -1].argmax(-1)  # what each position predicts without a cache
    assert torch.equal(torch.where(rmask.bool(), greedy, TOK.pad_token_id), out)


@pytest.mark.parametrize("arch", ARCHS)
def test_ppo_end_to_end(tmp_path, arch):
    from textbandit.reward_model import RewardModel

    lm = tiny(arch)
    start = copy.deepcopy(lm.state_dict())
    cfg = PPOConfig(
        batch_size=8,
        minibatch_size=4,
        total_iterations=1,
        max_new_tokens=5,
        learning_rate=1e-2,
        out=str(tmp_path),
        device="cpu",
        progress=False,
        tensorboard=False,
        samples_every=0,
        lora_r=4 if arch == "llama" else 0,  # PEFT's default layers of the architecture (q_proj, v_proj)
        kv_cache="static" if arch == "qwen2" else "dynamic",  # a preallocated KV cache
    )
    reward = RewardModel.from_causal_lm(tiny(arch, seed=1))  # the reward model on the same architecture
    env = dict(task=None, reward_model=reward, tokenizer=TOK, prompts=PROMPTS, max_prompt_len=8)
    if not cfg.lora:
        env["reference_model"] = lm
    result = train(cfg, policy=lm, env_kwargs=env)
    h = result["history"][0]
    assert h["policy/first_ratio_max_dev"] < 1e-5 and abs(h["env/kl"]) < 1e-5
    assert result["policy"].lm.config.model_type == arch
    after = result["policy"].state_dict()
    if cfg.lora:
        assert any("lora_B" in k and v.abs().sum() > 0 for k, v in after.items())  # the adapters trained
    else:
        assert any(not torch.equal(v, after[f"lm.{k}"]) for k, v in start.items())
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in start.items())  # the caller's model untouched
