"""Customers and their prompts; train / validation / test splits are by customer.

Each customer has a Dirichlet mix over instruction kinds, a favourite topic and a few
favourite words, as API users in the paper each had their own use case. Evaluation is on
prompts of held-out customers (the paper's held-out labelers and users).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textbandit.task import instructions as I
from textbandit.task import language as L
from textbandit.task.config import TaskConfig

SPLITS = ("train", "validation", "test")


@dataclass
class Customer:
    """One simulated customer."""

    id: str
    split: str
    kind_mix: list[float]
    """probability of each kind in ``instructions.KINDS`` order"""
    topic: str
    """favourite topic"""
    words: list[str]
    """favourite words (of the favourite topic), used for avoid-word instructions"""


def make_customers(cfg: TaskConfig, rng: np.random.Generator) -> list[Customer]:
    n = cfg.n_customers
    n_train = max(1, round(cfg.split_fractions[0] * n))
    n_val = max(1, round(cfg.split_fractions[1] * n))
    n_train = min(n_train, n - 2)
    n_val = min(n_val, n - n_train - 1)
    order = rng.permutation(n)
    split_of = {}
    for rank, c in enumerate(order):
        split_of[int(c)] = "train" if rank < n_train else "validation" if rank < n_train + n_val else "test"
    out = []
    for c in range(n):
        mix = rng.dirichlet([cfg.kind_concentration] * len(I.KINDS))
        topic = str(L.TOPICS[int(rng.integers(len(L.TOPICS)))])
        words = [str(w) for w in rng.choice(sorted(I.TOPIC_WORDS[topic]), 3, replace=False)]
        out.append(Customer(f"c{c:04d}", split_of[c], [float(x) for x in mix], topic, words))
    return out


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def make_instruction(kind: str, customer: Customer, cfg: TaskConfig, rng: np.random.Generator) -> I.Instruction:
    """A random instruction of ``kind`` in this customer's taste."""
    topic = customer.topic if rng.random() < cfg.favourite_topic_rate else _pick(rng, L.TOPICS)
    if kind == "topic":
        return I.Instruction(kind, {"topic": topic})
    if kind == "include_word":
        return I.Instruction(kind, {"topic": topic, "category": _pick(rng, I.INCLUDE_CATEGORIES)})
    if kind == "avoid_word":
        pool = customer.words if topic == customer.topic and rng.random() < 0.5 else sorted(I.TOPIC_WORDS[topic])
        return I.Instruction(kind, {"topic": topic, "word": _pick(rng, pool)})
    if kind == "n_sentences":
        return I.Instruction(kind, {"n": int(_pick(rng, I.N_SENTENCES)), "topic": topic})
    if kind == "max_words":
        return I.Instruction(kind, {"topic": topic, "n": int(_pick(rng, I.MAX_WORDS))})
    if kind == "start_with":
        return I.Instruction(kind, {"topic": topic, "category": _pick(rng, I.START_CATEGORIES)})
    if kind == "end_with":
        return I.Instruction(kind, {"topic": topic, "category": _pick(rng, I.END_CATEGORIES)})
    if kind == "list_category":
        return I.Instruction(kind, {"k": int(_pick(rng, I.LIST_SIZES)), "category": _pick(rng, L.LIST_CATEGORIES)})
    attr = "color" if rng.random() < 0.5 else "place"
    nouns = [str(w) for w in rng.choice(L.ANIMALS + L.OBJECTS, 2, replace=False)]
    values = [str(w) for w in rng.choice(L.COLORS if attr == "color" else L.PLACES, 2, replace=False)]
    return I.Instruction(
        "answer_fact", {"attr": attr, "facts": [list(f) for f in zip(nouns, values)], "noun": _pick(rng, nouns)}
    )


def make_prompts(customers: list[Customer], cfg: TaskConfig, rng: np.random.Generator) -> dict[str, list[dict]]:
    """Prompt records by split: ``{"prompt", "customer", "kind", "params"}``."""
    out = {s: [] for s in SPLITS}
    for c in customers:
        for _ in range(cfg.prompts_per_customer):
            kind = I.KINDS[int(rng.choice(len(I.KINDS), p=c.kind_mix))]
            ins = make_instruction(kind, c, cfg, rng)
            out[c.split].append({"prompt": I.render(ins), "customer": c.id, "kind": kind, "params": ins.params})
    return out
