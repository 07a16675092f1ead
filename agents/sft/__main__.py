"""``python -m agents.sft --model BASE --train demos.jsonl --val demos_val.jsonl --out DIR [...]``.

Every option is a field of :class:`agents.sft.SFTConfig` (``--help`` lists them with their docs).
"""

from agents.common.cli import parse_config
from agents.sft.config import SFTConfig
from agents.sft.trainer import train_sft


def main(argv=None) -> str:
    config = parse_config(
        SFTConfig, argv, description="Supervised fine-tuning of a causal LM on demonstrations.", prog="textbandit sft"
    )
    path = train_sft(config)
    print(path)
    return path


if __name__ == "__main__":
    main()
