"""``textbandit pipeline``: the InstructGPT recipe end to end on the embedded default task.

Stages, each a sub-folder of ``out`` in Hugging Face format, each skipped when already done:

1. ``task``: the synthetic world (corpus, tokenizer, customers' prompts, demonstrations, labelers);
2. ``base_<size>``: GPT-2-style base models pretrained on the corpus (the small one and a 10x one);
3. ``sft_<size>``: supervised fine-tuning on the demonstrations;
4. ``comparisons``: K completions per prompt from the SFT model, ranked by simulated labelers;
5. ``reward_model``: the SFT model with a scalar head, fitted to the K-wise rankings;
6. ``ppo``, ``ppo_ptx``, ``ppo_kl<c>``: PPO in TextBandit-v0 against the reward model;
7. evaluation on held-out customers and ``report.json`` / ``report.md`` / plots.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from agents.pipeline.config import PipelineConfig, per_size
from agents.pipeline.evaluate import evaluate_models, labeler_agreement, pairwise_wins
from agents.pipeline.findings import overoptimisation
from agents.pipeline.labeling import calibrated_pool, gold_lists, rank_records
from agents.pipeline.report import write_report
from agents.common.rundir import claim_run_dir
from textbandit.data import load_comparisons, load_demonstrations, write_jsonl
from textbandit.task import LabelerPool

MAX_PROMPT_LEN = 32  # the task's prompts have at most 23 tokens
MAX_NEW_TOKENS = 24  # its demonstrations at most 22 words, plus EOS
VAL_FRACTION = 0.1  # of the prompts of a user's comparisons, held out when no validation file is given


class StageChangedError(ValueError):
    """A finished stage in ``--out`` was built with other settings than this run asks for."""


class Stages:
    """Runs each stage once, and reuses it only if it was built from the same inputs.

    ``stage(name, fn, inputs)`` runs ``fn(folder)`` unless the folder holds a ``.done`` file (and
    every file in ``requires``, for outputs that later versions added) whose recorded inputs equal
    ``inputs``: the stage's settings plus the identities (keys) of the stages it consumed, so a
    change anywhere upstream reaches every stage below it. A finished stage built from other
    inputs is a :class:`StageChangedError` naming the stage and the settings that differ, unless
    ``rebuild`` is set: then it is built again (and so, by their keys, is every stage after it).
    ``seconds`` holds what every stage took when it was built, in this call or an earlier one;
    ``built`` names the stages this call built.
    """

    def __init__(self, out: Path, rebuild: bool = False):
        self.out, self.rebuild = out, rebuild
        self.seconds: dict[str, float] = {}
        self.keys: dict[str, str] = {}
        self.built: list[str] = []

    def __call__(self, name: str, fn, inputs: dict, requires: tuple[str, ...] = ()) -> Path:
        path = self.out / name
        inputs = json.loads(json.dumps(inputs, sort_keys=True, default=str))
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
        self.keys[name] = key
        done = path / ".done"
        if done.exists() and all((path / f).exists() for f in requires):
            record = json.loads(done.read_text())
            if record.get("key") == key:
                self.seconds[name] = record.get("seconds", 0.0)
                return path
            if not self.rebuild:
                raise StageChangedError(
                    f"stage {name!r} in {self.out} was built with other settings: {_differences(record.get('inputs'), inputs)}; "
                    "pass --rebuild true to build it (and the stages after it) again, or use another --out")
        if path.exists():  # an interrupted stage, or one to rebuild: start it again from scratch
            shutil.rmtree(path)
        t0 = time.time()
        fn(path)
        path.mkdir(parents=True, exist_ok=True)
        self.seconds[name] = time.time() - t0
        self.built.append(name)
        (path / ".done").write_text(json.dumps({"seconds": self.seconds[name], "key": key, "inputs": inputs}))
        return path


def _differences(old: dict | None, new: dict) -> str:
    """``"kl_coef was 0.05, now 0.1; ..."`` for the settings that differ between two input records."""
    if old is None:
        return "it was built by an older textbandit that did not record its settings"
    flat_old, flat_new = _flatten(old), _flatten(new)
    diffs = [f"{k} was {flat_old.get(k, '(unset)')}, now {flat_new.get(k, '(unset)')}"
             for k in sorted(set(flat_old) | set(flat_new)) if flat_old.get(k) != flat_new.get(k)]
    return "; ".join(diffs[:8]) + ("; ..." if len(diffs) > 8 else "")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def file_digest(path: str | os.PathLike) -> str:
    """A short sha256 of a file's bytes: the identity of a user's data file among a stage's inputs."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def settings_of(config, *skip: str) -> dict:
    """A stage config's fields as its inputs, without where it writes and how it reports progress
    (``out``, ``output_dir``, ``progress``, ``tensorboard``, ``device``) and the fields in ``skip``."""
    import dataclasses

    drop = {"out", "output_dir", "progress", "tensorboard", "device", *skip}
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in drop}


class Invocations:
    """Wall time of every ``textbandit pipeline`` call on one ``--out`` (``invocations.json``), so the
    report's wall time counts the calls that built the stages it reuses, not only the last."""

    def __init__(self, out: Path):
        self.path, self.t0 = out / "invocations.json", time.time()
        self.past = json.loads(self.path.read_text()) if self.path.exists() else []
        self.recorded = False

    def record(self, finished: bool = True) -> float:
        """Write this call's time so far (again at each call); returns the total over all calls."""
        now = {"started": self.t0, "seconds": time.time() - self.t0, "finished": finished}
        self.path.write_text(json.dumps(self.past + [now], indent=1))
        self.recorded = finished
        return sum(i["seconds"] for i in self.past) + now["seconds"]


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"


def run_pipeline(cfg: PipelineConfig) -> dict:
    """Run every stage (reusing finished ones) and write the report; returns the results."""
    from agents.pretrain import PretrainArgs, pretrain
    from agents.reward.collect import collect_comparisons
    from agents.reward.config import RewardConfig
    from agents.reward.trainer import train_reward_model
    from agents.sft.config import SFTConfig
    from agents.sft.trainer import train_sft
    from textbandit.task import TaskConfig, load_default_task
    from textbandit.task.build import build

    if not cfg.progress:  # also the bars transformers draws when it loads and saves models
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    # the user's own data is checked before any stage runs, not after pretraining
    if cfg.demonstrations:
        load_demonstrations(cfg.demonstrations)
    for path in (cfg.comparisons, cfg.comparisons_val):
        if path:
            load_comparisons(path)
    s, out = cfg.settings, Path(cfg.out)
    with claim_run_dir(out, resume=True, overwrite=False, what="pipeline"):  # one pipeline per --out at a time
        invocations = Invocations(out)
        try:
            return _run(cfg, s, out, Stages(out, cfg.rebuild), invocations)
        finally:
            if not invocations.recorded:  # a failed or interrupted call counts too
                invocations.record(finished=False)


def _run(cfg: PipelineConfig, s: dict, out: Path, stage: Stages, invocations: Invocations) -> dict:
    from agents.pretrain import PretrainArgs, pretrain
    from agents.reward.collect import collect_comparisons
    from agents.reward.config import RewardConfig
    from agents.reward.trainer import train_reward_model
    from agents.sft.config import SFTConfig
    from agents.sft.trainer import train_sft
    from textbandit.task import TaskConfig, load_default_task
    from textbandit.task.build import build

    (out / "pipeline_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    device = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device)
    after = lambda *names: {n: stage.keys[n] for n in names}  # noqa: E731  (the identities of consumed stages)

    task_cfg = TaskConfig(seed=cfg.seed, n_customers=s["n_customers"],
                          prompts_per_customer=s["prompts_per_customer"], corpus_texts=s["corpus_texts"])
    task_dir = stage("task", lambda d: build(d, task_cfg), {"task": task_cfg.to_dict()})
    task = load_default_task(task_dir)
    if cfg.base_model:
        check_base_model(cfg.base_model, task.tokenizer(), task.tokenizer_path)
    demos_train = cfg.demonstrations or str(task.demonstrations_file("train"))
    demos_val = str(task.demonstrations_file("validation"))
    demos_id = {"demonstrations": file_digest(cfg.demonstrations)} if cfg.demonstrations else {}

    # 1-2. base models: the sizes PPO is run at, and the large base the small PPO model must beat
    sizes = list(s["sizes"])
    bases, base_ids = {}, {}
    for size in sizes + [s["large_size"]]:
        if size == sizes[0] and cfg.base_model:
            bases[size], base_ids[size] = cfg.base_model, {"base_model": cfg.base_model}
            continue
        args = PretrainArgs(size=size, task=str(task_dir), steps=s["pretrain_steps"][size], seed=cfg.seed,
                            device=device, progress=cfg.progress)
        bases[size] = str(stage(f"base_{size}", lambda d, a=args: pretrain(_with_out(a, d)),
                                {**settings_of(args, "task"), **after("task")}))
        base_ids[size] = after(f"base_{size}")

    # 3. SFT at each size
    sft = {}
    for size in sizes:
        sft_cfg = SFTConfig(model=bases[size], train=demos_train, val=demos_val, epochs=per_size(s["sft_epochs"], size),
                            lr=3e-4, batch_size=32, max_prompt_len=MAX_PROMPT_LEN, max_response_len=MAX_NEW_TOKENS,
                            seed=cfg.seed, device=device, progress=cfg.progress, out="-")
        sft[size] = str(stage(f"sft_{size}", lambda d, c=sft_cfg: train_sft(_with_out(c, d)),
                              {**settings_of(sft_cfg, "model", "train", "val"), **base_ids[size], **demos_id,
                               **after("task")}))
    main = sizes[0]

    # 4. comparisons: K completions per prompt from the SFT model, ranked by simulated labelers
    def collect(d: Path):
        from transformers import AutoModelForCausalLM

        model, tok = AutoModelForCausalLM.from_pretrained(sft[main]), task.tokenizer()
        unranked = lambda p, responses, ended: [0] * len(responses)  # noqa: E731  (ranked below)
        records = {
            split: collect_comparisons(model, tok, task.prompts(split)[:n], tuple(s["k"]), unranked,
                                       max_new_tokens=MAX_NEW_TOKENS, max_prompt_len=MAX_PROMPT_LEN,
                                       seed=cfg.seed, device=device, progress=cfg.progress)
            for split, n in (("train", s["comparison_prompts"]), ("validation", s["validation_comparison_prompts"]))
        }
        golds = {split: gold_lists(task, recs) for split, recs in records.items()}
        pool, info = calibrated_pool(task, golds["train"])
        d.mkdir(parents=True, exist_ok=True)
        (d / "labelers.json").write_text(json.dumps(info, indent=1))
        rng = np.random.default_rng([cfg.seed, 5])
        for split, recs in records.items():
            write_jsonl(d / f"{split}.jsonl", rank_records(pool, recs, golds[split], rng))

    def given(d: Path):  # the user's comparisons, with a held-out part for the reward model's accuracy
        train = load_comparisons(cfg.comparisons)
        val = load_comparisons(cfg.comparisons_val) if cfg.comparisons_val else None
        if val is None:
            train, val = split_by_prompt(train, VAL_FRACTION, cfg.seed)
        d.mkdir(parents=True, exist_ok=True)
        write_jsonl(d / "train.jsonl", train)
        write_jsonl(d / "validation.jsonl", val)

    if cfg.comparisons:
        comparisons = stage("comparisons_given", given, {
            "comparisons": file_digest(cfg.comparisons), "seed": cfg.seed, "val_fraction": VAL_FRACTION,
            "comparisons_val": file_digest(cfg.comparisons_val) if cfg.comparisons_val else None})
    else:
        comparisons = stage("comparisons", collect, {
            "k": s["k"], "prompts": [s["comparison_prompts"], s["validation_comparison_prompts"]], "seed": cfg.seed,
            "lengths": [MAX_PROMPT_LEN, MAX_NEW_TOKENS], **after("task", f"sft_{main}")})
    comp_train, comp_val = str(comparisons / "train.jsonl"), str(comparisons / "validation.jsonl")
    comp_id = after(comparisons.name)

    # 5. reward model from the SFT model, normalised so that demonstrations score 0
    rm_cfg = RewardConfig(model=sft[main], train=comp_train, val=comp_val, normalize_with=demos_train,
                          epochs=s["rm_epochs"], lr=s["rm_lr"], max_prompt_len=MAX_PROMPT_LEN, max_response_len=MAX_NEW_TOKENS,
                          seed=cfg.seed, device=device, progress=cfg.progress, out="-")
    rm_dir = stage("reward_model", lambda d: train_reward_model(_with_out(rm_cfg, d)),
                   {**settings_of(rm_cfg, "model", "train", "val", "normalize_with"), **comp_id, **demos_id,
                    **after(f"sft_{main}", "task")})

    # 6. PPO runs: the default KL coefficient, PPO-ptx, and the KL sweep
    env_kwargs = dict(task=None, reward_model=str(rm_dir), tokenizer=str(task.tokenizer_path),
                      prompts=str(task.prompts_file("train")), max_prompt_len=MAX_PROMPT_LEN,
                      max_new_tokens=MAX_NEW_TOKENS, gold_fn=task.gold_scores)
    runs = {"ppo": (main, cfg.kl_coef, 0.0), "ppo_ptx": (main, cfg.kl_coef, cfg.ptx_coef)}
    runs.update({f"ppo_kl{c:g}": (main, c, 0.0) for c in s["kl_sweep"]})
    runs.update({f"ppo_{size}": (size, cfg.kl_coef, 0.0) for size in sizes[1:]})  # the size sweep
    ppo = {}
    for name, (size, kl, ptx) in runs.items():
        curve = size == main and not ptx  # the KL sweep: its gold curve is measured on held-out prompts
        its = per_size(s["ppo_iterations"], size)
        ppo_cfg = ppo_config(s, sft[size], rm_dir, "-", its, kl, cfg.seed, ptx_coef=ptx, device=cfg.device,
                             progress=cfg.progress, prompts=env_kwargs["prompts"], tokenizer=env_kwargs["tokenizer"])
        inputs = {**settings_of(ppo_cfg, "sft_model", "reward_model", "prompts", "tokenizer"),
                  "curve": [s["curve_every"], s["curve_prompts"]] if curve else None,
                  **after("task", f"sft_{size}", "reward_model")}
        ppo[name] = stage(name, lambda d, c=ppo_cfg, a=(curve, its): _ppo(_with_out(c, d), env_kwargs, *a, task, s,
                                                                          device, cfg.seed), inputs,
                          requires=("curve.json",) if curve else ())

    # 7. evaluation on held-out customers
    labelers = comparisons / "labelers.json"
    pool = LabelerPool(json.loads(labelers.read_text())["noises"]) if labelers.exists() else task.labelers()
    results = _evaluate(cfg, task, bases, sft, main, s, rm_dir, ppo, runs, env_kwargs, comp_val, pool, device)
    results["seconds"] = {**stage.seconds, "total": invocations.record(finished=True),
                          "invocations": len(invocations.past) + 1}
    results["stages_built"] = stage.built
    write_report(results, out)
    if cfg.export_defaults:
        export_defaults(task_dir, sft[main], rm_dir, cfg.kl_coef)
    return results


def check_base_model(name: str, tokenizer, tokenizer_path) -> None:
    """Refuse, before any stage runs, a base model that does not use the task's tokenizer: every
    model of the report is sampled and judged in one environment, with the task's tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    fix = (f"SFT reads it from the model's folder: save the task's there with "
           f"AutoTokenizer.from_pretrained({str(tokenizer_path)!r}).save_pretrained(PATH)")
    files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    if Path(name).is_dir() and not any((Path(name) / f).exists() for f in files):
        raise ValueError(f"base_model={name!r} holds no tokenizer; {fix}")
    try:
        theirs = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"base_model={name!r} has no tokenizer that loads ({e}); {fix}") from e
    vocab = getattr(AutoConfig.from_pretrained(name), "vocab_size", None)
    if theirs.get_vocab() != tokenizer.get_vocab() or vocab is None or vocab < len(tokenizer):
        raise ValueError(
            f"base_model={name!r} does not use the task's tokenizer (its tokenizer has {len(theirs)} tokens and its "
            f"embedding {vocab} rows; the task's has {len(tokenizer)} tokens): the pipeline compares every model "
            "in one environment with the task's tokenizer. Pretrain on the task's tokenizer, or fine-tune your "
            "model on your own data stage by stage (textbandit sft, collect, rm, ppo)")


def split_by_prompt(records: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, held_out)``: about ``fraction`` of the distinct prompts (at least one), all their
    records held out together, chosen with ``seed``; the order of records is kept."""
    prompts = sorted({r["prompt"] for r in records})
    if len(prompts) < 2:
        raise ValueError(f"your comparisons hold {len(prompts)} distinct prompt(s); a held-out part needs at "
                         "least 2, or pass --comparisons-val with held-out comparisons")
    rng = np.random.default_rng([seed, 81])
    held = set(rng.choice(prompts, size=max(1, round(fraction * len(prompts))), replace=False).tolist())
    return [r for r in records if r["prompt"] not in held], [r for r in records if r["prompt"] in held]


def _with_out(config, d: Path):
    """A copy of a stage config whose output folder is ``d``."""
    import dataclasses

    field = "out" if hasattr(config, "out") else "output_dir"
    return dataclasses.replace(config, **{field: str(d)})


def ppo_config(settings: dict, sft_dir: str, rm_dir, out, iterations: int, kl: float, seed: int, **overrides):
    """The pipeline's PPO settings for a preset's ``settings`` (``overrides``: any other PPOConfig field)."""
    from agents.ppo.config import PPOConfig

    return PPOConfig(
        sft_model=sft_dir, reward_model=str(rm_dir), task=None, batch_size=settings["ppo_batch"],
        minibatch_size=max(1, settings["ppo_batch"] // 4), total_iterations=iterations,
        max_new_tokens=MAX_NEW_TOKENS, kl_coef=kl, seed=seed + 1, output_dir=str(out),
        **{**settings.get("ppo", {}), **overrides},
    )


def _ppo(ppo_cfg, env_kwargs: dict, curve: bool, iterations: int, task, s: dict, device: str, seed: int):
    from agents.pipeline.curves import HeldOutCurve
    from agents.ppo.learner import train

    d, sft_dir = Path(ppo_cfg.output_dir), ppo_cfg.sft_model
    ptx_texts = task.corpus()["train"] if ppo_cfg.ptx_coef > 0 else None
    held_out = None
    if curve:  # validation customers' prompts, scored against the SFT model as reference
        from transformers import AutoModelForCausalLM

        held_out = HeldOutCurve({**env_kwargs, "prompts": str(task.prompts_file("validation")),
                                 "reference_model": sft_dir, "device": device, "temperature": ppo_cfg.temperature,
                                 "missing_eos_penalty": ppo_cfg.missing_eos_penalty},  # the proxy PPO maximises
                                s["curve_prompts"], s["curve_every"], iterations, seed)
        held_out.measure(0, AutoModelForCausalLM.from_pretrained(sft_dir).to(device))
    result = train(ppo_cfg, env_kwargs={**env_kwargs, "reference_model": sft_dir}, ptx_texts=ptx_texts,
                   callback=held_out)
    result["policy"].save_pretrained(d / "final")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(env_kwargs["tokenizer"]).save_pretrained(str(d / "final"))  # loads like the rest
    (d / "history.json").write_text(json.dumps(result["history"]))
    if held_out is not None:
        (d / "curve.json").write_text(json.dumps(held_out.points))


def _evaluate(cfg, task, bases, sft, main, s, rm_dir, ppo, runs, env_kwargs, comp_val, pool, device) -> dict:
    from transformers import AutoModelForCausalLM

    load = lambda p: AutoModelForCausalLM.from_pretrained(str(p)).eval()  # noqa: E731
    large = s["large_size"]
    models = {"base": load(bases[main]), f"base_{large}": load(bases[large]), "sft": load(sft[main])}
    for size in s["sizes"][1:]:
        models[f"base_{size}"], models[f"sft_{size}"] = load(bases[size]), load(sft[size])
        models[f"ppo_{size}"] = load(ppo[f"ppo_{size}"] / "final")
    for name in ("ppo", "ppo_ptx"):
        models[name] = load(ppo[name] / "final")
    eval_env = {**env_kwargs, "prompts": str(task.prompts_file("test")), "reference_model": sft[main],
                "device": device}
    ev = evaluate_models(task, models, eval_env, s["eval_prompts"], cfg.seed, pool)
    samples, per_model = ev["samples"], ev["models"]

    pairs = {"ppo_vs_sft": ("ppo", "sft"), "ppo_ptx_vs_sft": ("ppo_ptx", "sft"), "sft_vs_base": ("sft", "base"),
             "ppo_vs_large_base": ("ppo", f"base_{large}"), "ppo_vs_ppo_ptx": ("ppo", "ppo_ptx")}
    wins = pairwise_wins(samples, pairs)
    figure1 = {"base": [], "SFT": [], "PPO": [], "PPO-ptx": []}
    for name, m in per_model.items():  # every model's win rate against the small SFT model
        method = "PPO-ptx" if name == "ppo_ptx" else {"base": "base", "sft": "SFT"}.get(name.split("_")[0], "PPO")
        figure1[method].append((m["params"], pairwise_wins(samples, {"w": (name, "sft")})["w"]))

    curves, training, sweep = {}, {}, {}
    for name, (size, kl, ptx) in runs.items():
        if ptx or size != main:
            continue
        h = json.loads((ppo[name] / "history.json").read_text())
        training[f"kl_coef={kl:g}"] = {"iteration": [r["iteration"] for r in h], "score": [r["env/score"] for r in h],
                                       "kl": [r["env/kl"] for r in h], "gold": [r["eval/gold_score"] for r in h]}
        curves[f"kl_coef={kl:g}"] = json.loads((ppo[name] / "curve.json").read_text())
    for label, c in curves.items():
        sweep[label] = overoptimisation(c["score"], c["gold"])
    rm_summary = json.loads((rm_dir / "summary.json").read_text())
    return {
        "preset": cfg.preset, "machine": machine(), "labelers": {"noises": pool.noises}, "eval_prompts": len(samples["sft"].gold),
        "config": cfg.to_dict(), "models": per_model, "win_rates": wins,
        "size_ratio": per_model[f"base_{large}"]["params"] / per_model["base"]["params"],
        "reward_model": {
            "accuracy": rm_summary["val"]["accuracy"], "loss": rm_summary["val"]["loss"],
            # one ranking per prompt in a user's file: no second labeler to agree with
            "labeler_agreement": None if cfg.comparisons else labeler_agreement(task, pool, load_comparisons(comp_val),
                                                                                cfg.seed),
            "forwards_per_comparison": rm_summary["forwards_per_comparison"],
        },
        "kl_sweep": {"no_kl": sweep["kl_coef=0"], "default": sweep[f"kl_coef={cfg.kl_coef:g}"], "all": sweep,
                     "curves": curves, "training_curves": training,
                     "curve_prompts": s["curve_prompts"], "curve_every": s["curve_every"]},
        "alignment_tax": {m: per_model[m]["corpus_loss"] - per_model["sft"]["corpus_loss"] for m in ("ppo", "ppo_ptx")},
        "per_kind": ev["per_kind"], "undemonstrated_kinds": list(task.config.undemonstrated_kinds),
        "figure1": figure1, "ngram": ev["ngram"],
        "ngram_note": _ngram_note(ev["ngram"]),
    }


def _ngram_note(ngram: dict) -> str:
    fmt = lambda v: "undefined (a constant score)" if v is None else f"{v:+.2f}"  # noqa: E731
    return (
        f"Across all samples, BLEU against the demonstrator's answer correlates {fmt(ngram['corr_bleu_gold'])} "
        f"and ROUGE-L {fmt(ngram['corr_rouge_gold'])} with the gold score. Compare the models table: a model can "
        "gain gold (intent met) while its n-gram overlap with a demonstration moves little or falls."
    )


def export_defaults(task_dir: Path, sft_dir: str, rm_dir: Path, kl_coef: float) -> Path:
    """Copy what ``gym.make("TextBandit-v0")`` needs into ``textbandit/assets/default`` (models in fp16)."""
    from transformers import AutoModelForCausalLM

    from textbandit.defaults import ASSETS
    from textbandit.reward_model import RewardModel

    ASSETS.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer", "prompts_train.jsonl", "prompts_validation.jsonl", "prompts_test.jsonl",
                 "demonstrations_train.jsonl", "demonstrations_validation.jsonl", "labelers.json", "task_config.json",
                 "customers.json"):
        src = Path(task_dir) / name
        if src.is_dir():
            shutil.copytree(src, ASSETS / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, ASSETS / name)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(Path(task_dir) / "tokenizer"))
    sft = AutoModelForCausalLM.from_pretrained(sft_dir, dtype=torch.float16)
    sft.save_pretrained(str(ASSETS / "sft"))
    tokenizer.save_pretrained(str(ASSETS / "sft"))
    RewardModel.from_pretrained(str(rm_dir), torch_dtype=torch.float16).save_pretrained(ASSETS / "reward_model", tokenizer)
    for name in ("sft", "reward_model"):  # stored in fp16 to stay small, but load as float32 by default:
        config = json.loads((ASSETS / name / "config.json").read_text())  # fp16 matmuls on a CPU are slow and coarse
        config["dtype"] = "float32"
        (ASSETS / name / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    settings = {"kl_coef": kl_coef, "max_prompt_len": MAX_PROMPT_LEN, "max_new_tokens": MAX_NEW_TOKENS}
    (ASSETS / "env_config.json").write_text(json.dumps(settings, indent=1) + "\n")
    return ASSETS
