"""The labeling app's database: SQLite through the standard library's ``sqlite3``.

Tables: ``labelers`` (a name, the sha256 of the secret token, never the token itself, an admin
flag), ``items`` (a prompt, its K completions, how many labelers should rank it), ``assignments``
(an item handed to a labeler: open, skipped or done; UNIQUE per labeler and item) and ``rankings``
(one per assignment, so UNIQUE per labeler and item: a retried submission finds its row instead of
adding one, and going back to change a ranking updates the row and counts a revision).

Reliability, as issue 19 asks:

- WAL journal: readers never block the writer, and a killed server leaves a database that the next
  open rolls back to its last commit.
- ``synchronous=FULL``: a commit is on disk (fsync) before the server answers, so an acknowledged
  ranking survives a ``kill -9`` and an OS crash too (``NORMAL`` would survive only the first).
- Every operation that writes is one ``BEGIN IMMEDIATE`` transaction. It takes the write lock up
  front, so "find this labeler's next item, then assign it" cannot interleave with another
  labeler's, and ``busy_timeout`` makes concurrent writers queue for the lock instead of failing.
- One connection per server thread (``sqlite3`` objects stay in their thread), reused across requests;
  no transaction outlives the method that began it.

    >>> store = Store(":memory:", create=True)
    >>> token = store.add_labeler("ann")
    >>> store.add_items([{"prompt": "Say hi.", "responses": ["hi", "hello"]}])
    {'added': 1, 'duplicates': 0, 'overlapping': 0}
    >>> ann = store.labeler_by_token(token)
    >>> item = store.next_assignment(ann["id"])
    >>> store.submit(ann["id"], item["item_id"], [1, 0])
    (1, 'stored')
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from agents.label.ranking import agreement, validate_flags, validate_ranking, validate_score

BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for the write lock before SQLite gives up (a submission holds it for milliseconds)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labelers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL UNIQUE,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,            -- sha256 of [prompt, responses]: importing a file twice adds nothing
    prompt TEXT NOT NULL,
    responses TEXT NOT NULL,             -- JSON list of K strings
    extra TEXT NOT NULL,                 -- JSON object: the item record's other fields, kept for export
    k INTEGER NOT NULL CHECK (k >= 2),
    wanted INTEGER NOT NULL CHECK (wanted >= 1),  -- labelers who should rank it (>= 2: an overlap item)
    remaining INTEGER NOT NULL,          -- wanted minus the labelers who have ranked it
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_open ON items (id) WHERE remaining > 0;
CREATE TABLE IF NOT EXISTS assignments (
    id INTEGER PRIMARY KEY,              -- increasing: a labeler's history, for going back
    item_id INTEGER NOT NULL REFERENCES items (id),
    labeler_id INTEGER NOT NULL REFERENCES labelers (id),
    status TEXT NOT NULL CHECK (status IN ('open', 'skipped', 'done')),
    leased_at REAL NOT NULL,             -- an open assignment holds its slot of the item until the lease ends
    UNIQUE (item_id, labeler_id)
);
CREATE INDEX IF NOT EXISTS assignments_labeler ON assignments (labeler_id, status);
CREATE TABLE IF NOT EXISTS rankings (
    id INTEGER PRIMARY KEY,
    assignment_id INTEGER NOT NULL UNIQUE REFERENCES assignments (id),
    item_id INTEGER NOT NULL REFERENCES items (id),
    labeler_id INTEGER NOT NULL REFERENCES labelers (id),
    ranks TEXT NOT NULL,                 -- JSON list of K dense ranks, 0 = best (agents.label.ranking)
    flags TEXT NOT NULL,                 -- JSON list of K lists of flag names
    score INTEGER CHECK (score BETWEEN 1 AND 7),
    revision INTEGER NOT NULL DEFAULT 1,
    submitted_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (item_id, labeler_id)
);
"""

# The labeler's next item: the first (by id) that still wants rankings, that this labeler has never been
# handed, and whose open, unexpired assignments do not already hold all of its remaining slots.
NEXT_ITEM = """
SELECT i.id FROM items i
WHERE i.remaining > 0
  AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.labeler_id = :labeler)
  AND (SELECT COUNT(*) FROM assignments a
       WHERE a.item_id = i.id AND a.status = 'open' AND a.leased_at > :since) < i.remaining
ORDER BY i.id
"""


class LabelingError(ValueError):
    """Something a labeler or an admin asked for cannot be done; the message says why and what to do."""


class UnknownItem(LabelingError):
    """No item has this id."""


class NotAssigned(LabelingError):
    """The item exists but was never handed to this labeler."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def connect(path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL, full sync and a busy timeout."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Store:
    """The database behind one labeling app; open one per thread (per request) and close it."""

    def __init__(self, path, *, create: bool = False):
        if str(path) != ":memory:" and not create and not Path(path).is_file():
            raise FileNotFoundError(
                f"no labeling database at {path}; create it with 'textbandit label add-labeler "
                f"--db {path} --name NAME' or 'textbandit label add-items --db {path} --items FILE'"
            )
        self.conn = connect(path)
        if create:
            self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def write(self):
        """One transaction holding the write lock from its start; rolled back if anything raises."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def journal_mode(self) -> str:
        return self.conn.execute("PRAGMA journal_mode").fetchone()[0]

    def secret_key(self) -> str:
        """The app's session-signing key, made once per database, so sessions outlive a restart."""
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key', ?)", (secrets.token_hex(32),))
            return c.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchone()[0]

    # labelers

    def add_labeler(self, name: str, *, admin: bool = False) -> str:
        """Create a labeler and return their secret token (only its hash is stored: print it once)."""
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
            raise LabelingError(f"labeler name {name!r}: use 1-64 letters, digits or _ . @ -")
        token = secrets.token_urlsafe(24)
        with self.write() as c:
            if c.execute("SELECT 1 FROM labelers WHERE name = ?", (name,)).fetchone():
                raise LabelingError(f"a labeler named {name!r} exists already; pick another name")
            c.execute(
                "INSERT INTO labelers (name, token_sha256, is_admin, created_at) VALUES (?, ?, ?, ?)",
                (name, token_hash(token), int(admin), time.time()),
            )
        return token

    def labeler_by_token(self, token: str) -> dict | None:
        row = self.conn.execute(
            "SELECT id, name, is_admin FROM labelers WHERE token_sha256 = ?", (token_hash(token),)
        ).fetchone()
        return dict(row) if row else None

    def labeler(self, labeler_id: int) -> dict | None:
        row = self.conn.execute("SELECT id, name, is_admin FROM labelers WHERE id = ?", (labeler_id,)).fetchone()
        return dict(row) if row else None

    def labelers(self) -> list[dict]:
        """Every labeler with their counts of ranked and skipped items."""
        return [
            dict(r)
            for r in self.conn.execute("""
            SELECT l.id, l.name, l.is_admin,
                   (SELECT COUNT(*) FROM assignments a WHERE a.labeler_id = l.id AND a.status = 'done') AS ranked,
                   (SELECT COUNT(*) FROM assignments a WHERE a.labeler_id = l.id AND a.status = 'skipped') AS skipped
            FROM labelers l ORDER BY l.name""")
        ]

    # items

    def add_items(self, items: list[dict], *, overlap: float = 0.0, overlap_labelers: int = 2, seed: int = 0) -> dict:
        """Add items ``{"prompt", "responses", "extra"?}``; a share ``overlap`` of the new ones (drawn with
        ``seed``) goes to ``overlap_labelers`` labelers each, the rest to one. Items already present are skipped."""
        if not 0.0 <= overlap <= 1.0:
            raise LabelingError(f"overlap={overlap}: the share of items ranked by several labelers lies in 0..1")
        if overlap_labelers < 2:
            raise LabelingError(f"overlap_labelers={overlap_labelers}: an overlap item goes to 2 or more labelers")
        keyed = {}
        for it in items:
            key = hashlib.sha256(json.dumps([it["prompt"], it["responses"]], ensure_ascii=False).encode()).hexdigest()
            keyed.setdefault(key, it)
        with self.write() as c:
            known = {r[0] for r in c.execute("SELECT key FROM items")}
            new = [k for k in keyed if k not in known]
            shuffled = new[:]
            random.Random(seed).shuffle(shuffled)
            shared = set(shuffled[: round(overlap * len(new))])
            now = time.time()
            for key in new:
                it, wanted = keyed[key], overlap_labelers if key in shared else 1
                c.execute(
                    "INSERT INTO items (key, prompt, responses, extra, k, wanted, remaining, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        it["prompt"],
                        json.dumps(it["responses"], ensure_ascii=False),
                        json.dumps(it.get("extra", {}), ensure_ascii=False),
                        len(it["responses"]),
                        wanted,
                        wanted,
                        now,
                    ),
                )
        return {"added": len(new), "duplicates": len(items) - len(new), "overlapping": len(shared)}

    def item(self, item_id: int) -> dict | None:
        row = self.conn.execute(
            "SELECT id, prompt, responses, extra, k, wanted FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            return None
        return {**dict(row), "responses": json.loads(row["responses"]), "extra": json.loads(row["extra"])}

    def count_items(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    # assignments and rankings

    def next_assignment(self, labeler_id: int, lease_s: float = 3600.0) -> dict | None:
        """The labeler's open item, or a new one assigned in the same transaction; None when none is left."""
        now = time.time()
        with self.write() as c:
            row = c.execute(
                "SELECT id, item_id FROM assignments WHERE labeler_id = ? AND status = 'open' ORDER BY id LIMIT 1",
                (labeler_id,),
            ).fetchone()
            if row is not None:
                c.execute("UPDATE assignments SET leased_at = ? WHERE id = ?", (now, row["id"]))
                item_id = row["item_id"]
            else:
                row = c.execute(NEXT_ITEM + " LIMIT 1", {"labeler": labeler_id, "since": now - lease_s}).fetchone()
                if row is None:
                    return None
                item_id = row["id"]
                c.execute(
                    "INSERT INTO assignments (item_id, labeler_id, status, leased_at) VALUES (?, ?, 'open', ?)",
                    (item_id, labeler_id, now),
                )
        return self.view(labeler_id, item_id)

    def view(self, labeler_id: int, item_id: int) -> dict | None:
        """An item as this labeler has it: the item, the assignment's status and their ranking if any."""
        row = self.conn.execute(
            """
            SELECT a.id AS assignment_id, a.status, r.ranks, r.flags, r.score, r.revision
            FROM assignments a LEFT JOIN rankings r ON r.assignment_id = a.id
            WHERE a.labeler_id = ? AND a.item_id = ?""",
            (labeler_id, item_id),
        ).fetchone()
        item = self.item(item_id)
        if row is None or item is None:
            return None
        return {
            "item_id": item_id,
            **{k: item[k] for k in ("prompt", "responses", "extra", "k")},
            "assignment_id": row["assignment_id"],
            "status": row["status"],
            "ranks": json.loads(row["ranks"]) if row["ranks"] else None,
            "flags": json.loads(row["flags"]) if row["flags"] else None,
            "score": row["score"],
            "revision": row["revision"],
        }

    def _assignment(self, c, labeler_id: int, item_id: int) -> sqlite3.Row:
        row = c.execute(
            "SELECT id, status FROM assignments WHERE labeler_id = ? AND item_id = ?", (labeler_id, item_id)
        ).fetchone()
        if row is None:
            raise NotAssigned(
                f"item {item_id} is not assigned to you; rank the items the app hands you "
                f"(the labeling page, or GET /api/next)"
            )
        return row

    def submit(self, labeler_id: int, item_id: int, ranks, flags=None, score=None) -> tuple[int, str]:
        """Store a ranking in one transaction: ``(ranking id, "stored" | "updated" | "unchanged")``.

        A resubmission of the same answer is ``"unchanged"`` (an idempotent retry); a different answer for an
        item the labeler ranked before replaces it (``"updated"``, the revision counts up)."""
        item = self.item(item_id) if isinstance(item_id, int) and not isinstance(item_id, bool) else None
        if item is None:
            raise UnknownItem(f"no item {item_id!r}; item ids come from the labeling page or GET /api/next")
        ranks, flags = validate_ranking(ranks, item["k"]), validate_flags(flags, item["k"])
        score = validate_score(score)
        now = time.time()
        with self.write() as c:
            a = self._assignment(c, labeler_id, item_id)
            old = c.execute(
                "SELECT id, ranks, flags, score FROM rankings WHERE assignment_id = ?", (a["id"],)
            ).fetchone()
            if old is None:
                rid = c.execute(
                    "INSERT INTO rankings (assignment_id, item_id, labeler_id, ranks, flags, score, "
                    "submitted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (a["id"], item_id, labeler_id, json.dumps(ranks), json.dumps(flags), score, now, now),
                ).lastrowid
                status = "stored"
            elif (json.loads(old["ranks"]), json.loads(old["flags"]), old["score"]) == (ranks, flags, score):
                rid, status = old["id"], "unchanged"
            else:
                c.execute(
                    "UPDATE rankings SET ranks = ?, flags = ?, score = ?, revision = revision + 1, "
                    "updated_at = ? WHERE id = ?",
                    (json.dumps(ranks), json.dumps(flags), score, now, old["id"]),
                )
                rid, status = old["id"], "updated"
            if a["status"] != "done":
                c.execute("UPDATE assignments SET status = 'done' WHERE id = ?", (a["id"],))
                c.execute("UPDATE items SET remaining = MAX(remaining - 1, 0) WHERE id = ?", (item_id,))
        return rid, status

    def skip(self, labeler_id: int, item_id: int) -> str:
        """Hand an open item back (another labeler gets it); an item already ranked stays ranked."""
        with self.write() as c:
            a = self._assignment(c, labeler_id, item_id)
            if a["status"] == "open":
                c.execute("UPDATE assignments SET status = 'skipped' WHERE id = ?", (a["id"],))
                return "skipped"
            return a["status"]

    def previous(self, labeler_id: int, item_id: int | None = None) -> int | None:
        """The item this labeler ranked or skipped before ``item_id`` (before their current one if None)."""
        row = self.conn.execute(
            """
            SELECT item_id FROM assignments
            WHERE labeler_id = :l AND status IN ('done', 'skipped')
              AND id < COALESCE((SELECT id FROM assignments WHERE labeler_id = :l AND item_id = :i), 9e18)
            ORDER BY id DESC LIMIT 1""",
            {"l": labeler_id, "i": item_id},
        ).fetchone()
        return row[0] if row else None

    def progress(self, labeler_id: int, lease_s: float = 3600.0) -> dict:
        """What this labeler has ranked and has left, and how far all labelers are."""
        c = self.conn
        ranked = c.execute(
            "SELECT COUNT(*) FROM assignments WHERE labeler_id = ? AND status = 'done'", (labeler_id,)
        ).fetchone()[0]
        is_open = c.execute(
            "SELECT COUNT(*) FROM assignments WHERE labeler_id = ? AND status = 'open'", (labeler_id,)
        ).fetchone()[0]
        waiting = c.execute(
            f"SELECT COUNT(*) FROM ({NEXT_ITEM})", {"labeler": labeler_id, "since": time.time() - lease_s}
        ).fetchone()[0]
        done, wanted = c.execute(
            "SELECT COALESCE(SUM(wanted - remaining), 0), COALESCE(SUM(wanted), 0) FROM items"
        ).fetchone()
        return {"ranked": ranked, "left": is_open + waiting, "all_ranked": done, "all_wanted": wanted}

    def rankings(self) -> list[dict]:
        """Every stored ranking with its item and labeler, ordered by item then labeler name."""
        rows = self.conn.execute("""
            SELECT r.id, r.item_id, l.name AS labeler, r.ranks, r.flags, r.score, r.revision,
                   i.prompt, i.responses, i.extra
            FROM rankings r JOIN labelers l ON l.id = r.labeler_id JOIN items i ON i.id = r.item_id
            ORDER BY r.item_id, l.name""")
        return [{**dict(r), **{k: json.loads(r[k]) for k in ("ranks", "flags", "responses", "extra")}} for r in rows]

    def agreement(self) -> dict:
        """Inter-labeler agreement on the items ranked by two or more labelers
        (:func:`agents.label.ranking.agreement`)."""
        by_item: dict[int, dict[str, list[int]]] = {}
        for r in self.rankings():
            by_item.setdefault(r["item_id"], {})[r["labeler"]] = r["ranks"]
        return agreement(by_item)
