"""Build every data artifact of the default task from a seed.

    python -m textbandit.task.build --out DIR --seed 0 [--no-corpus] [--n-customers 200]

writes into ``DIR``:

- ``tokenizer/`` (``tokenizer.json`` + transformers config; loads with
  ``PreTrainedTokenizerFast``),
- ``corpus_{train,validation}.txt`` (one text per line; skipped with ``--no-corpus``, since
  :func:`textbandit.task.corpus.load_corpus` regenerates it from the seed),
- ``prompts_{train,validation,test}.jsonl`` (``prompt``, ``customer``, ``kind``, ``params``),
- ``demonstrations_{train,validation}.jsonl`` (``prompt``, ``response``, ``customer``,
  ``kind``; none for the undemonstrated kinds, none for test customers),
- ``customers.json``, ``labelers.json`` (calibrated noise levels) and ``task_config.json``.

The shipped copy is ``textbandit/assets/default`` (built with ``--no-corpus``). The base
models are built by ``python -m agents.pretrain``. Each random part draws from its own
stream ``default_rng([seed, stream])``, so the same seed gives the same files.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from textbandit.task import customers as C
from textbandit.task import instructions as I
from textbandit.task import language as L
from textbandit.task.config import TaskConfig
from textbandit.task.corpus import make_corpus, write_corpus
from textbandit.task.demonstrator import demonstrate
from textbandit.task.gold import gold_score
from textbandit.task.labelers import calibrate
from textbandit.task.tokenizer import save_tokenizer, train_tokenizer

CUSTOMER_STREAM, PROMPT_STREAM, DEMO_STREAM, LABELER_STREAM = 2, 3, 4, 5


def write_jsonl(path, records) -> None:
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def make_demonstrations(prompts: list[dict], cfg: TaskConfig, rng: np.random.Generator) -> list[dict]:
    out = []
    for r in prompts:
        if r["kind"] in cfg.undemonstrated_kinds:
            continue
        ins = I.Instruction(r["kind"], r["params"])
        resp = demonstrate(ins, rng, sloppy=bool(rng.random() < cfg.sloppy_rate), very_rate=cfg.very_rate)
        out.append({"prompt": r["prompt"], "response": resp, "customer": r["customer"], "kind": r["kind"]})
    return out


def calibration_pool(
    prompts: list[dict], corpus: list[str], rng: np.random.Generator, n: int = 400
) -> list[list[float]]:
    """Gold scores of K=4 responses of mixed quality per prompt: a careful and a sloppy
    answer, a corpus text (fluent, off-task) and a careful answer cut short (no EOS)."""
    pool = []
    for r in prompts[:n]:
        ins = I.Instruction(r["kind"], r["params"])
        good = demonstrate(ins, rng)
        cut = " ".join(good.split()[: max(1, len(good.split()) // 2)])
        resps = [good, demonstrate(ins, rng, sloppy=True), corpus[int(rng.integers(len(corpus)))], cut]
        pool.append([gold_score(r["prompt"], x, e) for x, e in zip(resps, [True, True, True, False])])
    return pool


def build(out_dir, cfg: TaskConfig, write_corpus_files: bool = True) -> dict:
    """Write the task's files into ``out_dir``; returns a summary dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = cfg.seed
    customers = C.make_customers(cfg, np.random.default_rng([seed, CUSTOMER_STREAM]))
    prompts = C.make_prompts(customers, cfg, np.random.default_rng([seed, PROMPT_STREAM]))
    corpus = make_corpus(cfg)
    words = sorted(L.RESPONSE_VOCAB | set(L.INSTRUCTION_WORDS))
    # the word list, repeated, makes every word of the language a whole token
    tok = train_tokenizer(
        corpus["train"] + [r["prompt"] for r in prompts["train"]] + [" ".join(words)] * 300, cfg.vocab_size
    )
    save_tokenizer(tok, out / "tokenizer")
    if write_corpus_files:
        write_corpus(corpus, out)
    demo_rng = np.random.default_rng([seed, DEMO_STREAM])
    for split in C.SPLITS:
        write_jsonl(out / f"prompts_{split}.jsonl", prompts[split])
        if split != "test":
            write_jsonl(out / f"demonstrations_{split}.jsonl", make_demonstrations(prompts[split], cfg, demo_rng))
    lab_rng = np.random.default_rng([seed, LABELER_STREAM])
    pool = calibration_pool(prompts["train"], corpus["train"], lab_rng)
    mult = lab_rng.uniform(1 - cfg.labeler_noise_spread, 1 + cfg.labeler_noise_spread, cfg.n_labelers).tolist()
    scale = calibrate(pool, cfg.labeler_agreement, mult)
    labelers = {
        "noise_scale": scale,
        "noises": [scale * m for m in mult],
        "calibration_pool": "K=4: careful, sloppy, corpus text, careful cut short",
    }
    Path(out / "labelers.json").write_text(json.dumps(labelers, indent=1) + "\n")
    Path(out / "customers.json").write_text(json.dumps([asdict(c) for c in customers]) + "\n")
    Path(out / "task_config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    return {
        "prompts": {s: len(v) for s, v in prompts.items()},
        "noise_scale": scale,
        "tokenizer_vocab": tok.get_vocab_size(),
    }


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``textbandit task`` (:func:`run` takes what it parses)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of every random choice: the same seed gives the same corpus, tokenizer, prompts "
        "and labelers (default %(default)s)",
    )
    ap.add_argument(
        "--n-customers",
        type=int,
        default=TaskConfig.n_customers,
        help="simulated customers (the paper's API users); splits are by customer, so at least 3 (default %(default)s)",
    )
    ap.add_argument(
        "--prompts-per-customer",
        type=int,
        default=TaskConfig.prompts_per_customer,
        help="prompts each customer writes (default %(default)s)",
    )
    ap.add_argument(
        "--corpus-texts",
        type=int,
        default=TaskConfig.corpus_texts,
        help="texts in the pretraining corpus's train split; validation gets 5%% more (default %(default)s)",
    )
    ap.add_argument("--no-corpus", action="store_true", help="do not write the corpus files")
    return ap


def run(a: argparse.Namespace) -> None:
    """Build the task folder the parsed options describe and print its summary."""
    cfg = TaskConfig(
        seed=a.seed, n_customers=a.n_customers, prompts_per_customer=a.prompts_per_customer, corpus_texts=a.corpus_texts
    )
    print(json.dumps(build(a.out, cfg, write_corpus_files=not a.no_corpus)))


def main(argv=None) -> None:
    run(parser().parse_args(argv))


if __name__ == "__main__":
    main()
