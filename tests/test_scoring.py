"""``textbandit.layout``, ``textbandit.scoring`` and ``agents.sampling`` against unpadded, loop-based references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agents.ppo.functions import masked_mean
from agents.sampling import filter_logits, sample
from textbandit.layout import ends_with_eos, join, position_ids, response_mask
from textbandit.scoring import gather_logprobs, response_logprobs, rlhf_reward

PAD, EOS = 0, 1


def left_pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    P = max(map(len, rows))
    ids = torch.full((len(rows), P), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), P), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, P - len(r) :] = torch.tensor(r)
        mask[i, P - len(r) :] = 1
    return ids, mask


PROMPTS = [[3, 5, 9, 4, 20], [7], [4, 8, 12]]
RESPONSES = torch.tensor([[5, 6, EOS, 7, 8], [9, 9, 9, 9, 9], [EOS, 3, 3, 3, 3]])


def test_response_mask_and_ends_with_eos():
    assert response_mask(RESPONSES, EOS).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert ends_with_eos(RESPONSES, EOS).tolist() == [True, False, True]
    two_eos = torch.tensor([[EOS, EOS, 4]])  # only the first EOS counts
    assert response_mask(two_eos, EOS).tolist() == [[1, 0, 0]]


def test_position_ids_ignore_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 0, 0, 0, 0]]
    with_resp_pad = torch.tensor([[0, 1, 1, 1, 0, 0]])  # right padding after the EOS: positions stay put
    assert position_ids(with_resp_pad).tolist() == [[0, 0, 1, 2, 2, 2]]


def test_join_pads_after_the_eos_and_masks_it():
    prompt_ids, prompt_mask = left_pad(PROMPTS)
    rmask = response_mask(RESPONSES, EOS)
    ids, attn, pos = join(prompt_ids, prompt_mask, RESPONSES, rmask, PAD)
    P = prompt_ids.shape[1]
    assert ids[0, P:].tolist() == [5, 6, EOS, PAD, PAD]
    assert ids[2, P:].tolist() == [EOS, PAD, PAD, PAD, PAD]
    assert attn.tolist() == torch.cat([prompt_mask, rmask], dim=1).tolist()
    assert pos[1].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 4, 5]
    assert pos[0, : P + 3].tolist() == list(range(P + 3))


def test_gather_logprobs_by_hand():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[1, 6, 0], [3, 3, 2]])
    for temperature in (1.0, 0.5):
        got = gather_logprobs(logits, tokens, temperature)
        for n in range(2):
            for t in range(3):
                z = logits[n, t] / temperature
                expected = z[tokens[n, t]] - torch.logsumexp(z, dim=0)
                assert got[n, t].item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_response_logprobs_under_left_padding_equal_an_unpadded_loop(reference, temperature):
    prompt_ids, prompt_mask = left_pad(PROMPTS)
    rmask = response_mask(RESPONSES, EOS)
    got = response_logprobs(reference, prompt_ids, prompt_mask, RESPONSES, rmask, temperature, PAD)
    assert got.shape == RESPONSES.shape
    for i, prompt in enumerate(PROMPTS):
        n = int(rmask[i].sum())
        resp = RESPONSES[i, :n].tolist()
        with torch.no_grad():
            logits = reference(input_ids=torch.tensor([prompt + resp])).logits[0]
        logp = F.log_softmax(logits / temperature, dim=-1)
        for t in range(RESPONSES.shape[1]):
            expected = logp[len(prompt) + t - 1, resp[t]].item() if t < n else 0.0
            assert got[i, t].item() == pytest.approx(expected, abs=1e-5), (i, t)


def test_masked_mean():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 5.0, 7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert masked_mean(x, mask).item() == pytest.approx((1 + 2 + 3 + 5 + 7) / 5)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 5.0])
    assert masked_mean(x, torch.zeros_like(mask), dim=1).tolist() == [0.0, 0.0]  # empty rows are 0, not NaN


# --- the sampler --------------------------------------------------------------------------------


def greedy_unpadded(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding of one unpadded prompt by full forwards (no cache), cut at the first EOS."""
    ids, out = list(prompt), []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        out.append(token)
        ids.append(token)
        if token == EOS:
            break
    return out + [PAD] * (max_new_tokens - len(out))


def test_greedy_on_padded_prompts_equals_greedy_on_unpadded(reference):
    prompt_ids, prompt_mask = left_pad(PROMPTS)
    got = sample(reference, prompt_ids, prompt_mask, 8, EOS, PAD, temperature=0)
    for i, prompt in enumerate(PROMPTS):
        assert got[i].tolist() == greedy_unpadded(reference, prompt, 8), i


class EosAfter(torch.nn.Module):
    """A fake LM that emits token 5 until position ``k`` of row ``i`` and EOS there (deterministic)."""

    def __init__(self, stops: list[int], vocab: int = 10):
        super().__init__()
        self.stops, self.vocab = stops, vocab
        self.config = type("C", (), {"vocab_size": vocab})()

    def forward(self, input_ids, attention_mask, position_ids, use_cache=True, past_key_values=None):
        n, T = input_ids.shape
        seen = attention_mask.sum(dim=1)  # tokens so far, prompt included
        logits = torch.zeros(n, T, self.vocab)
        for i in range(n):
            logits[i, -1, EOS if seen[i] >= self.stops[i] else 5] = 10.0
        return type("Out", (), {"logits": logits, "past_key_values": None})()


def test_sampling_stops_at_eos_and_pads_after():
    prompt_ids, prompt_mask = left_pad([[3, 4], [3]])
    lm = EosAfter(stops=[4, 2])  # row 0: EOS once 4 tokens are seen; row 1: at once
    got = sample(lm, prompt_ids, prompt_mask, 6, EOS, PAD, temperature=0)
    assert got.tolist() == [[5, 5, EOS, PAD, PAD, PAD], [5, EOS, PAD, PAD, PAD, PAD]]
    sampled = sample(
        lm, prompt_ids, prompt_mask, 6, EOS, PAD, temperature=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert sampled.tolist() == got.tolist()  # a 10-logit gap: sampling is all but greedy


def test_top_k_1_equals_greedy(reference):
    prompt_ids, prompt_mask = left_pad(PROMPTS)
    greedy = sample(reference, prompt_ids, prompt_mask, 8, EOS, PAD, temperature=0)
    for seed in range(3):
        top1 = sample(
            reference,
            prompt_ids,
            prompt_mask,
            8,
            EOS,
            PAD,
            temperature=1.3,
            top_k=1,
            generator=torch.Generator().manual_seed(seed),
        )
        assert top1.tolist() == greedy.tolist()


def test_sampling_is_reproducible_with_a_generator(reference):
    prompt_ids, prompt_mask = left_pad(PROMPTS)
    a = sample(reference, prompt_ids, prompt_mask, 8, EOS, PAD, generator=torch.Generator().manual_seed(4))
    b = sample(reference, prompt_ids, prompt_mask, 8, EOS, PAD, generator=torch.Generator().manual_seed(4))
    assert a.tolist() == b.tolist()
    mask = response_mask(a, EOS)
    assert (a[mask == 0] == PAD).all()  # after the first EOS: padding


def test_top_p_filtering_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()[:, [2, 0, 3, 1]]  # shuffled: [0.15, 0.5, 0.05, 0.3]
    # sorted 0.5, 0.3, 0.15, 0.05: mass before each = 0, 0.5, 0.8, 0.95
    kept = lambda p: torch.isfinite(filter_logits(logits, top_p=p))[0].tolist()  # noqa: E731
    assert kept(0.5) == [False, True, False, False]  # 0.5 alone reaches 0.5
    assert kept(0.6) == [False, True, False, True]
    assert kept(0.8) == [False, True, False, True]
    assert kept(0.81) == [True, True, False, True]
    assert kept(0.99) == [True, True, True, True]
    assert kept(0.01) == [False, True, False, False]  # at least one token survives
    top2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(top2)[0].tolist() == [False, True, False, True]
    kept_logits = filter_logits(logits, top_p=0.6)
    assert kept_logits[0, 1] == logits[0, 1]  # survivors keep their logits


def test_draw_follows_the_probabilities_and_never_draws_a_zero():
    from agents.sampling import draw

    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.0, 0.0, 0.0, 1.0], [2.0, 0.0, 0.0, 2.0]])  # row 3 unnormalised
    draws = torch.stack([draw(probs, g) for _ in range(20000)])  # (20000, 3)
    freq = torch.stack([torch.bincount(draws[:, r], minlength=4) for r in range(3)]).double() / len(draws)
    expected = probs / probs.sum(dim=1, keepdim=True)
    assert (freq[expected == 0] == 0).all()
    # binomial standard error at p=0.5, n=20000 is 0.0035: 5 sigma
    torch.testing.assert_close(freq, expected.double(), atol=0.018, rtol=0)


def test_rlhf_reward_against_a_loop_over_tokens():
    torch.manual_seed(0)
    scores = torch.randn(3)
    logprobs, ref = -torch.rand(3, 5), -torch.rand(3, 5)
    mask = response_mask(RESPONSES, EOS)
    r = rlhf_reward(scores, logprobs, ref, mask, kl_coef=0.2)
    for i in range(3):
        n = int(mask[i].sum())
        kl = [float(logprobs[i, t] - ref[i, t]) for t in range(n)]
        expected = [-0.2 * k for k in kl] + [0.0] * (5 - n)
        expected[n - 1] += float(scores[i])  # the score lands on the last response token (the EOS)
        assert r.token_rewards[i].tolist() == pytest.approx(expected, abs=1e-6)
        assert r.kl[i].item() == pytest.approx(sum(kl), abs=1e-6)
        assert r.reward[i].item() == pytest.approx(float(scores[i]) - 0.2 * sum(kl), abs=1e-6)
        assert r.token_kl[i, n:].abs().sum() == 0  # nothing after the end
    assert torch.allclose(r.token_rewards.sum(dim=1), r.reward, atol=1e-6)  # what GAE sums to, undiscounted
    zero = rlhf_reward(scores, logprobs, ref, mask, kl_coef=0.0)
    assert torch.equal(zero.reward, scores)
