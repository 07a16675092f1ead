"""Write the pipeline's results as ``report.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from agents.pipeline.findings import check_findings, overoptimisation

MODEL_COLUMNS = ("params", "gold", "rm_score", "kl_from_sft", "eos_rate", "corpus_loss", "bleu", "rouge_l", "elo")


def _win(v) -> dict:
    """A win-rate record ``{"win_rate", "ci95"}`` (a bare number: no interval)."""
    return v if isinstance(v, dict) else {"win_rate": float(v), "ci95": [float(v), float(v)]}


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
        "Gold win rate of the first model over the second on each held-out prompt (ties count half), with a "
        "bootstrap 95% interval over the prompts. Each model's samples are drawn independently; `sft again vs sft` "
        "pits two draws of the SFT model against each other, the noise floor the others are read against.",
        _table(
            ["comparison", "win rate", "95% interval"],
            [
                [k.replace("_", " "), w["win_rate"], f"{w['ci95'][0]:.3f}-{w['ci95'][1]:.3f}"]
                for k, w in ((k, _win(v)) for k, v in r["win_rates"].items())
            ],
        ),
        "## Over-optimisation: the KL sweep",
        _sweep_text(r),
        "## Gold score per instruction kind",
        _per_kind_table(r),
        "## N-gram metrics against intent",
        r["ngram_note"],
        "## Plots",
        " ".join(f"![{name[:-4].replace('_', ' ')}]({name})" for name in r.get("plots", [])),
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
                "gold's fall from peak",
                "proxy's change after peak",
                "over-optimised",
            ],
            rows,
        )
        + _critic_text(sweep.get("training_curves", {}))
    )


def _critic_text(training: dict) -> str:
    """How well each run's critic predicted the returns late in the run: the mean explained variance
    of the last third of its iterations (1 predicts every return, 0 no better than their mean)."""
    late = {}
    for label, t in training.items():
        ev = [v for v in t.get("explained_variance", []) if v is not None]
        tail = ev[-max(1, len(ev) // 3) :]
        if tail:
            late[label] = sum(tail) / len(tail)
    if not late:
        return ""
    runs = "; ".join(f"{label}: {v:.2f}" for label, v in late.items())
    return (
        "\n\nThe critic: explained variance of the returns over the last third of the iterations "
        f"(1: it predicts every return; 0: no better than their mean): {runs}."
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

    # the paper's Fig. 1 (preference by model size) only where some method was run at two sizes or more
    if any(len({p[0] for p in points}) > 1 for method, points in r["figure1"].items() if method != "base"):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for method, points in r["figure1"].items():
            points = sorted(points)
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            err = (
                [[y - p[2] for y, p in zip(ys, points)], [p[3] - y for y, p in zip(ys, points)]]
                if all(len(p) == 4 for p in points)
                else None
            )
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=method)
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set(
            xscale="log",
            xlabel="parameters (log scale)",
            ylabel="gold win rate vs the small SFT model",
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
    for ax, title, ylabel in zip(
        axes,
        ("reward-model score", "KL from SFT", "gold score"),
        ("mean RM score", "mean KL (nats)", "mean gold score"),
    ):
        ax.set(xlabel="PPO iteration", ylabel=ylabel, title=title)
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
    for i, v in enumerate(bars.values()):
        ax.text(v + 0.005, i, f"{100 * v:.1f}%", va="center", fontsize=8)
    ax.set(
        xlim=(0.5, 1), xlabel="fraction of held-out pairs ordered as the labeler did", title="Reward model vs labelers"
    )
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
