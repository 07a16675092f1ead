"""`textbandit sft`, `rm` and `ppo` from the command line only, on your own tiny Llama-style model with its
own tokenizer (with a chat template) and your own conversational data, prompts and reward function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_hf_reward import tiny_llama
from tiny import tiny_chat_tokenizer
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).parents[1]
U = lambda text: {"role": "user", "content": text}  # noqa: E731
A = lambda text: {"role": "assistant", "content": text}  # noqa: E731
QUESTIONS = [
    ("write about the cat .", "the cat runs ."),
    ("list two fish ?", "one fish , two fish ."),
    ("say one", "one"),
]
REWARDS = '''
def says_the_solution(prompts, completions, solution, **kwargs):
    """TRL's conversational completions, and the prompts' own "solution" column."""
    return [float(s in c[0]["content"]) for c, s in zip(completions, solution)]
'''


def textbandit(*args: str, cwd: Path) -> str:
    """Run ``textbandit ARGS`` as a user would (this checkout's code), returning what it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    done = subprocess.run(
        [sys.executable, "-m", "agents.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Loading weights" not in done.stderr and "Writing model shards" not in done.stderr  # quiet loads
    return done.stdout


def jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_sft_rm_and_ppo_from_the_command_line_on_your_own_model_tokenizer_and_data(tmp_path):
    tok = tiny_chat_tokenizer()
    tok.save_pretrained(tmp_path / "tokenizer")
    tiny_llama(len(tok)).save_pretrained(tmp_path / "base")  # a model folder without a tokenizer
    demos = jsonl(tmp_path / "demos.jsonl", [{"prompt": [U(q)], "completion": [A(a)]} for q, a in QUESTIONS] * 4)
    prefs = jsonl(  # TRL's conversational preference data with an implicit prompt
        tmp_path / "prefs.jsonl",
        [{"chosen": [U(q), A(a)], "rejected": [U(q), A("dog dog dog")]} for q, a in QUESTIONS] * 4,
    )
    prompts = jsonl(tmp_path / "prompts.jsonl", [{"prompt": [U(q)], "solution": a.split()[0]} for q, a in QUESTIONS])
    (tmp_path / "my_rewards.py").write_text(REWARDS)
    (tmp_path / "ppo.yaml").write_text("batch_size: 4\nminibatch_size: 2\ntotal_iterations: 2\nmax_new_tokens: 6\n")
    common = ["--device", "cpu", "--progress", "false", "--tensorboard", "false"]

    sft = textbandit("sft", "--model", "base", "--tokenizer", "tokenizer", "--train", demos, "--out", "sft",
                     "--epochs", "1", "--batch-size", "4", "--dropout", "0", *common, cwd=tmp_path)  # fmt: skip
    assert sft.strip().endswith("sft")
    assert AutoTokenizer.from_pretrained(tmp_path / "sft").chat_template  # saved with the model, template too

    rm = textbandit("rm", "--model", "sft", "--train", prefs, "--out", "rm", *common, cwd=tmp_path)
    assert rm.strip() == "rm" and "{}" not in rm
    assert type(AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")).__name__ == (
        "LlamaForSequenceClassification"
    )

    own = ["--task", "none", "--sft-model", "sft", "--tokenizer", "tokenizer", "--prompts", prompts]
    rewards = ["--reward-model", "rm", "--reward-fn", "my_rewards.py:says_the_solution", "--reward-weights", "1", "0.5"]
    textbandit(
        "ppo", "--config", "ppo.yaml", *own, *rewards, "--out", "ppo", "--samples-every", "1", *common, cwd=tmp_path
    )
    rows = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and abs(rows[0]["env/kl"]) < 1e-4  # the reference is its start
    assert {"env/score/reward_model", "env/score/my_rewards.py:says_the_solution"} <= set(rows[0])
    sample = json.loads((tmp_path / "ppo" / "samples.jsonl").read_text().splitlines()[0])["samples"][0]
    assert sample["prompt"].startswith("user : ") and sample["prompt"].endswith("assistant :")  # the chat template
    AutoModelForCausalLM.from_pretrained(tmp_path / "ppo" / "final")
