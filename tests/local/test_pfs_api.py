"""The embedded server's PFS API, driven only through pachyderm_sdk's Client (as users do)."""

from __future__ import annotations

import io
import re
import tarfile
import threading

import grpc
import pytest
from pachyderm_sdk.api import pfs

from conftest import wait_for


def repo_of(client, name, project="default", description=""):
    repo = pfs.Repo(name=name, project=pfs.Project(name=project))
    client.pfs.create_repo(repo=repo, description=description)
    return repo


def branch(repo, name="master"):
    return pfs.Branch(repo=repo, name=name)


def put(client, repo, files: dict[str, bytes], branch_name="master", description=""):
    with client.pfs.commit(branch=branch(repo, branch_name), description=description) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path, data)
    return c


def read(client, repo, path, ref="master"):
    commit = pfs.Commit(repo=repo, id=ref) if re.fullmatch(r"[0-9a-f]{32}", ref) else \
        pfs.Commit(repo=repo, branch=branch(repo, ref))
    return client.pfs.pfs_file(pfs.File(commit=commit, path=path)).read()


def paths(infos):
    return [i.file.path for i in infos]


def is_set(dt) -> bool:
    """betterproto decodes an absent Timestamp as the epoch, not None."""
    return dt is not None and dt.timestamp() > 0


def code_of(excinfo) -> grpc.StatusCode:
    return excinfo.value.code()


def test_version_and_cluster(client):
    v = client.get_version()
    assert (v.major, v.minor) == (2, 8)
    info = client.admin.inspect_cluster()
    assert info.id


def test_projects(client, unique_name):
    names = [p.project.name for p in client.pfs.list_project()]
    assert "default" in names
    name = unique_name("p")
    client.pfs.create_project(project=pfs.Project(name=name), description="mine")
    info = client.pfs.inspect_project(project=pfs.Project(name=name))
    assert info.description == "mine" and is_set(info.created_at)
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.create_project(project=pfs.Project(name=name))
    assert code_of(e) == grpc.StatusCode.ALREADY_EXISTS
    repo = repo_of(client, "in-project", project=name)
    assert [r.repo.name for r in client.pfs.list_repo(projects=[pfs.Project(name=name)])] == ["in-project"]
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.delete_project(project=pfs.Project(name=name))
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION
    client.pfs.delete_project(project=pfs.Project(name=name), force=True)
    assert not client.pfs.project_exists(pfs.Project(name=name))
    assert not client.pfs.repo_exists(repo)
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.inspect_project(project=pfs.Project(name=name))
    assert code_of(e) == grpc.StatusCode.NOT_FOUND and name in e.value.details()


def test_repos(client, unique_name):
    name = unique_name()
    repo = repo_of(client, name, description="first")
    info = client.pfs.inspect_repo(repo=repo)
    assert info.description == "first" and is_set(info.created) and info.branches == []
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.create_repo(repo=repo)
    assert code_of(e) == grpc.StatusCode.ALREADY_EXISTS
    client.pfs.create_repo(repo=repo, description="second", update=True)
    assert client.pfs.inspect_repo(repo=repo).description == "second"
    put(client, repo, {"/a.txt": b"12345"})
    info = client.pfs.inspect_repo(repo=repo)
    assert info.size_bytes_upper_bound == 5
    assert [b.name for b in info.branches] == ["master"]
    listed = {r.repo.name: r for r in client.pfs.list_repo()}
    assert listed[name].size_bytes_upper_bound == 5
    assert client.pfs.delete_repo(repo=repo, force=True).deleted
    assert not client.pfs.delete_repo(repo=repo).deleted
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.inspect_repo(repo=repo)
    assert code_of(e) == grpc.StatusCode.NOT_FOUND and name in e.value.details()


def test_listed_repos_follow_every_change(client, unique_name):
    """The server keeps each repo's encoded ListRepo answer: every change shows in the next
    listing (each is listed twice: the second answer is the kept one)."""
    name = unique_name()
    repo = repo_of(client, name, description="a")

    def listed() -> pfs.RepoInfo:
        first, second = ({r.repo.name: r for r in client.pfs.list_repo()}[name] for _ in range(2))
        assert first == second
        return first

    assert listed().description == "a" and listed().branches == []
    client.pfs.create_repo(repo=repo, description="b", update=True)
    assert listed().description == "b"
    open_commit = client.pfs.start_commit(branch=branch(repo))
    assert [b.name for b in listed().branches] == ["master"] and listed().size_bytes_upper_bound == 0
    for size, data in ((3, b"abc"), (7, b"defg")):  # an open head grows under the same branch head
        client.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=open_commit),
                                     pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f"/{size}", raw=data))]))
        assert listed().size_bytes_upper_bound == size
    client.pfs.finish_commit(commit=open_commit)
    assert listed().size_bytes_upper_bound == 7
    put(client, repo, {"/more": b"12345"})
    assert listed().size_bytes_upper_bound == 12
    client.pfs.create_branch(branch=branch(repo, "dev"), head=pfs.Commit(repo=repo, branch=branch(repo)))
    assert sorted(b.name for b in listed().branches) == ["dev", "master"]
    created = listed().created
    client.pfs.delete_repo(repo=repo, force=True)
    repo_of(client, name, description="again")
    again = listed()
    assert again.description == "again" and again.branches == [] and again.created != created


@pytest.mark.parametrize("bad", ["has space", "slash/y", "dot.name", "", "x" * 300, "ünï"])
def test_bad_repo_names(client, bad):
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.create_repo(repo=pfs.Repo(name=bad))
    assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("bad", ["-leading", "x" * 60, "a.b"])
def test_bad_project_and_branch_names(client, unique_name, bad):
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.create_project(project=pfs.Project(name=bad))
    assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT
    if bad != "-leading" and len(bad) < 60:
        repo = repo_of(client, unique_name())
        with pytest.raises(grpc.RpcError) as e:
            client.pfs.create_branch(branch=branch(repo, bad))
        assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_branches(client, unique_name):
    repo = repo_of(client, unique_name())
    client.pfs.create_branch(branch=branch(repo, "empty"))
    empty = client.pfs.inspect_branch(branch=branch(repo, "empty"))
    assert re.fullmatch(r"[0-9a-f]{32}", empty.head.id)
    first = put(client, repo, {"/f": b"1"})
    second = put(client, repo, {"/f": b"2"})
    assert client.pfs.inspect_branch(branch=branch(repo)).head.id == second.id
    client.pfs.create_branch(branch=branch(repo, "old"), head=pfs.Commit(repo=repo, id=first.id))
    assert read(client, repo, "/f", "old") == b"1"
    assert {b.branch.name for b in client.pfs.list_branch(repo=repo)} == {"empty", "master", "old"}
    client.pfs.delete_branch(branch=branch(repo, "old"))
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.inspect_branch(branch=branch(repo, "old"))
    assert code_of(e) == grpc.StatusCode.NOT_FOUND and "old" in e.value.details()
    assert read(client, repo, "/f", first.id) == b"1"


def test_commits(client, unique_name):
    repo = repo_of(client, unique_name())
    c1 = put(client, repo, {"/a": b"a"}, description="one")
    c2 = put(client, repo, {"/b": b"bb"})
    info = client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=c2.id))
    assert info.parent_commit.id == c1.id and is_set(info.finished) and is_set(info.started)
    assert info.size_bytes_upper_bound == 3
    assert client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=c1.id)).child_commits[0].id == c2.id
    assert client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=c1.id)).description == "one"
    assert [c.commit.id for c in client.pfs.list_commit(repo=repo)] == [c2.id, c1.id]
    assert [c.commit.id for c in client.pfs.list_commit(repo=repo, reverse=True)] == [c1.id, c2.id]
    assert [c.commit.id for c in client.pfs.list_commit(repo=repo, number=1)] == [c2.id]
    to = pfs.Commit(repo=repo, branch=branch(repo))
    assert [c.commit.id for c in client.pfs.list_commit(repo=repo, to=to, from_=pfs.Commit(repo=repo, id=c1.id))] \
        == [c2.id]
    parent = client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, branch=branch(repo, "master^")))
    assert parent.commit.id == c1.id
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id="0" * 32))
    assert code_of(e) == grpc.StatusCode.NOT_FOUND


def test_open_commit_and_wait(client, unique_name):
    repo = repo_of(client, unique_name())
    commit = client.pfs.start_commit(branch=branch(repo))
    assert not is_set(client.pfs.inspect_commit(commit=commit).finished)
    client.pfs.put_file_from_bytes(commit=commit, path="/x", data=b"x")
    assert read(client, repo, "/x", commit.id) == b"x"  # pachd reads open commits too
    waited = {}
    t = threading.Thread(target=lambda: waited.update(info=client.pfs.wait_commit(commit)))
    t.start()
    client.pfs.finish_commit(commit=commit)
    t.join(30)
    assert is_set(waited["info"].finished)
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.put_file_from_bytes(commit=pfs.Commit(repo=repo, id=commit.id), path="/y", data=b"y")
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.finish_commit(commit=commit)
    assert code_of(e) == grpc.StatusCode.FAILED_PRECONDITION


def test_auto_commit_on_branch(client, unique_name):
    repo = repo_of(client, unique_name())
    head = pfs.Commit(repo=repo, branch=branch(repo, "dev"))
    client.pfs.put_file_from_bytes(commit=head, path="/one", data=b"1")
    client.pfs.put_file_from_bytes(commit=head, path="/two", data=b"2")
    commits = list(client.pfs.list_commit(repo=repo))
    assert len(commits) == 2 and all(is_set(c.finished) for c in commits)
    assert paths(client.pfs.list_file(file=pfs.File(commit=head, path="/"))) == ["/one", "/two"]


def test_files_nested_listing_and_sizes(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/dir/a.txt": b"aaa", "/dir/sub/b.txt": b"bb", "/dir-x": b"1", "/top": b""})
    head = pfs.Commit(repo=repo, branch=branch(repo))
    root = list(client.pfs.list_file(file=pfs.File(commit=head, path="/")))
    assert paths(root) == ["/dir-x", "/dir/", "/top"]
    assert [(i.file_type, i.size_bytes) for i in root] == [(pfs.FileType.FILE, 1), (pfs.FileType.DIR, 5),
                                                          (pfs.FileType.FILE, 0)]
    assert paths(client.pfs.list_file(file=pfs.File(commit=head, path="/dir"))) == ["/dir/a.txt", "/dir/sub/"]
    info = client.pfs.inspect_file(file=pfs.File(commit=head, path="/dir/sub"))
    assert info.file_type == pfs.FileType.DIR and info.size_bytes == 2
    assert paths(client.pfs.walk_file(file=pfs.File(commit=head, path="/dir"))) == \
        ["/dir/", "/dir/a.txt", "/dir/sub/", "/dir/sub/b.txt"]
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.inspect_file(file=pfs.File(commit=head, path="/nope"))
    assert code_of(e) == grpc.StatusCode.NOT_FOUND and "/nope" in e.value.details()
    assert list(client.pfs.list_file(file=pfs.File(commit=head, path="/nope"))) == []  # as pachd
    assert read(client, repo, "/top") == b""


def test_list_file_pagination(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {f"/f{i:02d}": b"x" for i in range(10)})
    root = pfs.File(commit=pfs.Commit(repo=repo, branch=branch(repo)), path="/")
    first = list(client.pfs.list_file(file=root, number=4))
    assert paths(first) == ["/f00", "/f01", "/f02", "/f03"]
    nxt = list(client.pfs.list_file(file=root, number=4, pagination_marker=first[-1].file))
    assert paths(nxt) == ["/f04", "/f05", "/f06", "/f07"]
    last = list(client.pfs.list_file(file=root, number=3, reverse=True))
    assert paths(last) == ["/f09", "/f08", "/f07"]


def test_glob(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/a/1.csv": b"1", "/a/2.txt": b"2", "/b/c/3.csv": b"3", "/d.csv": b"4"})
    commit = pfs.Commit(repo=repo, branch=branch(repo))

    def glob(pattern):
        return paths(client.pfs.glob_file(commit=commit, pattern=pattern))

    assert glob("/*") == ["/a/", "/b/", "/d.csv"]
    assert glob("/*/*.csv") == ["/a/1.csv"]
    assert glob("/**.csv") == ["/a/1.csv", "/b/c/3.csv", "/d.csv"]
    assert glob("/{a,b}/*") == ["/a/1.csv", "/a/2.txt", "/b/c/"]
    assert glob("/a/[12].*") == ["/a/1.csv", "/a/2.txt"]
    assert glob("/a/?.txt") == ["/a/2.txt"]
    assert glob("/") == ["/"]
    assert glob("/zzz*") == []


def test_delete_and_copy(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/d/a": b"a", "/d/b": b"b", "/keep": b"k"})
    with client.pfs.commit(branch=branch(repo)) as c:
        c.copy_file(src=pfs.File(commit=pfs.Commit(repo=repo, branch=branch(repo)), path="/d"), dst="/e")
        c.copy_file(src=pfs.File(commit=pfs.Commit(repo=repo, branch=branch(repo)), path="/keep"), dst="/k2")
        c.delete_file(path="/d")
    head = pfs.Commit(repo=repo, branch=branch(repo))
    assert paths(client.pfs.walk_file(file=pfs.File(commit=head, path="/"))) == \
        ["/", "/e/", "/e/a", "/e/b", "/k2", "/keep"]
    assert read(client, repo, "/e/b") == b"b"
    assert client.pfs.inspect_file(file=pfs.File(commit=head, path="/")).size_bytes == 4


def test_append_and_overwrite(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/f": b"abc"})
    head = pfs.Commit(repo=repo, branch=branch(repo))
    client.pfs.put_file_from_bytes(commit=head, path="/f", data=b"def", append=True)
    assert read(client, repo, "/f") == b"abcdef"
    client.pfs.put_file_from_bytes(commit=head, path="/f", data=b"new")
    assert read(client, repo, "/f") == b"new"


def test_streams_into_one_open_commit_see_each_others_files(client, unique_name):
    """A ModifyFile stream into an open commit looks paths up in the commit's own changes only once
    it has some (a commit just started has none): a later stream appends to and deletes under what
    an earlier stream of the same open commit wrote, over the parent's files."""
    repo = repo_of(client, unique_name())
    put(client, repo, {"/base.txt": b"base", "/old/x": b"x"})
    commit = client.pfs.start_commit(branch=pfs.Branch(repo=repo, name=branch(repo).name))
    client.pfs.put_file_from_bytes(commit=commit, path="/f", data=b"first")
    client.pfs.put_file_from_bytes(commit=commit, path="/d/g", data=b"g")
    client.pfs.put_file_from_bytes(commit=commit, path="/f", data=b"+second", append=True)
    client.pfs.put_file_from_bytes(commit=commit, path="/base.txt", data=b"+more", append=True)
    client.pfs.delete_file(commit=commit, path="/d")
    client.pfs.finish_commit(commit=commit)
    head = pfs.Commit(repo=repo, branch=branch(repo))
    assert paths(client.pfs.walk_file(file=pfs.File(commit=head, path="/"))) == \
        ["/", "/base.txt", "/f", "/old/", "/old/x"]
    assert read(client, repo, "/f") == b"first+second" and read(client, repo, "/base.txt") == b"base+more"


def test_get_file_offset_and_tar(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/d/a.txt": b"hello world", "/d/s/b.bin": bytes(range(256)) * 5})
    head = pfs.Commit(repo=repo, branch=branch(repo))
    data = b"".join(m.value for m in client.pfs.get_file(file=pfs.File(commit=head, path="/d/a.txt"), offset=6))
    assert data == b"world"
    tf = client.pfs.pfs_tar_file(pfs.File(commit=head, path="/d"))
    got = {m.path: (tf.extractfile(m).read() if m.isfile() else None) for m in tf}
    assert got["d/a.txt"] == b"hello world" and got["d/s/b.bin"] == bytes(range(256)) * 5
    with pytest.raises(grpc.RpcError) as e:
        list(client.pfs.get_file(file=pfs.File(commit=head, path="/missing")))
    assert code_of(e) == grpc.StatusCode.NOT_FOUND


def test_diff_file(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/same": b"s", "/changed": b"1", "/gone": b"g"})
    with client.pfs.commit(branch=branch(repo)) as c:
        c.put_file_from_bytes("/changed", b"2")
        c.put_file_from_bytes("/added", b"a")
        c.delete_file(path="/gone")
    diffs = list(client.pfs.diff_file(new_file=pfs.File(commit=pfs.Commit(repo=repo, id=c.id), path="/")))
    by_path = {(d.new_file.file.path or d.old_file.file.path): d for d in diffs}
    assert set(by_path) == {"/", "/added", "/changed", "/gone"}
    assert by_path["/gone"].new_file.file.path == "" and by_path["/added"].old_file.file.path == ""


def test_bad_file_paths(client, unique_name):
    repo = repo_of(client, unique_name())
    for bad in ("/a*b", "/x/../y", "/tab\there"):
        with pytest.raises(grpc.RpcError) as e:
            client.pfs.put_file_from_bytes(commit=pfs.Commit(repo=repo, branch=branch(repo)), path=bad, data=b"1")
        assert code_of(e) == grpc.StatusCode.INVALID_ARGUMENT


def test_subscribe_commit(client, pachd, unique_name):
    repo = repo_of(client, unique_name())
    seen = []
    subscriber = pachd.client()
    stream = subscriber.pfs.subscribe_commit(repo=repo, branch="master", state=pfs.CommitState.FINISHED)

    def consume():
        for info in stream:
            seen.append(info.commit.id)
            if len(seen) == 2:
                return

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    ids = [put(client, repo, {"/n": str(i).encode()}).id for i in range(2)]
    wait_for(lambda: len(seen) == 2, 30, what="two subscribed commits")
    assert seen == ids
    subscriber._channel.close()  # the SDK has no public close; ends the stream


def test_concurrent_writers_on_two_branches(client, unique_name):
    repo = repo_of(client, unique_name())
    errors = []

    def writer(name):
        try:
            for i in range(15):
                put(client, repo, {f"/{name}/{i}": f"{name}{i}".encode()}, branch_name=name)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for name in ("left", "right"):
        files = paths(client.pfs.list_file(file=pfs.File(commit=pfs.Commit(repo=repo, branch=branch(repo, name)),
                                                         path=f"/{name}")))
        assert len(files) == 15
        assert read(client, repo, f"/{name}/14", name) == f"{name}14".encode()


def test_tar_of_single_file_is_readable(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/x": b"data"})
    stream = client.pfs.get_file_tar(file=pfs.File(commit=pfs.Commit(repo=repo, branch=branch(repo)), path="/x"))
    raw = b"".join(m.value for m in stream)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        assert tf.extractfile("/x").read() == b"data"


def test_drop_open_commit_restores_branch(client, unique_name):
    repo = repo_of(client, unique_name())
    kept = put(client, repo, {"/a": b"1"})
    commit = client.pfs.start_commit(branch=branch(repo))
    client.pfs.put_file_from_bytes(commit=commit, path="/b", data=b"2")
    client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit.id))
    assert client.pfs.inspect_branch(branch=branch(repo)).head.id == kept.id
    assert [c.commit.id for c in client.pfs.list_commit(repo=repo)] == [kept.id]
    with pytest.raises(grpc.RpcError) as e:
        client.pfs.inspect_commit(commit=pfs.Commit(repo=repo, id=commit.id))
    assert code_of(e) == grpc.StatusCode.NOT_FOUND
    assert [i.commit.id for i in client.pfs.wait_commit_set(pfs.CommitSet(id=kept.id))] == [kept.id]


def test_errored_commit_contributes_nothing(client, unique_name):
    repo = repo_of(client, unique_name())
    put(client, repo, {"/good": b"1"})
    bad = client.pfs.start_commit(branch=branch(repo))
    client.pfs.put_file_from_bytes(commit=bad, path="/bad", data=b"x")
    client.pfs.finish_commit(commit=bad, error="upload failed")
    assert client.pfs.inspect_commit(commit=bad).error == "upload failed"
    put(client, repo, {"/later": b"2"})
    head = pfs.Commit(repo=repo, branch=branch(repo))
    assert paths(client.pfs.list_file(file=pfs.File(commit=head, path="/"))) == ["/good", "/later"]


def test_long_history_matches_a_model(client, unique_name):
    """Many commits of puts, overwrites and deletes (history layers get folded): every commit,
    old or new, still reads exactly as a plain dict model of it says."""
    import random

    rng = random.Random(1234)
    repo = repo_of(client, unique_name())
    model: dict[str, bytes] = {}
    snapshots: list[tuple[str, dict[str, bytes]]] = []
    for n in range(40):
        ops = [pfs.ModifyFileRequest(set_commit=pfs.Commit(repo=repo, branch=branch(repo)))]
        for _ in range(rng.randint(1, 6)):
            path = f"/d{rng.randint(0, 3)}/f{rng.randint(0, 8)}"
            if rng.random() < 0.3 and model:
                victim = rng.choice(sorted(model))
                target = victim.rsplit("/", 1)[0] if rng.random() < 0.2 else victim
                ops.append(pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=target)))
                for p in [p for p in model if p == target or p.startswith(target + "/")]:
                    del model[p]
            else:
                data = f"{n}:{path}".encode() * rng.randint(0, 3)
                ops.append(pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path)))
                ops.append(pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=data)))
                model[path] = data
        client.pfs.modify_file(iter(ops))
        head = client.pfs.inspect_branch(branch=branch(repo)).head.id
        snapshots.append((head, dict(model)))

    def files_at(commit_id):
        commit = pfs.Commit(repo=repo, id=commit_id)
        infos = client.pfs.walk_file(file=pfs.File(commit=commit, path="/"))
        return {i.file.path: i.size_bytes for i in infos if i.file_type == pfs.FileType.FILE}

    for commit_id, expected in snapshots[::7] + snapshots[-1:]:
        assert files_at(commit_id) == {p: len(d) for p, d in expected.items()}
        for path, data in list(expected.items())[:3]:
            assert read(client, repo, path, commit_id) == data
        root = client.pfs.inspect_file(file=pfs.File(commit=pfs.Commit(repo=repo, id=commit_id), path="/"))
        assert root.size_bytes == sum(len(d) for d in expected.values())
