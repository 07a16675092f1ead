"""Command lines: ``argparse`` from a config dataclass, and ``--config recipe.yaml`` for every stage.

Every field of a config dataclass becomes ``--field-name``; its help is the docstring written under
the field, so the dataclass stays the single place where a setting is documented. A tuple field
takes several values, and its flag may be repeated (``--reward-fn a:f --reward-fn b:g``). A field
whose ``metadata`` says ``required`` must be given (on the command line or in the config file).

Every stage also takes ``--config FILE``: a YAML (``pip install 'textbandit[yaml]'``) or JSON
mapping of option names (``batch_size`` or ``batch-size``) to values; flags on the command line
override it. Unknown keys are errors naming the key.

>>> import json, tempfile
>>> from agents.pipeline.config import PipelineConfig
>>> recipe = tempfile.mktemp(suffix=".json"); _ = open(recipe, "w").write(json.dumps({"seed": 3, "preset": "tiny"}))
>>> cfg = parse_config(PipelineConfig, ["--config", recipe, "--seed", "5"])
>>> cfg.preset, cfg.seed
('tiny', 5)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import json
import re
import textwrap
import types
import typing
from pathlib import Path

CONFIG_HELP = (
    "a YAML or JSON file of options (keys are option names, e.g. batch_size: 32); flags given on the command "
    "line override it"
)


def plain(text: str) -> str:
    """``text`` without reStructuredText markup (``literal``, :role:`target`), as ``--help`` shows it.

    >>> plain("see :class:`~agents.sft.SFTConfig` and ``--out``")
    'see agents.sft.SFTConfig and --out'
    """
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a dataclass (``x: int = 1`` followed by ``\"\"\"doc\"\"\"``),
    its base dataclasses' fields included (a subclass's own doc wins)."""
    docs = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(getattr(nxt, "value", None), ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(tp):
    """``(type, optional)`` of an annotation such as ``int``, ``str | None`` or ``tuple[int, int]``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _base_type(inner[0])[0], True
    return tp, False


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """States each option's default, except where there is none to state (an empty or None default, whose
    doc says what it means) and for required options, which say so."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required and action.option_strings:
            return text + " (required)"
        if action.default is None or action.default is argparse.SUPPRESS or action.default in ("", (), []):
            return text
        return super()._get_help_string(action)


class Items(argparse.Action):
    """Several values for a tuple field; a repeated flag adds to them, its first use replaces the default
    (or the config file's value)."""

    def __call__(self, parser, namespace, values, option_string=None):
        fresh = not getattr(self, "_used", False)
        self._used = True
        setattr(namespace, self.dest, list(values) if fresh else list(getattr(namespace, self.dest)) + list(values))


def build_parser(cls, description: str = "", prog: str | None = None) -> argparse.ArgumentParser:
    """A parser with one ``--option`` per field of the dataclass ``cls``, and ``--config``."""
    parser = argparse.ArgumentParser(prog=prog, description=plain(description), formatter_class=HelpFormatter)
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _base_type(hints[f.name])
        kwargs = {"help": plain(docs.get(f.name, " ")).replace("%", "%%"), "dest": f.name}  # help is %-formatted
        if f.metadata.get("required") or (
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        ):
            kwargs["required"] = True
        elif f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        else:
            kwargs["default"] = f.default_factory()
        origin = typing.get_origin(tp)
        if origin is tuple:
            kwargs.update(nargs="+", type=typing.get_args(tp)[0], action=Items)
        elif tp is bool:
            kwargs.update(type=_parse_bool, metavar="BOOL")
        else:
            kwargs["type"] = tp if tp in (int, float, str) else str
        if optional and kwargs.get("type") in (int, float, str):
            base = kwargs["type"]
            kwargs["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    return parser


def parse_config(cls, argv=None, description: str = "", prog: str | None = None):
    """Parse ``argv`` (and its ``--config`` file) into an instance of the dataclass ``cls`` (whose
    ``__post_init__`` validates); ``prog`` names the command in usage lines (``textbandit sft``)."""
    parser = build_parser(cls, description, prog)
    ns = parse_args(parser, argv)
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(ns).items() if k != "config"}
    try:
        return cls(**values)
    except ValueError as e:  # show config errors as usage errors, not tracebacks
        parser.error(str(e))


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` after reading ``--config FILE`` into the defaults of the (sub)command's
    parser, so that flags on the command line override the file."""
    argv = list(__import__("sys").argv[1:] if argv is None else argv)
    _mark_required(parser)
    leaf, path = _leaf(parser, argv), None
    for i, token in enumerate(argv):
        if token == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif token.startswith("--config="):
            path = token.split("=", 1)[1]
    if path is not None:
        try:
            values = load_config_file(path)
        except (OSError, ValueError, ImportError) as e:
            leaf.error(str(e))
        apply_config(leaf, values, path)
    return parser.parse_args(argv)


def _mark_required(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and its subcommands ``--config``, and say "(required)" in the help of every required option."""
    if not any("--config" in a.option_strings for a in parser._actions):
        parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    for action in parser._actions:
        if action.required and action.option_strings and "(required)" not in (action.help or ""):
            if not isinstance(parser.formatter_class, type) or not issubclass(parser.formatter_class, HelpFormatter):
                action.help = (action.help or "") + " (required)"
        for sub in (
            (getattr(action, "choices", None) or {}).values() if isinstance(action, argparse._SubParsersAction) else ()
        ):
            _mark_required(sub)


def _leaf(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the subcommand ``argv`` names (``parser`` itself when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for i, token in enumerate(argv):
                if token in action.choices:
                    return _leaf(action.choices[token], argv[i + 1 :])
    return parser


def load_config_file(path: str) -> dict:
    """The option mapping of a ``.yaml``/``.yml`` or ``.json`` file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    if p.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            msg = f"--config {path}: YAML needs PyYAML: pip install 'textbandit[yaml]' (or use JSON)"
            raise ImportError(msg) from None
        values = yaml.safe_load(p.read_text(encoding="utf-8"))
    elif p.suffix == ".json":
        values = json.loads(p.read_text(encoding="utf-8"))
    else:
        raise ValueError(f"--config {path}: use a .yaml, .yml or .json file")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values, got {type(values).__name__}")
    return values


def apply_config(parser: argparse.ArgumentParser, values: dict, source: str = "the config file") -> None:
    """Make ``values`` (option names to values) the defaults of ``parser``'s options."""
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        action = actions.get(dest)
        if action is None:
            close = difflib.get_close_matches(dest, list(actions), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the options are {', '.join(sorted(actions))}"
            parser.error(f"{source}: unknown option {key!r}{hint}")
        if isinstance(value, list) and action.nargs in ("+", "*"):
            value = [_convert(action, v, key, parser, source) for v in value]
        elif action.nargs in ("+", "*"):
            value = [_convert(action, value, key, parser, source)]
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                parser.error(f"{source}: option {key!r} takes true or false, got {value!r}")
        else:
            value = _convert(action, value, key, parser, source)
        if action.choices is not None and value not in action.choices:
            parser.error(f"{source}: option {key!r} is {value!r}; choose from {', '.join(map(str, action.choices))}")
        action.required = False
        parser.set_defaults(**{dest: value})


def _convert(action, value, key, parser, source):
    """A config value as the option's type would give it (strings parsed as on the command line)."""
    if value is None or action.type is None:
        return value
    try:
        return action.type(str(value).lower() if isinstance(value, bool) else str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        kind = action.type.__name__ if action.type in (int, float) else "value"
        parser.error(f"{source}: option {key!r} is {value!r}, not a valid {kind}")
