"""What read tracking (reproducible notebooks) costs on the read path, as ratios measured in one run.

    .venv/bin/python benchmarks/read_tracking.py [--opens N]

1. `ReadTracker.opened` for a process seen before, against the plain dictionary update it is
   meant to be (the same key built and stored): ns per call.
2. The first open of a new process (its thread group and parents read from /proc once): µs.
3. Through FUSE: a separate process opens, reads 1 byte from and closes a cached file of a
   read-only mount N times, with tracking on and off in turns on the same mount (medians of 8
   rounds each).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402

OPENER = textwrap.dedent("""
    import os, sys, time
    path, n = sys.argv[1], int(sys.argv[2])
    t = time.perf_counter()
    for _ in range(n):
        fd = os.open(path, os.O_RDONLY)
        os.read(fd, 1)
        os.close(fd)
    print(time.perf_counter() - t)
""")


def hook_cost(calls: int) -> tuple[float, float]:
    """(ns per tracked open of a known process, ns per bare dictionary update)."""
    import os

    from pachtray.mount.reads import ReadTracker

    tracker = ReadTracker()
    pid = os.getpid()
    tracker.opened(pid, "data", "/warm", "c" * 32, False, 1)
    paths = [f"/f{i % 1000}" for i in range(calls)]
    t = time.perf_counter()
    for p in paths:
        tracker.opened(pid, "data", p, "c" * 32, False, 1)
    tracked = time.perf_counter() - t
    files: dict = {}
    t = time.perf_counter()
    for p in paths:
        files[("data", "c" * 32, p, False)] = 1
    bare = time.perf_counter() - t
    return tracked / calls * 1e9, bare / calls * 1e9


def first_open_cost(processes: int) -> float:
    """µs for the first open of each of `processes` new processes (children of a fresh parent)."""
    from pachtray.mount.reads import ReadTracker

    tracker = ReadTracker()
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(processes)]
    try:
        t = time.perf_counter()
        for p in procs:
            tracker.opened(p.pid, "data", "/x", "c" * 32, False, 1)
        took = time.perf_counter() - t
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return took / processes * 1e6


def fuse_cost(tmp: Path, opens: int, rounds: int = 8) -> tuple[float, float]:
    """(µs per open+read+close with tracking, without): medians of alternating rounds on one mount."""
    import statistics

    from pachyderm_sdk.api import pfs

    from pachtray.mount.cache import ChunkCache
    from pachtray.mount.fs import CommitView, FuseMount
    from pachtray.mount.reads import ReadTracker
    from pachtray.pfs.client import connect

    server = harness.LocalServer(tmp).start()
    fs = None
    try:
        sdk = server.client()
        sdk.pfs.create_repo(repo=pfs.Repo(name="bench"))
        with sdk.pfs.commit(branch=pfs.Branch.from_uri("bench@master")) as c:
            c.put_file_from_bytes(path="/f", data=b"x" * 4096)
        commit = sdk.pfs.inspect_branch(branch=pfs.Branch.from_uri("bench@master")).head.id
        client = connect(server.address)
        fs = FuseMount(tmp / "pfs")
        fs.start()
        fs.add_view("data", CommitView(lambda: client, "default", "bench", commit, ["/"],
                                       ChunkCache(tmp / "cache", 64 << 20)))
        path = str(tmp / "pfs" / "data" / "f")
        subprocess.run([harness.PY, "-c", OPENER, path, "50"], check=True, capture_output=True)  # warm
        tracker = ReadTracker()
        took = {True: [], False: []}
        for i in range(2 * rounds):
            on = i % 2 == 0
            fs.reads = tracker if on else None  # read by every open: the same mount, tracking on or off
            out = subprocess.run([harness.PY, "-c", OPENER, path, str(opens)], check=True, capture_output=True,
                                 text=True).stdout
            took[on].append(float(out) / opens * 1e6)
        client.close()
        return statistics.median(took[True]), statistics.median(took[False])
    finally:
        if fs is not None:
            fs.stop()
            harness.force_unmount(tmp / "pfs")
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--opens", type=int, default=3000)
    args = p.parse_args(argv)
    tracked, bare = hook_cost(1_000_000)
    first = first_open_cost(50)
    with tempfile.TemporaryDirectory(prefix="pachtray-bench-") as tmp:
        with_t, without = fuse_cost(Path(tmp), args.opens)
    print("| measured | value | baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| hook, known process | {tracked:.0f} ns/open | {bare:.0f} ns (bare dict update) | {bare / tracked:.2f} |")
    print(f"| hook, first open of a new process | {first:.1f} µs | | |")
    print(f"| FUSE open+read+close, tracking on | {with_t:.1f} µs | {without:.1f} µs (tracking off) | "
          f"{without / with_t:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
