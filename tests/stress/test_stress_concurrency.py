"""8 concurrent readers on one mount while other mounts are mounted, written, committed and unmounted.

Runs for PACHTRAY_STRESS_SECONDS (20 s by default, as in CI; 60 s is the documented long run).
Checks: every byte read matches, every churn step succeeds, nothing hangs (bounded joins), and after
a warm-up quarter the daemon's open file descriptors and threads do not grow.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import random
import threading
import traceback

import pytest

from conftest import wait_for
from stress_helpers import commit, create_repo, mount, open_fds, read_pfs, threads, unmount
from stress_helpers import no_leftover_mounts  # noqa: F401 - autouse: unmount leftovers

pytestmark = pytest.mark.slow

STRESS_SECONDS = float(os.environ.get("PACHTRAY_STRESS_SECONDS", "20"))
READERS = 8
MAX_READ = 1 << 20
# Pools may settle a few threads/fds apart between two quiet moments; a leak per operation grows
# far beyond this over the iterations of the churn loop.
SLACK = 6


def test_concurrent_readers_with_mount_churn(daemon, client, unique_name):
    rng = random.Random(8)
    files = {f"/data/part-{i}.bin": rng.randbytes((3 << 20) + i * 4099) for i in range(4)}
    read_path = mount(daemon, "readers", create_repo(client, unique_name("read"), files))
    churn_repos = [create_repo(client, unique_name("churn")) for _ in range(2)]
    errors: list[str] = []
    iterations = [0]

    def churn_once(i: int) -> None:
        repo = churn_repos[i % 2]
        rw = mount(daemon, f"rw{i % 2}", repo, mode="rw")
        content = f"iteration {i}\n".encode() * (i + 1)
        with open(os.path.join(rw, f"iter-{i}.txt"), "wb") as f:
            f.write(content)
        commit(daemon, f"rw{i % 2}")
        unmount(daemon, f"rw{i % 2}")
        assert read_pfs(client, repo, f"/iter-{i}.txt") == content, f"commit of iteration {i} lost its file"
        ro = mount(daemon, "ro-churn", repo)
        assert f"iter-{i}.txt" in os.listdir(ro), f"ro mount of {repo} misses iter-{i}.txt"
        with open(os.path.join(ro, f"iter-{i}.txt"), "rb") as f:
            assert f.read() == content, f"ro mount of {repo} reads iter-{i}.txt wrong"
        unmount(daemon, "ro-churn")

    pid = daemon.proc.pid
    stop = threading.Event()
    reads = [0] * READERS

    def reader(k: int) -> None:
        r = random.Random(k)
        try:
            while not stop.is_set():
                path, data = r.choice(list(files.items()))
                offset = r.randrange(len(data))
                size = r.randint(1, MAX_READ)
                fd = os.open(read_path + path, os.O_RDONLY)
                try:
                    got = os.pread(fd, size, offset)
                finally:
                    os.close(fd)
                if hashlib.sha256(got).digest() != hashlib.sha256(data[offset:offset + size]).digest():
                    errors.append(f"reader {k}: {path} at {offset}+{size}: got {len(got)} bytes that differ")
                    return
                reads[k] += 1
        except Exception:  # noqa: BLE001 - reported below with the traceback
            errors.append(f"reader {k}: {traceback.format_exc()}")

    def churner() -> None:
        try:
            while not stop.is_set():
                iterations[0] += 1
                churn_once(iterations[0])
        except Exception:  # noqa: BLE001 - reported below with the traceback
            errors.append(f"churn iteration {iterations[0]}: {traceback.format_exc()}")

    def run_phase(seconds: float) -> int:
        """Readers and churn together for ``seconds``; returns the churn iterations it ran."""
        stop.clear()
        first = iterations[0]
        workers = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(READERS)]
        workers.append(threading.Thread(target=churner, daemon=True))
        for w in workers:
            w.start()
        stop.wait(seconds)
        stop.set()
        for w in workers:
            w.join(180)
        stuck = [w.name for w in workers if w.is_alive()]
        assert not stuck, f"threads still blocked 180 s after the stop (deadlock?): {stuck}"
        assert not errors, "\n".join(errors)
        return iterations[0] - first

    # The first quarter warms up what grows to a bounded size under load (FUSE worker threads,
    # thread pools, caches); the rest must not add fds or threads.
    run_phase(max(3.0, STRESS_SECONDS / 4))
    fds_before, threads_before = settled_counts(pid)
    ran = run_phase(STRESS_SECONDS - max(3.0, STRESS_SECONDS / 4))
    assert all(reads), f"a reader never completed a read: {reads}"
    assert ran >= 2, f"only {ran} mount/commit/unmount iterations ran"
    try:
        wait_for(lambda: open_fds(pid) <= fds_before + SLACK and threads(pid) <= threads_before + SLACK, 60,
                 what="daemon fds and threads to settle")
    except TimeoutError:
        pytest.fail(f"leak over {ran} iterations: {fds_before} -> {open_fds(pid)} fds, "
                    f"{threads_before} -> {threads(pid)} threads ({thread_names(pid)})")
    unmount(daemon, "readers")


def settled_counts(pid: int) -> tuple[int, int]:
    """fds and threads once they stop changing (threads of finished requests take a moment to exit)."""
    last: list[tuple[int, int]] = []

    def stable():
        last.append((open_fds(pid), threads(pid)))
        return len(last) >= 5 and len(set(last[-5:])) == 1

    wait_for(stable, 30, interval=0.2, what="daemon fds and threads to settle")
    return last[-1]


def thread_names(pid: int) -> str:
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/comm") as f:
            names[f.read().strip()] += 1
    return ", ".join(f"{n}×{c}" for n, c in names.most_common())
