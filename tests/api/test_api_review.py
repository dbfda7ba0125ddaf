"""Reviewing a rw mount's changes over real HTTP against a real daemon, the embedded server and a
real FUSE rw mount: GET /pachtray/v1/mounts/{name}/changes, the commit's description through
PUT /_commit and /pachtray/v1/_commit, PUT /pachtray/v1/mounts/{name}/_discard of single paths,
and the `upstream` mark of paths another client changed since the mount's base."""

from __future__ import annotations

import os
import urllib.parse

import pytest
from apihelpers import shared_daemon, unix_request  # noqa: F401 - fixture
from conftest import folder_files, wait_for
from pachyderm_sdk.api import pfs

BASE = {"/keep.txt": b"keep", "/mod.txt": b"old", "/del.txt": b"del!", "/ren.txt": b"ren", "/d/a.txt": b"a"}


def _repo_with(client, name: str, files: dict[str, bytes]) -> pfs.Repo:
    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=repo)
    _commit(client, repo, files)
    return repo


def _commit(client, repo: pfs.Repo, files: dict[str, bytes]) -> str:
    with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)
    return c.id


def _files(client, repo: pfs.Repo) -> dict[str, bytes]:
    out = {}
    for fi in client.pfs.walk_file(file=pfs.File(commit=pfs.Commit(branch=pfs.Branch(repo=repo, name="master")),
                                                 path="/")):
        if fi.file_type == pfs.FileType.FILE:
            out[fi.file.path] = b"".join(m.value for m in client.pfs.get_file(file=fi.file))
    return out


def _head(client, repo: pfs.Repo) -> pfs.CommitInfo:
    return client.pfs.inspect_commit(commit=pfs.Commit(branch=pfs.Branch(repo=repo, name="master")))




@pytest.fixture
def rw(shared_daemon, client, unique_name):
    """(daemon, name, repo, mounted folder): a rw mount of a fresh repo holding BASE."""
    d = shared_daemon
    name = unique_name("rev")
    repo = _repo_with(client, name, BASE)
    reply = d.put("/_mount", json={"mounts": [{"name": name, "repo": name, "branch": "master", "mode": "rw"}]})
    assert reply.status_code == 200, reply.text
    yield d, name, repo, d.mount_dir / name
    d.put("/pachtray/v1/_discard", json={"mount": name})
    d.put("/_unmount", json={"mounts": [name]})
    client.pfs.delete_repo(repo=repo, force=True)  # the session's server lists fewer repos (the tray shows 50)


def _changes(d, name: str) -> list[dict]:
    reply = d.get(f"/pachtray/v1/mounts/{name}/changes")
    assert reply.status_code == 200, reply.text
    assert reply.json()["upstream_checked"] is True
    return reply.json()["changes"]


def _edit(root) -> None:
    (root / "new.txt").write_bytes(b"brand new")
    (root / "mod.txt").write_bytes(b"changed!")
    (root / "del.txt").unlink()
    os.rename(root / "ren.txt", root / "renamed.txt")


EDITED = [
    {"path": "/del.txt", "change": "deleted", "size": 4, "upstream": False},
    {"path": "/mod.txt", "change": "modified", "size": 8, "upstream": False},
    {"path": "/new.txt", "change": "added", "size": 9, "upstream": False},
    {"path": "/ren.txt", "change": "deleted", "size": 3, "upstream": False},
    {"path": "/renamed.txt", "change": "added", "size": 3, "upstream": False},
]


def test_changes_list_each_kind_and_the_description_lands_on_the_commit(rw, client):
    d, name, repo, root = rw
    assert _changes(d, name) == []
    _edit(root)
    assert _changes(d, name) == EDITED
    reply = d.put("/pachtray/v1/_commit", json={"mount": name, "description": "review: four changes"})
    assert reply.status_code == 200, reply.text
    assert _head(client, repo).description == "review: four changes"
    assert _files(client, repo) == {"/keep.txt": b"keep", "/mod.txt": b"changed!", "/new.txt": b"brand new",
                                    "/renamed.txt": b"ren", "/d/a.txt": b"a"}
    assert _changes(d, name) == []


def test_the_reference_commit_route_takes_a_description_and_without_one_makes_none(rw, client):
    d, name, repo, root = rw
    (root / "one.txt").write_bytes(b"1")
    assert d.put("/_commit", json={"mount": name, "description": "from the drop-in"}).status_code == 200
    assert _head(client, repo).description == "from the drop-in"
    (root / "two.txt").write_bytes(b"2")
    reply = d.put("/_commit", json={"mount": name})  # the reference's body: no description, as before
    assert reply.status_code == 200, reply.text
    assert _head(client, repo).description == "" and _files(client, repo)["/two.txt"] == b"2"
    reply = d.put("/_commit", json={"mount": name, "description": 7})
    assert reply.status_code == 400 and "description must be a string" in reply.text


@pytest.mark.parametrize("path", ["/new.txt", "/mod.txt", "/del.txt", "/ren.txt", "/renamed.txt"])
def test_discarding_one_change_restores_the_base_there(rw, client, path):
    d, name, repo, root = rw
    _edit(root)
    shown = folder_files(root)
    reply = d.put(f"/pachtray/v1/mounts/{name}/_discard", json={"paths": [path]})
    assert reply.status_code == 200, reply.text
    assert next(m for m in reply.json()["mounted"] if m["name"] == name)["pending_changes"] == 4
    assert _changes(d, name) == [c for c in EDITED if c["path"] != path]
    expected = {p: v for p, v in shown.items() if p != path}
    if path in BASE:
        expected[path] = BASE[path]
    assert folder_files(root) == expected  # what the mount shows: the base's file again, or nothing
    assert d.put("/pachtray/v1/_commit", json={"mount": name}).status_code == 200
    assert _files(client, repo) == expected


def test_upstream_marks_exactly_the_paths_changed_since_the_base(rw, client):
    d, name, repo, root = rw
    _edit(root)
    (root / "d" / "a.txt").write_bytes(b"mine")
    _commit(client, repo, {"/mod.txt": b"theirs", "/d/a.txt": b"theirs too", "/other.txt": b"unrelated",
                           "/new.txt": b"added by both"})
    marked = {c["path"] for c in _changes(d, name) if c["upstream"]}
    assert marked == {"/mod.txt", "/d/a.txt", "/new.txt"}
    with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        c.delete_file(path="/ren.txt")
    marked = {c["path"] for c in _changes(d, name) if c["upstream"]}
    assert marked == {"/mod.txt", "/d/a.txt", "/new.txt", "/ren.txt"}
    assert d.put("/pachtray/v1/_commit", json={"mount": name}).status_code == 200
    assert not any(c["upstream"] for c in _changes(d, name))  # the new base has them


def test_errors_unknown_mount_read_only_mount_bad_paths(rw, shared_daemon, client, unique_name):
    d, name, repo, root = rw
    reply = d.get("/pachtray/v1/mounts/nosuchmount/changes")
    assert reply.status_code == 404 and "no mount named 'nosuchmount'" in reply.text
    ro = unique_name("ro")
    assert d.put("/_mount", json={"mounts": [{"name": ro, "repo": name, "branch": "master"}]}).status_code == 200
    try:
        reply = d.get(f"/pachtray/v1/mounts/{ro}/changes")
        assert reply.status_code == 400 and "mounted read-only" in reply.text
        reply = d.put(f"/pachtray/v1/mounts/{ro}/_discard", json={"paths": ["/keep.txt"]})
        assert reply.status_code == 400 and "mounted read-only" in reply.text
    finally:
        d.put("/_unmount", json={"mounts": [ro]})
    for body, words in [({}, "paths must be a non-empty list"), ({"paths": []}, "paths must be a non-empty list"),
                        ({"paths": ["rel.txt"]}, "must be an absolute path")]:
        reply = d.put(f"/pachtray/v1/mounts/{name}/_discard", json=body)
        assert reply.status_code == 400 and words in reply.text, (body, reply.text)
    reply = d.put(f"/pachtray/v1/mounts/{name}/changes")
    assert reply.status_code == 405


def test_the_routes_answer_over_the_socket_and_are_documented(rw, shared_daemon):
    d, name, repo, root = rw
    (root / "s.txt").write_bytes(b"sock")
    reply = unix_request(str(d.sock_path), "GET", f"/pachtray/v1/mounts/{urllib.parse.quote(name)}/changes")
    assert reply.status == 200 and reply.json()["changes"][0]["path"] == "/s.txt"
    paths = d.get("/openapi.json").json()["paths"]
    assert "get" in paths["/pachtray/v1/mounts/{name}/changes"]
    assert "put" in paths["/pachtray/v1/mounts/{name}/_discard"]
    assert "description" in paths["/_commit"]["put"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]


def test_recovered_changes_are_listed_discarded_and_committed_with_a_description(daemon_factory, pachd, client,
                                                                                 unique_name):
    from pachtray import config

    name = unique_name("recov")
    repo = _repo_with(client, name, BASE)
    first = daemon_factory(pachd.address)
    assert first.put("/_mount", json={"mounts": [{"name": name, "repo": name, "mode": "rw"}]}).status_code == 200
    _edit(first.mount_dir / name)
    first.stop()  # staged, not committed
    config.Settings(restore_mounts=False).save()
    again = daemon_factory(pachd.address, tmp=first.tmp)
    wait_for(lambda: any(m["name"] == name and m["state"] == "pending"
                         for m in again.get("/pachtray/v1/mounts").json()["mounted"]), 30, what="pending changes")
    wait_for(lambda: again.get("/pachtray/v1/info").json().get("connection") == "connected", 30, what="connected")
    assert _changes(again, name) == EDITED
    reply = again.put(f"/pachtray/v1/mounts/{name}/_discard", json={"paths": ["/mod.txt", "/ren.txt"]})
    assert reply.status_code == 200, reply.text
    assert [c["path"] for c in _changes(again, name)] == ["/del.txt", "/new.txt", "/renamed.txt"]
    reply = again.put("/pachtray/v1/_commit", json={"mount": name, "description": "recovered, reviewed"})
    assert reply.status_code == 200, reply.text
    assert not any(m["name"] == name for m in reply.json()["mounted"])
    assert _head(client, repo).description == "recovered, reviewed"
    assert _files(client, repo) == {"/keep.txt": b"keep", "/mod.txt": b"old", "/new.txt": b"brand new",
                                    "/ren.txt": b"ren", "/renamed.txt": b"ren", "/d/a.txt": b"a"}
    client.pfs.delete_repo(repo=repo, force=True)
