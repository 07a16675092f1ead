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
from textbandit.data import load_comparisons, write_jsonl
from textbandit.task import LabelerPool

MAX_PROMPT_LEN = 32  # the task's prompts have at most 23 tokens
MAX_NEW_TOKENS = 24  # its demonstrations at most 22 words, plus EOS
VAL_FRACTION = 0.1  # of the prompts of a user's comparisons, held out when no validation file is given


class Stages:
    """Runs each stage once: a stage folder with a ``.done`` file (and every file in ``requires``,
    for outputs that later versions added) is complete and reused. ``seconds`` holds what each
    stage run by this call took (its ``.done`` file keeps it for later)."""

    def __init__(self, out: Path):
        self.out = out
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn, requires: tuple[str, ...] = ()) -> Path:
        path = self.out / name
        if (path / ".done").exists() and all((path / f).exists() for f in requires):
            return path
        if path.exists():  # an interrupted stage: start it again from scratch
            shutil.rmtree(path)
        t0 = time.time()
        fn(path)
        path.mkdir(parents=True, exist_ok=True)
        self.seconds[name] = time.time() - t0
        (path / ".done").write_text(json.dumps({"seconds": self.seconds[name]}))
        return path


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

    t_start = time.time()
    if not cfg.progress:  # also the bars transformers draws when it loads and saves models
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    s, out = cfg.settings, Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    stage = Stages(out)
    device = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device)

    task_cfg = TaskConfig(seed=cfg.seed, n_customers=s["n_customers"],
                          prompts_per_customer=s["prompts_per_customer"], corpus_texts=s["corpus_texts"])
    task_dir = stage("task", lambda d: build(d, task_cfg))
    task = load_default_task(task_dir)
    if cfg.base_model:
        check_base_model(cfg.base_model, task.tokenizer(), task.tokenizer_path)
    demos_train = cfg.demonstrations or str(task.demonstrations_file("train"))
    demos_val = str(task.demonstrations_file("validation"))

    # 1-2. base models: the sizes PPO is run at, and the large base the small PPO model must beat
    sizes = list(s["sizes"])
    bases = {}
    for size in sizes + [s["large_size"]]:
        if size == sizes[0] and cfg.base_model:
            bases[size] = cfg.base_model
            continue
        args = PretrainArgs(size=size, task=str(task_dir), steps=s["pretrain_steps"][size], seed=cfg.seed,
                            device=device, progress=cfg.progress)
        bases[size] = str(stage(f"base_{size}", lambda d, a=args: pretrain(_with_out(a, d))))

    # 3. SFT at each size
    sft = {}
    for size in sizes:
        sft_cfg = SFTConfig(model=bases[size], train=demos_train, val=demos_val, epochs=per_size(s["sft_epochs"], size),
                            lr=3e-4, batch_size=32, max_prompt_len=MAX_PROMPT_LEN, max_response_len=MAX_NEW_TOKENS,
                            seed=cfg.seed, device=device, progress=cfg.progress, out="-")
        sft[size] = str(stage(f"sft_{size}", lambda d, c=sft_cfg: train_sft(_with_out(c, d))))
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

    comparisons = stage("comparisons_given", given) if cfg.comparisons else stage("comparisons", collect)
    comp_train, comp_val = str(comparisons / "train.jsonl"), str(comparisons / "validation.jsonl")

    # 5. reward model from the SFT model, normalised so that demonstrations score 0
    rm_cfg = RewardConfig(model=sft[main], train=comp_train, val=comp_val, normalize_with=demos_train,
                          epochs=s["rm_epochs"], lr=s["rm_lr"], max_prompt_len=MAX_PROMPT_LEN, max_response_len=MAX_NEW_TOKENS,
                          seed=cfg.seed, device=device, progress=cfg.progress, out="-")
    rm_dir = stage("reward_model", lambda d: train_reward_model(_with_out(rm_cfg, d)))

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
        ppo[name] = stage(name, lambda d, a=(sft[size], kl, ptx, curve, its): _ppo(d, cfg, a[0], rm_dir, env_kwargs,
                                                                                 *a[1:], task, device),
                          requires=("curve.json",) if curve else ())

    # 7. evaluation on held-out customers
    labelers = comparisons / "labelers.json"
    pool = LabelerPool(json.loads(labelers.read_text())["noises"]) if labelers.exists() else task.labelers()
    results = _evaluate(cfg, task, bases, sft, main, s, rm_dir, ppo, runs, env_kwargs, comp_val, pool, device)
    results["seconds"] = {**stage.seconds, "total": time.time() - t_start}
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


def _ppo(d: Path, cfg: PipelineConfig, sft_dir: str, rm_dir: Path, env_kwargs: dict, kl: float, ptx: float,
         curve: bool, iterations: int, task, device: str):
    from agents.pipeline.curves import HeldOutCurve
    from agents.ppo.learner import train

    s = cfg.settings
    ppo_cfg = ppo_config(s, sft_dir, rm_dir, d, iterations, kl, cfg.seed, ptx_coef=ptx, device=cfg.device,
                         progress=cfg.progress, prompts=env_kwargs["prompts"], tokenizer=env_kwargs["tokenizer"])
    ptx_texts = task.corpus()["train"] if ptx > 0 else None
    held_out = None
    if curve:  # validation customers' prompts, scored against the SFT model as reference
        from transformers import AutoModelForCausalLM

        held_out = HeldOutCurve({**env_kwargs, "prompts": str(task.prompts_file("validation")),
                                 "reference_model": sft_dir, "device": device, "temperature": ppo_cfg.temperature,
                                 "missing_eos_penalty": ppo_cfg.missing_eos_penalty},  # the proxy PPO maximises
                                s["curve_prompts"], s["curve_every"], iterations, cfg.seed)
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
