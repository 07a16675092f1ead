"""Hugging Face reward models in and out: a TRL-trained sequence classifier scores in the env as TRL's
own forward does; our reward models load in plain transformers with the same scores."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from tiny import PROMPTS, tiny_lm, tiny_tokenizer
from transformers import AutoModelForSequenceClassification, GPT2Config, LlamaConfig, LlamaForCausalLM

import textbandit  # noqa: F401
from textbandit.layout import collate
from textbandit.reward_model import RewardModel

L = 6


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def trl_reward_model(tmp_path_factory):
    """A reward model trained by TRL's RewardTrainer on a tiny GPT-2, saved as TRL saves it."""
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128, num_labels=1)
    config.pad_token_id = tok.pad_token_id
    config.bos_token_id = config.eos_token_id = tok.eos_token_id
    model = AutoModelForSequenceClassification.from_config(config)
    pairs = datasets.Dataset.from_list(
        [{"prompt": p + " ", "chosen": "the cat sees a fish .", "rejected": "dog dog dog"} for p in PROMPTS] * 2
    )
    out = tmp_path_factory.mktemp("trl_rm")
    args = trl.RewardConfig(
        output_dir=str(out),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok)
    trainer.train()
    trainer.save_model(str(out))
    return out, trainer.model.eval(), tok


def env_kwargs(tok, reward_model, **overrides):
    return dict(
        task=None,
        tokenizer=tok,
        reference_model=tiny_lm(len(tok)),
        reward_model=reward_model,
        prompts=list(PROMPTS),
        max_prompt_len=12,
        max_new_tokens=L,
        **overrides,
    )


def test_a_trl_reward_model_scores_in_the_env_as_trl_does(trl_reward_model):
    path, model, tok = trl_reward_model
    response = tok("the cat sees a fish .", add_special_tokens=False)["input_ids"][: L - 1] + [tok.eos_token_id]
    action = np.array(response + [tok.pad_token_id] * (L - len(response)))
    for reward_model in (str(path), model):  # a local path, or the object itself
        env = gym.make("TextBandit-v0", **env_kwargs(tok, reward_model))
        for i, prompt in enumerate(PROMPTS):
            env.reset(options={"prompt_index": i})
            info = env.step(action)[-1]
            ids = tok(prompt, add_special_tokens=False)["input_ids"] + response  # TRL's forward: one unpadded row
            with torch.no_grad():
                want = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
            assert info["score"] == pytest.approx(want, abs=1e-5), prompt
    envs = gym.make_vec("TextBandit-v0", num_envs=4, **env_kwargs(tok, str(path)))  # batched, left-padded rows
    envs.reset(seed=0, options={"prompt_indices": [0, 1, 2, 3]})
    scores = envs.step(np.stack([action] * 4))[-1]["final_info"]["score"]
    with torch.no_grad():
        want = [model(input_ids=torch.tensor([tok(p, add_special_tokens=False)["input_ids"] + response])).logits[0, 0]
                for p in PROMPTS[:4]]  # fmt: skip
    np.testing.assert_allclose(scores, torch.stack(want).numpy(), atol=1e-5)


def test_a_sequence_classifier_with_more_labels_is_refused(trl_reward_model):
    _, model, tok = trl_reward_model
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, num_labels=3, pad_token_id=0)
    three = AutoModelForSequenceClassification.from_config(config)
    with pytest.raises(ValueError, match="GPT2ForSequenceClassification with 3 labels; a reward model has one"):
        gym.make("TextBandit-v0", **env_kwargs(tok, three))
    causal = tiny_lm(len(tok))
    with pytest.raises(TypeError, match="reward_model must be"):
        gym.make("TextBandit-v0", **env_kwargs(tok, causal))


def rows(tok):
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    responses = [
        tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for r in ("a cat", "red", "one two")
    ]
    batch = collate(prompts[:3], responses, tok.pad_token_id)  # left-padded prompts, right-padded responses
    return batch.input_ids, batch.attention_mask, batch.position_ids


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_our_reward_model_loads_in_plain_transformers_with_the_same_scores(tmp_path, arch):
    tok = tiny_tokenizer()
    lm = tiny_lm(len(tok)) if arch == "gpt2" else tiny_llama(len(tok))
    rm = RewardModel.from_causal_lm(lm).eval()
    if arch == "gpt2":  # a normalised head: its bias goes into the final LayerNorm's bias, exactly
        rm.normalize_(0.7)
    ids, mask, pos = rows(tok)
    rm.save_pretrained(tmp_path / "rm", tok)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    assert (
        type(hf).__name__ == {"gpt2": "GPT2ForSequenceClassification", "llama": "LlamaForSequenceClassification"}[arch]
    )
    with torch.no_grad():
        ours, theirs = rm.score(ids, mask, pos), hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, 0]
        again = RewardModel.from_pretrained(tmp_path / "rm").score(ids, mask, pos)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    torch.testing.assert_close(again, ours, rtol=0, atol=1e-5)
    env = gym.make("TextBandit-v0", **env_kwargs(tok, str(tmp_path / "rm")))
    assert type(env.unwrapped.reward_model).__name__ == type(hf).__name__


def test_a_llama_head_bias_has_no_exact_export(tmp_path):
    """RMSNorm has no bias to fold the head's into: the older format, with a warning, or an error when asked for HF."""
    tok = tiny_tokenizer()
    rm = RewardModel.from_causal_lm(tiny_llama(len(tok))).eval()
    rm.normalize_(0.5)
    with pytest.raises(ValueError, match="final norm has no bias"):
        rm.save_pretrained(tmp_path / "hf", tok, format="hf")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rm.save_pretrained(tmp_path / "auto", tok)
    assert any("saving textbandit's own format" in str(w.message) for w in caught)
    assert (tmp_path / "auto" / "reward_head.safetensors").is_file()
    ids, mask, pos = rows(tok)
    assert torch.equal(RewardModel.from_pretrained(tmp_path / "auto").score(ids, mask, pos), rm.score(ids, mask, pos))


def test_the_older_format_still_loads(tmp_path):
    tok = tiny_tokenizer()
    rm = RewardModel.from_causal_lm(tiny_lm(len(tok))).eval()
    rm.normalize_(-0.3)
    rm.save_pretrained(tmp_path / "old", tok, format="textbandit")
    env = gym.make("TextBandit-v0", **env_kwargs(tok, str(tmp_path / "old")))
    assert isinstance(env.unwrapped.reward_model, RewardModel)
    ids, mask, pos = rows(tok)
    assert torch.equal(env.unwrapped.reward_model.score(ids, mask, pos), rm.score(ids, mask, pos))
