"""Our reward-model trainer against TRL's ``RewardTrainer``: same comparisons, init, steps and schedule.

Both start from a finished pipeline run's SFT model (``RUN/sft_small``) with a fresh scalar head
and train on the run's comparisons (``RUN/comparisons/train.jsonl``, K-wise records), the same
number of optimizer steps with the same peak learning rate, warm-up and cosine decay (the
pipeline's: the preset's ``rm_lr`` and ``rm_epochs``, ``RewardConfig``'s schedule), gradient
clipping at 1, fp32 on the CPU and no dropout anywhere. The recipes (``--recipes``):

- ``kwise``: ours as the pipeline runs it: the C(K,2) pairs of a prompt in one batch element,
  8 prompts (about 150 pairs) per optimizer step, the loss a mean over prompts of each prompt's
  mean pair loss;
- ``pairs``: ours with ``batching='pairs'``: every non-tied pair shuffled on its own, as many per
  step as TRL gets;
- ``trl``: TRL's ``RewardTrainer`` on ``AutoModelForSequenceClassification`` (``num_labels=1``) of
  the same SFT model; the K-wise records expanded to (chosen, rejected) pairs, pre-tokenized to
  exactly the token ids ours trains on (``--trl-data ids``) or as text with the prompt joined in
  (``--trl-data text``: TRL appends EOS and tokenizes); pairs per step chosen so that it takes
  the steps ``kwise`` takes; our AdamW and our schedule handed to it (``optimizers=``), TRL's
  defaults otherwise (``center_rewards_coefficient=None``: no centering, as ours; its own
  ``disable_dropout=True``), with ``bf16`` and gradient checkpointing (TRL's defaults) turned off,
  since ours runs fp32 on a CPU and checkpointing only trades time for memory.

A recipe takes options after a colon, to find out what a gap is made of: ``head=ours|trl|lmhp`` (the
initial head: ours and TRL's are both N(0, the model's ``initializer_range``, 0.02), drawn by each
trainer's own code; ``lmhp`` is lm-human-preferences' N(0, 1/sqrt(d+1)), our default until
2026-12-01; the same seed gives every recipe the same head of a kind), ``lr=`` (peak learning rate), ``bs=``
(prompts per step for ``kwise``, pairs per step otherwise; steps change with it), ``epochs=``
(this recipe's, overriding ``--epochs``), ``dropout=sft`` (keep the SFT model's dropout of 0.2
while training), ``weight=pair`` (``kwise`` only: every pair weighs the same in a step's loss, as
in ``pairs`` and TRL, instead of every prompt: ``RewardConfig.kwise_weighting``). E.g.
``kwise:head=trl trl:head=ours kwise:bs=16,epochs=2`` (the last: the same
250 steps over the data twice).

Every model is scored by the same code, :func:`agents.reward.data.evaluate`: each
``prompt ++ response`` forwarded in our layout, the reward read at the last attended token (the
EOS); TRL's model is wrapped so that its ``score`` is its own forward (``logits`` at its last
non-pad token), and the script checks that this equals what TRL's collator and forward give in
training. Accuracies are over pairs: on the run's training comparisons; on the held-out ones
(``RUN/comparisons/validation.jsonl``) over all non-tied pairs, over those whose two gold scores
differ, and, on those, against the gold order itself (what RL needs). With ``--labels gold`` the
comparisons are re-ranked by the hidden gold score first (no label noise; see rm_probes.py).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/rm_vs_trl.py --run runs/quick        # ~10 min, 2 cores
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/rm_vs_trl.py --run runs/quick --labels gold
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/rm_vs_trl.py --run runs/quick --epochs 4
    python benchmarks/rm_vs_trl.py --run runs/quick --recipes kwise:head=trl pairs:head=trl trl:head=ours

What it measured is in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

KINDS = ("kwise", "pairs", "trl")


@dataclass
class Recipe:
    kind: str
    head: str | None = None  # 'ours' or 'trl'; None: the trainer's own
    lr: float | None = None
    bs: int | None = None
    dropout: str = "off"
    epochs: int | None = None
    weight: str = "prompt"  # kwise only: RewardConfig.kwise_weighting
    spec: str = ""
    options: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> "Recipe":
        kind, _, rest = spec.partition(":")
        if kind not in KINDS:
            raise SystemExit(f"recipe {spec!r}: use one of {KINDS}, optionally with :head=..,lr=..,bs=..,dropout=..")
        r = cls(kind, spec=spec)
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key == "head" and value in ("ours", "trl", "lmhp"):
                r.head = value
            elif key == "lr":
                r.lr = float(value)
            elif key == "bs":
                r.bs = int(value)
            elif key == "epochs":
                r.epochs = int(value)
            elif key == "dropout" and value in ("off", "sft"):
                r.dropout = value
            elif key == "weight" and value in ("prompt", "pair") and kind == "kwise":
                r.weight = value
            else:
                options = "head=ours|trl|lmhp, lr=F, bs=N, epochs=N, dropout=off|sft, weight=prompt|pair (kwise)"
                raise SystemExit(f"recipe {spec!r}: unknown option {item!r} ({options})")
        if r.head is None:
            r.head = "trl" if kind == "trl" else "ours"
        return r


class SeqClsScorer(nn.Module):
    """A sequence-classification model behind our reward model's ``score``: its own forward, its
    ``logits`` at its last non-pad token (``config.pad_token_id``), with our position ids."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def score(self, input_ids, attention_mask, position_ids=None):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        return out.logits.squeeze(-1)


def initial_heads(sft: str, seed: int) -> dict[str, torch.Tensor]:
    """The (1, d) initial head weights of each kind, as each trainer draws them with ``seed``."""
    from transformers import AutoModelForSequenceClassification, set_seed

    from agents.common.checkpoint import seed_everything
    from textbandit.reward_model import RewardModel

    seed_everything(seed)  # as train_reward_model does before it builds the head
    ours = RewardModel.from_causal_lm(sft).head.weight.detach().clone()
    set_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trl = AutoModelForSequenceClassification.from_pretrained(sft, num_labels=1).score.weight.detach().clone()
    g = torch.Generator().manual_seed(seed)
    lmhp = torch.randn(ours.shape, generator=g) / math.sqrt(ours.shape[1] + 1)
    return {"ours": ours, "trl": trl, "lmhp": lmhp}


def pair_records(records: list[dict], golds: list[list[float]], by: str) -> list[dict]:
    """Every pair of the held-out records whose gold scores differ, as a 2-response record ranked by
    the records' labels (``by='labels'``; label ties dropped) or by gold (``by='gold'``)."""
    out = []
    for r, g in zip(records, golds):
        ended = r.get("ended_with_eos") or [True] * len(r["responses"])
        k = len(r["responses"])
        for i in range(k):
            for j in range(i + 1, k):
                if round(g[i], 9) == round(g[j], 9):
                    continue
                ranks = [r["ranking"][i], r["ranking"][j]] if by == "labels" else [-g[i], -g[j]]
                if ranks[0] == ranks[1]:
                    continue
                out.append(
                    {
                        "prompt": r["prompt"],
                        "responses": [r["responses"][i], r["responses"][j]],
                        "ranking": [0, 1] if ranks[0] < ranks[1] else [1, 0],
                        "ended_with_eos": [ended[i], ended[j]],
                    }
                )
    return out


def dropout_free(model_fn, batch) -> bool:
    """Whether two forwards in train mode give the same scores (no dropout left anywhere)."""
    with torch.no_grad():
        a = model_fn(batch.input_ids, batch.attention_mask, batch.position_ids)
        b = model_fn(batch.input_ids, batch.attention_mask, batch.position_ids)
    return bool(torch.equal(a, b))


class Bench:
    def __init__(
        self, run: Path, labels: str, epochs: int | None, seed: int, trl_data: str, work: Path, limit: int | None
    ):
        from rm_probes import relabel
        from transformers import AutoTokenizer

        from agents.pipeline.config import PRESETS
        from agents.pipeline.labeling import gold_lists
        from agents.reward.data import encode_comparisons, expand_to_pairs
        from textbandit.data import load_comparisons, write_jsonl
        from textbandit.task import load_task

        self.run, self.labels, self.seed, self.trl_data, self.work = run, labels, seed, trl_data, work
        preset = PRESETS[json.loads((run / "pipeline_config.json").read_text())["preset"]]
        self.epochs, self.lr = epochs or preset.rm_epochs, preset.rm_lr
        task = load_task(run / "task")
        self.lengths = (task.max_prompt_len, task.max_new_tokens)
        self.sft = str(run / "sft_small")
        self.tok = AutoTokenizer.from_pretrained(self.sft)
        self.pad = self.tok.pad_token_id
        raw = {s: load_comparisons(run / "comparisons" / f"{s}.jsonl") for s in ("train", "validation")}
        raw["train"] = raw["train"][:limit]  # None: all
        self.records = {s: relabel(r, labels) for s, r in raw.items()}
        self.train_path = work / "train.jsonl"
        write_jsonl(self.train_path, self.records["train"])
        enc = lambda recs: encode_comparisons(recs, self.tok, *self.lengths)
        self.comps = enc(self.records["train"])
        self.pairs = expand_to_pairs(self.comps)
        val = self.records["validation"]
        golds = gold_lists(task, val)
        self.eval_sets = {
            "train": enc(self.records["train"]),
            "held_out": enc(val),
            "gold_differs": enc(pair_records(val, golds, "labels")),
            "vs_gold": enc(pair_records(val, golds, "gold")),
        }
        self.kwise_batch = 8  # RewardConfig's batch_size: the pipeline's
        self.steps_per_epoch = math.ceil(len(self.comps) / self.kwise_batch)
        self.pair_batch = math.ceil(len(self.pairs) / self.steps_per_epoch)  # TRL's (and 'pairs'): same steps
        self.heads = initial_heads(self.sft, seed)
        self.checks: list[str] = []
        self.n_dirs = 0

    def next_dir(self, name: str) -> Path:
        self.n_dirs += 1
        return self.work / f"{name}_{self.n_dirs}"

    # ---- ours ----------------------------------------------------------------------------------
    def ours(self, r: Recipe) -> dict:
        from agents.reward.config import RewardConfig
        from agents.reward.trainer import train_reward_model
        from textbandit.reward_model import RewardModel

        out = self.next_dir("ours")
        kwise = r.kind == "kwise"
        cfg = RewardConfig(
            model=self.sft,
            train=str(self.train_path),
            out=str(out),
            batching=r.kind,
            kwise_weighting=r.weight,
            batch_size=r.bs if (kwise and r.bs) else self.kwise_batch,
            pair_batch_size=None if kwise else (r.bs or self.pair_batch),
            epochs=r.epochs or self.epochs,
            lr=r.lr or self.lr,
            dropout=None if r.dropout == "sft" else 0.0,
            max_prompt_len=self.lengths[0],
            max_response_len=self.lengths[1],
            seed=self.seed,
            device="cpu",
            progress=False,
            tensorboard=False,
        )
        model = None
        if r.head != "ours":  # the pipeline's own path builds our head from config.model
            model = RewardModel.from_causal_lm(self.sft)
            with torch.no_grad():
                model.head.weight.copy_(self.heads[r.head])
        start = time.perf_counter()
        train_reward_model(cfg, model, self.tok)
        seconds = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
        rm = RewardModel.from_pretrained(out)
        per_step = cfg.batch_size if kwise else cfg.pair_batch_size
        return self.measure(r, rm, seconds, summary["steps"], per_step)

    # ---- TRL -----------------------------------------------------------------------------------
    def trl_dataset(self):
        from datasets import Dataset

        from agents.reward.loss import ranked_pairs

        if self.trl_data == "ids":
            return Dataset.from_dict(
                {"chosen_ids": [p + c for p, c, _ in self.pairs], "rejected_ids": [p + x for p, _, x in self.pairs]}
            )
        chosen, rejected, same = [], [], 0
        for rec in self.records["train"]:
            for w, lose in ranked_pairs(rec["ranking"]):
                chosen.append(f"{rec['prompt']} {rec['responses'][w]}")
                rejected.append(f"{rec['prompt']} {rec['responses'][lose]}")
        eos = self.tok.eos_token
        for text, (p, c, _) in zip(chosen, self.pairs):
            same += self.tok(text + eos, add_special_tokens=False)["input_ids"] == p + c
        self.checks.append(
            f"--trl-data text: {same} of {len(chosen)} chosen rows tokenize to exactly our ids"
            + ("" if same == len(chosen) else " (others: truncated responses, which TRL ends with EOS, or cut ones)")
        )
        return Dataset.from_dict({"chosen": chosen, "rejected": rejected})

    def trl(self, r: Recipe) -> dict:
        from transformers import AutoModelForSequenceClassification
        from trl import RewardConfig as TRLConfig
        from trl import RewardTrainer

        from agents.common.device import adamw
        from agents.common.schedule import learning_rate
        from agents.common.training import steps_per_run
        from agents.reward.config import RewardConfig

        ours_defaults = RewardConfig(model="-", train="-", out="-")
        per_step = r.bs or self.pair_batch
        epochs = r.epochs or self.epochs
        total, warmup = steps_per_run(len(self.pairs), per_step, epochs, ours_defaults.warmup_ratio)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForSequenceClassification.from_pretrained(self.sft, num_labels=1)
        model.config.pad_token_id = self.pad
        with torch.no_grad():
            model.score.weight.copy_(self.heads[r.head])
        lr = r.lr or self.lr
        optimizer = adamw(model.parameters(), "cpu", lr=lr, weight_decay=ours_defaults.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: learning_rate(s, total, 1.0, warmup, "cosine", ours_defaults.min_lr_ratio),
        )
        args = TRLConfig(
            output_dir=str(self.next_dir("trl")),
            per_device_train_batch_size=per_step,
            num_train_epochs=epochs,
            learning_rate=lr,
            max_grad_norm=ours_defaults.max_grad_norm,
            weight_decay=ours_defaults.weight_decay,
            seed=self.seed,
            disable_dropout=r.dropout == "off",
            center_rewards_coefficient=None,
            bf16=False,
            gradient_checkpointing=False,
            use_cpu=True,
            max_length=None,
            save_strategy="no",
            report_to="none",
            logging_steps=10_000,
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        dataset = self.trl_dataset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = RewardTrainer(
                model=model,
                args=args,
                processing_class=self.tok,
                train_dataset=dataset,
                optimizers=(optimizer, schedule),
            )
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
        steps = trainer.state.global_step
        if steps != total:
            raise RuntimeError(f"TRL took {steps} optimizer steps, the schedule was built for {total}")
        model = trainer.model.eval()
        self.check_scoring(trainer, model, r.spec)
        return self.measure(r, SeqClsScorer(model), seconds, steps, per_step)

    def check_scoring(self, trainer, model, spec: str) -> None:
        """TRL's training-time scores (its collator: right-padded, no position ids) against ours of the
        same pairs through :class:`SeqClsScorer` in our layout: they must agree."""
        from agents.reward.data import score_pairs

        rows = [trainer.train_dataset[i] for i in range(min(64, len(trainer.train_dataset)))]
        with torch.no_grad():
            batch = trainer.data_collator(rows)
            theirs = model(**batch, use_cache=False).logits.squeeze(-1)
            chosen, rejected = score_pairs(SeqClsScorer(model), self.pairs[: len(rows)], self.pad, "cpu")
        diff = float((theirs - torch.cat([chosen, rejected])).abs().max())
        if self.trl_data == "ids" and diff > 1e-4:
            raise RuntimeError(f"TRL's own scores and ours of its model differ by {diff}: not the same token read")
        self.checks.append(f"{spec}: TRL's model, its own forward vs our scoring: max |diff| {diff:.1e} over 128 rows")

    # ---- the measurement -----------------------------------------------------------------------
    def measure(self, r: Recipe, rm, seconds: float, steps: int, per_step: int) -> dict:
        from agents.reward.data import evaluate
        from textbandit.layout import collate

        acc = {}
        for name, comps in self.eval_sets.items():
            m = evaluate(rm, comps, self.pad, "cpu")
            acc[name] = {"accuracy": m["accuracy"], "pairs": m["pairs"]}
        c = self.comps[:4]
        batch = collate([x.prompt for x in c for _ in x.responses], [y for x in c for y in x.responses], self.pad)
        rm.train()
        free = dropout_free(rm.score, batch)
        rm.eval()
        unit = "prompts" if r.kind == "kwise" else "pairs"
        return {
            "recipe": r.spec,
            "labels": self.labels,
            "epochs": r.epochs or self.epochs,
            "seed": self.seed,
            "steps": steps,
            "per_step": f"{per_step} {unit}",
            "seconds": seconds,
            "dropout_free": free,
            **{k: v["accuracy"] for k, v in acc.items()},
            "pairs": {k: v["pairs"] for k, v in acc.items()},
        }


def machine() -> str:
    import transformers
    import trl

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} thread), "
        f"transformers {transformers.__version__}, trl {trl.__version__}"
    )


def report(rows: list[dict], header: str) -> None:
    print(header)
    p = rows[0]["pairs"]
    print(
        f"| recipe | labels | epochs | seed | steps | per step | train acc | held out ({p['held_out']} pairs) | "
        f"held out, gold differs ({p['gold_differs']}) | held out vs gold ({p['vs_gold']}) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['recipe']} | {r['labels']} | {r['epochs']} | {r['seed']} | {r['steps']} | {r['per_step']} | "
            f"{r['train']:.1%} | {r['held_out']:.1%} | {r['gold_differs']:.1%} | {r['vs_gold']:.1%} | "
            f"{r['seconds']:.0f} |"
        )
    seeds = sorted({r["seed"] for r in rows})
    if len(seeds) > 1:
        print(f"\nmean over seeds {seeds} (± half the range):")
        print("| recipe | train acc | held out | held out, gold differs | held out vs gold | seconds |")
        print("|---|---|---|---|---|---|")
        for spec in dict.fromkeys(r["recipe"] for r in rows):
            sel = [r for r in rows if r["recipe"] == spec]
            mean = lambda k, sel=sel: sum(r[k] for r in sel) / len(sel)
            spread = lambda k, sel=sel: (max(r[k] for r in sel) - min(r[k] for r in sel)) / 2
            cells = " | ".join(
                f"{mean(k):.1%} ± {spread(k):.1%}" for k in ("train", "held_out", "gold_differs", "vs_gold")
            )
            print(f"| {spec} | {cells} | {mean('seconds'):.0f} |")


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/quick", help="a finished `textbandit pipeline` output folder")
    p.add_argument("--labels", choices=("labelers", "gold"), default="labelers", help="the run's or gold's")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every recipe (default: the run's preset's)")
    p.add_argument("--recipes", nargs="+", default=list(KINDS), help="kwise, pairs, trl, each with :options")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one row per recipe and seed")
    p.add_argument("--trl-data", choices=("ids", "text"), default="ids", help="TRL's pairs: our token ids, or text")
    p.add_argument("--comparisons", type=int, default=None, help="train on the first N comparisons only (a smoke test)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    p.add_argument("--json", help="write the rows here too")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    run = Path(a.run)
    if not (run / "comparisons" / "train.jsonl").is_file() or not (run / "sft_small").is_dir():
        raise SystemExit(f"{run} has no comparisons/ or sft_small/: run `textbandit pipeline --out {run}` first")
    recipes = [Recipe.parse(s) for s in a.recipes]
    load_before = os.getloadavg()
    rows, checks = [], []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            bench = Bench(run, a.labels, a.epochs, seed, a.trl_data, Path(tmp), a.comparisons)
            for r in recipes:
                rows.append(bench.trl(r) if r.kind == "trl" else bench.ours(r))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "pairs"}), flush=True)
            checks += bench.checks
    header = (
        f"\n# reward-model trainers on {run} ({machine()})\n"
        f"{len(bench.comps)} training comparisons, {len(bench.pairs)} non-tied pairs; lr {bench.lr} peak, warm-up 3%, "
        f"cosine to 10%; TRL pairs as {a.trl_data}; load average {load_before[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n"
    )
    report(rows, header)
    for line in dict.fromkeys(checks):
        print(f"check: {line}")
    free = ", ".join(f"{r['recipe']} {r['dropout_free']}" for r in rows)
    print(f"dropout-free in train mode (two forwards equal): {free}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
