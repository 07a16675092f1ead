"""agents.label: ranking validation, the paper's agreement by hand, the SQLite store, the export."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from agents.label.cli import main as label_main
from agents.label.data import kwise_records, load_items, split_by_prompt, trl_records
from agents.label.db import LabelingError, NotAssigned, Store, UnknownItem
from agents.label.ranking import (
    RankingError,
    agreement,
    pair_agreement,
    preference_pairs,
    validate_flags,
    validate_ranking,
    validate_score,
)
from textbandit.data import DataFormatError, load_comparisons


def items(n: int, k: int = 3, prompt: str = "prompt {i}") -> list[dict]:
    return [{"prompt": prompt.format(i=i), "responses": [f"answer {i}.{j}" for j in range(k)]} for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "labels.sqlite", create=True)
    yield s
    s.close()


# rankings


@pytest.mark.parametrize(
    "ranks, k, message",
    [
        ([0, 2, 2], 3, "dense"),  # rank 1 missing: not a permutation, not a tie either
        ([1, 1, 2], 3, "dense"),  # no best
        ([0, 1, 3], 3, r"0\.\.2"),  # out of range
        ([2, 0, 1, 0], 3, "4 ranks for 3"),  # wrong length
        ([0, 1], 3, "2 ranks for 3"),
        ([0, "1", 2], 3, "ints"),
        ([0, 1.0, 2], 3, "ints"),
        ([0, True, 2], 3, "ints"),
        ("012", 3, "list"),
        (None, 3, "list"),
    ],
)
def test_malformed_rankings_are_refused_with_a_message(ranks, k, message):
    with pytest.raises(RankingError, match=message):
        validate_ranking(ranks, k)


def test_valid_rankings_permutations_and_dense_ties():
    assert validate_ranking([2, 0, 1], 3) == [2, 0, 1]
    assert validate_ranking([0, 1, 1, 2], 4) == [0, 1, 1, 2]  # a tie for second
    assert validate_ranking([0, 0, 0], 3) == [0, 0, 0]  # all tied
    assert validate_ranking([1, 2, 2], 3, base=1) == [0, 1, 1]  # as the page writes them
    with pytest.raises(RankingError, match=r"e\.g\. \[1, 2, 2, 3\]"):
        validate_ranking([1, 3, 3], 3, base=1)


def test_flags_and_score_validation():
    assert validate_flags(None, 2) == [[], []]
    assert validate_flags([["made_up_facts", "inappropriate", "made_up_facts"], []], 2) == [
        ["inappropriate", "made_up_facts"],
        [],
    ]
    with pytest.raises(RankingError, match="unknown flag"):
        validate_flags([["rude"], []], 2)
    with pytest.raises(RankingError, match="2 lists"):
        validate_flags([[]], 2)
    assert validate_score(None) is None and validate_score(7) == 7
    for bad in (0, 8, "5", 4.5, True):
        with pytest.raises(RankingError, match="1 .worst. to 7"):
            validate_score(bad)


def test_agreement_equals_a_hand_computation():
    # Item 1 (K=3, 3 pairs): A orders 0>1>2; B 0>2>1; C 0>(1=2). Each two of them agree on (0,1) and (0,2)
    # and disagree on (1,2): B reverses it, C ties it where A and B do not -> 2 of 3 for AB, AC and BC.
    # Item 2 (K=4, 6 pairs): A and B differ on (0,1) only -> 5 of 6. Item 3: A alone, not shared.
    rankings = {
        1: {"A": [0, 1, 2], "B": [0, 2, 1], "C": [0, 1, 1]},
        2: {"A": [0, 1, 2, 3], "B": [1, 0, 2, 3]},
        3: {"A": [1, 0]},
    }
    result = agreement(rankings)
    assert result["overall"] == {"agreement": 11 / 15, "agreeing_pairs": 11, "pairs": 15, "items": 2}
    assert result["labelers"]["A"] == {"agreement": 9 / 12, "agreeing_pairs": 9, "pairs": 12, "items": 2}
    assert result["labelers"]["B"]["agreement"] == 9 / 12
    assert result["labelers"]["C"] == {"agreement": 4 / 6, "agreeing_pairs": 4, "pairs": 6, "items": 1}
    assert pair_agreement([0, 1, 1], [0, 1, 1]) == (3, 3)  # a pair both tie agrees
    assert pair_agreement([0, 0], [0, 1]) == (0, 1)  # a pair one ties does not
    assert agreement({1: {"A": [0, 1]}})["overall"]["agreement"] is None


def test_preference_pairs_leave_ties_out():
    assert preference_pairs([1, 0, 1]) == [(1, 0), (1, 2)]
    assert preference_pairs([0, 0]) == []
    assert len(preference_pairs([3, 1, 0, 2])) == 6


# the store


def test_wal_full_sync_and_only_token_hashes(store, tmp_path):
    assert store.journal_mode() == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    token = store.add_labeler("ann")
    assert store.labeler_by_token(token)["name"] == "ann" and store.labeler_by_token(token + "x") is None
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert token.encode() not in (tmp_path / "labels.sqlite").read_bytes()
    with pytest.raises(LabelingError, match="exists already"):
        store.add_labeler("ann")
    with pytest.raises(LabelingError, match="letters"):
        store.add_labeler("ann smith")


def test_one_transaction_per_submission_and_idempotent_retries(store):
    store.add_items(items(2))
    ann = store.labeler_by_token(store.add_labeler("ann"))["id"]
    item = store.next_assignment(ann)["item_id"]
    statements = []
    store.conn.set_trace_callback(statements.append)
    assert store.submit(ann, item, [2, 0, 1], [["inappropriate"], [], []], 5) == (1, "stored")
    store.conn.set_trace_callback(None)
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert store.submit(ann, item, [2, 0, 1], [["inappropriate"], [], []], 5) == (1, "unchanged")  # a retry
    assert store.submit(ann, item, [0, 0, 1]) == (1, "updated")  # going back and changing it
    rows = store.conn.execute("SELECT ranks, revision FROM rankings").fetchall()
    assert [(json.loads(r[0]), r[1]) for r in rows] == [([0, 0, 1], 2)]
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):  # the schema itself refuses a second row
        store.conn.execute(
            "INSERT INTO rankings (assignment_id, item_id, labeler_id, ranks, flags, submitted_at, "
            "updated_at) VALUES (1, ?, ?, '[0,1,2]', '[[],[],[]]', 0, 0)",
            (item, ann),
        )


def test_a_failing_submission_leaves_nothing_behind(store):
    store.add_items(items(1))
    ann = store.labeler_by_token(store.add_labeler("ann"))["id"]
    item = store.next_assignment(ann)["item_id"]
    store.conn.execute("CREATE TRIGGER boom BEFORE UPDATE ON assignments BEGIN SELECT RAISE(ABORT, 'boom'); END")
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        store.submit(ann, item, [0, 1, 2])  # the ranking's INSERT ran, then the assignment's UPDATE failed
    assert store.conn.execute("SELECT COUNT(*) FROM rankings").fetchone()[0] == 0
    assert not store.conn.in_transaction


def test_unknown_and_unassigned_items_are_refused(store):
    store.add_items(items(2))
    ann = store.labeler_by_token(store.add_labeler("ann"))["id"]
    store.next_assignment(ann)
    with pytest.raises(UnknownItem, match="no item 99"):
        store.submit(ann, 99, [0, 1, 2])
    with pytest.raises(UnknownItem):
        store.submit(ann, "1", [0, 1, 2])
    with pytest.raises(NotAssigned, match="not assigned to you"):
        store.submit(ann, 2, [0, 1, 2])
    with pytest.raises(RankingError, match="dense"):
        store.submit(ann, 1, [0, 2, 2])


def test_overlap_assignment_skip_lease_and_history(store):
    added = store.add_items(items(10), overlap=0.3, overlap_labelers=2, seed=1)
    assert added == {"added": 10, "duplicates": 0, "overlapping": 3}
    assert store.add_items(items(10))["duplicates"] == 10  # importing again adds nothing
    wanted = [r[0] for r in store.conn.execute("SELECT wanted FROM items ORDER BY id")]
    other = Store(":memory:", create=True)
    other.add_items(items(10), overlap=0.3, overlap_labelers=2, seed=1)
    assert wanted == [r[0] for r in other.conn.execute("SELECT wanted FROM items ORDER BY id")]  # seeded
    ann, bob, cy = (store.labeler_by_token(store.add_labeler(n))["id"] for n in ("ann", "bob", "cy"))
    seen = {ann: [], bob: []}
    for _ in range(20):
        for who in (ann, bob):
            view = store.next_assignment(who)
            if view is not None:
                seen[who].append(view["item_id"])
                store.submit(who, view["item_id"], [0, 1, 2])
    assert all(len(set(v)) == len(v) for v in seen.values())  # nobody gets an item twice
    per_item = {i: sum(i in v for v in seen.values()) for i in range(1, 11)}
    assert per_item == {i: w for i, w in zip(range(1, 11), wanted)}  # overlap items twice, the others once
    assert store.next_assignment(cy) is None and store.progress(cy)["left"] == 0
    assert store.previous(ann) == seen[ann][-1] and store.previous(ann, seen[ann][-1]) == seen[ann][-2]

    store.add_items(items(1, prompt="extra {i}"))
    view = store.next_assignment(ann)
    assert store.next_assignment(bob) is None  # ann holds its only slot...
    assert store.next_assignment(bob, lease_s=0)["item_id"] == view["item_id"]  # ...until her lease ends
    store.add_items(items(1, prompt="skipped {i}"))
    skipped = store.next_assignment(cy)["item_id"]
    assert store.skip(cy, skipped) == "skipped"
    assert store.next_assignment(ann)["item_id"] == view["item_id"]  # ann's open item first
    store.submit(ann, view["item_id"], [0, 1, 2])
    assert store.next_assignment(ann)["item_id"] == skipped  # a skipped item goes to someone else
    assert store.next_assignment(cy) is None


def test_concurrent_labelers_never_share_a_single_item_or_lose_a_ranking(tmp_path):
    db = tmp_path / "c.sqlite"
    with Store(db, create=True) as s:
        s.add_items(items(60), overlap=0.5, overlap_labelers=2)
        ids = [s.labeler_by_token(s.add_labeler(f"l{n}"))["id"] for n in range(6)]
    done, errors = [], []

    def work(labeler_id):
        try:
            with Store(db) as s:
                while (view := s.next_assignment(labeler_id)) is not None:
                    s.submit(labeler_id, view["item_id"], [2, 1, 0])
                    done.append((labeler_id, view["item_id"]))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    with Store(db) as s:
        rows = s.conn.execute("SELECT labeler_id, item_id FROM rankings").fetchall()
        assert sorted(map(tuple, rows)) == sorted(done) and len(done) == 90  # 30 items once + 30 twice
        assert s.conn.execute("SELECT COUNT(*) FROM items WHERE remaining != 0").fetchone()[0] == 0


# items and export


def test_load_items_keeps_extras_and_refuses_bad_records(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(
        '{"prompt": "p", "responses": ["a", "b"], "ranking": [0, 1], "customer": 3}\n'
        '{"prompt": "q", "chosen": "c", "rejected": "d"}\n'
    )
    assert load_items(path) == [
        {"prompt": "p", "responses": ["a", "b"], "extra": {"customer": 3}},
        {"prompt": "q", "responses": ["c", "d"], "extra": {}},
    ]
    for bad, message in [
        ('{"prompt": "p", "responses": ["a"]}', "2 to 9"),
        ('{"prompt": "p", "responses": ' + json.dumps(list("abcdefghij")) + "}", "2 to 9"),
        ('{"prompt": "", "responses": ["a", "b"]}', "prompt"),
        ('{"prompt": "p", "responses": ["a", 1]}', "responses"),
    ]:
        path.write_text(bad + "\n")
        with pytest.raises(DataFormatError, match=f"items.jsonl:1: .*{message}"):
            load_items(path)


def test_export_round_trip_split_by_prompt_and_trl_pairs(store, tmp_path):
    store.add_items(
        [
            {"prompt": "shared", "responses": ["a", "b", "c"], "extra": {"customer": 7}},
            {"prompt": "shared", "responses": ["d", "e"]},
        ]  # two items of one prompt
        + items(8),
        overlap=1.0,
    )
    entered = {}
    for name in ("ann", "bob"):
        who = store.labeler_by_token(store.add_labeler(name))["id"]
        while (view := store.next_assignment(who)) is not None:
            k = view["k"]
            ranks = [(view["item_id"] + j) % k for j in range(k)] if name == "ann" else [0] * (k - 1) + [1]
            flags = [["made_up_facts"]] + [[] for _ in range(k - 1)]
            store.submit(who, view["item_id"], ranks, flags, 3 if name == "ann" else None)
            entered[(view["item_id"], name)] = (ranks, flags, 3 if name == "ann" else None)
    store.close()
    db = str(tmp_path / "labels.sqlite")
    label_main(["export", "--db", db, "--out", str(tmp_path / "all.jsonl")])
    records = load_comparisons(tmp_path / "all.jsonl")  # textbandit's loader takes it unchanged
    assert len(records) == len(entered) == 20
    for r in records:
        assert (r["ranking"], r["flags"], r["score"]) == entered[(r["item_id"], r["labeler"])]
    first = next(r for r in records if r["item_id"] == 1)
    assert first["responses"] == ["a", "b", "c"] and first["customer"] == 7

    label_main(
        [
            "export",
            "--db",
            db,
            "--out",
            str(tmp_path / "train.jsonl"),
            "--val-out",
            str(tmp_path / "val.jsonl"),
            "--val-fraction",
            "0.3",
            "--seed",
            "0",
        ]
    )
    train, val = load_comparisons(tmp_path / "train.jsonl"), load_comparisons(tmp_path / "val.jsonl")
    assert len(train) + len(val) == 20 and not {r["prompt"] for r in train} & {r["prompt"] for r in val}
    assert len({r["prompt"] for r in val}) == 3  # 30% of the 9 prompts
    assert split_by_prompt(records, 0.3, 0) == split_by_prompt(records, 0.3, 0)

    label_main(["export", "--db", db, "--out", str(tmp_path / "trl.jsonl"), "--format", "trl"])
    pairs = [json.loads(line) for line in (tmp_path / "trl.jsonl").read_text().splitlines()]
    assert pairs == trl_records(kwise_records(Store(db).rankings()))
    assert all(set(p) == {"prompt", "chosen", "rejected"} for p in pairs)
    bob_shared = next(r for r in records if r["item_id"] == 1 and r["labeler"] == "bob")  # [0, 0, 1]: a, b > c
    assert trl_records([bob_shared]) == [
        {"prompt": "shared", "chosen": "a", "rejected": "c"},
        {"prompt": "shared", "chosen": "b", "rejected": "c"},
    ]
    assert len(pairs) == sum(len(preference_pairs(r["ranking"])) for r in records)


def test_cli_agreement_and_errors(tmp_path, capsys):
    db = str(tmp_path / "l.sqlite")
    label_main(["add-labeler", "--db", db, "--name", "ann", "--admin", "--url", "http://127.0.0.1:9"])
    out = capsys.readouterr().out
    token = out.split("shown once: ")[1].split()[0]
    assert f"http://127.0.0.1:9/login?token={token}" in out
    with pytest.raises(SystemExit, match="no rankings yet"):
        label_main(["export", "--db", db, "--out", str(tmp_path / "x.jsonl")])
    with pytest.raises(SystemExit, match="no labeling database"):
        label_main(["agreement", "--db", str(tmp_path / "missing.sqlite")])
    with pytest.raises(SystemExit, match="exists already"):
        label_main(["add-labeler", "--db", db, "--name", "ann"])
    with pytest.raises(SystemExit, match="holds no items; pass --items"):
        label_main(["serve", "--db", db])
    with Store(db) as s:
        s.add_items(items(1), overlap=1.0)
        for name, ranks in (("bob", [0, 1, 2]), ("cy", [0, 2, 1])):
            who = s.labeler_by_token(s.add_labeler(name))["id"]
            s.submit(who, s.next_assignment(who)["item_id"], ranks)
    result = label_main(["agreement", "--db", db, "--json"])
    assert result["overall"]["agreement"] == pytest.approx(2 / 3)
    assert json.loads(capsys.readouterr().out)["labelers"]["bob"]["pairs"] == 3
    label_main(["agreement", "--db", db])
    assert "overall agreement: 66.7% (2 of 3 pairs, 1 shared items)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="1 prompt.* too few to hold out"):
        label_main(["export", "--db", db, "--out", str(tmp_path / "t.jsonl"), "--val-out", str(tmp_path / "v.jsonl")])
    with pytest.raises(SystemExit, match="--val-fraction 1.0"):
        label_main(
            [
                "export",
                "--db",
                db,
                "--out",
                str(tmp_path / "t.jsonl"),
                "--val-out",
                str(tmp_path / "v.jsonl"),
                "--val-fraction",
                "1",
            ]
        )
