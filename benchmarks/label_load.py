"""Load test of the labeling app: concurrent labelers submitting rankings over the loopback address.

    python benchmarks/label_load.py [--labelers 20] [--submissions 50] [--kill-after 0]

Starts ``textbandit label serve`` (waitress) in a subprocess on 127.0.0.1 on a fresh database, one
thread per labeler, each looping ``GET /api/next`` then ``POST /api/submit`` (a random ranking of the
K = 4 completions, ties sometimes) over a keep-alive connection. Prints the p50 and p95 latency of a
submission, the throughput in submissions per second and the machine, then checks the database:
every acknowledged ranking (HTTP 200) must be stored exactly once, with the ranks that were sent.

``--kill-after N`` sends SIGKILL to the server once N submissions are acknowledged, restarts it on the
same database, and the labelers carry on, each retrying the request that failed: a submission the
dead server had committed but not answered comes back ``unchanged``, not as a second row.
``tests/test_label_load.py`` runs both through :func:`run_load`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.label.db import Store  # noqa: E402


def start_server(db, *args: str, log=None, timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """``textbandit label serve --db DB --port 0 ARGS`` in a subprocess; returns it and its URL once it listens."""
    log = Path(log or f"{db}.server.log")
    offset = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
    out = log.open("a")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agents.label", "serve", "--db", str(db), "--port", "0", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    out.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()[offset:]
        serving = [line for line in text.splitlines() if line.startswith("serving ") and " on http://" in line]
        if serving and proc.poll() is None:
            return proc, serving[0].split(" on ", 1)[1].split("/ ", 1)[0]
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"the server did not start within {timeout} s:\n{log.read_text()[offset:][-3000:]}")


def make_database(db, n_labelers: int, n_items: int, k: int = 4, overlap: float = 0.2, seed: int = 0) -> dict:
    """A fresh database with ``n_labelers`` labelers (name -> token returned) and ``n_items`` items of K completions."""
    rng = random.Random(seed)
    words = "the a cat dog bird sees likes eats red blue big small fish tree runs".split()
    items = [
        {
            "prompt": f"prompt {i}: write about the {rng.choice(words)}",
            "responses": [" ".join(rng.choices(words, k=8)) + f" ({i}.{j})" for j in range(k)],
        }
        for i in range(n_items)
    ]
    with Store(db, create=True) as store:
        tokens = {f"labeler{n:02d}": store.add_labeler(f"labeler{n:02d}") for n in range(n_labelers)}
        store.add_items(items, overlap=overlap, overlap_labelers=2, seed=seed)
    return tokens


class Client:
    """One labeler's keep-alive connection; ``call`` retries a failed request until ``deadline`` (the server may
    be restarting: ``target["url"]`` then changes)."""

    def __init__(self, target: dict, token: str, deadline: float):
        self.target, self.token, self.deadline, self.conn, self.retries = target, token, deadline, None, 0

    def call(self, method: str, path: str, body=None) -> tuple[dict, float]:
        while True:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{method} {path}: no answer before the deadline")
            try:
                if self.conn is None:
                    parts = urlsplit(self.target["url"])
                    self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
                start = time.perf_counter()
                self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - start
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn, self.retries = None, self.retries + 1
                time.sleep(0.05)
                continue
            if response.status != 200:
                raise RuntimeError(f"{method} {path} -> {response.status}: {data[:300]!r}")
            return json.loads(data), elapsed


def random_ranking(rng: random.Random, k: int) -> list[int]:
    """A random dense ranking of k completions; about one in three has a tie."""
    order = list(range(k))
    rng.shuffle(order)
    ranks, rank = [0] * k, 0
    for pos, i in enumerate(order):
        if pos and rng.random() > 0.1:
            rank += 1
        ranks[i] = rank
    return ranks


def labeler(client: Client, name: str, n: int, seed: int, acks: list, latencies: list, errors: list) -> None:
    rng = random.Random(seed)
    try:
        for _ in range(n):
            item, _ = client.call("GET", "/api/next")
            if item.get("done"):
                raise RuntimeError(f"{name}: no item left after {len([a for a in acks if a[0] == name])} submissions")
            ranks = random_ranking(rng, item["k"])
            answer, elapsed = client.call("POST", "/api/submit", {"item_id": item["item_id"], "ranking": ranks})
            acks.append((name, item["item_id"], ranks, answer["status"]))  # list.append is atomic under the GIL
            latencies.append(elapsed)
    except Exception as e:  # reported by run_load, which fails on any
        errors.append(f"{name}: {type(e).__name__}: {e}")


def check_database(db, acks: list) -> dict:
    """Every acknowledged (labeler, item, ranks) stored exactly once, and nothing else stored."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = conn.execute("SELECT l.name, r.item_id, r.ranks FROM rankings r JOIN labelers l ON l.id = r.labeler_id")
    stored: dict[tuple, list] = {}
    for name, item_id, ranks in rows:
        stored.setdefault((name, item_id), []).append(json.loads(ranks))
    conn.close()
    acked = {(name, item_id): ranks for name, item_id, ranks, _ in acks}
    return {
        "rows": sum(map(len, stored.values())),
        "missing": [key for key in acked if key not in stored],
        "duplicated": [key for key, v in stored.items() if len(v) > 1],
        "changed": [key for key, ranks in acked.items() if key in stored and stored[key] != [ranks]],
        "unacknowledged": [key for key in stored if key not in acked],
    }


def run_load(
    workdir, labelers: int = 20, submissions: int = 50, kill_after: int = 0, timeout: float = 60.0, threads: int = 4
) -> dict:
    """Run the load (see the module doc) in ``workdir``; returns latencies, throughput and the database check."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "load.sqlite"
    tokens = make_database(db, labelers, n_items=labelers * submissions)
    proc, url = start_server(db, "--threads", str(threads))
    target, deadline = {"url": url}, time.monotonic() + timeout
    acks, latencies, errors = [], [], []
    clients = {name: Client(target, token, deadline) for name, token in tokens.items()}
    workers = [
        threading.Thread(
            target=labeler, args=(clients[name], name, submissions, n, acks, latencies, errors), daemon=True
        )
        for n, name in enumerate(tokens)
    ]
    killed_at = None
    start = time.perf_counter()
    try:
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
            if kill_after and killed_at is None and len(acks) >= kill_after:
                proc.send_signal(signal.SIGKILL)  # no shutdown, no flush: what a crash or an OOM kill does
                proc.wait()
                killed_at = len(acks)
                proc, target["url"] = start_server(db, "--threads", str(threads))
            time.sleep(0.01)
        for w in workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    hung = [w.name for w in workers if w.is_alive()]
    lat = sorted(latencies)
    quantile = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    return {
        "acknowledged": len(acks),
        "expected": labelers * submissions,
        "errors": errors,
        "hung": hung,
        "seconds": elapsed,
        "throughput": len(acks) / elapsed,
        "p50_ms": 1000 * quantile(0.50),
        "p95_ms": 1000 * quantile(0.95),
        "killed_at": killed_at,
        "unchanged": sum(a[3] == "unchanged" for a in acks),
        "retries": sum(c.retries for c in clients.values()),
        "check": check_database(db, acks),
    }


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labelers", type=int, default=20, help="concurrent labelers (default %(default)s)")
    ap.add_argument("--submissions", type=int, default=50, help="submissions per labeler (default %(default)s)")
    ap.add_argument(
        "--kill-after",
        type=int,
        default=0,
        help="SIGKILL and restart the server after this many acknowledged submissions (0: never) (default %(default)s)",
    )
    ap.add_argument("--threads", type=int, default=4, help="waitress request threads (default %(default)s)")
    ap.add_argument(
        "--timeout", type=float, default=120.0, help="hard limit of the run in seconds (default %(default)s)"
    )
    ap.add_argument("--workdir", default=None, help="folder for the database (default: a temporary one)")
    a = ap.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        r = run_load(a.workdir or tmp, a.labelers, a.submissions, a.kill_after, a.timeout, a.threads)
    c = r["check"]
    print(f"machine: {machine()}")
    print(
        f"{a.labelers} labelers x {a.submissions} submissions: {r['acknowledged']} acknowledged in "
        f"{r['seconds']:.2f} s, {r['throughput']:.0f} submissions/s; submission latency p50 {r['p50_ms']:.1f} ms, "
        f"p95 {r['p95_ms']:.1f} ms"
    )
    if r["killed_at"] is not None:
        print(
            f"server killed (SIGKILL) after {r['killed_at']} acknowledged submissions and restarted; "
            f"{r['retries']} requests retried, {r['unchanged']} submissions answered 'unchanged' (a retry of one "
            f"the dead server had stored)"
        )
    print(
        f"database: {c['rows']} rankings; missing {len(c['missing'])}, duplicated {len(c['duplicated'])}, "
        f"changed {len(c['changed'])}, unacknowledged {len(c['unacknowledged'])}; errors {len(r['errors'])}"
    )
    return r


if __name__ == "__main__":
    main()
