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


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser itself, or, for a command with subcommands (``textbandit label``), each subcommand's."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [leaf for a in subs for p in a.choices.values() for leaf in leaf_parsers(p)] or [parser]


@pytest.mark.parametrize("stage", list(COMMANDS))
def test_every_option_has_help_with_its_default(stage, monkeypatch):
    for parser in leaf_parsers(stage_parser(stage, monkeypatch)):
        options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        assert options, parser.prog
        undocumented = [a.option_strings[-1] for a in options if not (a.help or "").strip()]
        assert not undocumented, f"{parser.prog} --help: no help for {undocumented}"
        formatter = parser._get_formatter()
        no_default = [
            a.option_strings[-1]
            for a in options
            if a.default not in (None, "", (), [])  # nothing to state: the option's doc says what its absence means
            and not isinstance(a.default, bool)
            and not a.required
            and str(a.default) not in formatter._expand_help(a)
        ]
        assert not no_default, f"{parser.prog} --help: default not stated for {no_default}"
        text = parser.format_help()
        assert "(default: )" not in text and "(default: ())" not in text, parser.prog
        assert parser.prog.startswith(f"textbandit {stage}"), parser.prog  # the usage line names the stage
        for markup in ("``", ":class:", ":func:", ":mod:", ":meth:"):  # no raw reST
            assert markup not in text, f"{parser.prog} --help shows {markup!r}"
        assert "--config" in text, parser.prog
        for a in options:
            if a.required:
                assert "(required)" in formatter._expand_help(a) or "required" in (a.help or ""), a.option_strings


def test_label_lists_its_subcommands_and_each_has_help(monkeypatch, capsys):
    parser = stage_parser("label", monkeypatch)
    assert [p.prog for p in leaf_parsers(parser)] == [
        f"textbandit label {c}" for c in ("add-labeler", "add-items", "serve", "agreement", "export")
    ]
    for sub in ("serve", "export"):
        with pytest.raises(SystemExit) as exit_:
            cli_main(["label", sub, "--help"])
        assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "127.0.0.1" in text and "--val-fraction" in text and "TLS" in text


def test_collect_help_says_which_labelers_rank(monkeypatch):
    text = stage_parser("collect", monkeypatch).format_help()
    assert "labelers as configured" in text and "textbandit pipeline" in text and "recalibrates" in text
