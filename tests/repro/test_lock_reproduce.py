"""`pachtray lock --pid` and `pachtray reproduce` against a real daemon, real FUSE and real processes."""

from __future__ import annotations

import pytest
from pachyderm_sdk.api import pfs
from reprohelpers import Reader, cli, digest, load, mount, mounted, pinned_read, put_commit, unmount

from pachtray.repro import lockfile

FILES = {"a.txt": b"alpha\n", "b.txt": b"bravo bravo\n", "c.txt": b"charlie\n", "sub/d.txt": b"delta" * 1000}


@pytest.fixture
def reader():
    readers = []

    def make(**kw) -> Reader:
        readers.append(Reader(**kw))
        return readers[-1]

    yield make
    for r in readers:
        r.stop()


@pytest.fixture
def repo(client, unique_name):
    name = unique_name("repro")
    commit = put_commit(client, name, FILES)
    return name, commit


def _hashes(client, repo: str, commit: str) -> dict[str, tuple[int, str]]:
    c = pfs.Commit(repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name="default")), id=commit)
    out = {}
    for path in FILES:
        fi = client.pfs.inspect_file(file=pfs.File(commit=c, path="/" + path))
        out["/" + path] = (fi.size_bytes, bytes(fi.hash).hex())
    return out


def _lock(daemon, *args: str, tmp_path=None) -> dict:
    out = (tmp_path or daemon.tmp) / "test.pachyderm.lock"
    proc = cli("lock", *args, "-o", str(out), "--port", str(daemon.port))
    assert proc.returncode == 0, proc.stderr
    return load(out)


def test_lock_lists_exactly_the_files_read_at_the_mounted_commit(daemon, client, repo, reader):
    name, commit = repo
    m = mount(daemon, "data", name)
    assert m["commit"] == commit
    r = reader()
    root = daemon.mount_dir / "data"
    assert r.read(root / "a.txt") == digest(FILES["a.txt"])
    assert r.read(root / "sub/d.txt") == digest(FILES["sub/d.txt"])
    r.ask(f"stat {root / 'c.txt'}")  # looked at, listed, never opened: not read

    out = daemon.tmp / "x.lock"
    proc = cli("lock", "--pid", str(r.pid), "-o", str(out), "--port", str(daemon.port))
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "1 commit(s), 2 file(s)" in proc.stdout
    lock = load(out)
    assert lockfile.validate(lock) == lock
    assert set(lock) == {"version", "cluster", "created", "pachtray", "mounts"}
    assert lock["version"] == 1 and lock["cluster"]["address"].endswith(f":{daemon_pachd_port(daemon)}")
    assert len(lock["cluster"]["id"]) == 32
    expected = _hashes(client, name, commit)
    assert lock["mounts"] == [{
        "name": "data", "project": "default", "repo": name, "branch": "master", "commit": commit, "paths": ["/"],
        "files": [{"path": p, "size": expected[p][0], "hash": expected[p][1]} for p in ("/a.txt", "/sub/d.txt")],
    }]
    assert all(len(f["hash"]) == 64 for f in lock["mounts"][0]["files"])  # the local server hashes with SHA-256

    # The same over the unix socket, printed to stdout.
    proc = cli("lock", "--pid", str(r.pid), "-o", "-", "--sock-path", daemon.sock_path)
    assert proc.returncode == 0, proc.stderr
    assert lockfile.validate(__import__("json").loads(proc.stdout))["mounts"] == lock["mounts"]


def daemon_pachd_port(daemon) -> int:
    return int(daemon.pachd_address.rsplit(":", 1)[1])


def test_subprocesses_and_threads_count_for_the_process_that_started_them(daemon, repo, reader):
    name, commit = repo
    mount(daemon, "data", name)
    r = reader()
    root = daemon.mount_dir / "data"
    assert r.ask(f"child {root / 'b.txt'}") == digest(FILES["b.txt"])  # the child has exited by now
    assert r.ask(f"thread {root / 'c.txt'}") == digest(FILES["c.txt"])
    lock = _lock(daemon, "--pid", str(r.pid))
    assert [f["path"] for f in lock["mounts"][0]["files"]] == ["/b.txt", "/c.txt"]
    # Another process's reads are not this one's.
    other = reader()
    other.read(root / "a.txt")
    assert [f["path"] for f in _lock(daemon, "--pid", str(r.pid))["mounts"][0]["files"]] == ["/b.txt", "/c.txt"]
    assert [f["path"] for f in _lock(daemon, "--pid", str(other.pid))["mounts"][0]["files"]] == ["/a.txt"]


def test_reproduce_mounts_the_old_commit_and_the_same_code_reads_the_old_bytes(daemon, client, repo, reader):
    name, old = repo
    mount(daemon, "data", name)
    r = reader()
    path = daemon.mount_dir / "data" / "a.txt"
    assert r.read(path) == digest(FILES["a.txt"])
    lock_path = daemon.tmp / "nb.pachyderm.lock"
    assert cli("lock", "--pid", str(r.pid), "-o", str(lock_path), "--port", str(daemon.port)).returncode == 0
    r.stop()

    new = put_commit(client, name, {"a.txt": b"alpha, changed\n"})
    unmount(daemon, "data")
    mount(daemon, "data", name)
    assert reader().read(path) == digest(b"alpha, changed\n")
    unmount(daemon, "data")

    proc = cli("reproduce", str(lock_path), "--port", str(daemon.port))
    assert proc.returncode == 0, proc.stderr
    assert f"mounted data: default/{name}@{old} (1 commit behind master) at {daemon.mount_dir / 'data'}" in proc.stdout
    assert "verified 1 pinned file(s)" in proc.stdout
    state = mounted(daemon)["data"]
    assert (state["commit"], state["mode"], state["branch"]) == (old, "ro", "master")
    assert state["how_many_commits_behind"] == 1 and state["latest_commit"] == new
    assert reader().read(path) == digest(FILES["a.txt"])  # the notebook's /pfs path, unchanged, old bytes

    # Reproducing again is a no-op: the same commit is already mounted under that name.
    proc = cli("reproduce", str(lock_path), "--port", str(daemon.port))
    assert proc.returncode == 0 and "already mounted data" in proc.stdout, proc.stderr


def test_a_lock_whose_commit_was_deleted_is_a_clear_error(daemon, client, repo):
    name, commit = repo
    path = daemon.tmp / "gone.lock"
    pinned_read(daemon, name, path)
    unmount(daemon, "data")
    client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit))

    proc = cli("reproduce", str(path), "--port", str(daemon.port))
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"mount 'data' (default/{name}@{commit}): the pinned commit no longer exists" in proc.stderr
    assert "the data this lock pins is gone" in proc.stderr
    assert "data" not in mounted(daemon)


def test_a_taken_name_is_refused_without_unmounting_and_rename_mounts_beside_it(daemon, client, repo):
    name, old = repo
    lock_path = daemon.tmp / "taken.lock"
    pinned_read(daemon, name, lock_path)
    new = put_commit(client, name, {"a.txt": b"newer\n"})
    unmount(daemon, "data")
    mount(daemon, "data", name)  # the user's own mount of the branch head, same name

    proc = cli("reproduce", str(lock_path), "--port", str(daemon.port))
    assert proc.returncode == 1
    assert (f"mount name 'data' is already used by default/{name}@master (ro); reproduce it under another name "
            f"(e.g. --rename data=data_{old[:8]}) or unmount 'data' first") in proc.stderr
    assert mounted(daemon)["data"]["commit"] == new  # untouched

    proc = cli("reproduce", str(lock_path), "--rename", "data=data_old", "--port", str(daemon.port))
    assert proc.returncode == 0, proc.stderr
    assert "mounted data_old (was data)" in proc.stdout
    states = mounted(daemon)
    assert states["data"]["commit"] == new and states["data_old"]["commit"] == old
    assert (daemon.mount_dir / "data_old" / "a.txt").read_bytes() == FILES["a.txt"]

    proc = cli("reproduce", str(lock_path), "--rename", "nope=x", "--port", str(daemon.port))
    assert proc.returncode == 1 and "the lock has no mount of that name" in proc.stderr
    assert cli("reproduce", str(lock_path), "--rename", "data", "--port", str(daemon.port)).returncode == 2


def test_a_lock_from_another_cluster_is_refused(daemon, daemon_factory, local_pachd_factory, repo):
    name, commit = repo
    lock_path = daemon.tmp / "other.lock"
    pinned_read(daemon, name, lock_path)

    other_pachd = local_pachd_factory()
    put_commit(other_pachd.client(), name, FILES)  # same repo name, same bytes: still not the same commit
    other = daemon_factory(other_pachd.address)
    proc = cli("reproduce", str(lock_path), "--port", str(other.port))
    assert proc.returncode == 1
    assert "this lock was made on another cluster" in proc.stderr
    assert f"the daemon is connected to {other_pachd.address}" in proc.stderr
    assert mounted(other) == {}


def test_files_changed_locally_in_a_rw_mount_are_flagged_modified(daemon, client, repo, reader):
    name, commit = repo
    mount(daemon, "work", name, mode="rw")
    root = daemon.mount_dir / "work"
    (root / "b.txt").write_bytes(b"edited locally\n")
    r = reader()
    r.read(root / "a.txt")
    r.read(root / "b.txt")
    out = daemon.tmp / "rw.lock"
    proc = cli("lock", "--pid", str(r.pid), "-o", str(out), "--port", str(daemon.port))
    assert proc.returncode == 0, proc.stderr
    assert "warning: mount 'work': 1 file(s) were read with uncommitted local changes (/b.txt)" in proc.stderr
    entry = load(out)["mounts"][0]
    assert (entry["commit"], entry["branch"]) == (commit, "master")  # the base commit
    a = _hashes(client, name, commit)["/a.txt"]
    assert entry["files"] == [{"path": "/a.txt", "size": a[0], "hash": a[1]},
                              {"path": "/b.txt", "size": len(b"edited locally\n"), "hash": None, "modified": True}]


def test_reads_are_forgotten_when_the_process_exits_unless_pinned(daemon, repo, reader):
    name, _ = repo
    mount(daemon, "data", name)
    root = daemon.mount_dir / "data"
    gone, kept = reader(), reader()
    gone.read(root / "a.txt")
    kept.read(root / "b.txt")
    assert daemon.put("/pachtray/v1/_pin", {"pid": kept.pid}).json() == {"pid": kept.pid, "pinned": True}
    reads = daemon.get("/pachtray/v1/reads", params={"pid": gone.pid}).json()["reads"]
    assert [x["path"] for x in reads] == ["/a.txt"]
    gone_pid, kept_pid = gone.pid, kept.pid
    gone.stop()
    kept.stop()

    r = daemon.get("/pachtray/v1/reads", params={"pid": gone_pid})
    assert r.status_code == 404 and r.text == f"no process {gone_pid} is running\n"
    proc = cli("lock", "--pid", str(gone_pid), "-o", str(daemon.tmp / "never.lock"), "--port", str(daemon.port))
    assert proc.returncode == 1 and proc.stderr == f"pachtray lock: no process {gone_pid} is running\n"
    assert [f["path"] for f in _lock(daemon, "--pid", str(kept_pid))["mounts"][0]["files"]] == ["/b.txt"]


def test_cli_errors_are_one_line(daemon, tmp_path, reader):
    idle = reader()
    proc = cli("lock", "--pid", str(idle.pid), "--port", str(daemon.port), "-o", str(tmp_path / "x"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert f"process {idle.pid} has not opened any file under" in proc.stderr
    proc = cli("lock", "--pid", "1", "--port", str(daemon.port), "-o", str(tmp_path / "x"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "pid 1 is the daemon or one of its" in proc.stderr
    proc = cli("lock", str(tmp_path / "missing.ipynb"), "--port", str(daemon.port))
    assert proc.returncode == 1 and "no such notebook" in proc.stderr
    (tmp_path / "bad.lock").write_text('{"version": 2}')
    proc = cli("reproduce", str(tmp_path / "bad.lock"), "--port", str(daemon.port))
    assert proc.returncode == 1
    assert proc.stderr == (f"pachtray reproduce: {tmp_path / 'bad.lock'} is not a Pachtray lock: lock: unsupported "
                           "version 2 (this Pachtray reads version 1)\n")
    proc = cli("reproduce", str(tmp_path / "bad.lock"), "--port", "1")
    assert proc.returncode == 1
    assert cli("lock", "--pid", "1", "--port", "1").stderr.startswith("pachtray lock: no Pachtray daemon answers")


def _api_lock(daemon, pid: int):
    return daemon.get(f"/pachtray/v1/lock?pid={pid}")


def test_a_lock_pins_only_finished_commits_and_the_bytes_that_were_read(daemon, client, repo, reader):
    """A branch's head may be an open commit: its files can change after the read, so the lock is
    refused until it is finished, and then refused if the file it pins is not the one read."""
    name, _ = repo
    r_open = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
    open_commit = client.pfs.start_commit(branch=pfs.Branch(repo=r_open, name="master"))
    client.pfs.put_file_from_bytes(commit=open_commit, path="/a.txt", data=b"v1-open")
    mount(daemon, "data", name)
    r = reader()
    assert r.read(daemon.mount_dir / "data" / "a.txt") == digest(b"v1-open")
    refused = _api_lock(daemon, r.pid)
    assert refused.status_code == 409 and "is not finished yet" in refused.text, refused.text
    client.pfs.put_file_from_bytes(commit=open_commit, path="/a.txt", data=b"v2-changed-in-open-commit")
    client.pfs.finish_commit(commit=open_commit)
    changed = _api_lock(daemon, r.pid)
    assert changed.status_code == 409 and "/a.txt was 7 bytes when it was read and is 25 bytes now" in changed.text


def _read_a_then_unmount(daemon, repo_name: str, reader) -> Reader:
    """A reader that read /a.txt through the mount "data", which is then unmounted."""
    mount(daemon, "data", repo_name)
    r = reader()
    r.read(daemon.mount_dir / "data" / "a.txt")
    unmount(daemon, "data")
    return r


def test_the_lock_of_a_name_mounted_again_with_other_paths_shows_every_file_read(daemon, client, repo, reader):
    name, commit = repo
    r = _read_a_then_unmount(daemon, name, reader)
    assert daemon.put("/_mount", {"mounts": [{"name": "data", "repo": name, "paths": ["/sub"]}]}).status_code == 200
    r.read(daemon.mount_dir / "data" / "sub" / "d.txt")
    lock = _api_lock(daemon, r.pid).json()["lock"]
    (entry,) = lock["mounts"]
    assert entry["paths"] == ["/"] and [f["path"] for f in entry["files"]] == ["/a.txt", "/sub/d.txt"]


def test_locking_reads_of_a_dropped_commit_says_it_is_gone(daemon, client, repo, reader):
    name, commit = repo
    r = _read_a_then_unmount(daemon, name, reader)
    client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit))
    gone = _api_lock(daemon, r.pid)
    assert gone.status_code == 409 and "no longer exists (the repo was deleted or the commit dropped)" in gone.text


@pytest.mark.parametrize("change,message", [
    (lambda m: m.update(paths=["/../.."]), "must not contain '..'"),
    (lambda m: m.update(paths=["/a\0b"]), "contains a NUL byte"),
    (lambda m: m.update(repo="../x"), "invalid repo name"),
    (lambda m: m.update(branch="a b/c"), "invalid branch name"),
])
def test_reproduce_checks_a_lock_as_mount_checks_a_request(daemon, repo, change, message):
    name, commit = repo
    lock = {"version": 1, "cluster": {"id": "", "address": ""}, "created": "", "mounts": [
        {"name": "data", "project": "default", "repo": name, "branch": "master", "commit": commit, "paths": ["/"],
         "files": []}]}
    change(lock["mounts"][0])
    r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock})
    assert r.status_code == 400 and message in r.text, r.text
    assert "data" not in mounted(daemon)


def test_reproduce_refuses_a_boolean_version_and_a_rename_that_is_not_an_object(daemon, repo):
    name, commit = repo
    lock = {"version": True, "cluster": {"id": "", "address": ""}, "created": "", "mounts": [
        {"name": "data", "project": "default", "repo": name, "branch": "master", "commit": commit,
         "paths": ["//sub/./", "/sub"], "files": []}]}
    assert daemon.put("/pachtray/v1/_reproduce", {"lock": lock}).status_code == 400
    lock["version"] = 1
    for rename in ([], 0, False, "data=x"):
        r = daemon.put("/pachtray/v1/_reproduce", {"lock": lock, "rename": rename})
        assert r.status_code == 400 and "rename must be an object" in r.text, (rename, r.text)
    done = daemon.put("/pachtray/v1/_reproduce", {"lock": lock, "check": True})
    assert done.status_code == 200, done.text
    assert any("names no cluster id" in w for w in done.json()["warnings"])
    assert daemon.put("/pachtray/v1/_reproduce", {"lock": lock}).status_code == 200
    assert mounted(daemon)["data"]["paths"] == ["/sub"]  # normalized, once
