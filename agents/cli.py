"""The ``textbandit`` command: one subcommand per InstructGPT stage, and ``pipeline``.

    textbandit pipeline --preset quick --out runs/quick     # everything, then report.md
    textbandit task --out runs/task                         # build the default task's files
    textbandit pretrain --size small --task runs/task --out runs/base
    textbandit sft --model runs/base --train runs/task/demonstrations_train.jsonl --out runs/sft
    textbandit collect --model runs/sft --prompts runs/task/prompts_train.jsonl --task runs/task \
        --out runs/comparisons.jsonl
    textbandit rm --model runs/sft --train runs/comparisons.jsonl --out runs/rm
    textbandit ppo --sft-model runs/sft --reward-model runs/rm --out runs/ppo
    textbandit eval --task runs/task --reward-model runs/rm --reference runs/sft \
        --models sft=runs/sft ppo=runs/ppo/final
    textbandit ppo --task none --sft-model my/sft --tokenizer my/sft --prompts my/prompts.jsonl \
        --reward-fn my_rewards:brevity --out runs/mine    # your own model, prompts and reward function
    textbandit label serve --db labels.sqlite --items items.jsonl  # people rank (see textbandit label --help)
    textbandit merge-lora --adapter runs/sft/adapter --out runs/sft-merged  # a LoRA adapter into a plain model

``textbandit <stage> --help`` explains every option. Every stage takes local paths (or hub
names where a model is loaded), so any stage can start from your own model, tokenizer and data
(``--tokenizer``; data in textbandit's JSONL or TRL's formats), and reads its options from
``--config recipe.yaml`` too (flags override it). Transformers' per-load progress bars are off;
``HF_HUB_DISABLE_PROGRESS_BARS=0`` shows them.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

from agents.common.cli import parse_args, parse_config


@dataclass
class EvalConfig:
    """Judge models on held-out customers' prompts with the task's gold labeler."""

    models: tuple[str, ...] = field(default=(), metadata={"required": True})
    """models as NAME=PATH; the first is the baseline that win rates are against"""
    reward_model: str = field(default="", metadata={"required": True})
    """the reward model the env scores with"""
    reference: str = field(default="", metadata={"required": True})
    """the SFT (reference) model the KL is measured against"""
    out: str = "runs/eval"
    """folder for eval.json"""
    task: str | None = None
    """the task folder (default: the shipped textbandit/assets/default)"""
    n_prompts: int = 300
    """test prompts to evaluate on"""
    seed: int = 0
    """seed of the samples"""
    device: str = "cpu"
    """'cpu' or 'cuda'"""

    def __post_init__(self):
        if not self.models or not all("=" in m for m in self.models):
            raise ValueError("pass --models NAME=PATH [NAME=PATH ...]")
        if not self.reward_model or not self.reference:
            raise ValueError("pass --reward-model and --reference")


def evaluate(c: EvalConfig) -> None:
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    from agents.pipeline.evaluate import evaluate_models, pairwise_wins
    from textbandit.task import load_task

    task = load_task(c.task or "default").replace(reward_model=c.reward_model, reference_model=c.reference)
    from textbandit.loading import load

    models = {
        n: load(AutoModelForCausalLM.from_pretrained, p, f"--models {n}").eval()
        for n, p in (m.split("=", 1) for m in c.models)
    }
    ev = evaluate_models(task, models, c.n_prompts, c.seed, device=c.device)
    first = next(iter(models))
    result = {
        "models": ev["models"],
        "per_kind": ev["per_kind"],
        "ngram": ev["ngram"],
        "win_rates": pairwise_wins(ev["samples"], {f"{n}_vs_{first}": (n, first) for n in list(models)[1:]}),
    }
    Path(c.out).mkdir(parents=True, exist_ok=True)
    (Path(c.out) / "eval.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({"win_rates": result["win_rates"], "gold": {n: m["gold"] for n, m in ev["models"].items()}}))


@dataclass
class MergeConfig:
    """Merge a LoRA adapter (PEFT format, as a trainer with --lora-r wrote it) into its base model."""

    adapter: str = ""
    """the adapter folder (OUT/adapter of a LoRA run, or any PEFT LoRA adapter)"""
    out: str = ""
    """where the merged Hugging Face model is written (AutoModelForCausalLM loads it)"""
    base: str | None = None
    """the base model's folder; None: the one the adapter's adapter_config.json names"""

    def __post_init__(self):
        if not self.adapter or not self.out:
            raise ValueError("pass --adapter DIR (a LoRA adapter) and --out DIR (the merged model)")


def merge_lora(c: MergeConfig) -> None:
    from agents.common.lora import merge_adapters

    print(merge_adapters(c.adapter, c.out, base=c.base))


def pipeline(argv) -> dict | None:
    from agents.pipeline.config import PipelineConfig
    from agents.pipeline.run import run_pipeline

    cfg = parse_config(
        PipelineConfig, argv, description=PipelineConfig.__doc__.splitlines()[0], prog="textbandit pipeline"
    )
    results = run_pipeline(cfg)
    if results is None:  # a rank other than 0 under torchrun: rank 0 reports
        return None
    out = __import__("pathlib").Path(cfg.out)
    print((out / "report.md").read_text())
    failed = [f["finding"] for f in results["findings"] if f["reproduced"] is False]
    if failed:
        print("not reproduced: " + "; ".join(failed))
    print(
        f"\nThe report is {out / 'report.md'} (numbers in {out / 'report.json'}, plots beside them); the run's "
        f"task with its models is {out / 'export'} (gym.make('TextBandit-v0', task={str(out / 'export')!r}))."
    )
    return results


def task(argv) -> None:
    from textbandit.task.build import parser, run

    run(parse_args(parser("textbandit task"), argv))


def _module_main(module: str):
    return lambda argv: __import__(module, fromlist=["main"]).main(argv)


COMMANDS = {
    "pipeline": pipeline,
    "task": task,
    "pretrain": _module_main("agents.pretrain"),
    "sft": _module_main("agents.sft.__main__"),
    "collect": _module_main("agents.reward.collect"),
    "rm": _module_main("agents.reward.__main__"),
    "ppo": _module_main("agents.ppo.__main__"),
    "label": _module_main("agents.label.cli"),
    "eval": lambda argv: evaluate(
        parse_config(EvalConfig, argv, description=EvalConfig.__doc__, prog="textbandit eval")
    ),
    "merge-lora": lambda argv: merge_lora(
        parse_config(MergeConfig, argv, description=MergeConfig.__doc__, prog="textbandit merge-lora")
    ),
}


def quiet_loading() -> None:
    """Silence transformers' per-load "Loading weights" and "Writing model shards" bars, unless asked for
    with ``HF_HUB_DISABLE_PROGRESS_BARS=0`` (the variable transformers reads): a stage loads many models."""
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").lower() not in ("0", "false", "no", "off"):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        print("commands: " + ", ".join(COMMANDS))
        if argv and argv[0] not in ("-h", "--help"):
            sys.exit(f"unknown command {argv[0]!r}")
        return
    quiet_loading()
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
