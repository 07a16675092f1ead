"""The paper's findings as checks over measured numbers: each says what it measured and whether
the finding reproduced, so the report can say plainly where it did not.

The thresholds are the acceptance bars of the project's issues, fixed before any run.
"""

from __future__ import annotations

from typing import Sequence

RM_AGREEMENT_POINTS = 3.0  # RM accuracy within 3 points of inter-labeler agreement
PPO_OVER_SFT = 0.70  # PPO preferred over its SFT start on at least 70% of prompts
SMALL_PPO_OVER_LARGE_BASE = 0.85  # small PPO preferred over the 10x base on at least 85%
GOLD_DROP = 0.03  # a fall of the (smoothed) gold score by this much from its peak counts


def smooth(xs: Sequence[float], window: int = 3) -> list[float]:
    """Trailing moving average (the first points average what there is)."""
    out = []
    for i in range(len(xs)):
        part = xs[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


def overoptimisation(proxy: Sequence[float], gold: Sequence[float], window: int = 3) -> dict:
    """Did the gold score fall while the proxy reward kept rising?

    Over-optimisation (Gao et al. 2022) is declared when the smoothed gold score ends at least
    ``GOLD_DROP`` below its peak while the smoothed proxy ends above its value at that peak.
    """
    if len(proxy) != len(gold) or len(gold) < 2:
        raise ValueError("need two equally long curves of at least 2 points")
    p, g = smooth(proxy, window), smooth(gold, window)
    peak = max(range(len(g)), key=g.__getitem__)
    drop = g[peak] - g[-1]
    return {
        "gold_peak": g[peak],
        "gold_peak_iteration": peak,
        "gold_final": g[-1],
        "gold_drop": drop,
        "proxy_rise_after_peak": p[-1] - p[peak],
        "overoptimised": bool(drop >= GOLD_DROP and p[-1] > p[peak]),
    }


def check_findings(r: dict) -> list[dict]:
    """One row per finding: ``{"finding", "measured", "bar", "reproduced"}`` from the results
    (plus ``"diagnose"``, what to run next, on a finding that did not reproduce and has one)."""
    rows = []
    acc, agree = r["reward_model"]["accuracy"], r["reward_model"]["labeler_agreement"]
    if agree is None:  # the user's own comparisons: one ranking per prompt, so no agreement to measure
        rows.append(
            {
                "finding": "reward model agrees with held-out rankings about as often as labelers agree",
                "measured": f"RM accuracy {100 * acc:.1f}% on your held-out comparisons; labeler agreement not "
                "measured (your file holds one ranking per prompt)",
                "bar": f"within {RM_AGREEMENT_POINTS:.0f} points",
                "reproduced": None,
            }
        )
    else:
        rows.append(
            {
                "finding": "reward model agrees with held-out rankings about as often as labelers agree",
                "measured": f"RM accuracy {100 * acc:.1f}% vs labeler agreement {100 * agree:.1f}%",
                "bar": f"within {RM_AGREEMENT_POINTS:.0f} points",
                "reproduced": abs(acc - agree) * 100 <= RM_AGREEMENT_POINTS,
                "diagnose": "what the reward model learns and what not (retrained on probe labels): "
                "`python benchmarks/rm_probes.py --run {out}`",
            }
        )
    w = r["win_rates"]
    rows.append(
        {
            "finding": "PPO is preferred over its SFT start",
            "measured": f"{100 * w['ppo_vs_sft']:.1f}% of held-out prompts "
            f"(mean KL from SFT {r['models']['ppo']['kl_from_sft']:.2f} nats)",
            "bar": f">= {100 * PPO_OVER_SFT:.0f}%",
            "reproduced": w["ppo_vs_sft"] >= PPO_OVER_SFT,
            "diagnose": "reward-model error or RL budget? PPO against the gold labeler itself: "
            "`python benchmarks/ppo_oracle.py --run {out}`",
        }
    )
    rows.append(
        {
            "finding": "the small PPO model is preferred over a much larger base model",
            "measured": f"{100 * w['ppo_vs_large_base']:.1f}% (base {r['size_ratio']:.0f}x larger)",
            "bar": f">= {100 * SMALL_PPO_OVER_LARGE_BASE:.0f}%",
            "reproduced": w["ppo_vs_large_base"] >= SMALL_PPO_OVER_LARGE_BASE,
        }
    )
    no_kl, with_kl = r["kl_sweep"]["no_kl"], r["kl_sweep"]["default"]
    rows.append(
        {
            "finding": "the KL penalty holds off reward over-optimisation",
            "measured": (
                f"kl_coef=0: gold fell {no_kl['gold_drop']:+.3f} from its peak while the proxy rose "
                f"{no_kl['proxy_rise_after_peak']:+.3f}; default kl_coef: gold fell {with_kl['gold_drop']:+.3f}"
            ),
            "bar": f"kl_coef=0 over-optimises (gold falls >= {GOLD_DROP}) and the default does not",
            "reproduced": no_kl["overoptimised"] and not with_kl["overoptimised"],
        }
    )
    tax = r["alignment_tax"]
    rows.append(
        {
            "finding": "PPO-ptx pays a smaller alignment tax than PPO",
            "measured": (
                f"pretraining-corpus loss rise over SFT: PPO {tax['ppo']:+.4f}, "
                f"PPO-ptx {tax['ppo_ptx']:+.4f} nats/token"
            ),
            "bar": "PPO-ptx's rise < PPO's",
            "reproduced": tax["ppo_ptx"] < tax["ppo"],
        }
    )
    for row in rows:  # what to run next (``{out}``: the run's folder) only where the finding failed
        if row["reproduced"]:
            row.pop("diagnose", None)
    return rows
