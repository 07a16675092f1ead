"""Simulated labelers for the comparisons the pipeline collects.

Inter-labeler agreement is a property of the data labeled as much as of the labelers: the SFT
model's K samples for one prompt are often equally good under the gold labeler (ties), and close
calls are where labelers disagree. The paper's 72.6% was measured on the comparisons it
collected, so the pipeline sets the labelers' noise scale on the gold scores of the SFT samples
they are about to rank (keeping each labeler's relative noise from the task), so that measured
agreement on those comparisons is the task's setting. Only the noise scale is set; the gold
labeler itself is never touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from textbandit.task import LabelerPool, calibrate


def gold_lists(task, records: list[dict]) -> list[list[float]]:
    """The gold scores of each comparison's K responses."""
    return [
        task.gold_scores([r["prompt"]] * len(r["responses"]), r["responses"], r.get("ended_with_eos")) for r in records
    ]


def calibrated_pool(task, golds: list[list[float]]) -> tuple[LabelerPool, dict]:
    """The task's labelers with their noise rescaled to the task's agreement setting on the
    comparisons whose gold scores are ``golds`` (see :func:`gold_lists`).

    Where ties in gold cap agreement below the setting even for noiseless labelers, the
    labelers are made nearly noiseless and the cap is reported.
    """
    base = json.loads((Path(task.path) / "labelers.json").read_text())
    multipliers = [n / base["noise_scale"] for n in base["noises"]]
    target = task.config.labeler_agreement
    try:
        scale, capped = calibrate(golds, target, multipliers), False
    except ValueError:
        scale, capped = 1e-3, True
    info = {
        "target_agreement": target,
        "noise_scale": scale,
        "capped_by_ties": capped,
        "task_noise_scale": base["noise_scale"],
        "noises": [scale * m for m in multipliers],
    }
    return LabelerPool(info["noises"]), info


def rank_records(
    pool: LabelerPool, records: list[dict], golds: list[list[float]], rng: np.random.Generator
) -> list[dict]:
    """Each record ranked by one labeler drawn at random (rank 0 = best), as the comparisons format says."""
    return [{**r, "ranking": pool.rank(g, rng)} for r, g in zip(records, golds)]
