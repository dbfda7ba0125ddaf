"""Which files each process opened for reading, per mount and commit: what a lock pins.

The FUSE `open` callback calls `ReadTracker.opened` with the caller's id; for a process (or
thread) seen before that is one dictionary update. The first open of a new id reads its
thread-group id and parent from /proc while the caller is still blocked in that open, so a
short-lived child (`!python prep.py` in a notebook) is tied to its parent before it can exit;
ancestors already known end the walk. Which tracked ancestor a read counts for is decided only
when asked (`tree`), never on the read path.

A process's reads are forgotten once it has exited, unless it is pinned or a living ancestor
(below the daemon's own ancestors, whose trees are everything) still holds them: a kernel's
subprocesses count for the kernel after they exit. Memory is bounded: at most `max_files`
remembered files in all, the rest summarised per (mount, commit) as "truncated".
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_FILES = 200_000  # remembered (mount, commit, path) entries over all processes
SWEEP_INTERVAL = 2.0  # s between looks at which tracked processes are still alive


@dataclass(frozen=True, order=True)
class Read:
    """One file a process opened for reading."""

    mount: str
    commit: str  # the commit it came from (a rw mount's base commit; "" if the branch had none)
    path: str
    modified: bool  # a rw mount's file with local, uncommitted changes
    size: int


class Proc:
    """A process, by pid and start time (pids are reused), with its parent and its reads."""

    __slots__ = ("pid", "start", "parent", "files", "truncated", "pinned", "alive")

    def __init__(self, pid: int, start: int, parent: "Proc | None"):
        self.pid, self.start, self.parent = pid, start, parent
        self.files: dict[tuple[str, str, str, bool], int] = {}  # (mount, commit, path, modified) -> size
        self.truncated: set[tuple[str, str]] = set()  # (mount, commit) whose file list was cut short
        self.pinned = False
        self.alive = True

    def ancestors(self):
        p = self.parent
        while p is not None:
            yield p
            p = p.parent


def _stat(pid: int, proc_root: str = "/proc") -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, else None."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _thread_group(tid: int, proc_root: str = "/proc") -> int | None:
    """The process (thread group) a thread id belongs to; FUSE reports the calling thread."""
    try:
        with open(f"{proc_root}/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class ReadTracker:
    """Reads per process; `opened` is the FUSE hook, the rest runs when asked or in `sweep`."""

    def __init__(self, *, max_files: int = MAX_FILES, proc_root: str = "/proc"):
        self.max_files = max_files
        self.proc_root = proc_root
        self._by_tid: dict[int, dict] = {}  # FUSE caller id -> its process's `files` (the hot path)
        self._tid_proc: dict[int, Proc] = {}
        self._alive: dict[int, Proc] = {}  # pid -> process known alive at the last sweep (readers, ancestors)
        self._kept: list[Proc] = []  # exited processes whose reads are still held, oldest first
        self._mounts: dict[tuple[str, str], dict] = {}  # (mount name, commit) -> what it showed
        self._lock = threading.Lock()
        self._boundary = self._daemon_ancestry()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- the FUSE hook

    def opened(self, tid: int, mount: str, path: str, commit: str, modified: bool, size: int) -> None:
        """Called from the FUSE open callback of a file opened for reading (keep it this cheap)."""
        files = self._by_tid.get(tid)
        if files is None:
            files = self._first_open(tid)
        files[(mount, commit, path, modified)] = size

    def _first_open(self, tid: int) -> dict:
        """Tie a new caller to its process and the process to its parents (the caller is alive now)."""
        with self._lock:
            files = self._by_tid.get(tid)
            if files is not None:
                return files
            tgid = _thread_group(tid, self.proc_root) if tid > 0 else None
            proc = self._alive.get(tgid) if tgid else None
            if proc is None and tgid:
                proc = self._known(tgid)
            if proc is None:
                return {}  # gone already, or not in our pid namespace: nothing to attribute to
            self._tid_proc[tid] = proc
            files = self._by_tid[tid] = proc.files
            return files

    def _known(self, pid: int) -> Proc | None:
        """The Proc of a live pid, registering it and its unknown ancestors (caller holds the lock)."""
        chain = []
        while pid > 0 and pid not in self._alive:
            st = _stat(pid, self.proc_root)
            if st is None:
                break
            chain.append((pid, st[1]))
            pid = st[0]
        parent = self._alive.get(pid)
        for p, start in reversed(chain):
            parent = self._alive[p] = Proc(p, start, parent)
        return parent if chain else self._alive.get(pid)

    def _daemon_ancestry(self) -> set[int]:
        """This process and its ancestors: their trees hold everything, so they never hold reads."""
        pids, pid = {0, 1}, os.getpid()
        while pid > 1 and pid not in pids:
            pids.add(pid)
            st = _stat(pid, self.proc_root)
            pid = st[0] if st else 0
        return pids

    # ------------------------------------------------------------- mounts

    def mount_seen(self, name: str, commit: str, info: dict) -> None:
        """What mount `name` showed at `commit` (project, repo, branch, paths, mode), for locks later.
        Seen again with other paths, it keeps them all (a lock must show every file read under the
        name); seen with another repo at the same commit id, it is marked `conflict`."""
        info = dict(info)
        with self._lock:
            before = self._mounts.pop((name, commit), None)
            if before is not None:
                if (before["project"], before["repo"]) != (info["project"], info["repo"]) or before.get("conflict"):
                    info["conflict"] = True
                paths = {*before["paths"], *info["paths"]}
                info["paths"] = ["/"] if "/" in paths else sorted(
                    p for p in paths if not any(p.startswith(q + "/") for q in paths))
            self._mounts[(name, commit)] = info
            while len(self._mounts) > 4096:
                self._mounts.pop(next(iter(self._mounts)))

    def mount_info(self, name: str, commit: str) -> dict | None:
        with self._lock:
            found = self._mounts.get((name, commit))
            return dict(found) if found else None

    # ------------------------------------------------------------- queries

    def is_boundary(self, pid: int) -> bool:
        """Whether `pid` is the daemon or one of its parents (init included): their process trees hold
        every reader, so their reads are nobody's notebook's."""
        return pid in self._boundary

    def pin(self, pid: int, pinned: bool = True) -> Proc | None:
        """Keep (or stop keeping) a live process's reads, and its subprocesses', after it exits."""
        self.sweep()
        with self._lock:
            proc = self._alive.get(pid) or self._known(pid)
            if proc is None:
                proc = next((p for p in reversed(self._kept) if p.pid == pid), None)
            if proc is not None:
                proc.pinned = pinned
            return proc

    def tree(self, pid: int) -> tuple[Proc, list[Proc]] | None:
        """The process `pid` (live, else an exited pinned one) and every tracked process of its tree
        that read something (itself included); None when no such process exists."""
        self.sweep()
        with self._lock:
            root = self._alive.get(pid)
            if root is None and _stat(pid, self.proc_root) is not None:
                root = self._known(pid)
            if root is None:
                root = next((p for p in reversed(self._kept) if p.pid == pid and p.pinned), None)
            if root is None:
                return None
            members = [p for p in self._readers() if p is root or root in p.ancestors()]
            return root, members

    def reads(self, pid: int) -> tuple[list[Read], set[tuple[str, str]]] | None:
        """Everything the tree of `pid` read (one Read per file and state, sorted), and the
        (mount, commit) pairs whose list was cut short to bound memory."""
        found = self.tree(pid)
        if found is None:
            return None
        merged: dict[tuple, int] = {}
        truncated: set[tuple[str, str]] = set()
        for p in found[1]:
            merged.update(p.files.copy())
            truncated |= p.truncated
        reads = sorted(Read(m, c, path, mod, size) for (m, c, path, mod), size in merged.items())
        return reads, truncated

    def counts(self, pids: list[int]) -> dict[int, int]:
        """Files read by each of these processes' trees (for listings of kernels)."""
        out = {}
        for pid in pids:
            found = self.reads(pid)
            out[pid] = len(found[0]) if found else 0
        return out

    def _readers(self) -> list[Proc]:
        return [p for p in self._alive.values() if p.files or p.truncated] + self._kept

    # ------------------------------------------------------------- forgetting and bounds

    def sweep(self) -> None:
        """Notice exited processes, forget what nobody holds, keep within `max_files`."""
        with self._lock:
            dead = []
            for pid, proc in list(self._alive.items()):
                st = _stat(pid, self.proc_root)
                if st is None or st[1] != proc.start:
                    proc.alive = False
                    del self._alive[pid]
                    if proc.files or proc.truncated:
                        dead.append(proc)
            for tid, proc in list(self._tid_proc.items()):
                if not proc.alive or (tid != proc.pid and not os.path.exists(
                        f"{self.proc_root}/{proc.pid}/task/{tid}")):
                    del self._tid_proc[tid]
                    self._by_tid.pop(tid, None)
            self._kept = [p for p in self._kept + dead if self._held(p)]
            self._bound()

    def _held(self, proc: Proc) -> bool:
        if proc.pinned:
            return True
        for a in proc.ancestors():
            if a.pinned or (a.alive and a.pid not in self._boundary):
                return True
            if a.alive:
                return False
        return False

    def _bound(self) -> None:
        total = sum(len(p.files) for p in self._readers())
        for proc in [p for p in self._kept if not p.pinned]:  # the longest-exited first
            if total <= self.max_files:
                return
            self._kept.remove(proc)
            total -= len(proc.files)
        if total <= self.max_files:
            return
        for proc in sorted(self._readers(), key=lambda p: len(p.files), reverse=True):
            keys = list(proc.files)  # one C-level copy: the hot path may add keys meanwhile
            cut = min(len(keys), total - self.max_files)
            for key in keys[len(keys) - cut:]:
                proc.files.pop(key, None)
                proc.truncated.add((key[0], key[1]))
            total -= cut
            log.warning("process %d read more files than Pachtray keeps in memory; its lock lists "
                        "the commits but only some of the files", proc.pid)
            if total <= self.max_files:
                return

    # ------------------------------------------------------------- background sweeping

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="read-tracker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - tracking must never take the daemon down
                log.exception("read tracker sweep failed")
