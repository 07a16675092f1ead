"""LoRA through PEFT for SFT, the reward model and PPO, on tiny local models.

PPO's policy is adapters on the start model and its KL reference is that same base with the
adapters off: the reference's log-probs are the base model's, only adapters and the value head
train, and the merged model is a plain Hugging Face model.
"""

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import PROMPTS, tiny_lm, tiny_tokenizer  # noqa: E402

pytest.importorskip("peft")

from agents.common.lora import ADAPTER_DIR, AdaptersOff, LoraSettings, merge_adapters  # noqa: E402
from agents.examples.toy import KeywordReward  # noqa: E402
from agents.ppo import PPOConfig, train  # noqa: E402
from textbandit.scoring import response_logprobs  # noqa: E402

TOK = tiny_tokenizer()
pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py
IDS = torch.tensor([[0, 5, 6], [7, 8, 9]])
RESP, RMASK = torch.tensor([[4, 5, 1], [6, 1, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]])


def logprobs(model):
    return response_logprobs(model, IDS, (IDS != 0).long(), RESP, RMASK, 1.0, TOK.pad_token_id)


def ppo_config(tmp_path, **kw):
    base = dict(batch_size=8, minibatch_size=4, total_iterations=2, max_new_tokens=6, kl_coef=0.05, lora_r=4)
    base.update(learning_rate=3e-2, lr_schedule="constant", missing_eos_penalty=None, out=str(tmp_path))
    base.update(progress=False, tensorboard=False, device="cpu", samples_every=0, save_every=1)
    return PPOConfig(**{**base, **kw})


def env_kwargs():  # no reference: LoRA PPO's is the policy's base with its adapters off
    reward = KeywordReward(TOK.convert_tokens_to_ids("fish"))
    return dict(task=None, reward_model=reward, tokenizer=TOK, prompts=PROMPTS, max_prompt_len=8)


def test_lora_ppo_reference_is_the_base_and_only_adapters_and_value_head_train(tmp_path):
    from transformers import AutoModelForCausalLM

    lm = tiny_lm(len(TOK))
    start = copy.deepcopy(lm.state_dict())
    result = train(ppo_config(tmp_path), policy=lm, env_kwargs=env_kwargs())
    policy, env = result["policy"], result["envs"].unwrapped
    assert all(h["policy/first_ratio_max_dev"] < 1e-5 for h in result["history"])
    assert abs(result["history"][0]["env/kl"]) < 1e-6 and result["history"][1]["env/kl"] != 0.0
    # one copy of the weights: the env's reference is the policy's base with the adapters off
    assert isinstance(env.reference_model, AdaptersOff) and env.reference_model.peft_model is policy.lm
    assert torch.equal(logprobs(env.reference_model), logprobs(lm))  # the base model's, to the bit
    assert not torch.equal(policy.response_logprobs(IDS, (IDS != 0).long(), RESP, RMASK, 1.0), logprobs(lm))
    changed = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert changed and all("lora_" in n or n.startswith("value_head.") for n in changed)
    from agents.ppo.learner import param_groups

    lm_group, value_group = param_groups(policy, 3.0)  # the frozen base in neither optimizer group
    names = {id(p): n for n, p in policy.named_parameters()}
    assert lm_group["params"] and all("lora_" in names[id(p)] for p in lm_group["params"])
    assert {names[id(p)] for p in value_group["params"]} == {"value_head.weight", "value_head.bias"}
    assert value_group["lr_scale"] == 3.0
    base = policy.lm.get_base_model().state_dict()
    for k, v in start.items():  # the frozen base (names carry PEFT's base_layer where adapted)
        key = k if k in base else k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(base[key], v), k
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in start.items())  # the caller's model untouched
    # checkpoints hold the adapter and the value head; the saved policy is a merged plain model
    assert (tmp_path / "checkpoint" / ADAPTER_DIR / "adapter_model.safetensors").exists()
    assert not (tmp_path / "checkpoint" / "model.safetensors").exists()
    policy.save_pretrained(tmp_path / "final")
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "final"))
    assert type(merged).__name__ == "GPT2LMHeadModel" and not hasattr(merged, "peft_config")
    ours = policy.response_logprobs(IDS, (IDS != 0).long(), RESP, RMASK, 1.0)
    torch.testing.assert_close(logprobs(merged), ours, atol=1e-5, rtol=1e-5)
    again = tmp_path / "again"
    merge_adapters(tmp_path / "final" / ADAPTER_DIR, again, base=lm)  # the same from the adapter folder
    torch.testing.assert_close(logprobs(AutoModelForCausalLM.from_pretrained(str(again))), ours, atol=1e-5, rtol=1e-5)


def test_lora_ppo_resume_equals_unbroken_run(tmp_path):
    class Stop(Exception):
        pass

    def stop(iteration, stats, policy):
        if iteration == 1:
            raise Stop

    lm = tiny_lm(len(TOK))
    full = train(ppo_config(tmp_path / "a"), policy=lm, env_kwargs=env_kwargs())
    with pytest.raises(Stop):
        train(ppo_config(tmp_path / "b"), policy=lm, env_kwargs=env_kwargs(), callback=stop)
    resumed = train(ppo_config(tmp_path / "b", resume=True), policy=lm, env_kwargs=env_kwargs())
    for (k, a), b in zip(full["policy"].state_dict().items(), resumed["policy"].state_dict().values()):
        assert torch.equal(a, b), k


def test_lora_sft_and_reward_model_save_merged_models_and_adapters(tmp_path):
    from transformers import AutoModelForCausalLM

    from agents.reward import RewardConfig, train_reward_model
    from agents.sft import SFTConfig, train_sft
    from textbandit.reward_model import RewardModel

    demos = [{"prompt": p, "response": "the cat eats a fish ."} for p in PROMPTS]
    (tmp_path / "demos.jsonl").write_text("".join(json.dumps(d) + "\n" for d in demos))
    comps = [{"prompt": p, "responses": ["a fish", "the the", "cat"], "ranking": [0, 2, 1]} for p in PROMPTS]
    (tmp_path / "comps.jsonl").write_text("".join(json.dumps(c) + "\n" for c in comps))
    quiet = dict(device="cpu", progress=False, tensorboard=False, lora_r=4, lr=1e-2, max_prompt_len=8)
    lm = tiny_lm(len(TOK))
    sft = train_sft(
        SFTConfig(train=str(tmp_path / "demos.jsonl"), out=str(tmp_path / "sft"), epochs=1, batch_size=5, **quiet),
        model=lm,
        tokenizer=TOK,
    )
    merged = AutoModelForCausalLM.from_pretrained(sft)
    assert (Path(sft) / ADAPTER_DIR / "adapter_config.json").exists()
    moved = {k for k, v in merged.state_dict().items() if not torch.equal(v, lm.state_dict()[k])}
    assert moved and all(".attn.c_attn." in k for k in moved)  # GPT-2's adapted layers only

    rm = RewardModel.from_causal_lm(tiny_lm(len(TOK), seed=2))
    head = copy.deepcopy(rm.head.state_dict())
    path = train_reward_model(
        RewardConfig(train=str(tmp_path / "comps.jsonl"), out=str(tmp_path / "rm"), batch_size=5, **quiet),
        model=rm,
        tokenizer=TOK,
    )
    loaded = RewardModel.from_pretrained(path)  # a plain reward model: the trunk merged
    assert not torch.equal(loaded.head.weight, head["weight"])
    assert (Path(path) / ADAPTER_DIR / "reward_head.safetensors").exists()
    assert not hasattr(loaded.trunk, "peft_config")


def test_lora_without_peft_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r"textbandit\[lora\]"):
        LoraSettings(lora_r=4)
    assert LoraSettings().lora_r == 0  # LoRA off needs no peft
