"""Loading Hugging Face models and tokenizers by local path or hub name, with errors that say which.

``from_pretrained`` treats any name that is not an existing folder as a hub repository id, so a
mistyped local path fails with a message about repository ids or the network. :func:`load`
tells the two apart first: a name that looks like a path (absolute, ``./``, ``~``, or more than
one ``/``) and does not exist is a ``FileNotFoundError`` naming the path; an existing folder
without ``config.json`` (for models) is named as such; anything else goes to the hub, and a
failure there says that the name is neither a local folder nor a model that could be reached.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a filesystem path, not a hub id (``org/name`` or ``name``)."""
    return (
        os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1 or "\\" in name or name.endswith("/")
    )


def check_source(name, what: str, needs: str | None = "config.json") -> str:
    """``name`` as a string after checking it: an existing local folder (holding ``needs``), or a
    hub name. ``what`` names the argument in errors (e.g. ``"reference_model"``)."""
    name = os.fspath(name)
    path = Path(name).expanduser()
    if path.exists():
        if needs is not None and path.is_dir() and not (path / needs).exists():
            raise FileNotFoundError(
                f"{what}={name!r} is a folder but holds no {needs}; pass a folder written by "
                "save_pretrained (a model, tokenizer or reward model)"
            )
        return str(path)
    if looks_like_path(name):
        raise FileNotFoundError(
            f"{what}={name!r}: no such local folder; pass a folder written by save_pretrained, "
            "or a Hugging Face hub name (e.g. 'gpt2')"
        )
    return name


def load(loader: Callable, name, what: str, needs: str | None = "config.json", **kwargs):
    """``loader(name, **kwargs)`` (e.g. ``AutoModelForCausalLM.from_pretrained``) after :func:`check_source`;
    a hub failure is re-raised saying that ``name`` is neither a local folder nor a reachable hub model."""
    source = check_source(name, what, needs)
    try:
        return loader(source, **kwargs)
    except OSError as e:
        if Path(source).exists():
            raise
        raise OSError(
            f"{what}={source!r} is not a local folder, and the Hugging Face hub did not give it ({e}); "
            "check the spelling, pass a local folder, or connect to the hub"
        ) from e
