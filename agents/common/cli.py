"""An ``argparse`` command line generated from a config dataclass.

Every field becomes ``--field-name``; its help is the docstring written under the field, so
the dataclass stays the single place where a setting is documented.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing


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


def build_parser(cls, description: str = "") -> argparse.ArgumentParser:
    """A parser with one ``--option`` per field of the dataclass ``cls``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _base_type(hints[f.name])
        kwargs = {"help": docs.get(f.name, " ").replace("%", "%%"), "dest": f.name}  # argparse formats help with %
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            kwargs["default"] = f.default_factory()
        else:
            kwargs["required"] = True
        origin = typing.get_origin(tp)
        if origin is tuple:
            kwargs.update(nargs="+", type=typing.get_args(tp)[0])
        elif tp is bool:
            kwargs.update(type=_parse_bool, metavar="BOOL")
        else:
            kwargs["type"] = tp if tp in (int, float, str) else str
        if optional and kwargs.get("type") in (int, float, str):
            base = kwargs["type"]
            kwargs["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    return parser


def parse_config(cls, argv=None, description: str = ""):
    """Parse ``argv`` into an instance of the dataclass ``cls`` (its ``__post_init__`` validates)."""
    ns = build_parser(cls, description).parse_args(argv)
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(ns).items()}
    try:
        return cls(**values)
    except ValueError as e:  # show config errors as usage errors, not tracebacks
        build_parser(cls, description).error(str(e))
