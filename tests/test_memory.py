"""Memory options that must not change the numbers: log-probs in chunks of rows (the logits never
exist whole in float32), gradient checkpointing, frozen models in bf16 only on a GPU."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_lm, tiny_tokenizer  # noqa: E402

import textbandit.scoring as scoring  # noqa: E402
from agents.ppo import PolicyWithValueHead  # noqa: E402

TOK = tiny_tokenizer()
pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def batch(n=6, p=4, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, len(TOK), (n, p), generator=g)
    ids[0, :2] = TOK.pad_token_id  # a left-padded prompt
    resp = torch.randint(3, len(TOK), (n, length), generator=g)
    rmask = torch.ones_like(resp)
    rmask[1, 3:] = 0  # a response that ended early
    return ids, (ids != TOK.pad_token_id).long(), resp, rmask


def test_chunked_gather_logprobs_equals_the_whole_batch_with_gradients(monkeypatch):
    logits = torch.randn(5, 7, 11, requires_grad=True)
    tokens = torch.randint(0, 11, (5, 7))
    whole = scoring.gather_logprobs(logits, tokens, temperature=0.7)
    (grad_whole,) = torch.autograd.grad(whole.square().sum(), logits)
    monkeypatch.setattr(scoring, "LOGITS_CHUNK_ELEMENTS", 2 * 7 * 11)  # chunks of 2 rows
    assert scoring.rows_per_chunk(5, 7 * 11) == 2
    chunked = scoring.gather_logprobs(logits, tokens, temperature=0.7)
    (grad_chunked,) = torch.autograd.grad(chunked.square().sum(), logits)
    assert torch.equal(whole, chunked)  # row by row: the same numbers
    torch.testing.assert_close(grad_whole, grad_chunked, atol=1e-7, rtol=1e-6)


def test_policy_forward_in_chunks_equals_one_chunk(monkeypatch):
    policy = PolicyWithValueHead.from_pretrained(tiny_lm(len(TOK)), pad_token_id=TOK.pad_token_id).train()
    torch.nn.init.normal_(policy.value_head.weight)
    args = (*batch(), 0.8)

    def run():
        policy.zero_grad()
        lp, values, ent = policy(*args)
        (lp.sum() + values.square().sum() + ent.sum()).backward()
        return lp.detach(), ent.detach(), {n: p.grad.clone() for n, p in policy.named_parameters()}

    whole = run()
    monkeypatch.setattr(scoring, "LOGITS_CHUNK_ELEMENTS", 2 * 5 * len(TOK))  # 3 chunks of 2 rows
    chunked = run()
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])
    for name, grad in whole[2].items():
        torch.testing.assert_close(grad, chunked[2][name], atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_checkpointing_gives_the_same_gradients():
    from agents.common.scale import enable_gradient_checkpointing

    args = (*batch(), 1.0)
    grads = []
    for checkpointing in (False, True):
        policy = PolicyWithValueHead.from_pretrained(tiny_lm(len(TOK)), pad_token_id=TOK.pad_token_id).train()
        if checkpointing:
            enable_gradient_checkpointing(policy.lm)
        lp, _, _ = policy(*args)
        lp.sum().backward()
        grads.append({n: p.grad for n, p in policy.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], atol=1e-6, rtol=1e-5, msg=name)
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))


def test_frozen_models_are_bf16_on_a_gpu_only():
    from agents.common.scale import frozen_dtype

    assert frozen_dtype(torch.device("cpu"), True) is None
    assert frozen_dtype(torch.device("cuda", 0), True) is torch.bfloat16
    assert frozen_dtype(torch.device("cuda", 0), False) is None
