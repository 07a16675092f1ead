"""agents.reward and textbandit.reward_model: the ranking loss, padding, training, collection, errors."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from agents.reward import (
    RewardConfig,
    collect_comparisons,
    kwise_ranking_loss,
    pairwise_loss,
    ranked_pairs,
    train_reward_model,
)
from agents.reward.__main__ import main as reward_main
from tests.tiny import PROMPTS, tiny_lm, tiny_tokenizer
from textbandit.data import DataFormatError, load_comparisons
from textbandit.layout import collate
from textbandit.reward_model import RewardModel


def test_ranking_loss_equals_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    ks = [4, 9, 5, 2]
    rankings = [[0, 1, 1, 3], list(range(9))[::-1], [2, 0, 2, 1, 4], [1, 0]]  # ties in the first and third
    kmax = max(ks)
    scores = torch.randn(len(ks), kmax, generator=g)
    ranks = torch.zeros(len(ks), kmax, dtype=torch.long)
    valid = torch.zeros(len(ks), kmax, dtype=torch.bool)
    for b, r in enumerate(rankings):
        ranks[b, : len(r)] = torch.tensor(r)
        valid[b, : len(r)] = True
    losses, n_pairs, n_correct = kwise_ranking_loss(scores, ranks, valid)
    for b, r in enumerate(rankings):
        total, count, correct = 0.0, 0, 0
        for i, j in itertools.combinations(range(len(r)), 2):
            if r[i] == r[j]:
                continue  # ties are skipped as pairs
            win, lose = (i, j) if r[i] < r[j] else (j, i)
            total += -math.log(1 / (1 + math.exp(-(scores[b, win] - scores[b, lose]).item())))
            count += 1
            correct += int(scores[b, win] > scores[b, lose])
        assert n_pairs[b] == count == len(ranked_pairs(r))
        assert n_correct[b] == correct
        assert losses[b].item() == pytest.approx(total / count, rel=1e-5)
    assert n_pairs[1] == math.comb(9, 2)  # no ties: all C(K,2) pairs


def test_k2_equals_pairwise_loss():
    chosen, rejected = torch.randn(6), torch.randn(6)
    losses, _, _ = kwise_ranking_loss(torch.stack([chosen, rejected], 1), torch.tensor([[0, 1]] * 6))
    assert losses.mean().item() == pytest.approx(pairwise_loss(chosen, rejected).item(), rel=1e-6)
    # order within the comparison does not matter
    swapped, _, _ = kwise_ranking_loss(torch.stack([rejected, chosen], 1), torch.tensor([[1, 0]] * 6))
    assert torch.allclose(losses, swapped)


@pytest.mark.parametrize("weighting", ["prompt", "pair"])
def test_kwise_step_loss_weighs_prompts_or_pairs(tmp_path, weighting):
    """A step of K-wise comparisons of K = 2, 4 and 6 (ties in one): 'prompt' weighting is the mean
    of each comparison's mean pair loss (the paper), 'pair' the mean over all the step's pairs (what
    'pairs' batching and TRL compute), whatever the micro-batches."""
    from agents.reward.data import Comparison
    from agents.reward.trainer import _micro_loss, _step_size

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    rm = RewardModel.from_causal_lm(tiny_lm(len(tok))).eval()
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    words = "the a dog bird cat sees likes eats red blue".split()
    rankings = [[1, 0], [0, 1, 1, 2], [5, 4, 3, 2, 1, 0]]
    comps = [
        Comparison(
            enc(PROMPTS[i]), [enc(" ".join(words[j : j + 2 + i])) + [tok.eos_token_id] for j in range(len(r))], r
        )
        for i, r in enumerate(rankings)
    ]
    pair_losses = []  # per comparison, a loop over its pairs with each response scored alone
    with torch.no_grad():
        for c in comps:
            alone = [collate([c.prompt], [x], tok.pad_token_id) for x in c.responses]
            score = [rm.score(b.input_ids, b.attention_mask, b.position_ids).item() for b in alone]
            pair_losses.append([math.log1p(math.exp(-(score[w] - score[lo]))) for w, lo in ranked_pairs(c.ranking)])
    if weighting == "prompt":
        expected = sum(sum(x) / len(x) for x in pair_losses) / len(comps)
    else:
        expected = sum(map(sum, pair_losses)) / sum(map(len, pair_losses))
    cfg = RewardConfig(train="t.jsonl", out=str(tmp_path), kwise_weighting=weighting)
    size = _step_size(comps, cfg)
    assert size == (3 if weighting == "prompt" else 1 + 5 + 15)  # [0, 1, 1, 2]: the tie forms no pair
    with torch.no_grad():
        whole, _ = _micro_loss(rm, comps, cfg, tok.pad_token_id, "cpu", size)
        split = [_micro_loss(rm, part, cfg, tok.pad_token_id, "cpu", size)[0] for part in (comps[:2], comps[2:])]
    assert whole.item() == pytest.approx(expected, rel=1e-5)
    assert sum(split).item() == pytest.approx(expected, rel=1e-5)


def test_kwise_weighting_is_checked(tmp_path):
    with pytest.raises(ValueError, match="kwise_weighting='pairs'.*'prompt'.*'pair'"):
        RewardConfig(train="t.jsonl", out=str(tmp_path), kwise_weighting="pairs")


def test_padded_completion_scores_as_unpadded():
    tok = tiny_tokenizer()
    rm = RewardModel.from_causal_lm(tiny_lm(len(tok))).eval()
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    short_p, short_r = enc("say one"), enc("one") + [tok.eos_token_id]
    long_p, long_r = enc("the big dog eats a red fish ."), enc("the dog likes the fish , two fish") + [tok.eos_token_id]
    with torch.no_grad():
        alone = collate([short_p], [short_r], tok.pad_token_id)
        both = collate([short_p, long_p], [short_r, long_r], tok.pad_token_id)
        assert both.attention_mask[0].sum() < both.attention_mask.shape[1]  # padded on both sides
        a = rm.score(alone.input_ids, alone.attention_mask)
        b = rm.score(both.input_ids, both.attention_mask)
    # equal up to float rounding: a batch of another shape may take other matmul kernels (on an
    # AVX512 CPU the two differ by 7e-9); reading the wrong token or a pad would move it by ~0.1
    torch.testing.assert_close(b[0], a[0], rtol=0, atol=1e-6)


def test_head_init_save_load_and_normalize(tmp_path):
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    rm = RewardModel.from_causal_lm(tiny_lm(len(tok), n_embd=64))
    assert rm.head.bias.item() == 0.0
    # N(0, initializer_range), as transformers initialises AutoModelForSequenceClassification's head
    assert rm.head.weight.std().item() == pytest.approx(rm.config.initializer_range, rel=0.3)
    rm.normalize_(0.25)
    assert rm.head.bias.item() == -0.25
    rm.save_pretrained(tmp_path / "rm", tokenizer=tok)  # a Hugging Face sequence classifier, the bias folded in
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    ids, mask = torch.tensor([[0, 5, 6, 1]]), torch.tensor([[0, 1, 1, 1]])
    torch.testing.assert_close(loaded.score(ids, mask), rm.eval().score(ids, mask), rtol=0, atol=1e-6)
    from transformers import AutoModel

    assert type(AutoModel.from_pretrained(tmp_path / "rm")).__name__ == "GPT2Model"  # its trunk loads alone too
    rm.save_pretrained(tmp_path / "old", tokenizer=tok, format="textbandit")  # the older format: bit for bit
    assert (tmp_path / "old" / "reward_head.safetensors").is_file()
    assert torch.equal(RewardModel.from_pretrained(tmp_path / "old").score(ids, mask), rm.score(ids, mask))


# --- training on a toy preference: responses that mention "cat" win --------------------------


def _comparisons(n, k, seed=0):
    import random

    rng = random.Random(seed)
    words = "the a dog bird sees likes eats red blue big small fish tree".split()
    recs = []
    for i in range(n):
        responses, ranking = [], []
        for j in range(k):
            body = [rng.choice(words) for _ in range(rng.randint(2, 5))]
            has_cat = j < k // 2
            if has_cat:
                body.insert(rng.randint(0, len(body)), "cat")
            responses.append(" ".join(body))
            ranking.append(0 if has_cat else 1)  # ties within each group
        recs.append({"prompt": PROMPTS[i % len(PROMPTS)], "responses": responses, "ranking": ranking})
    return recs


def _write(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


def _config(tmp_path, out, **kw):
    base = dict(
        train=_write(tmp_path / "train.jsonl", _comparisons(48, 4)),
        val=_write(tmp_path / "val.jsonl", _comparisons(16, 4, seed=1)),
        out=str(tmp_path / out),
        batch_size=8,
        lr=3e-3,
        epochs=3,
        device="cpu",
        progress=False,
        tensorboard=False,
    )
    return RewardConfig(**{**base, **kw})


def test_training_learns_a_toy_preference_and_normalizes(tmp_path):
    tok = tiny_tokenizer()
    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps({"prompt": p, "response": "the cat"}) + "\n" for p in PROMPTS))
    path = train_reward_model(_config(tmp_path, "rm", normalize_with=str(demos)), tiny_lm(len(tok)), tok)
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert summary["val"]["accuracy"] > 0.9, summary
    assert summary["forwards_per_comparison"] == 4.0  # K forwards per comparison
    rm = RewardModel.from_pretrained(path)
    from agents.reward.data import mean_score

    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    m = mean_score(
        rm, [enc(p) for p in PROMPTS], [enc("the cat") + [tok.eos_token_id] for _ in PROMPTS], tok.pad_token_id, "cpu"
    )
    assert abs(m) < 1e-5


def test_pairs_batching_forwards_two_per_pair(tmp_path):
    tok = tiny_tokenizer()
    train_reward_model(_config(tmp_path, "pairs", batching="pairs", epochs=1), tiny_lm(len(tok)), tok)
    summary = json.loads((tmp_path / "pairs" / "summary.json").read_text())
    assert summary["forwards_per_comparison"] == 2 * 4  # 4 non-tied pairs per comparison (2 winners x 2 losers)


def test_stop_and_resume_ends_where_an_unbroken_run_ends(tmp_path):
    tok = tiny_tokenizer()
    full = train_reward_model(_config(tmp_path, "full", epochs=2), tiny_lm(len(tok)), tok)
    train_reward_model(_config(tmp_path, "broken", epochs=2, stop_after=8), tiny_lm(len(tok)), tok)
    resumed = train_reward_model(
        _config(tmp_path, "broken", epochs=2, resume_from=str(tmp_path / "broken" / "checkpoint")),
        tiny_lm(len(tok)),
        tok,
    )
    a, b = RewardModel.from_pretrained(full).state_dict(), RewardModel.from_pretrained(resumed).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("full", "broken")]
    assert summaries[0]["val_history"] == summaries[1]["val_history"] and len(summaries[0]["val_history"]) == 2


def test_malformed_comparison_file_names_the_line(tmp_path):
    tok = tiny_tokenizer()
    recs = _comparisons(3, 4)
    recs[1]["ranking"] = [0, 1]  # wrong length on line 2
    cfg = _config(tmp_path, "bad", train=_write(tmp_path / "bad.jsonl", recs))
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:2:.*ranking"):
        train_reward_model(cfg, tiny_lm(len(tok)), tok)


def test_collect_writes_kwise_comparisons(tmp_path):
    tok = tiny_tokenizer()
    seen = []

    def rank_by_length(prompt, responses, ended):
        seen.append(len(responses))
        return [sorted(len(r) for r in responses).index(len(r)) for r in responses]  # shortest best, ties share

    collect_comparisons(
        tiny_lm(len(tok)),
        tok,
        [{"prompt": p, "customer": 3} for p in PROMPTS],
        (4, 9),
        rank_by_length,
        tmp_path / "c.jsonl",
        max_new_tokens=6,
        batch_size=16,
        progress=False,
    )
    loaded = load_comparisons(tmp_path / "c.jsonl")
    assert len(loaded) == len(PROMPTS) and all(4 <= k <= 9 for k in seen)
    for r in loaded:
        assert r["customer"] == 3 and len(r["responses"]) == len(r["ranking"]) == len(r["ended_with_eos"])
    with pytest.raises(ValueError, match="k_min"):
        collect_comparisons(tiny_lm(len(tok)), tok, PROMPTS, (5, 3), rank_by_length)


def test_cli(tmp_path):
    tok = tiny_tokenizer()
    (tmp_path / "sft").mkdir()
    tiny_lm(len(tok)).save_pretrained(tmp_path / "sft")
    tok.save_pretrained(tmp_path / "sft")
    out = reward_main(
        [
            "--model",
            str(tmp_path / "sft"),
            "--train",
            _write(tmp_path / "t.jsonl", _comparisons(8, 3)),
            "--out",
            str(tmp_path / "cli"),
            "--device",
            "cpu",
            "--progress",
            "false",
        ]
    )
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["architectures"] == ["GPT2ForSequenceClassification"] and out == str(tmp_path / "cli")
    with pytest.raises(SystemExit):
        reward_main(["--train", "x.jsonl", "--out", "o", "--batching", "random"])


def test_collect_cli_with_the_default_tasks_labelers(tmp_path):
    task_mod = pytest.importorskip("textbandit.task")
    if not (task_mod.DEFAULT_DIR / "labelers.json").is_file():
        pytest.skip("the shipped default task is not built")
    from agents.reward.collect import main as collect_main

    task = task_mod.load_task("default")
    tok = task.load_tokenizer()
    model_dir = tmp_path / "sft"
    tiny_lm(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in task.prompt_records("validation")[:3]))
    collect_main(
        [
            "--model",
            str(model_dir),
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "c.jsonl"),
            "--task",
            str(task.path),
            "--k-min",
            "2",
            "--k-max",
            "3",
            "--max-new-tokens",
            "4",
        ]
    )
    recs = load_comparisons(tmp_path / "c.jsonl")
    assert len(recs) == 3 and all(2 <= len(r["responses"]) <= 3 and "customer" in r for r in recs)
    assert all(sorted(r["ranking"]) == list(range(len(r["ranking"]))) for r in recs)  # labelers never tie


def test_dropout_zero_turns_off_every_dropout_of_the_reward_model(tmp_path):
    from agents.common.dropout import dropout_sites, has_dropout
    from agents.reward.trainer import _load

    tok = tiny_tokenizer()
    sft = tiny_lm(len(tok))
    sft.config.resid_pdrop = sft.config.embd_pdrop = sft.config.attn_pdrop = 0.1
    sft = type(sft)(sft.config)  # an SFT model with GPT-2's usual dropouts
    rm = _load(_config(tmp_path, "rm", dropout=0.0), sft)
    assert dropout_sites(rm) and not has_dropout(rm)  # residual, embedding and attention dropout all off
    ids = torch.arange(3, 11).view(2, 4)
    mask = torch.ones_like(ids)
    rm.train()
    torch.testing.assert_close(rm.score(ids, mask), rm.score(ids, mask), rtol=0, atol=0)
    kept = _load(_config(tmp_path, "rm2", dropout=None), sft)
    assert has_dropout(kept)  # None keeps the SFT model's
