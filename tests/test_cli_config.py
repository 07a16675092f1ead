"""``--config recipe.yaml|json`` for every stage, command-line flags over it, and its errors."""

from __future__ import annotations

import json

import pytest

from agents.cli import main as cli_main
from agents.common.cli import parse_args, parse_config
from agents.ppo.config import PPOConfig
from agents.sft.config import SFTConfig


def test_a_yaml_recipe_with_flags_over_it(tmp_path):
    recipe = tmp_path / "ppo.yaml"
    recipe.write_text(
        "batch_size: 8\nminibatch-size: 4\nkl_coef: 0.1\nreward_fn: [a.b:f, c.d:g]\nadaptive_kl: true\n"
        "task: null\nsft_model: my/sft\nprompts: p.jsonl\n"
    )
    cfg = parse_config(PPOConfig, ["--config", str(recipe), "--kl-coef", "0.2", "--reward-fn", "e.f:h"])
    assert (cfg.batch_size, cfg.minibatch_size, cfg.kl_coef, cfg.adaptive_kl) == (8, 4, 0.2, True)
    assert cfg.reward_fn == ("e.f:h",) and cfg.task is None  # a flag replaces the file's list
    again = parse_config(PPOConfig, [f"--config={recipe}", "--reward-fn", "x:y", "--reward-fn", "z:w"])
    assert again.reward_fn == ("x:y", "z:w")  # a repeated flag adds to the list


def test_a_json_recipe_gives_required_options(tmp_path):
    recipe = tmp_path / "sft.json"
    recipe.write_text(json.dumps({"train": "demos.jsonl", "out": "runs/sft", "epochs": 2}))
    cfg = parse_config(SFTConfig, ["--config", str(recipe), "--lr", "0.001"])
    assert (cfg.train, cfg.out, cfg.epochs, cfg.lr) == ("demos.jsonl", "runs/sft", 2, 0.001)


@pytest.mark.parametrize(
    "text,message",
    [
        ("batch_sise: 8\n", "unknown option 'batch_sise'; did you mean 'batch_size'"),
        ("batch_size: eight\n", "option 'batch_size' is 'eight', not a valid int"),
        ("- 1\n- 2\n", "expected a mapping of option names to values"),
    ],
)
def test_recipe_errors_are_usage_errors(tmp_path, capsys, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        parse_config(PPOConfig, ["--config", str(recipe)], prog="textbandit ppo")
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_every_stage_reads_a_recipe(tmp_path, capsys):
    """The stages built on argparse directly (task, collect, label) read recipes too, subcommands included."""
    from agents.label.cli import parser as label_parser
    from textbandit.task.build import parser as task_parser

    recipe = tmp_path / "r.yaml"
    recipe.write_text("out: runs/t\nn_customers: 7\nno_corpus: true\n")
    a = parse_args(task_parser(), ["--config", str(recipe)])
    assert (a.out, a.n_customers, a.no_corpus) == ("runs/t", 7, True)
    recipe.write_text("db: l.sqlite\nname: ann\n")
    a = parse_args(label_parser(), ["add-labeler", "--config", str(recipe), "--name", "bob"])
    assert (a.db, a.name) == ("l.sqlite", "bob")
    with pytest.raises(SystemExit):
        cli_main(["collect", "--config", str(tmp_path / "missing.yaml")])
    assert "no such file" in capsys.readouterr().err
