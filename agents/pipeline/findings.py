"""The paper's findings as checks over measured numbers: each says what it measured and whether
the finding reproduced, so the report can say plainly where it did not.

The thresholds are the acceptance bars of the project's issues, fixed before any run.
"""

from __future__ import annotations

from typing import Sequence

RM_AGREEMENT_POINTS = 3.0  # RM accuracy within 3 points of inter-labeler agreement
PPO_OVER_SFT = 0.65  # PPO preferred over its SFT start on at least 65% of prompts,
PPO_OVER_SFT_LOW = 0.60  # with the lower end of its bootstrap 95% interval above 60%
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
    w, floor = r["win_rates"], _rate(r["win_rates"].get("sft_again_vs_sft"))
    ppo = w["ppo_vs_sft"]
    rows.append(
        {
            "finding": "PPO is preferred over its SFT start",
            "measured": f"{_pct(ppo)} of held-out prompts "
            f"(mean KL from SFT {r['models']['ppo']['kl_from_sft']:.2f} nats; "
            + (f"SFT against another draw of itself: {_pct(floor)})" if floor else "no noise floor measured)"),
            "bar": f">= {100 * PPO_OVER_SFT:.0f}% with the interval's lower end above {100 * PPO_OVER_SFT_LOW:.0f}%",
            "reproduced": _rate(ppo)["win_rate"] >= PPO_OVER_SFT and _rate(ppo)["ci95"][0] > PPO_OVER_SFT_LOW,
            "diagnose": "reward-model error or RL budget? PPO against the gold labeler itself: "
            "`python benchmarks/ppo_oracle.py --run {out}`",
        }
    )
    base = w["ppo_vs_large_base"]
    rows.append(
        {
            "finding": "the small PPO model is preferred over a much larger base model",
            "measured": f"{_pct(base)} (base {r['size_ratio']:.0f}x larger)",
            "bar": f">= {100 * SMALL_PPO_OVER_LARGE_BASE:.0f}%",
            "reproduced": _rate(base)["win_rate"] >= SMALL_PPO_OVER_LARGE_BASE,
        }
    )
    no_kl, with_kl = r["kl_sweep"]["no_kl"], r["kl_sweep"]["default"]
    rows.append(
        {
            "finding": "the KL penalty holds off reward over-optimisation",
            "measured": f"kl_coef=0: {_fall(no_kl)} while the proxy {_rise(no_kl['proxy_rise_after_peak'])}; "
            f"default kl_coef: {_fall(with_kl)}",
            "bar": f"kl_coef=0 over-optimises (gold falls >= {GOLD_DROP} from its peak while the proxy rises) and "
            "the default does not",
            "reproduced": no_kl["overoptimised"] and not with_kl["overoptimised"],
        }
    )
    tax = r["alignment_tax"]
    rows.append(
        {
            "finding": "PPO-ptx pays a smaller alignment tax than PPO",
            "measured": f"loss on held-out pretraining text against SFT's: PPO {_change(tax['ppo'])}, PPO-ptx "
            f"{_change(tax['ppo_ptx'])} nats/token"
            + (
                " (PPO-ptx ends below SFT: the pretraining loss it mixes in trains the LM further)"
                if tax["ppo_ptx"] < 0
                else ""
            ),
            "bar": "PPO-ptx's rise < PPO's",
            "reproduced": tax["ppo_ptx"] < tax["ppo"],
        }
    )
    for row in rows:  # what to run next (``{out}``: the run's folder) only where the finding failed
        if row["reproduced"]:
            row.pop("diagnose", None)
    return rows


def _rate(w) -> dict | None:
    """A win-rate record ``{"win_rate", "ci95"}`` (a bare number is read as one without an interval)."""
    if w is None or isinstance(w, dict):
        return w
    return {"win_rate": float(w), "ci95": [float(w), float(w)]}


def _pct(w) -> str:
    """``"67.2% (95% interval 62.1-72.0%)"``."""
    w = _rate(w)
    lo, hi = w["ci95"]
    return f"{100 * w['win_rate']:.1f}% (95% interval {100 * lo:.1f}-{100 * hi:.1f}%)"


def _fall(o: dict) -> str:
    """How the smoothed gold score moved after its peak, in words: "gold fell 0.463 from its peak"."""
    drop = o["gold_drop"]
    return f"gold fell {drop:.3f} from its peak" if drop > 0 else "gold ended at its peak"


def _rise(x: float) -> str:
    return f"rose {x:.3f}" if x > 0 else (f"fell {-x:.3f}" if x < 0 else "stayed level")


def _change(x: float) -> str:
    return f"up {x:.4f}" if x > 0 else (f"down {-x:.4f}" if x < 0 else "unchanged")
