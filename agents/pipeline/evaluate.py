"""Evaluation on held-out customers: what the report's tables and plots are made of.

Every preference here is the task's gold labeler (ties count half) or, for the Elo ratings, its
noisy simulated labelers; the agents never saw either. The gold labeler is fixed before any run
and never tuned to the agents' output.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from agents.common.lm import blocks, perplexity
from agents.pipeline.labeling import gold_lists
from agents.pipeline.metrics import mean_by, rouge_l, sentence_bleu, win_interval, win_rate
from agents.pipeline.rating import bradley_terry, pairs_from_ranking
from agents.pipeline.samples import Samples, sample_and_score
from textbandit.task import DefaultTask, Instruction, measure_agreement
from textbandit.task.demonstrator import demonstrate
from textbandit.vector_env import TextBanditVectorEnv

SFT_AGAIN = "sft_again"  # a second, independent draw of the SFT model's samples: the noise floor


def corpus_loss(model, tokenizer, texts: list[str], n_positions: int, device) -> float:
    """Mean next-token loss (nats/token) on held-out pretraining text: the alignment tax's measure."""
    data = blocks(texts, tokenizer, n_positions).to(device)
    return math.log(perplexity(model, data))


def _context(model, cap: int = 64) -> int:
    config = model.config
    return min(cap, getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", cap))


def references(task, prompt_records: list[dict], seed: int) -> list[str]:
    """The demonstrator's careful answer to each prompt (for BLEU/ROUGE only; kinds it does not
    demonstrate get one written all the same, as an n-gram reference)."""
    rng = np.random.default_rng([seed, 77])
    return [demonstrate(Instruction(r["kind"], r["params"]), rng) for r in prompt_records]


def elo_ratings(pool, samples: dict[str, Samples], seed: int) -> dict[str, float]:
    """Bradley-Terry (Elo-scale) ratings of the models from simulated labelers' rankings of
    the models' responses to each prompt (one labeler, drawn at random, per prompt)."""
    rng = np.random.default_rng([seed, 78])
    names = list(samples)
    comparisons = []
    for i in range(len(samples[names[0]].prompts)):
        gold = [float(samples[m].gold[i]) for m in names]
        comparisons += pairs_from_ranking(names, pool.rank(gold, rng))
    return bradley_terry(comparisons)


def labeler_agreement(task, pool, comparison_records: list[dict], seed: int) -> float:
    """Measured agreement of two labelers of ``pool`` on the pairs of held-out comparisons."""
    return measure_agreement(pool, gold_lists(task, comparison_records), np.random.default_rng([seed, 79]), rounds=5)


def evaluate_models(
    task: DefaultTask,
    models: dict[str, torch.nn.Module],
    n_prompts: int,
    seed: int,
    pool=None,
    device: str = "cpu",
    temperature: float = 1.0,
    batch_size: int = 64,
) -> dict:
    """Sample each model on the same ``n_prompts`` test prompts and measure everything per model.

    ``task``: the run's task with its reward model and SFT reference (the env judges the test
    prompts with them and with the task's gold labeler); ``pool``: the labelers of the Elo
    ratings (default: the task's). Returns ``{"samples", "models", "per_kind", "ngram"}``.
    """
    records = task.prompt_records("test")
    idx = eval_indices(len(records), n_prompts, seed)
    envs = TextBanditVectorEnv(num_envs=min(batch_size, len(idx)), task=task, split="test", device=device)
    device = envs.device
    # each model's samples are drawn independently (their own seed), so a win rate carries the
    # sampling noise of both sides; SFT is drawn twice, and the second draw against the first is
    # the noise floor every other win rate is read against
    samples = {
        name: sample_and_score(envs, m.to(device), idx, temperature, seed=model_seed(seed, name))
        for name, m in models.items()
    }
    if "sft" in models:
        samples[SFT_AGAIN] = sample_and_score(envs, models["sft"], idx, temperature, seed=model_seed(seed, SFT_AGAIN))

    refs = references(task, [records[i] for i in idx], seed)
    kinds = [records[i]["kind"] for i in idx]
    corpus = task.corpus()["validation"][:400]
    tokenizer = envs.tokenizer
    per_model, per_kind, bleu_all, rouge_all, gold_all = {}, {}, [], [], []
    for name, s in ((n, s) for n, s in samples.items() if n in models):
        bleu = [sentence_bleu(h, r) for h, r in zip(s.responses, refs)]
        rouge = [rouge_l(h, r) for h, r in zip(s.responses, refs)]
        bleu_all += bleu
        rouge_all += rouge
        gold_all += list(s.gold)
        model = models[name]
        per_model[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            **s.summary(),
            "corpus_loss": corpus_loss(model, tokenizer, corpus, _context(model), device),
            "bleu": float(np.mean(bleu)),
            "rouge_l": float(np.mean(rouge)),
        }
        for kind, g in mean_by(kinds, s.gold).items():
            per_kind.setdefault(kind, {})[name] = g
    for name, rating in elo_ratings(pool or task.labelers(), {n: samples[n] for n in models}, seed).items():
        per_model[name]["elo"] = rating
    return {
        "samples": samples,
        "models": per_model,
        "per_kind": per_kind,
        "ngram": {"corr_bleu_gold": _corr(bleu_all, gold_all), "corr_rouge_gold": _corr(rouge_all, gold_all)},
    }


def eval_indices(n_records: int, n_prompts: int, seed: int) -> np.ndarray:
    """The test prompts the report judges every model on: ``n_prompts`` of ``n_records`` (at most
    all), drawn with ``seed``, in order."""
    return np.sort(np.random.default_rng([seed, 80]).choice(n_records, size=min(n_prompts, n_records), replace=False))


def _corr(a: list[float], b: list[float]) -> float | None:
    """Pearson correlation, or None where one side is constant."""
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def pairwise_wins(samples: dict[str, Samples], pairs: dict[str, tuple[str, str]], seed: int = 0) -> dict[str, dict]:
    """Gold win rates of the named model pairs present in ``samples``: ``{label: {"win_rate": w,
    "ci95": [low, high]}}``, the interval a paired bootstrap over the prompts."""
    return {
        label: {
            "win_rate": win_rate(samples[a].gold, samples[b].gold),
            "ci95": list(win_interval(samples[a].gold, samples[b].gold, seed)),
        }
        for label, (a, b) in pairs.items()
        if a in samples and b in samples
    }


def model_seed(seed: int, name: str) -> int:
    """The sampling seed of one model's evaluation samples: distinct per (seed, model name)."""
    return int(np.random.SeedSequence([seed, 82, zlib.crc32(name.encode())]).generate_state(1)[0])
