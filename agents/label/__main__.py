"""``python -m agents.label``: the same as ``textbandit label``."""

from agents.label.cli import main

main()
