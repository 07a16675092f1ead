"""Train a reward model from the command line.

    python -m agents.reward --model SFT --train comparisons.jsonl --val val.jsonl \
        --normalize-with demos.jsonl --out DIR [--batching pairs] [--epochs 2]

Every option is a field of :class:`agents.reward.RewardConfig`
(``--help`` lists them with their docs). Prints the output directory and the summary.
"""

import json
from pathlib import Path

from agents.common.cli import parse_config
from agents.reward.config import RewardConfig
from agents.reward.trainer import train_reward_model


def main(argv=None) -> str:
    config = parse_config(
        RewardConfig, argv, description="Train a reward model on ranked comparisons.", prog="textbandit rm"
    )
    path = train_reward_model(config)
    print(path)
    val = json.loads((Path(path) / "summary.json").read_text()).get("val")
    if val:  # no validation set: nothing to report but the folder
        print(f"validation: accuracy {val['accuracy']:.3f}, loss {val['loss']:.4f} on {val['pairs']} pairs")
    return path


if __name__ == "__main__":
    main()
