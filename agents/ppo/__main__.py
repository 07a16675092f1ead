"""``python -m agents.ppo``: train PPO on TextBandit-v0 from the command line.

Every ``PPOConfig`` field is a flag (``batch_size`` -> ``--batch-size``); booleans take
``--flag`` / ``--no-flag``. Example::

    python -m agents.ppo --total-iterations 50 --kl-coef 0.05 --output-dir runs/ppo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

from agents.ppo.config import PPOConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agents.ppo", description=__doc__.splitlines()[0])
    hints = typing.get_type_hints(PPOConfig)
    for f in dataclasses.fields(PPOConfig):
        flag, hint = "--" + f.name.replace("_", "-"), str(hints[f.name])
        if hints[f.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = int if "int" in hint else float if "float" in hint else str
            parser.add_argument(flag, type=kind, default=None, metavar=kind.__name__.upper())
    return parser


def main(argv=None) -> dict:
    args = {k: v for k, v in vars(_parser().parse_args(argv)).items() if v is not None}
    cfg = PPOConfig(**args)
    from agents.ppo.learner import train

    result = train(cfg)
    result["policy"].save_pretrained(f"{cfg.output_dir}/final")
    last = result["history"][-1] if result["history"] else {}
    print(json.dumps({k: last[k] for k in ("env/score", "env/kl", "eval/gold_score") if k in last}))
    return result


if __name__ == "__main__":
    main()
