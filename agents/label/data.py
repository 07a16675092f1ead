"""Items in, comparisons out.

Items to label are K-wise comparison records without their ranking (``textbandit collect --rank
none`` writes them): ``{"prompt": str, "responses": [str, ...], ...}`` with 2 <= K <= 9; a ``ranking``
field, if present, is ignored, and a pair ``{"prompt", "chosen", "rejected"}`` is read as K = 2. Other
fields (``ended_with_eos``, ``customer``, ...) are kept and come back in the export.

The export is one K-wise record per (item, labeler) ranking, loadable by
:func:`textbandit.data.load_comparisons` and so by ``textbandit rm``::

    {"prompt", "responses", "ranking", "labeler": name, "item_id": int,
     "flags": [[flag, ...] per completion], "score": 1..7 or null, ...the item's other fields}

or, with ``trl``, TRL's explicit-prompt preference format: ``{"prompt", "chosen", "rejected"}`` for every
pair a ranking orders (tied pairs say nothing about preference and are left out).
"""

from __future__ import annotations

import random

from agents.label.ranking import MAX_K, preference_pairs
from textbandit.data import DataFormatError, read_jsonl

RESERVED = ("prompt", "responses", "ranking", "chosen", "rejected", "labeler", "item_id", "flags", "score")
"""Fields the export writes itself; an item's own fields of these names are not kept as extras."""


def load_items(path) -> list[dict]:
    """Items ``{"prompt", "responses", "extra"}`` of a JSONL file; a bad record raises naming file and line."""
    items = []
    for n, r in read_jsonl(path):
        if not isinstance(r.get("prompt"), str) or not r["prompt"].strip():
            raise DataFormatError(f"{path}:{n}: field 'prompt' must be a non-empty string")
        responses = r.get("responses")
        if responses is None and "chosen" in r:
            responses = [r.get("chosen"), r.get("rejected")]
        if not isinstance(responses, list) or not all(isinstance(x, str) for x in responses):
            raise DataFormatError(f"{path}:{n}: field 'responses' must be a list of strings (the K completions)")
        if not 2 <= len(responses) <= MAX_K:
            raise DataFormatError(
                f"{path}:{n}: {len(responses)} responses; the labeling page ranks 2 to {MAX_K} "
                f"completions per item (the paper's K = 4..9), so split or trim this item"
            )
        items.append(
            {"prompt": r["prompt"], "responses": responses, "extra": {k: v for k, v in r.items() if k not in RESERVED}}
        )
    if not items:
        raise DataFormatError(f"{path}: no items in the file")
    return items


def kwise_records(rankings: list[dict]) -> list[dict]:
    """The K-wise comparison records of the store's rankings (:meth:`agents.label.db.Store.rankings`)."""
    return [
        {
            "prompt": r["prompt"],
            "responses": r["responses"],
            "ranking": r["ranks"],
            "labeler": r["labeler"],
            "item_id": r["item_id"],
            "flags": r["flags"],
            "score": r["score"],
            **r["extra"],
        }
        for r in rankings
    ]


def trl_records(kwise: list[dict]) -> list[dict]:
    """TRL's preference records ``{"prompt", "chosen", "rejected"}``: every ordered pair of every ranking."""
    return [
        {"prompt": r["prompt"], "chosen": r["responses"][w], "rejected": r["responses"][lose]}
        for r in kwise
        for w, lose in preference_pairs(r["ranking"])
    ]


def split_by_prompt(records: list[dict], val_fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(train, val)``: a seeded share ``val_fraction`` of the distinct prompts, with all their rankings, held out.

    Splitting by prompt keeps every labeler's ranking of a prompt (and every item of it) on one side, so a
    reward model is never validated on a prompt it trained on."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: hold out a share in [0, 1) of the prompts")
    prompts = sorted({r["prompt"] for r in records})
    random.Random(seed).shuffle(prompts)
    n_val = round(val_fraction * len(prompts))
    if val_fraction > 0 and n_val == 0 and len(prompts) >= 2:
        n_val = 1  # a requested split gets at least one prompt
    held = set(prompts[:n_val])
    return [r for r in records if r["prompt"] not in held], [r for r in records if r["prompt"] in held]
