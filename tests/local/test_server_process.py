"""The local server as a process: restart persistence, clean shutdown, large files in bounded memory."""

from __future__ import annotations

import hashlib
import io
import signal
import threading

import grpc
import pytest
from pachyderm_sdk.api import pfs

from conftest import LocalPachd, grpc_serving


@pytest.fixture
def in_process():
    """Servers started with ``serve()`` in this process (cheaper than a process where that is not the point)."""
    from pachyderm_sdk import Client

    from pachtray.local.server import serve

    servers = []

    def start(data_dir, **kw) -> Client:
        server = serve(0, data_dir, **kw)
        servers.append(server)
        return Client(host="127.0.0.1", port=server.port)

    yield start
    for server in servers:
        server.stop()


def peak_rss(pid: int) -> int:
    """Peak resident set size of ``pid`` in bytes (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


class PatternFile(io.RawIOBase):
    """``size`` deterministic bytes, generated as read (the test holds no copy of them)."""

    def __init__(self, size: int):
        self.left = size
        self.block = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left, len(self.block))
        b[:n] = self.block[:n]
        self.left -= n
        return n


def pattern_digest(size: int) -> str:
    h = hashlib.sha256()
    src = PatternFile(size)
    while chunk := src.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def test_restart_keeps_everything(local_pachd_factory, tmp_path):
    server = local_pachd_factory(data_dir=tmp_path / "keep")
    c = server.client()
    c.pfs.create_project(project=pfs.Project(name="proj"))
    repo = pfs.Repo(name="data", project=pfs.Project(name="proj"))
    c.pfs.create_repo(repo=repo, description="kept")
    with c.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as commit:
        commit.put_file_from_bytes("/nested/dir/file.txt", b"persisted")
        commit.put_file_from_bytes("/big.bin", b"z" * 300_000)
    c.pfs.create_branch(branch=pfs.Branch(repo=repo, name="other"), head=commit)
    server.stop()
    assert server.proc.returncode == 0

    again = local_pachd_factory(port=server.port, data_dir=tmp_path / "keep")
    c = again.client()
    assert c.pfs.inspect_repo(repo=repo).description == "kept"
    head = pfs.Commit(repo=repo, branch=pfs.Branch(repo=repo, name="other"))
    assert c.pfs.pfs_file(pfs.File(commit=head, path="/nested/dir/file.txt")).read() == b"persisted"
    assert c.pfs.pfs_file(pfs.File(commit=head, path="/big.bin")).read() == b"z" * 300_000
    assert [i.file.path for i in c.pfs.glob_file(commit=head, pattern="/nested/**")] == \
        ["/nested/dir/", "/nested/dir/file.txt"]
    assert c.pfs.inspect_commit(commit=head).commit.id == commit.id


def test_sigint_stops_cleanly(tmp_path):
    server = LocalPachd(tmp_path / "d").start()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(20) == 0


def test_port_in_use_fails_with_message(pachd, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pachtray", "local-pachd", "--port", str(pachd.port),
                           "--data-dir", str(tmp_path / "x")], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert str(pachd.port) in proc.stderr


def test_in_process_serve(tmp_path):
    from pachyderm_sdk import Client

    from pachtray.local.server import serve

    server = serve(0, tmp_path / "inproc")
    try:
        assert server.port > 0 and grpc_serving(server.port)
        c = Client(host="127.0.0.1", port=server.port)
        c.pfs.create_repo(repo=pfs.Repo(name="r"))
        assert [r.repo.name for r in c.pfs.list_repo()] == ["r"]
    finally:
        server.stop()
    assert server.wait(5)


@pytest.mark.timeout(240)
def test_large_file_streams_in_bounded_memory(local_pachd_factory, tmp_path):
    size = 256 << 20
    server = local_pachd_factory(data_dir=tmp_path / "large")
    c = server.client()
    repo = pfs.Repo(name="large")
    c.pfs.create_repo(repo=repo)
    with c.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as commit:
        commit.put_file_from_file(path="/huge.bin", file=PatternFile(size))
    head = pfs.Commit(repo=repo, id=commit.id)
    assert c.pfs.inspect_file(file=pfs.File(commit=head, path="/huge.bin")).size_bytes == size
    h = hashlib.sha256()
    got = 0
    for msg in c.pfs.get_file(file=pfs.File(commit=head, path="/huge.bin")):
        h.update(msg.value)
        got += len(msg.value)
    assert got == size and h.hexdigest() == pattern_digest(size)
    tail = b"".join(m.value for m in c.pfs.get_file(file=pfs.File(commit=head, path="/huge.bin"), offset=size - 10))
    assert len(tail) == 10
    assert peak_rss(server.proc.pid) < size // 2, f"server peak RSS {peak_rss(server.proc.pid) >> 20} MiB"


def test_readers_never_see_half_a_write(client, unique_name):
    """Each ModifyFile lands whole: a reader sees all ten files of a stream or none of them."""
    repo = pfs.Repo(name=unique_name())
    client.pfs.create_repo(repo=repo)
    commit = client.pfs.start_commit(branch=pfs.Branch(repo=repo, name="master"))
    seen_counts = set()
    stop = threading.Event()

    def reader():
        target = pfs.File(commit=pfs.Commit(repo=repo, id=commit.id), path="/")
        while not stop.is_set():
            seen_counts.add(sum(1 for _ in client.pfs.walk_file(file=target)) - 1)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for batch in range(5):
            ops = [pfs.ModifyFileRequest(set_commit=commit)]
            ops += [pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f"/b{batch}/f{i}", raw=b"x" * 1000))
                    for i in range(10)]
            client.pfs.modify_file(iter(ops))
    finally:
        stop.set()
        t.join(30)
    client.pfs.finish_commit(commit=commit)
    # Each batch adds one directory and ten files: a consistent snapshot has a multiple of 11 entries.
    assert seen_counts and all(n % 11 == 0 for n in seen_counts), seen_counts


def test_unknown_rpc_is_unimplemented(client):
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.squash_commit_set(commit_set=pfs.CommitSet(id="0" * 32))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_deleting_a_repo_frees_its_contents(in_process, tmp_path):
    data_dir = tmp_path / "gc"
    c = in_process(data_dir)

    def stored_files() -> int:
        return sum(1 for p in (data_dir / "blobs").rglob("*") if p.is_file())

    for name, fill in (("keep", b"k"), ("drop", b"d")):
        c.pfs.create_repo(repo=pfs.Repo(name=name))
        c.pfs.put_file_from_bytes(commit=pfs.Commit(repo=pfs.Repo(name=name), branch=pfs.Branch(
            repo=pfs.Repo(name=name), name="master")), path="/big", data=fill * 200_000)
    assert stored_files() == 2
    c.pfs.delete_repo(repo=pfs.Repo(name="drop"))
    assert stored_files() == 1
    keep = pfs.Commit(repo=pfs.Repo(name="keep"), branch=pfs.Branch(repo=pfs.Repo(name="keep"), name="master"))
    assert c.pfs.pfs_file(pfs.File(commit=keep, path="/big")).read() == b"k" * 200_000


def test_delete_all(in_process, tmp_path):
    c = in_process(tmp_path / "all")
    c.pfs.create_project(project=pfs.Project(name="extra"))
    for project in ("default", "extra"):
        c.pfs.create_repo(repo=pfs.Repo(name="r", project=pfs.Project(name=project)))
    c.pfs.delete_all()
    assert list(c.pfs.list_repo()) == []
    assert [p.project.name for p in c.pfs.list_project()] == ["default"]


def test_one_server_per_data_dir(in_process, tmp_path):
    from pachtray.local.server import serve

    in_process(tmp_path / "shared")
    with pytest.raises(OSError, match="in use"):
        serve(0, tmp_path / "shared")
