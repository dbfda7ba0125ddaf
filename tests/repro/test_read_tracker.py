"""ReadTracker with real processes (no FUSE): process trees, threads, forgetting, pinning, bounds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import stop_process, wait_for
from pachtray.mount.reads import ReadTracker

# A parent that starts a child and a second thread, prints "PARENT CHILD TID", then sleeps.
FAMILY = textwrap.dedent("""
    import os, subprocess, sys, threading, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    ready = threading.Event()
    box = []
    def run():
        box.append(threading.get_native_id())
        ready.set()
        time.sleep(600)
    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    print(os.getpid(), child.pid, box[0], flush=True)
    sys.stdin.read()
    child.kill()
    child.wait()
""")


class Family:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", FAMILY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.pid, self.child, self.thread = map(int, self.proc.stdout.readline().split())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            stop_process(self.proc)
        try:
            os.kill(self.child, 9)
        except ProcessLookupError:
            pass


# A parent whose child exits (and is reaped) when told, while the parent stays.
PARENT = textwrap.dedent("""
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    print(child.pid, flush=True)
    sys.stdin.readline()
    child.stdin.close(); child.wait()
    print("reaped", flush=True)
    sys.stdin.read()
""")


class Parent:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.pid, self.child = self.proc.pid, int(self.proc.stdout.readline())

    def reap_child(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "reaped"

    def stop(self) -> None:
        self.proc.stdin.close()
        stop_process(self.proc)


@pytest.fixture
def family():
    made = []

    def make() -> Family:
        made.append(Family())
        return made[-1]

    yield make
    for f in made:
        f.stop()


def _paths(tracker: ReadTracker, pid: int) -> list[str]:
    found = tracker.reads(pid)
    return None if found is None else [r.path for r in found[0]]


def test_a_thread_and_a_child_count_for_the_process_that_started_them(family):
    t = ReadTracker()
    f = family()
    t.opened(f.pid, "data", "/main", "c1", False, 1)
    t.opened(f.thread, "data", "/from-thread", "c1", False, 2)
    t.opened(f.child, "data", "/from-child", "c1", False, 3)
    assert _paths(t, f.pid) == ["/from-child", "/from-thread", "/main"]
    assert _paths(t, f.child) == ["/from-child"]  # a subtree is a tree too
    reads = t.reads(f.pid)[0]
    assert {(r.mount, r.commit, r.path, r.modified, r.size) for r in reads} == {
        ("data", "c1", "/main", False, 1), ("data", "c1", "/from-thread", False, 2),
        ("data", "c1", "/from-child", False, 3)}


def test_reads_of_a_tree_whose_top_exited_are_forgotten(family):
    t = ReadTracker()
    f = family()
    t.opened(f.child, "data", "/from-child", "c1", False, 3)
    child = f.child
    f.proc.stdin.close()  # the parent kills and reaps its child, then exits
    wait_for(lambda: f.proc.poll() is not None, 20, what="family exit")
    t.sweep()
    assert t.reads(child) is None and t.reads(f.pid) is None  # the parent was our child: nobody holds them
    assert t._readers() == []


def test_an_exited_child_counts_for_its_parent_while_the_parent_lives():
    t = ReadTracker()
    parent = Parent()
    try:
        t.opened(parent.child, "data", "/by-child", "c1", False, 1)
        parent.reap_child()
        t.sweep()
        assert t.reads(parent.child) is None  # the child itself is gone...
        assert _paths(t, parent.pid) == ["/by-child"]  # ...its reads count for its parent
    finally:
        parent.stop()
    t.sweep()
    assert t.reads(parent.pid) is None and t._readers() == []


def test_a_pinned_process_keeps_its_reads_after_it_exits(family):
    t = ReadTracker()
    f, g = family(), family()
    t.opened(f.pid, "data", "/kept", "c1", False, 1)
    t.opened(g.pid, "data", "/dropped", "c1", False, 1)
    assert t.pin(f.pid) is not None
    f.stop()
    g.stop()
    t.sweep()
    assert _paths(t, f.pid) == ["/kept"]
    assert t.reads(g.pid) is None
    t.pin(f.pid, False)
    t.sweep()
    assert t.reads(f.pid) is None


def test_a_process_that_read_nothing_has_an_empty_tree_and_unknown_pids_none(family):
    t = ReadTracker()
    f = family()
    assert t.reads(f.pid) == ([], set())
    assert t.reads(2**22 + 7) is None  # above any pid_max


def test_memory_is_bounded_by_cutting_the_longest_lists_never_the_pinned(family):
    t = ReadTracker(max_files=10)
    holder, f = family(), family()
    t.pin(holder.pid)
    for i in range(4):
        t.opened(holder.pid, "old", f"/{i}", "c0", False, 1)
    holder.stop()
    t.sweep()
    assert len(_paths(t, holder.pid)) == 4  # pinned: kept although exited
    for i in range(25):
        t.opened(f.pid, "data", f"/f{i:02d}", "c1", False, 1)
    t.sweep()
    reads, truncated = t.reads(f.pid)
    assert sum(len(p.files) for p in t._readers()) <= 10
    assert truncated == {("data", "c1")} and 0 < len(reads) <= 10
    assert _paths(t, holder.pid) == ["/0", "/1", "/2", "/3"]  # pinned is never dropped for room



def test_memory_bound_drops_exited_readers_before_cutting_live_ones(family):
    t = ReadTracker(max_files=10)
    pinned, parent, live = family(), Parent(), family()
    t.opened(pinned.pid, "p", "/kept", "c", False, 1)
    t.pin(pinned.pid)
    pinned.stop()
    t.sweep()  # the first exited reader held: pinned, never dropped, and no obstacle to dropping others
    try:
        for i in range(4):
            t.opened(parent.child, "x", f"/exited{i}", "c", False, 1)
        parent.reap_child()
        t.sweep()
        assert len(_paths(t, parent.pid)) == 4  # held by the living parent
        for i in range(8):
            t.opened(live.pid, "y", f"/{i}", "c", False, 1)
        t.sweep()
        assert _paths(t, parent.pid) == []  # the exited child's reads made room
        reads, truncated = t.reads(live.pid)
        assert len(reads) == 8 and truncated == set()
        assert _paths(t, pinned.pid) == ["/kept"]
    finally:
        parent.stop()
