"""Write the pipeline's results as ``report.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from agents.pipeline.findings import check_findings, overoptimisation

MODEL_COLUMNS = ("params", "gold", "rm_score", "kl_from_sft", "eos_rate", "corpus_loss", "bleu", "rouge_l", "elo")


def _fmt(v) -> str:
    if v is None:
        return "not judged"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _diagnoses(r: dict, out: str) -> str:
    """What to run next for each finding that did not reproduce (``out``: the run's folder)."""
    lines = [f"- {f['finding']}: {f['diagnose'].format(out=out)}" for f in r["findings"] if f.get("diagnose")]
    if not lines:
        return "Every finding reproduced."
    return "Where a finding did not reproduce, these show why:\n\n" + "\n".join(lines)


def markdown(r: dict, out: str = "OUT") -> str:
    """The report as Markdown: the findings table first, then the numbers behind it."""
    parts = [
        f"# textbandit report: preset `{r['preset']}`",
        f"Machine: {r['machine']}. Wall time: {r['seconds']['total']:.0f} s. "
        f"Evaluated on {r['eval_prompts']} prompts of held-out (test) customers; every judgement "
        "is the task's hidden gold labeler's (ties count half).",
        "## The paper's findings",
        _table(
            ["finding", "measured", "bar", "reproduced"],
            [[f["finding"], f["measured"], f["bar"], f["reproduced"]] for f in r["findings"]],
        ),
        _diagnoses(r, out),
        "## Models",
        _table(
            ["model", *MODEL_COLUMNS],
            [[name, *[m.get(c, "") for c in MODEL_COLUMNS]] for name, m in r["models"].items()],
        ),
        "`gold`: the hidden labeler's mean score; `rm_score`: the reward model's (normalised so "
        "demonstrations score 0); `kl_from_sft`: mean summed log-ratio to the SFT model; "
        "`corpus_loss`: nats/token on held-out pretraining text (the alignment tax); "
        "`bleu`/`rouge_l`: n-gram overlap with the demonstrator's answer; `elo`: Bradley-Terry "
        "rating from the simulated labelers' rankings.",
        "## Win rates",
        _table(["comparison", "win rate"], [[k.replace("_", " "), v] for k, v in r["win_rates"].items()]),
        "## Over-optimisation: the KL sweep",
        _sweep_text(r),
        "## Gold score per instruction kind",
        _per_kind_table(r),
        "## N-gram metrics against intent",
        r["ngram_note"],
        "## Plots",
        "![win rate by size](figure1_win_rate_by_size.png) ![PPO training](ppo_training.png) "
        "![gold vs KL](gold_vs_kl.png) ![RM accuracy](rm_accuracy.png)",
    ]
    return "\n\n".join(parts) + "\n"


def _sweep_text(r: dict) -> str:
    sweep = r["kl_sweep"]
    rows = []
    for label, c in sweep["curves"].items():
        o = overoptimisation(c["score"], c["gold"])
        rows.append(
            [
                label,
                ", ".join(f"{g:.3f}" for g in c["gold"]),
                o["gold_peak"],
                int(c["iteration"][o["gold_peak_iteration"]]),
                o["gold_final"],
                o["gold_drop"],
                o["proxy_rise_after_peak"],
                o["overoptimised"],
            ]
        )
    every, n = sweep.get("curve_every", "a few"), sweep.get("curve_prompts", "fixed")
    return (
        f"Measured every {every} PPO iterations on the same {n} prompts of validation customers with the same "
        "sampling seed (point 0 is the SFT model); peak, final and drop are of the 3-point moving average.\n\n"
        + _table(
            [
                "run",
                "gold at each point",
                "peak",
                "at iteration",
                "final",
                "drop",
                "proxy rise after peak",
                "over-optimised",
            ],
            rows,
        )
    )


def _per_kind_table(r: dict) -> str:
    per_kind = r["per_kind"]
    models = list(r["models"])
    rows = []
    for kind in sorted(per_kind, key=lambda k: (k in r["undemonstrated_kinds"], k)):
        label = kind + (" (no demonstrations)" if kind in r["undemonstrated_kinds"] else "")
        rows.append([label, *[per_kind[kind].get(m, float("nan")) for m in models]])
    return _table(["kind", *models], rows)


def plot(r: dict, out: Path) -> list[str]:
    """The report's four figures as PNGs in ``out``; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, points in r["figure1"].items():
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", label=method)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(
        xscale="log",
        xlabel="parameters",
        ylabel="win rate vs SFT (small)",
        ylim=(0, 1),
        title="Preference by model size (paper Fig. 1)",
    )
    ax.legend(fontsize=8)
    names.append(_save(fig, out, "figure1_win_rate_by_size.png"))

    curves = r["kl_sweep"]["curves"]  # held-out prompts, every few iterations
    training = r["kl_sweep"].get("training_curves", {})  # each iteration's own rollout batch
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for i, (label, c) in enumerate(curves.items()):
        color = f"C{i}"
        for ax, key in zip(axes, ("score", "kl", "gold")):
            if label in training:
                ax.plot(training[label]["iteration"], training[label][key], color=color, alpha=0.3, lw=0.8)
            ax.plot(c["iteration"], c[key], color=color, marker=".", label=f"{label} (held out)")
    for ax, title in zip(axes, ("reward-model score", "KL from SFT", "gold score")):
        ax.set(xlabel="PPO iteration", title=title)
    axes[0].legend(fontsize=8, title="faint: rollout batches", title_fontsize=7)
    names.append(_save(fig, out, "ppo_training.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, c in curves.items():
        ax.plot(c["kl"], c["gold"], marker=".", label=label)
    ax.set(xlabel="KL from SFT (nats)", ylabel="gold score", title="Gold score against KL")
    ax.legend(fontsize=8)
    names.append(_save(fig, out, "gold_vs_kl.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    rm = r["reward_model"]
    bars = {"labeler agreement": rm["labeler_agreement"]} if rm["labeler_agreement"] is not None else {}
    bars["RM accuracy"] = rm["accuracy"]
    bars.update({f"RM, {k}": v for k, v in rm.get("ablation", {}).items()})
    ax.barh(list(bars), list(bars.values()), color="tab:blue")
    ax.set(xlim=(0.5, 1), xlabel="agreement on held-out pairs", title="Reward model vs labelers")
    names.append(_save(fig, out, "rm_accuracy.png"))
    return names


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name


def write_report(results: dict, out_dir) -> dict:
    """Add the findings, write ``report.json``, ``report.md`` and the plots; return the results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results["findings"] = check_findings(results)
    results["plots"] = plot(results, out)
    (out / "report.json").write_text(json.dumps(results, indent=2, default=float))
    (out / "report.md").write_text(markdown(results, str(out)))
    return results
