"""The staging journal (mount/journal.py): changes logged first, moved into SQLite later; reads see
both; a kill leaves logs that the next open applies, in order, once or again."""

from __future__ import annotations

import logging
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import wait_for
from pachtray.mount import journal
from pachtray.mount.journal import Journal
from pachtray.mount.staging import Row


def state(j: Journal) -> tuple:
    inline = j.load_inline()
    return j.load(), {b: j.inline_data(b) for b in inline}, j.meta("base_commit")


def test_reads_see_changes_before_and_after_they_reach_sqlite(tmp_path):
    j = Journal(tmp_path)
    try:
        j.write({"/a": Row("file", "b1"), "/d": Row("dir")}, meta={"base_commit": "c1"},
                put={"b1": (b"hello", 1.0), "b2": (b"other", 2.0)})
        j.set_inline("b1", b"hello world", 3.0)
        j.write({}, drop=["b2"])

        def check():
            assert j.inline_data("b1") == b"hello world" and j.inline_data("b2") is None
            assert j.inline_read("b1", 5, 6) == b"world" and j.inline_read("b2", 5, 0) is None
            assert j.inline_many(["b1", "b2", "nope"]) == {"b1": b"hello world"}
            assert j.meta("base_commit") == "c1" and j.meta("other") is None

        check()  # from memory: nothing applied yet
        assert list(tmp_path.glob("ops-*.log")) and j._pending
        j.apply()
        assert not j._pending and not j._blobs and not j._metas
        check()  # from SQLite
        j.set_inline("b1", b"again", 4.0)  # a change after the move, over SQLite's value
        assert j.inline_data("b1") == b"again" and j.inline_many(["b1"]) == {"b1": b"again"}
        assert j.load() == {"/a": ("file", "b1", None, False), "/d": ("dir", None, None, False)}
        assert j.load_inline() == {"b1": (5, 4.0)}
    finally:
        j.close()
    assert not list(tmp_path.glob("ops-*.log"))  # closed: everything is in SQLite


KILLED = textwrap.dedent("""
    import os, shutil, signal, sys
    from pachtray.mount.journal import Journal
    from pachtray.mount.staging import Row
    stage, scenario = sys.argv[1:]
    j = Journal(stage)
    j.write({"/x": Row("file", "b1"), "/keep": Row("gone")}, meta={"base_commit": "c1"}, put={"b1": (b"first", 1.0)})
    if scenario == "applied-not-deleted":  # killed after SQLite has the first log's changes, before its deletion
        saved = open(j._log_path, "rb").read()
        first = j._log_path
        j.apply()
        open(first, "wb").write(saved)
    j.write({"/x": None, "/y": Row("file", "b2")}, put={"b2": (b"second", 2.0)}, drop=["b1"])
    j.set_inline("b2", b"second, longer", 3.0)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def run_killed(stage: Path, scenario: str) -> None:
    child = subprocess.run([sys.executable, "-c", KILLED, str(stage), scenario], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr


EXPECTED = ({"/keep": ("gone", None, None, False), "/y": ("file", "b2", None, False)},
            {"b2": b"second, longer"}, "c1")


def test_every_change_survives_kill_9(tmp_path):
    run_killed(tmp_path, "logged")
    assert len(list(tmp_path.glob("ops-*.log"))) == 1
    j = Journal(tmp_path)
    try:
        assert state(j) == EXPECTED
        assert not list(tmp_path.glob("ops-*.log"))[1:]  # the old log applied and gone: only the new one
    finally:
        j.close()


def test_a_log_applied_again_after_a_kill_gives_the_same_state(tmp_path):
    run_killed(tmp_path, "applied-not-deleted")
    assert len(list(tmp_path.glob("ops-*.log"))) == 2  # the first one's changes are in SQLite already
    j = Journal(tmp_path)
    try:
        assert state(j) == EXPECTED
    finally:
        j.close()


def test_a_torn_last_record_loses_only_itself(tmp_path, caplog):
    run_killed(tmp_path, "logged")
    (log,) = tmp_path.glob("ops-*.log")
    whole = log.read_bytes()
    log.write_bytes(whole + whole[:30])  # a record cut short (a power loss mid-write)
    with caplog.at_level(logging.WARNING, logger="pachtray.mount.journal"):
        j = Journal(tmp_path)
    try:
        assert state(j) == EXPECTED
        assert "30 bytes at the end" in caplog.text
    finally:
        j.close()


def test_a_damaged_record_stops_the_replay_there(tmp_path):
    run_killed(tmp_path, "logged")
    (log,) = tmp_path.glob("ops-*.log")
    data = bytearray(log.read_bytes())
    data[-3] ^= 0xFF  # in the last record (the set_inline): its checksum no longer matches
    log.write_bytes(bytes(data))
    j = Journal(tmp_path)
    try:
        rows, inline, base = state(j)
        assert (rows, base) == (EXPECTED[0], EXPECTED[2])
        assert inline == {"b2": b"second"}  # the changes before it, and not it
    finally:
        j.close()


def test_random_changes_reopen_as_they_were_at_any_kill(tmp_path):
    """Seeded random changes, moved into SQLite at random moments; at random points the staging dir
    is copied as a kill -9 would leave it and reopened: it holds exactly the changes made so far."""
    for seed in range(4):
        rnd = random.Random(seed)
        stage = tmp_path / f"s{seed}"
        j = Journal(stage)
        rows: dict[str, tuple] = {}
        inline: dict[str, bytes] = {}
        meta: dict[str, str] = {}
        try:
            for step in range(300):
                kind = rnd.random()
                if kind < 0.5:
                    changes, put, drop = {}, {}, []
                    for _ in range(rnd.randint(1, 4)):
                        path = f"/p{rnd.randint(0, 30)}"
                        if rnd.random() < 0.3:
                            changes[path] = None
                        else:
                            blob = f"b{rnd.randint(0, 40)}"
                            changes[path] = Row(rnd.choice(["file", "dir", "gone"]), blob, None, rnd.random() < 0.2)
                            if rnd.random() < 0.5:
                                put[blob] = (rnd.randbytes(rnd.randint(0, 50)), float(step))
                    if inline and rnd.random() < 0.3:
                        drop.append(rnd.choice(sorted(inline)))
                    m = {"base_commit": f"c{step}"} if rnd.random() < 0.2 else None
                    j.write(changes, meta=m, put=put, drop=drop)
                    for p, r in changes.items():
                        if r is None:
                            rows.pop(p, None)
                        else:
                            rows[p] = (r.kind, r.blob, r.src, r.clean)
                    inline.update({b: d for b, (d, _) in put.items()})
                    for b in drop:
                        inline.pop(b, None)
                    meta.update(m or {})
                elif kind < 0.8 and inline:
                    blob = rnd.choice(sorted(inline))
                    inline[blob] = rnd.randbytes(rnd.randint(0, 50))
                    j.set_inline(blob, inline[blob], float(step))
                elif kind < 0.9:
                    j.apply()
                if step % 37 == 36:  # a kill -9 here: what is on disk, as it is
                    with j._apply_lock, j._lock:
                        copy = tmp_path / f"kill{seed}-{step}"
                        shutil.copytree(stage, copy)
                    again = Journal(copy)
                    try:
                        assert again.load() == rows, (seed, step)
                        assert {b: again.inline_data(b) for b in again.load_inline()} == inline, (seed, step)
                        assert again.meta("base_commit") == meta.get("base_commit"), (seed, step)
                    finally:
                        again.close()
                assert {b: j.inline_data(b) for b in inline} == inline
        finally:
            j.close()
        reopened = Journal(stage)
        try:
            assert reopened.load() == rows and reopened.meta("base_commit") == meta.get("base_commit")
            assert {b: reopened.inline_data(b) for b in reopened.load_inline()} == inline
        finally:
            reopened.close()


def test_changes_stay_logged_while_held_and_move_after(tmp_path, monkeypatch):
    """`held()` (a commit's stream): no move into SQLite for idleness meanwhile; the move follows."""
    monkeypatch.setattr(journal, "APPLY_IDLE", 0.05)
    j = Journal(tmp_path)
    try:
        with j.held():
            j.write({"/a": Row("file", "b1")}, put={"b1": (b"x", 1.0)})
            time.sleep(0.5)  # ten idle periods
            assert len(j._pending) == 1
        wait_for(lambda: not j._pending, 10, what="the move into SQLite after the hold")
        j.write({"/b": Row("dir")})
        wait_for(lambda: not j._pending, 10, what="the move into SQLite when idle")
        assert j.load() == {"/a": ("file", "b1", None, False), "/b": ("dir", None, None, False)}
    finally:
        j.close()
