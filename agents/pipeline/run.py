"""``textbandit pipeline``: the InstructGPT recipe end to end on the embedded default task.

Stages, each a sub-folder of ``out`` in Hugging Face format, each reused when already built
from the same inputs (:mod:`agents.pipeline.stages`):

1. ``task``: the synthetic world (corpus, tokenizer, customers' prompts, demonstrations, labelers);
2. ``base_<size>``: GPT-2-style base models pretrained on the corpus (the small one and a 10x one);
3. ``sft_<size>``: supervised fine-tuning on the demonstrations;
4. ``comparisons``: K completions per prompt from the SFT model, ranked by simulated labelers;
5. ``reward_model``: the SFT model with a scalar head, fitted to the K-wise rankings;
6. ``ppo``, ``ppo_ptx``, ``ppo_kl<c>``: PPO in TextBandit-v0 against the reward model;
7. evaluation on held-out customers, ``report.json`` / ``report.md`` / plots, and ``export``: the
   task folder with the run's SFT and reward models, which ``gym.make("TextBandit-v0", task=...)`` loads.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from agents.common import distributed
from agents.common.rundir import claim_run_dir
from agents.pipeline.background import Background
from agents.pipeline.bases import check_base_model, pretrain_stages
from agents.pipeline.config import PipelineConfig, Preset
from agents.pipeline.evaluate import SFT_AGAIN, evaluate_models, labeler_agreement, pairwise_wins
from agents.pipeline.export import export_defaults, export_task
from agents.pipeline.findings import overoptimisation
from agents.pipeline.labeling import calibrated_pool, gold_lists, rank_records
from agents.pipeline.report import write_report
from agents.pipeline.stages import Invocations, Stages, file_digest, settings_of, with_out
from textbandit.data import load_comparisons, load_demonstrations, write_jsonl
from textbandit.runtime import resolve_device
from textbandit.task import DefaultTask, LabelerPool, load_task

VAL_FRACTION = 0.1  # of the prompts of a user's comparisons, held out when no validation file is given


class PPORun(NamedTuple):
    """One PPO run of the pipeline: the model size, its KL and pretraining-loss coefficients, and
    whether its gold curve is measured on held-out prompts (the KL sweep's runs)."""

    size: str
    kl_coef: float
    ptx_coef: float
    curve: bool


@dataclass
class Built:
    """What the stages built: the task and every model folder the evaluation reads."""

    task: DefaultTask
    bases: dict[str, str]
    sft: dict[str, str]
    comparisons: Path
    reward_model: Path
    ppo: dict[str, Path]
    runs: dict[str, PPORun]
    labelers: LabelerPool

    @property
    def main(self) -> str:
        """The main model size (the first of the preset's sizes)."""
        return next(iter(self.sft))


def machine() -> str:
    """The machine a run's timings belong to: the CPU's model and vector width matter as much as its
    cores (the same pretraining took 3x longer on one 2-core machine, AVX2, than on another)."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    cpu = f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()}"
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {device}, torch {torch.__version__}"


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; elsewhere what platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_pipeline(cfg: PipelineConfig) -> dict:
    """Run every stage (reusing finished ones) and write the report; returns the results (on rank 0;
    None on the other ranks of a pipeline under torchrun, which train beside it)."""
    if not cfg.progress:  # also the bars transformers draws when it loads and saves models
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    # the user's own data is checked before any stage runs, not after pretraining
    if cfg.demonstrations:
        load_demonstrations(cfg.demonstrations)
    for path in (cfg.comparisons, cfg.comparisons_val):
        if path:
            load_comparisons(path)
    out = Path(cfg.out)
    d = distributed.setup(cfg.device)  # under torchrun: the training stages are data-parallel
    if not d.is_main:  # rank 0 claims --out and writes every file; this rank trains beside it
        return _follow(cfg, d)
    with claim_run_dir(out, resume=True, overwrite=False, what="pipeline"):  # one pipeline per --out at a time
        invocations = Invocations(out)
        try:
            (out / "pipeline_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            distributed.broadcast_object(True)  # claimed: the other ranks may start
            device = _device(cfg, d)
            concurrent = cfg.settings.concurrent if cfg.concurrent is None else cfg.concurrent
            background = Background.for_cpu() if concurrent and device == "cpu" and not d.active else None
            stages = Stages(out, cfg.rebuild, total=count_stages(cfg), background=background)
            try:
                built = build_stages(cfg, stages, device)
                stages.wait()
            finally:
                stages.close()  # after an error: no stage goes on building in the background
            stages.announce("evaluate", "every model on held-out customers' prompts")
            results = distributed.on_main(evaluate_run, cfg, built, device)
            results["seconds"] = {
                **stages.seconds,
                "total": invocations.record(finished=True),
                "invocations": len(invocations.past) + 1,
            }
            results["stages_built"] = stages.built
            stages.announce("report", f"writing {out / 'report.md'}")
            write_report(results, out)
            stages.announce("export", f"the task with the run's models to {out / 'export'}")
            base = {} if cfg.base_model else {built.main: built.bases[built.main]}  # the SFT model's start, if ours
            export_task(built.task.path, built.sft[built.main], built.reward_model, cfg.kl_coef, out / "export", base)
            if cfg.export_defaults:
                export_defaults(out / "export")
            return results
        finally:
            if not invocations.recorded:  # a failed or interrupted call counts too
                invocations.record(finished=False)


def _device(cfg: PipelineConfig, d) -> str:
    """The stages' device: this rank's own GPU under torchrun (the trainers map 'cuda' to it too)."""
    return str(d.device) if d.active else str(resolve_device(cfg.device))


def _follow(cfg: PipelineConfig, d) -> None:
    """A rank other than 0 of a pipeline under torchrun: it runs the training stages with rank 0
    (which decides and records every stage) and waits while rank 0 does the rest alone."""
    distributed.broadcast_object(None)  # rank 0 has claimed --out
    device = _device(cfg, d)
    built = build_stages(cfg, Stages(Path(cfg.out), cfg.rebuild), device)
    distributed.on_main(evaluate_run, cfg, built, device)
    return None


def count_stages(cfg: PipelineConfig) -> int:
    """How many stages a run has, for the banners' "stage i of n": task, base models, SFT, comparisons,
    reward model, the PPO runs, then evaluate, report and export."""
    s = cfg.settings
    bases = len(s.sizes) + 1 - bool(cfg.base_model)
    ppo_runs = 2 + len(sweep_coefs(cfg)) + len(s.sizes) - 1
    return 1 + bases + len(s.sizes) + 2 + ppo_runs + 3


def sweep_coefs(cfg: PipelineConfig) -> list[float]:
    """The KL sweep's coefficients beside the default one: the preset's, less the default itself
    (the ``ppo`` run is that point of the sweep; a second run of it would only cost time)."""
    return [c for c in cfg.settings.kl_sweep if c != cfg.kl_coef]


def build_stages(cfg: PipelineConfig, stage: Stages, device: str) -> Built:
    """Build (or reuse) every stage; each stage's inputs are its settings and the keys of the stages it reads."""
    from textbandit.task import TaskConfig
    from textbandit.task.build import build

    s = cfg.settings
    after = lambda *names: {n: stage.keys[n] for n in names}  # noqa: E731  (the identities of consumed stages)
    task_cfg = TaskConfig(
        seed=cfg.seed,
        n_customers=s.n_customers,
        prompts_per_customer=s.prompts_per_customer,
        corpus_texts=s.corpus_texts,
    )
    task = load_task(stage("task", lambda d: build(d, task_cfg), {"task": task_cfg.to_dict()}))
    if cfg.base_model:
        check_base_model(cfg.base_model, task.load_tokenizer(), task.tokenizer)
    bases, base_ids = pretrain_stages(cfg, stage, task, device)
    sft = sft_stages(cfg, stage, task, bases, base_ids, device)
    main = s.sizes[0]
    comparisons = comparison_stage(cfg, stage, task, sft[main], device)
    rm_dir = reward_model_stage(cfg, stage, task, sft[main], comparisons, device)

    runs = {"ppo": PPORun(main, cfg.kl_coef, 0.0, True), "ppo_ptx": PPORun(main, cfg.kl_coef, cfg.ptx_coef, False)}
    runs.update({f"ppo_kl{c:g}": PPORun(main, c, 0.0, True) for c in sweep_coefs(cfg)})
    runs.update({f"ppo_{size}": PPORun(size, cfg.kl_coef, 0.0, False) for size in s.sizes[1:]})  # the size sweep
    run_task = task.replace(reward_model=str(rm_dir))
    ppo = {}
    for name, run in runs.items():
        iterations = s.ppo_iterations[run.size]
        ppo_cfg = ppo_config(
            s,
            sft[run.size],
            rm_dir,
            "-",
            iterations,
            run.kl_coef,
            cfg.seed,
            ptx_coef=run.ptx_coef,
            device=cfg.device,
            progress=cfg.progress,
            task=str(task.path),
            reward_fn=cfg.reward_fn,
            reward_weights=cfg.reward_weights,
            report_to=cfg.report_to,
            project=cfg.project,
        )
        inputs = {
            **settings_of(ppo_cfg, "sft_model", "reward_model", "task"),
            "curve": [s.curve_every, s.curve_prompts] if run.curve else None,
            **after("task", f"sft_{run.size}", "reward_model"),
        }
        ppo[name] = stage(
            name,
            functools.partial(_ppo_into, ppo_cfg, run_task, run, s, device, cfg.seed),
            inputs,
            requires=("curve.json",) if run.curve else (),
            every_rank=True,
            background=True,  # the PPO runs read the same models and no stage but the evaluation reads them
        )

    labelers = comparisons / "labelers.json"
    pool = LabelerPool(json.loads(labelers.read_text())["noises"]) if labelers.exists() else task.labelers()
    return Built(task, bases, sft, comparisons, rm_dir, ppo, runs, pool)


def sft_stages(
    cfg: PipelineConfig, stage: Stages, task: DefaultTask, bases: dict, base_ids: dict, device: str
) -> dict[str, str]:
    """SFT at each size on the demonstrations (the task's, or the user's)."""
    from agents.sft.config import SFTConfig
    from agents.sft.trainer import train_sft

    s, sft = cfg.settings, {}
    train = cfg.demonstrations or str(task.demonstrations_file("train"))
    own = {"demonstrations": file_digest(cfg.demonstrations)} if cfg.demonstrations else {}
    for size in s.sizes:
        sft_cfg = SFTConfig(
            model=bases[size],
            train=train,
            val=str(task.demonstrations_file("validation")),
            epochs=s.sft_epochs[size],
            lr=s.sft_lr,
            dropout=s.sft_dropout,
            batch_size=32,
            **trainer_settings(cfg, task, device),
        )
        sft[size] = str(
            stage(
                f"sft_{size}",
                lambda d, c=sft_cfg: train_sft(with_out(c, d)),
                {**settings_of(sft_cfg, "model", "train", "val"), **base_ids[size], **own, "task": stage.keys["task"]},
                every_rank=True,
            )
        )
    return sft


def comparison_stage(cfg: PipelineConfig, stage: Stages, task: DefaultTask, sft_dir: str, device: str) -> Path:
    """K completions per prompt from the SFT model, ranked by simulated labelers (or the user's comparisons)."""
    s = cfg.settings
    if cfg.comparisons:

        def given(d: Path):  # the user's comparisons, with a held-out part for the reward model's accuracy
            train = load_comparisons(cfg.comparisons)
            val = load_comparisons(cfg.comparisons_val) if cfg.comparisons_val else None
            if val is None:
                train, val = split_by_prompt(train, VAL_FRACTION, cfg.seed)
            d.mkdir(parents=True, exist_ok=True)
            write_jsonl(d / "train.jsonl", train)
            write_jsonl(d / "validation.jsonl", val)

        return stage(
            "comparisons_given",
            given,
            {
                "comparisons": file_digest(cfg.comparisons),
                "seed": cfg.seed,
                "val_fraction": VAL_FRACTION,
                "comparisons_val": file_digest(cfg.comparisons_val) if cfg.comparisons_val else None,
            },
        )

    def collect(d: Path):
        from transformers import AutoModelForCausalLM

        from agents.reward.collect import collect_comparisons

        model, tok = AutoModelForCausalLM.from_pretrained(sft_dir), task.load_tokenizer()
        unranked = lambda p, responses, ended: [0] * len(responses)  # noqa: E731  (ranked below)
        records = {
            split: collect_comparisons(
                model,
                tok,
                cycle(task.prompt_records(split), n),
                tuple(s.k),
                unranked,
                max_new_tokens=task.max_new_tokens,
                max_prompt_len=task.max_prompt_len,
                temperature=s.comparison_temperature,
                seed=cfg.seed,
                device=device,
                progress=cfg.progress,
            )
            for split, n in (("train", s.comparison_prompts), ("validation", s.validation_comparison_prompts))
        }
        golds = {split: gold_lists(task, recs) for split, recs in records.items()}
        pool, info = calibrated_pool(task, golds["train"])
        d.mkdir(parents=True, exist_ok=True)
        (d / "labelers.json").write_text(json.dumps(info, indent=1))
        rng = np.random.default_rng([cfg.seed, 5])
        for split, recs in records.items():
            write_jsonl(d / f"{split}.jsonl", rank_records(pool, recs, golds[split], rng))

    return stage(
        "comparisons",
        collect,
        {
            "k": s.k,
            **({"temperature": s.comparison_temperature} if s.comparison_temperature != 1.0 else {}),
            "prompts": [s.comparison_prompts, s.validation_comparison_prompts],
            "seed": cfg.seed,
            "lengths": [task.max_prompt_len, task.max_new_tokens],
            "task": stage.keys["task"],
            f"sft_{s.sizes[0]}": stage.keys[f"sft_{s.sizes[0]}"],
        },
    )


def cycle(records: list[dict], n: int) -> list[dict]:
    """The first ``n`` records, going through ``records`` again (and again) when ``n`` is more than
    it holds: a prompt met twice gets fresh samples, as the sampler draws every row anew.

    >>> [r["prompt"] for r in cycle([{"prompt": "a"}, {"prompt": "b"}], 3)]
    ['a', 'b', 'a']
    """
    if not records:
        raise ValueError("no prompts to collect comparisons on: the task's split is empty")
    return [records[i % len(records)] for i in range(n)]


def reward_model_stage(
    cfg: PipelineConfig, stage: Stages, task: DefaultTask, sft_dir: str, comparisons: Path, device: str
) -> Path:
    """The reward model from the SFT model, normalised so that demonstrations score 0."""
    from agents.reward.config import RewardConfig
    from agents.reward.trainer import train_reward_model

    s = cfg.settings
    demos = cfg.demonstrations or str(task.demonstrations_file("train"))
    rm_cfg = RewardConfig(
        model=sft_dir,
        train=str(comparisons / "train.jsonl"),
        val=str(comparisons / "validation.jsonl"),
        normalize_with=demos,
        batching=cfg.rm_batching,
        epochs=s.rm_epochs,
        lr=s.rm_lr,
        **trainer_settings(cfg, task, device),
    )
    own = {"demonstrations": file_digest(cfg.demonstrations)} if cfg.demonstrations else {}
    return stage(
        "reward_model",
        lambda d: train_reward_model(with_out(rm_cfg, d)),
        {
            **settings_of(rm_cfg, "model", "train", "val", "normalize_with"),
            **own,
            comparisons.name: stage.keys[comparisons.name],
            f"sft_{s.sizes[0]}": stage.keys[f"sft_{s.sizes[0]}"],
            "task": stage.keys["task"],
        },
        every_rank=True,
    )


def trainer_settings(cfg: PipelineConfig, task: DefaultTask, device: str) -> dict:
    """What the SFT and reward-model stages set alike: the task's lengths, the seed, where they run
    and how loudly (their folder is the stage's: ``with_out``)."""
    return dict(
        max_prompt_len=task.max_prompt_len,
        max_response_len=task.max_new_tokens,
        seed=cfg.seed,
        device=device,
        progress=cfg.progress,
        report_to=cfg.report_to,
        project=cfg.project,
        out="-",
    )


def split_by_prompt(records: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, held_out)``: about ``fraction`` of the distinct prompts (at least one), all their
    records held out together, chosen with ``seed``; the order of records is kept."""
    prompts = sorted({r["prompt"] for r in records})
    if len(prompts) < 2:
        raise ValueError(
            f"your comparisons hold {len(prompts)} distinct prompt(s); a held-out part needs at "
            "least 2, or pass --comparisons-val with held-out comparisons"
        )
    rng = np.random.default_rng([seed, 81])
    held = set(rng.choice(prompts, size=max(1, round(fraction * len(prompts))), replace=False).tolist())
    return [r for r in records if r["prompt"] not in held], [r for r in records if r["prompt"] in held]


def ppo_config(preset: Preset, sft_dir: str, rm_dir, out, iterations: int, kl: float, seed: int, **overrides):
    """The pipeline's PPO settings for a preset (``overrides``: any other PPOConfig field)."""
    from agents.ppo.config import PPOConfig

    return PPOConfig(
        **{
            "sft_model": sft_dir,
            "reward_model": str(rm_dir),
            "batch_size": preset.ppo_batch,
            "minibatch_size": max(1, preset.ppo_batch // 4),
            "total_iterations": iterations,
            "kl_coef": kl,
            "seed": seed + 1,
            "out": str(out),
            "learning_rate": preset.ppo_learning_rate,
            "update_epochs": preset.ppo_update_epochs,
            "value_model": preset.ppo_value_model,
            **overrides,
        }
    )


def _ppo_into(ppo_cfg, task: DefaultTask, run: PPORun, preset: Preset, device: str, seed: int, d: Path) -> None:
    """A PPO stage's build into ``d`` (a module-level function: it may run in a process of its own)."""
    _ppo(with_out(ppo_cfg, d), task, run, preset, device, seed)


def _ppo(ppo_cfg, task: DefaultTask, run: PPORun, preset: Preset, device: str, seed: int):
    """One PPO stage: train, save the policy (with the task's tokenizer), its history and its held-out curve."""
    from agents.pipeline.curves import HeldOutCurve
    from agents.ppo.learner import save_policy, train

    d = Path(ppo_cfg.out)
    ptx_texts = task.corpus()["train"] if ppo_cfg.ptx_coef > 0 else None
    held_out = None
    if run.curve:  # validation customers' prompts, scored against the SFT model as reference
        from transformers import AutoModelForCausalLM

        held_out = HeldOutCurve(
            task.replace(reference_model=ppo_cfg.sft_model),
            "validation",
            preset.curve_prompts,
            preset.curve_every,
            ppo_cfg.total_iterations,
            seed,
            device=device,
            temperature=ppo_cfg.temperature,  # the proxy PPO maximises:
            missing_eos_penalty=ppo_cfg.missing_eos_penalty,
        )
        held_out.measure(0, AutoModelForCausalLM.from_pretrained(ppo_cfg.sft_model).to(device))
    result = train(ppo_cfg, task=task, ptx_texts=ptx_texts, callback=held_out)
    save_policy(result["policy"], d / "final")  # with the env's tokenizer: loads like the other stages
    if distributed.is_main_process():
        (d / "history.json").write_text(json.dumps(result["history"]))
        if held_out is not None:
            (d / "curve.json").write_text(json.dumps(held_out.points))


def evaluate_run(cfg: PipelineConfig, built: Built, device: str) -> dict:
    """Every model on held-out customers' prompts, and the numbers the report is made of."""
    from transformers import AutoModelForCausalLM

    load = lambda p: AutoModelForCausalLM.from_pretrained(str(p)).eval()  # noqa: E731
    s, main, large = cfg.settings, built.main, cfg.settings.large_size
    models = {"base": load(built.bases[main]), f"base_{large}": load(built.bases[large]), "sft": load(built.sft[main])}
    for size in s.sizes[1:]:
        models[f"base_{size}"], models[f"sft_{size}"] = load(built.bases[size]), load(built.sft[size])
        models[f"ppo_{size}"] = load(built.ppo[f"ppo_{size}"] / "final")
    for name in ("ppo", "ppo_ptx"):
        models[name] = load(built.ppo[name] / "final")
    judge = built.task.replace(reward_model=str(built.reward_model), reference_model=built.sft[main])
    ev = evaluate_models(judge, models, s.eval_prompts, cfg.seed, built.labelers, device=device)
    samples, per_model = ev["samples"], ev["models"]

    pairs = {
        "sft_again_vs_sft": (SFT_AGAIN, "sft"),  # the noise floor: two independent draws of one model
        "ppo_vs_sft": ("ppo", "sft"),
        "ppo_ptx_vs_sft": ("ppo_ptx", "sft"),
        "sft_vs_base": ("sft", "base"),
        "ppo_vs_large_base": ("ppo", f"base_{large}"),
        "ppo_vs_ppo_ptx": ("ppo", "ppo_ptx"),
    }
    wins = pairwise_wins(samples, pairs, cfg.seed)
    figure1 = {"base": [], "SFT": [], "PPO": [], "PPO-ptx": []}
    for name, m in per_model.items():  # every model's win rate against the small SFT model, with its interval
        method = "PPO-ptx" if name == "ppo_ptx" else {"base": "base", "sft": "SFT"}.get(name.split("_")[0], "PPO")
        w = pairwise_wins(samples, {"w": (SFT_AGAIN if name == "sft" else name, "sft")}, cfg.seed)["w"]
        figure1[method].append((m["params"], w["win_rate"], *w["ci95"]))

    curves, training, sweep = {}, {}, {}
    for name, run in built.runs.items():
        if not run.curve:
            continue
        h = json.loads((built.ppo[name] / "history.json").read_text())
        label = f"kl_coef={run.kl_coef:g}"
        training[label] = {
            "iteration": [r["iteration"] for r in h],
            "score": [r["env/score"] for r in h],
            "kl": [r["env/kl"] for r in h],
            "gold": [r["eval/gold_score"] for r in h],
            "explained_variance": [r.get("value/explained_variance") for r in h],
        }
        curves[label] = json.loads((built.ppo[name] / "curve.json").read_text())
        sweep[label] = overoptimisation(curves[label]["score"], curves[label]["gold"])
    rm_summary = json.loads((built.reward_model / "summary.json").read_text())
    held_out = load_comparisons(built.comparisons / "validation.jsonl")
    return {
        "preset": cfg.preset,
        "machine": machine(),
        "labelers": {"noises": built.labelers.noises},
        "eval_prompts": len(samples["sft"].gold),
        "config": cfg.to_dict(),
        "models": per_model,
        "win_rates": wins,
        "size_ratio": per_model[f"base_{large}"]["params"] / per_model["base"]["params"],
        "reward_model": {
            "accuracy": rm_summary["val"]["accuracy"],
            "loss": rm_summary["val"]["loss"],
            # one ranking per prompt in a user's file: no second labeler to agree with
            "labeler_agreement": None
            if cfg.comparisons
            else labeler_agreement(built.task, built.labelers, held_out, cfg.seed),
            "forwards_per_comparison": rm_summary["forwards_per_comparison"],
        },
        "kl_sweep": {
            "no_kl": sweep["kl_coef=0"],
            "default": sweep[f"kl_coef={cfg.kl_coef:g}"],
            "all": sweep,
            "curves": curves,
            "training_curves": training,
            "curve_prompts": s.curve_prompts,
            "curve_every": s.curve_every,
        },
        "alignment_tax": {m: per_model[m]["corpus_loss"] - per_model["sft"]["corpus_loss"] for m in ("ppo", "ppo_ptx")},
        "per_kind": ev["per_kind"],
        "undemonstrated_kinds": list(built.task.config.undemonstrated_kinds),
        "figure1": figure1,
        "ngram": ev["ngram"],
        "ngram_note": _ngram_note(ev["ngram"]),
    }


def _ngram_note(ngram: dict) -> str:
    fmt = lambda v: "undefined (a constant score)" if v is None else f"{v:+.2f}"  # noqa: E731
    return (
        f"Across all samples, BLEU against the demonstrator's answer correlates {fmt(ngram['corr_bleu_gold'])} "
        f"and ROUGE-L {fmt(ngram['corr_rouge_gold'])} with the gold score. Compare the models table: a model can "
        "gain gold (intent met) while its n-gram overlap with a demonstration moves little or falls."
    )
