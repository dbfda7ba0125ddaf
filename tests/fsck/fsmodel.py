"""A seeded model-based checker of a rw mount: random file-system operations on the mount and on a
plain local folder side by side, the same errno for each, the same trees every few operations,
and after each commit the committed tree (read with the SDK) equal to what the model predicts.

The local folder is the model, adjusted only where the README says a rw mount differs from a
local disk: a hard link is made as a copy, a commit stores a copy of the file each symbolic link
leads to (and refuses to commit while a link leads nowhere, to a folder or outside), and PFS keeps
no empty folders (the mount keeps them until unmount, the commit has none).
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pachtray.mount.staging import INLINE_MAX as INLINE  # files move from the journal to blob files here

NAMES = ["a", "b", "c.txt", "d d", "e-1"]
MAX_DEPTH = 3
BIG = 300 * 1024  # some writes cross FUSE's 128 KiB write size and the reader's pages


class Mismatch(AssertionError):
    pass


@dataclass
class Result:
    """What one operation gave on one side: errno (0 = success) and what it returned."""

    err: int = 0
    value: object = None


@dataclass
class Checker:
    """Runs ``ops`` random operations; ``commit()`` returns (ok, message) after /_commit, and
    ``committed()`` the branch head's files {path: bytes} read with the SDK."""

    seed: int
    mount_root: Path
    local_root: Path
    commit: Callable[[], tuple[bool, str]]
    committed: Callable[[], dict[str, bytes]]
    compare_every: int = 5
    commit_every: int = 40
    log: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.commits = 0

    # --- driving --------------------------------------------------------------------------------
    def run(self, ops: int) -> None:
        choices = [(self.op_create, 14), (self.op_write_at, 14), (self.op_append, 5), (self.op_truncate, 7),
                   (self.op_rename, 10), (self.op_unlink, 8), (self.op_mkdir, 9), (self.op_rmdir, 6),
                   (self.op_link, 4), (self.op_symlink, 6), (self.op_unlinked_fd, 3), (self.op_read, 6),
                   (self.op_readlink, 3)]
        funcs, weights = zip(*choices)
        for i in range(1, ops + 1):
            self.rng.choices(funcs, weights)[0]()
            if i % self.compare_every == 0:
                self.compare_trees()
            if i % self.commit_every == 0:
                self.do_commit()
        self.compare_trees()
        self.do_commit()

    def fail(self, what: str) -> None:
        tail = "\n  ".join(self.log[-40:])
        raise Mismatch(f"seed {self.seed}, op {len(self.log)}: {what}\nlast operations:\n  {tail}")

    def both(self, label: str, fn: Callable[[Path], object]) -> object:
        """Run ``fn(root)`` on the model and on the mount; the same errno and value, or a Mismatch."""
        results = []
        for root in (self.local_root, self.mount_root):
            try:
                results.append(Result(0, fn(root)))
            except OSError as e:
                results.append(Result(e.errno or -1))
        local, mounted = results
        self.log.append(f"{label} -> {errno.errorcode.get(local.err, 'ok') if local.err else 'ok'}")
        if local.err != mounted.err:
            self.fail(f"{label}: errno {errno.errorcode.get(local.err, local.err)} on a local folder, "
                      f"{errno.errorcode.get(mounted.err, mounted.err)} on the mount")
        if local.value != mounted.value:
            self.fail(f"{label}: {local.value!r:.200} on a local folder, {mounted.value!r:.200} on the mount")
        return local.value

    # --- picking paths (from the model, so both sides see the same choices) ----------------------
    def entries(self) -> tuple[list[str], list[str], list[str]]:
        """(files, folders, symlinks) of the model, relative, sorted; folders include ''."""
        files, dirs, links = [], [""], []
        for top, names, fnames in os.walk(self.local_root):
            rel = os.path.relpath(top, self.local_root)
            rel = "" if rel == "." else rel
            for n in sorted(names):
                p = os.path.join(rel, n)
                (links if os.path.islink(os.path.join(top, n)) else dirs).append(p)
            for n in sorted(fnames):
                p = os.path.join(rel, n)
                (links if os.path.islink(os.path.join(top, n)) else files).append(p)
        return sorted(files), sorted(dirs), sorted(links)

    def pick(self, kind: str) -> str:
        """An existing path of ``kind`` ("file", "dir", "link", "any") most of the time, else a new one."""
        files, dirs, links = self.entries()
        pool = {"file": files, "dir": dirs[1:], "link": links, "any": files + dirs[1:] + links}[kind]
        if pool and self.rng.random() < 0.75:
            return self.rng.choice(pool)
        return self.new_path(dirs)

    def new_path(self, dirs: list[str] | None = None) -> str:
        dirs = dirs if dirs is not None else self.entries()[1]
        parent = self.rng.choice(dirs)
        if parent.count("/") + 1 >= MAX_DEPTH:
            parent = ""
        if self.rng.random() < 0.1:  # a parent that may not exist
            parent = os.path.join(parent, self.rng.choice(NAMES))
        return os.path.join(parent, self.rng.choice(NAMES))

    def data(self) -> bytes:
        r = self.rng.random()
        n = 0 if r < 0.05 else BIG + self.rng.randrange(1000) if r > 0.95 else \
            INLINE + self.rng.randrange(-50, 50) if r > 0.9 else self.rng.randrange(1, 3000)
        return self.rng.randbytes(n)

    # --- operations -----------------------------------------------------------------------------
    def op_create(self) -> None:
        path, data = self.pick("any"), self.data()
        flags = os.O_CREAT | os.O_WRONLY | self.rng.choice([0, os.O_TRUNC, os.O_EXCL])

        def create(root: Path):
            fd = os.open(root / path, flags, 0o644)
            try:
                return os.write(fd, data)
            finally:
                os.close(fd)
        self.both(f"create {path!r} flags={flags:o} {len(data)}B", create)

    def op_write_at(self) -> None:
        path, data = self.pick("file"), self.data()
        offset = self.rng.choice([0, self.rng.randrange(0, 5000), self.rng.randrange(0, BIG + 5000),
                                  INLINE + self.rng.randrange(-3000, 100)])

        def write_at(root: Path):
            fd = os.open(root / path, os.O_WRONLY)
            try:
                return os.pwrite(fd, data, offset)
            finally:
                os.close(fd)
        self.both(f"pwrite {path!r} @{offset} {len(data)}B", write_at)

    def op_append(self) -> None:
        path, data = self.pick("file"), self.data()

        def append(root: Path):
            with open(root / path, "ab") as f:
                return f.write(data)
        self.both(f"append {path!r} {len(data)}B", append)

    def op_truncate(self) -> None:
        path = self.pick("file")
        length = self.rng.choice([0, self.rng.randrange(0, 4000), self.rng.randrange(0, BIG + 4000),
                                  INLINE + self.rng.randrange(-20, 20)])
        self.both(f"truncate {path!r} {length}", lambda root: os.truncate(root / path, length))

    def op_rename(self) -> None:
        src = self.pick(self.rng.choice(["file", "dir", "link", "any"]))
        dst = self.pick("any") if self.rng.random() < 0.4 else self.new_path()
        self.both(f"rename {src!r} {dst!r}", lambda root: os.rename(root / src, root / dst))
        self.drop_escaping_links()

    def drop_escaping_links(self) -> None:
        """A folder moved up may take a relative link out of the tree ('../..' from a shallower
        place): the model and the mount then lead to different places, so such links go."""
        for rel in self.entries()[2]:
            target = os.readlink(self.local_root / rel)
            if target.split("/").count("..") > rel.count("/"):  # targets climb with leading '..' only
                self.both(f"unlink escaping link {rel!r} -> {target!r}", lambda root, rel=rel: os.unlink(root / rel))

    def op_unlink(self) -> None:
        path = self.pick(self.rng.choice(["file", "link", "any"]))
        self.both(f"unlink {path!r}", lambda root: os.unlink(root / path))

    def op_mkdir(self) -> None:
        path = self.new_path() if self.rng.random() < 0.85 else self.pick("any")
        self.both(f"mkdir {path!r}", lambda root: os.mkdir(root / path))

    def op_rmdir(self) -> None:
        path = self.pick("dir")
        self.both(f"rmdir {path!r}", lambda root: os.rmdir(root / path))

    def op_link(self) -> None:
        src, dst = self.pick("file"), self.new_path() if self.rng.random() < 0.8 else self.pick("any")

        def link(root: Path):
            os.link(root / src, root / dst)
            if root == self.local_root and not os.path.islink(root / dst):  # the mount makes a copy
                content = (root / dst).read_bytes()
                os.unlink(root / dst)
                (root / dst).write_bytes(content)
        self.both(f"link {src!r} {dst!r}", link)

    def op_symlink(self) -> None:
        path = self.new_path() if self.rng.random() < 0.85 else self.pick("any")
        target_path = self.pick(self.rng.choice(["file", "file", "dir", "link", "any"]))
        # Relative, climbing only out of the link's own folder: it stays inside the tree.
        target = os.path.relpath(target_path or ".", os.path.dirname(path) or ".")
        self.both(f"symlink {path!r} -> {target!r}", lambda root: os.symlink(target, root / path))

    def op_read(self) -> None:
        path = self.pick("any")  # through symbolic links, as programs read

        def read(root: Path):
            with open(root / path, "rb") as f:
                return f.read()
        self.both(f"read {path!r}", read)

    def op_readlink(self) -> None:
        path = self.pick(self.rng.choice(["link", "any"]))
        self.both(f"readlink {path!r}", lambda root: os.readlink(root / path))

    def op_unlinked_fd(self) -> None:
        """A file unlinked while open stays usable through its descriptor (and is not committed)."""
        path, data = self.pick("file"), self.data()
        cut = self.rng.randrange(0, 100)

        def use(root: Path):
            fd = os.open(root / path, os.O_RDWR)
            try:
                os.unlink(root / path)
                os.pwrite(fd, data, 10)
                size = os.fstat(fd).st_size
                os.ftruncate(fd, cut)
                return size, os.fstat(fd).st_size, os.fstat(fd).st_nlink, os.pread(fd, 200, 0)
            finally:
                os.close(fd)
        self.both(f"unlinked fd {path!r}", use)

    # --- checking -------------------------------------------------------------------------------
    @staticmethod
    def snapshot(root: Path) -> dict[str, tuple]:
        """path -> ("dir",) | ("link", target) | ("file", size, content) without following links."""
        out = {}
        for top, names, fnames in os.walk(root):
            for n in names + fnames:
                p = os.path.join(top, n)
                rel = os.path.relpath(p, root)
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    out[rel] = ("link", os.readlink(p))
                elif stat.S_ISDIR(st.st_mode):
                    out[rel] = ("dir",)
                else:
                    with open(p, "rb") as f:
                        out[rel] = ("file", st.st_size, f.read())
        return out

    def compare_trees(self) -> None:
        local, mounted = self.snapshot(self.local_root), self.snapshot(self.mount_root)
        if local != mounted:
            diff = sorted(p for p in local.keys() | mounted.keys() if local.get(p) != mounted.get(p))
            shown = [f"{p}: local {str(local.get(p))[:80]} / mount {str(mounted.get(p))[:80]}" for p in diff[:10]]
            self.fail("trees differ:\n    " + "\n    ".join(shown))

    def commit_plan(self) -> tuple[dict[str, bytes], list[str]]:
        """What a commit should store ({path: content}), and the symbolic links that prevent it."""
        root = self.local_root.resolve()
        files, bad = {}, []
        for top, names, fnames in os.walk(root):
            for n in names + fnames:
                p = Path(top) / n
                rel = "/" + str(p.relative_to(root))
                if not p.is_symlink():
                    if n in fnames:
                        files[rel] = p.read_bytes()
                    continue
                try:
                    st = os.stat(p)
                except OSError:  # dangling, or a loop
                    bad.append(str(p.relative_to(root)))
                    continue
                real = Path(os.path.realpath(p))
                if stat.S_ISDIR(st.st_mode) or root not in real.parents:
                    bad.append(str(p.relative_to(root)))
                else:
                    files[rel] = real.read_bytes()
        return files, bad

    def do_commit(self) -> None:
        expected, bad = self.commit_plan()
        ok, message = self.commit()
        self.log.append(f"commit -> {'ok' if ok else message[:100]}")
        if bad:
            if ok:
                self.fail(f"the commit succeeded although links {bad} lead nowhere, to a folder or outside")
            for rel in bad:  # make it committable on both sides, and commit again
                self.both(f"unlink bad link {rel!r}", lambda root, rel=rel: os.unlink(root / rel))
            self.do_commit()
            return
        if not ok:
            self.fail(f"commit failed: {message}")
        self.commits += 1
        got = self.committed()
        if got != expected:
            diff = sorted(p for p in got.keys() | expected.keys() if got.get(p) != expected.get(p))
            shown = [f"{p}: committed {str(got.get(p))[:60]} / model {str(expected.get(p))[:60]}" for p in diff[:10]]
            self.fail("committed tree differs from the model:\n    " + "\n    ".join(shown))
        self.compare_trees()


def seed_local(local_root: Path, files: dict[str, bytes]) -> None:
    """The model's starting tree: the files the branch starts with."""
    if local_root.exists():
        shutil.rmtree(local_root)
    local_root.mkdir(parents=True)
    for path, data in files.items():
        p = local_root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
