"""``textbandit label``: people rank K completions per prompt in the browser, as InstructGPT's labelers did.

    textbandit label add-labeler --db labels.sqlite --name ann [--admin]   # prints ann's token and login link
    textbandit label add-items   --db labels.sqlite --items items.jsonl --overlap 0.2 --overlap-labelers 2
    textbandit label serve       --db labels.sqlite [--items items.jsonl] [--host 127.0.0.1 --port 8000]
    textbandit label agreement   --db labels.sqlite [--json]
    textbandit label export      --db labels.sqlite --out comparisons.jsonl [--val-out val.jsonl] [--format trl]

The server is waitress, a production WSGI server (pure Python, multi-threaded, no C build): Werkzeug's
own server says it is for development only. Each request opens its own SQLite connection, and every
write is one transaction (``agents.label.db``), so waitress's threads need no other locking.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys

from agents.label.data import kwise_records, load_items, split_by_prompt, trl_records
from agents.label.db import LabelingError, Store
from textbandit.data import DataFormatError, write_jsonl

DEFAULT_PORT = 8000


def _overlap_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overlap",
        type=float,
        default=0.0,
        help="share of the new items that several labelers rank, for agreement (default %(default)s)",
    )
    p.add_argument(
        "--overlap-labelers", type=int, default=2, help="labelers per overlap item, 2 or more (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of which items overlap (default %(default)s)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="textbandit label",
        description=__doc__.splitlines()[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:8]),
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "add-labeler",
        help="create a labeler; prints their secret token once",
        description="Create a labeler and print their secret token and login link (only a hash of "
        "the token is stored: it cannot be shown again).",
    )
    p.add_argument("--db", required=True, help="the labeling database (SQLite; created if missing)")
    p.add_argument("--name", required=True, help="the labeler's name, their id in the export (letters, digits, _.@-)")
    p.add_argument("--admin", action="store_true", help="may see the agreement page (default: not an admin)")
    p.add_argument(
        "--url",
        default=f"http://127.0.0.1:{DEFAULT_PORT}",
        help="the app's address, for the printed login link (default %(default)s)",
    )

    p = sub.add_parser(
        "add-items",
        help="add items to rank (a JSONL file)",
        description="Add items to rank: prompts with K completions (K-wise comparison records "
        "without a ranking; 'textbandit collect --rank none' writes them). Items "
        "already in the database are skipped.",
    )
    p.add_argument("--db", required=True, help="the labeling database (SQLite; created if missing)")
    p.add_argument("--items", required=True, help='items JSONL: {"prompt", "responses": [K strings], ...}')
    _overlap_options(p)

    p = sub.add_parser(
        "serve",
        help="run the labeling app",
        description="Run the labeling app (waitress). It binds to the loopback address unless "
        "--host says otherwise; it speaks plain HTTP, so put a TLS proxy in front of "
        "it before opening it to a network.",
    )
    p.add_argument("--db", required=True, help="the labeling database (SQLite; created if missing)")
    p.add_argument("--items", default=None, help="items JSONL to add first, as add-items does (default: none)")
    _overlap_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default %(default)s)")
    p.add_argument("--threads", type=int, default=4, help="request threads of waitress (default %(default)s)")
    p.add_argument(
        "--lease-minutes",
        type=float,
        default=60.0,
        help="an item handed to a labeler is theirs alone this long, renewed when they open it; "
        "then another labeler may get it too (default %(default)s)",
    )

    p = sub.add_parser(
        "agreement",
        help="print progress and inter-labeler agreement",
        description="Inter-labeler agreement on the items several labelers ranked: the share of "
        "completion pairs two labelers order alike (a pair both tie agrees, one only "
        "one ties does not), overall and per labeler.",
    )
    p.add_argument("--db", required=True, help="the labeling database")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (default: a table)")

    p = sub.add_parser(
        "export",
        help="write the rankings as comparisons for 'textbandit rm' or TRL",
        description="Write every stored ranking: one K-wise comparison record per item and labeler "
        "(with 'labeler', 'item_id', 'flags', 'score' and the item's own fields), which "
        "'textbandit rm' trains on, or TRL's {prompt, chosen, rejected} pairs.",
    )
    p.add_argument("--db", required=True, help="the labeling database")
    p.add_argument("--out", required=True, help="JSONL to write (the training split when --val-out is given)")
    p.add_argument("--val-out", default=None, help="JSONL for a held-out split by prompt (default: no split)")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the prompts held out when --val-out is given (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out prompts (default %(default)s)")
    p.add_argument(
        "--format",
        choices=("kwise", "trl"),
        default="kwise",
        help="'kwise': textbandit's K-wise comparisons; 'trl': TRL's explicit-prompt preference pairs, "
        "one per ordered pair (default %(default)s)",
    )
    return ap


def add_labeler(a) -> None:
    with Store(a.db, create=True) as store:
        token = store.add_labeler(a.name, admin=a.admin)
    print(f"labeler {a.name}{' (admin)' if a.admin else ''}; token, shown once: {token}")
    print(f"login link: {a.url.rstrip('/')}/login?token={token}")


def add_items(a) -> dict:
    with Store(a.db, create=True) as store:
        added = store.add_items(
            load_items(a.items), overlap=a.overlap, overlap_labelers=a.overlap_labelers, seed=a.seed
        )
    print(
        f"{a.items}: {added['added']} items added ({added['overlapping']} for {a.overlap_labelers} labelers), "
        f"{added['duplicates']} already present"
    )
    return added


def serve(a) -> None:
    try:
        from waitress import create_server

        from agents.label.app import create_app
    except ImportError as e:  # the label extra is not installed
        raise SystemExit(
            f"the labeling app needs Flask, Flask-WTF and waitress ({e}): pip install 'textbandit[label]' "
            f"(from a clone: pip install -e '.[label]')"
        ) from None
    if a.items:
        add_items(a)
    app = create_app(a.db, lease_minutes=a.lease_minutes)
    with Store(a.db) as store:
        n_items, n_labelers = store.count_items(), len(store.labelers())
    if not n_items:
        raise SystemExit(f"{a.db} holds no items; pass --items FILE (e.g. from 'textbandit collect --rank none')")
    if not n_labelers:
        print(f"warning: no labelers yet; add one with 'textbandit label add-labeler --db {a.db} --name NAME'")
    if not _is_loopback(a.host):
        print(
            f"warning: serving on {a.host}, beyond this machine, over plain HTTP: tokens and rankings travel "
            f"unencrypted unless a TLS proxy fronts the app"
        )
    try:
        server = create_server(app, host=a.host, port=a.port, threads=a.threads, ident="textbandit-label")
    except OSError as e:
        raise SystemExit(
            f"cannot listen on {a.host}:{a.port} ({e.strerror}); pass another --port (0 picks a free one)"
        ) from None
    print(
        f"serving {n_items} items to {n_labelers} labelers on http://{a.host}:{server.effective_port}/ "
        f"(database {a.db}); Ctrl+C stops",
        flush=True,
    )
    server.run()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"


def agreement(a) -> dict:
    with Store(a.db) as store:
        result = {**store.agreement(), "labelers_table": store.labelers()}
    if a.json:
        print(json.dumps({"overall": result["overall"], "labelers": result["labelers"]}, indent=2))
        return result
    fmt = lambda r: "n/a" if r is None or r["agreement"] is None else f"{100 * r['agreement']:.1f}%"
    o = result["overall"]
    print(f"overall agreement: {fmt(o)} ({o['agreeing_pairs']} of {o['pairs']} pairs, {o['items']} shared items)")
    print(f"{'labeler':<20} {'ranked':>7} {'skipped':>8} {'shared':>7} {'agreement':>10}")
    for row in result["labelers_table"]:
        r = result["labelers"].get(row["name"])
        print(f"{row['name']:<20} {row['ranked']:>7} {row['skipped']:>8} {r['items'] if r else 0:>7} {fmt(r):>10}")
    return result


def export(a) -> tuple[list, list]:
    if a.val_out and not 0.0 < a.val_fraction < 1.0:
        raise SystemExit(f"--val-fraction {a.val_fraction}: with --val-out hold out a share in (0, 1) of the prompts")
    with Store(a.db) as store:
        records = kwise_records(store.rankings())
    if not records:
        raise SystemExit(f"{a.db} holds no rankings yet; nothing to export")
    train, val = split_by_prompt(records, a.val_fraction, a.seed) if a.val_out else (records, [])
    if a.val_out and (not val or not train):
        raise SystemExit(
            f"{len({r['prompt'] for r in records})} prompt(s) ranked: too few to hold out "
            f"--val-fraction {a.val_fraction} of them and train on the rest; drop --val-out"
        )
    convert = trl_records if a.format == "trl" else (lambda rs: rs)
    write_jsonl(a.out, convert(train))
    print(f"{a.out}: {len(convert(train))} {a.format} records from {len(train)} rankings")
    if a.val_out:
        write_jsonl(a.val_out, convert(val))
        print(f"{a.val_out}: {len(convert(val))} {a.format} records from {len(val)} rankings (held-out prompts)")
    return train, val


COMMANDS = {
    "add-labeler": add_labeler,
    "add-items": add_items,
    "serve": serve,
    "agreement": agreement,
    "export": export,
}


def main(argv=None):
    from agents.common.cli import parse_args

    a = parse_args(parser(), argv)  # every subcommand reads --config FILE too
    try:
        return COMMANDS[a.command](a)
    except (LabelingError, DataFormatError, FileNotFoundError) as e:  # the user's input: what is wrong, no traceback
        sys.exit(f"textbandit label {a.command}: {e}")


if __name__ == "__main__":
    main()
