"""What can the reward model learn? Probes on the comparisons of a pipeline run.

The quick preset's reward model agrees with held-out rankings far less often than labelers
agree with each other. This script asks why, by training the same reward model (the run's SFT
model plus a scalar head, the run's RM settings) on the same sampled responses with the labels
replaced:

- ``labelers``: the run's own labels (one simulated labeler per comparison);
- ``gold``: the hidden gold score's ordering, equal gold scores tied (no label noise at all);
- probes with a known answer, each a ranking by one feature of the response:
  ``length`` (words), ``animal`` (holds an animal word: a category, whatever the prompt),
  ``on_topic`` (holds a word of the topic the prompt names: the category must be matched to
  the prompt), ``has_word`` (holds the word the prompt names: for avoid-word prompts),
  ``has_category`` (holds a word of the category the prompt names: include, start, end and list
  prompts).

Each is scored on the held-out customers' comparisons against the same kind of label. If the
model learns prompt-independent features (length, category) almost perfectly but not the
prompt-dependent ones, the limit is binding the instruction to the response, which is what the
gold score asks for most often.

``--minimal-pairs N`` asks whether that binding can be learned at all: N clean pairs for
``include a color`` prompts, a careful demonstration holding a color against the same text with
each color swapped for another adjective (a size or a quality, so the pair differs in nothing
else), held out on 400 pairs of other draws (``--held-out``). (Before the task's include prompts
named a category they named a word, ``include the word W``, and the pairs swapped W.) If the same
reward model learns them from enough pairs, the limit on the run's comparisons is how much of that
signal they hold, not what the model can represent.

    python benchmarks/rm_probes.py --run runs/quick            # about 3 minutes on 2 cores
    python benchmarks/rm_probes.py --run runs/quick --labels --minimal-pairs 2000 --epochs 4 --lr 1e-3

What it measured is in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from agents.reward.config import RewardConfig
from agents.reward.data import encode_comparisons, evaluate
from agents.reward.trainer import train_reward_model
from textbandit.data import load_comparisons, write_jsonl
from textbandit.reward_model import RewardModel
from textbandit.task import language as L
from textbandit.task.demonstrator import demonstrate
from textbandit.task.gold import gold_score
from textbandit.task.instructions import TOPIC_WORDS, Instruction, parse, render

PROBES = {
    "length": lambda ins, words: len(words),
    "animal": lambda ins, words: float(any(w in L.ANIMALS for w in words)),
    "on_topic": lambda ins, words: float(any(w in TOPIC_WORDS[ins.params["topic"]] for w in words)),
    "has_word": lambda ins, words: float(ins.params["word"] in words),
    "has_category": lambda ins, words: float(any(w in L.CATEGORIES[ins.params["category"]] for w in words)),
}
NEEDS = {"on_topic": "topic", "has_word": "word", "has_category": "category"}  # the prompt parameter a probe needs


def ranking(values) -> list[int]:
    """Rank 0 = best; equal values share a rank (a tie)."""
    levels = sorted(set(np.round(values, 9)), reverse=True)
    return [levels.index(v) for v in np.round(values, 9)]


def relabel(records: list[dict], label: str) -> list[dict]:
    out = []
    for r in records:
        if label == "labelers":
            out.append(r)
            continue
        ins = parse(r["prompt"])
        if label in NEEDS and NEEDS[label] not in ins.params:
            continue
        ended = r.get("ended_with_eos") or [True] * len(r["responses"])
        if label == "gold":
            values = [gold_score(ins, x, e) for x, e in zip(r["responses"], ended)]
        else:
            values = [PROBES[label](ins, x.split()) for x in r["responses"]]
        out.append({**r, "ranking": ranking(values)})
    return out


def minimal_pairs(n: int, seed: int) -> list[dict]:
    """``n`` comparisons of two responses to an ``include a color`` prompt that differ only in the
    colors: a careful demonstration holding a color (ranked first) and the same text with each
    color swapped for one other adjective, a size or a quality (both stay grammatical). Which of
    the two is listed first is random."""
    rng = np.random.default_rng(seed)
    colors, others = set(L.COLORS), sorted(L.SIZES + L.QUALITIES)
    out = []
    while len(out) < n:
        topic = str(L.TOPICS[int(rng.integers(len(L.TOPICS)))])
        ins = Instruction("include_word", {"topic": topic, "category": "colors"})
        good = demonstrate(ins, rng, very_rate=0.0).split()
        if "orange" in good:  # a food as well as a color: swapping it could break the grammar
            continue
        swap = others[int(rng.integers(len(others)))]
        pair = [" ".join(good), " ".join(swap if w in colors else w for w in good)]
        first = int(rng.integers(2))  # 0: the one holding the color is listed first
        out.append(
            {"prompt": render(ins), "responses": pair if first == 0 else pair[::-1], "ranking": [first, 1 - first]}
        )
    return out


def probe(run: Path, label: str, work: Path, epochs: int, lr: float, n_pairs: int = 0, held_out: int = 400) -> dict:
    comparisons = run / "comparisons"
    if label == "minimal_pairs":
        write_jsonl(work / f"{label}_train.jsonl", minimal_pairs(n_pairs, seed=1))
        write_jsonl(work / f"{label}_validation.jsonl", minimal_pairs(held_out, seed=2))
    else:
        for split in ("train", "validation"):
            records = relabel(load_comparisons(comparisons / f"{split}.jsonl"), label)
            write_jsonl(work / f"{label}_{split}.jsonl", records)
    return fit(run / "sft_small", work, label, epochs, lr)


def fit(model: Path, work: Path, label: str, epochs: int, lr: float) -> dict:
    """Train the reward model from ``model`` on ``work/{label}_train.jsonl``; its accuracy on the
    training comparisons (the first 400: can it fit them?) and on the held-out ones."""
    from transformers import AutoTokenizer

    cfg = RewardConfig(
        model=str(model),
        train=str(work / f"{label}_train.jsonl"),
        val=str(work / f"{label}_validation.jsonl"),
        epochs=epochs,
        lr=lr,
        max_prompt_len=32,
        max_response_len=24,
        seed=0,
        device="cpu",
        progress=False,
        tensorboard=False,
        out=str(work / label),
    )
    train_reward_model(cfg)
    rm, tok = RewardModel.from_pretrained(cfg.out), AutoTokenizer.from_pretrained(cfg.out)
    train = evaluate(rm, encode_comparisons(load_comparisons(cfg.train)[:400], tok, 32, 24), tok.pad_token_id, "cpu")
    m = evaluate(rm, encode_comparisons(load_comparisons(cfg.val), tok, 32, 24), tok.pad_token_id, "cpu")
    return {"label": label, "accuracy": m["accuracy"], "pairs": m["pairs"], "train_accuracy": train["accuracy"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/quick", help="a finished `textbandit pipeline` output folder")
    p.add_argument("--labels", nargs="*", default=["labelers", "gold", *PROBES])
    p.add_argument("--minimal-pairs", type=int, default=0, help="also train on this many include-a-color minimal pairs")
    p.add_argument("--held-out", type=int, default=400, help="held-out minimal pairs")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-4)
    a = p.parse_args(argv)
    if not a.labels and not a.minimal_pairs:
        p.error("nothing to probe: name --labels or give --minimal-pairs N")
    run = Path(a.run)
    if not (run / "comparisons" / "train.jsonl").is_file() or not (run / "sft_small").is_dir():
        raise SystemExit(f"{run} has no comparisons/ or sft_small/: run `textbandit pipeline --out {run}` first")
    with tempfile.TemporaryDirectory() as tmp:
        labels = [*a.labels, *(["minimal_pairs"] if a.minimal_pairs else [])]
        rows = [probe(run, label, Path(tmp), a.epochs, a.lr, a.minimal_pairs, a.held_out) for label in labels]
    print(f"reward model from {run}/sft_small, {a.epochs} epoch(s), lr {a.lr}; accuracy on held-out comparisons")
    print(f"{'labels':14}{'pairs':>8}{'accuracy':>10}{'train':>8}")
    for r in rows:
        print(f"{r['label']:14}{r['pairs']:>8}{r['accuracy']:>10.3f}{r['train_accuracy']:>8.3f}")
    agreement = (
        json.loads((run / "report.json").read_text())["reward_model"]["labeler_agreement"]
        if (run / "report.json").is_file()
        else None
    )
    if agreement is not None:
        print(f"labeler agreement on the run's validation comparisons: {agreement:.3f}")
    return rows


if __name__ == "__main__":
    main()
