"""``textbandit <stage> --help`` explains every option and states its default (the README's promise)."""

from __future__ import annotations

import argparse

import pytest

from agents.cli import COMMANDS
from agents.cli import main as cli_main


def stage_parser(stage: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser that ``textbandit STAGE --help`` prints, caught as the stage parses its arguments."""
    parsers = []
    parse_args = argparse.ArgumentParser.parse_args

    def recording(self, *args, **kwargs):
        parsers.append(self)
        return parse_args(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", recording)
    with pytest.raises(SystemExit) as exit_:
        cli_main([stage, "--help"])
    assert exit_.value.code == 0 and len(parsers) == 1
    return parsers[0]


@pytest.mark.parametrize("stage", list(COMMANDS))
def test_every_option_has_help_with_its_default(stage, monkeypatch):
    parser = stage_parser(stage, monkeypatch)
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert options
    undocumented = [a.option_strings[-1] for a in options if not (a.help or "").strip()]
    assert not undocumented, f"textbandit {stage} --help: no help for {undocumented}"
    formatter = parser._get_formatter()
    no_default = [a.option_strings[-1] for a in options if a.default is not None and not isinstance(a.default, bool)
                  and str(a.default) not in formatter._expand_help(a)]
    assert not no_default, f"textbandit {stage} --help: default not stated for {no_default}"


def test_collect_help_says_which_labelers_rank(monkeypatch):
    text = stage_parser("collect", monkeypatch).format_help()
    assert "labelers as configured" in text and "textbandit pipeline" in text and "recalibrates" in text
