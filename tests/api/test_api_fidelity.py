"""The drop-in answers as Pachyderm 2.8's mount-server (server.go at v2.8.0): a fresh one starts with
no mounts, every mounts-shaped answer has exactly the reference's keys, and failed requests are
logged. Pachtray's additions are under /pachtray/v1."""

from __future__ import annotations

import os
import re

from apihelpers import shared_daemon, unix_request  # noqa: F401 - fixture
from conftest import wait_for
from pachyderm_sdk.api import pfs

from pachtray.mount.manager import MOUNT_STATE_FIELDS

REPO_KEYS = {"authorization", "branches", "repo", "project"}


def _repo(client, name: str, files: dict[str, bytes]) -> None:
    repo = pfs.Repo(name=name, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=repo)
    with client.pfs.commit(branch=pfs.Branch(repo=repo, name="master")) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)


def _file(client, repo: str, path: str) -> bytes:
    return client.pfs.pfs_file(pfs.File.from_uri(f"{repo}@master:{path}")).read()


def _mount_server(daemon_factory, pachd, tmp, port_dir: str, *extra: str, kind: str = "mount-server"):
    """A drop-in `mount-server` on the shared data dir ``tmp/data`` with its own mount dir and port."""
    return daemon_factory(pachd.address, tmp=tmp / port_dir, data_dir=tmp / "data", kind=kind,
                          extra=["--allow-other=false", *extra])


def _extras(d) -> dict[str, dict]:
    return {m["name"]: m for m in d.get("/pachtray/v1/mounts").json()["mounted"]}


def test_a_fresh_mount_server_starts_with_no_mounts_and_keeps_recovered_changes_aside(
        daemon_factory, pachd, client, unique_name, tmp_path):
    ro, rw = unique_name("ro"), unique_name("rw")
    _repo(client, ro, {"/a.txt": b"a"})
    _repo(client, rw, {"/base.txt": b"base"})
    first = _mount_server(daemon_factory, pachd, tmp_path, "first", kind="daemon")  # the tray's daemon
    body = {"mounts": [{"name": ro, "repo": ro}, {"name": rw, "repo": rw, "mode": "rw"}]}
    assert first.put("/_mount", json=body).status_code == 200
    (first.mount_dir / rw / "draft.txt").write_bytes(b"not committed")
    first.kill()  # a crash: the staged change stays on disk
    first.stop()

    # Another mount dir and port, as the extension starts it: the reference's empty start.
    fresh = _mount_server(daemon_factory, pachd, tmp_path, "fresh")
    listing = fresh.get("/mounts").json()
    assert listing["mounted"] == [] and ro in {r["repo"] for r in listing["unmounted"]}
    assert os.listdir(fresh.mount_dir) == []
    kept = wait_for(lambda: _extras(fresh).get(rw), 30, what="recovered changes under /pachtray/v1")
    assert kept["state"] == "pending" and kept["pending_changes"] == 1 and ro not in _extras(fresh)
    assert fresh.put("/_commit", json={"mount": rw}).status_code == 500  # not mounted, for the reference's routes
    assert fresh.put("/_unmount", json={"mounts": [rw]}).status_code == 500
    fresh.stop()

    # Restoring is opt-in, and the empty start above did not overwrite the saved workspace.
    again = _mount_server(daemon_factory, pachd, tmp_path, "again", "--restore-mounts")
    wait_for(lambda: {m["name"] for m in again.get("/mounts").json()["mounted"]} == {ro, rw}, 30,
             what="restored mounts")
    assert (again.mount_dir / rw / "draft.txt").read_bytes() == b"not committed"  # adopted by the rw mount
    reply = again.put("/pachtray/v1/_commit", json={"mount": rw})
    assert reply.status_code == 200, reply.text
    assert _file(client, rw, "/draft.txt") == b"not committed"
    assert again.put("/_unmount_all").status_code == 200


def test_recovered_changes_are_committed_through_pachtray_v1(daemon_factory, pachd, client, unique_name, tmp_path):
    name = unique_name("rec")
    _repo(client, name, {"/base.txt": b"base"})
    first = _mount_server(daemon_factory, pachd, tmp_path, "first")
    assert first.put("/_mount", json={"mounts": [{"name": name, "repo": name, "mode": "rw"}]}).status_code == 200
    (first.mount_dir / name / "late.txt").write_bytes(b"late")
    first.stop()  # a clean stop stages, never commits
    second = _mount_server(daemon_factory, pachd, tmp_path, "second")
    assert second.get("/mounts").json()["mounted"] == []
    reply = second.put("/pachtray/v1/_commit", json={"mount": name})
    assert reply.status_code == 200, reply.text
    assert reply.json()["mounted"] == []
    assert _file(client, name, "/late.txt") == b"late"


def test_every_mounts_answer_has_exactly_the_reference_keys(shared_daemon, client, unique_name):
    d = shared_daemon
    name = unique_name("keys")
    _repo(client, name, {"/a.txt": b"a"})
    rw = f"{name}-rw"

    def check(listing: dict, mounted: set[str], where: str) -> None:
        assert set(listing) == {"mounted", "unmounted"}, where
        mine = [m for m in listing["mounted"] if m["name"].startswith(name)]
        assert {m["name"] for m in mine} == mounted, where
        for m in mine:
            assert tuple(m) == MOUNT_STATE_FIELDS, (where, sorted(m))
        for r in listing["unmounted"]:
            assert set(r) == REPO_KEYS, (where, sorted(r))

    reply = unix_request(d.sock_path, "PUT", "/_mount", body={"mounts": [
        {"name": name, "repo": name}, {"name": rw, "repo": name, "mode": "rw"}]})
    assert reply.status == 200, reply.text
    check(reply.json(), {name, rw}, "PUT /_mount")
    (d.mount_dir / rw / "x.txt").write_bytes(b"x")
    check(d.get("/mounts").json(), {name, rw}, "GET /mounts")
    check(d.put("/_commit", json={"mount": rw}).json(), {name, rw}, "PUT /_commit")
    check(d.put("/_unmount", json={"mounts": [rw]}).json(), {name}, "PUT /_unmount")
    extras = _extras(d)[name]
    assert set(extras) == {*MOUNT_STATE_FIELDS, "pending_changes", "error", "pinned"}
    check(d.put("/_unmount_all").json(), set(), "PUT /_unmount_all")

    assert d.get("/repos").json() and all(set(r) == REPO_KEYS for r in d.get("/repos").json())
    assert set(d.get("/config").json()) == {"cluster_status", "pachd_address"}
    info = d.get("/pachtray/v1/info").json()
    assert info["connection"] == "connected" and info["local"] is False
    assert info["token_storage"].startswith("file (")  # the tests' null keyring: no usable keychain


def test_repos_without_branches_list_null_branches_as_the_reference(shared_daemon, client, unique_name):
    name = unique_name("nobr")
    client.pfs.create_repo(repo=pfs.Repo(name=name, type="user"))
    mine = [r for r in shared_daemon.get("/repos").json() if r["repo"] == name]
    assert mine == [{"project": "default", "repo": name, "branches": None, "authorization": "off"}]


def test_projects_encode_times_as_the_reference_go_structs(shared_daemon, client, unique_name):
    project = unique_name("proj")
    client.pfs.create_project(project=pfs.Project(name=project))
    mine = next(p for p in shared_daemon.get("/projects").json() if p["project"]["name"] == project)
    created = mine["created_at"]
    assert set(created) <= {"seconds", "nanos"} and created["seconds"] > 1_600_000_000
    assert "description" not in mine  # omitempty


def test_the_daemon_logs_every_failed_request(daemon, unique_name):
    secret = "s3cr3t-" + unique_name("token")
    headers = {"Authorization": f"Bearer {secret}"}
    assert daemon.put("/_mount", json={"mounts": "nope"}, headers=headers).status_code == 400
    assert daemon.get("/no/such/route", headers=headers).status_code == 404
    assert daemon.put("/_unmount", json={"mounts": ["never-mounted"]}, headers=headers).status_code == 500
    assert unix_request(daemon.sock_path, "DELETE", "/mounts").status == 405

    def logged() -> list[str]:
        return [line for line in daemon.log.read_text().splitlines() if re.search(r" -> \d{3}: ", line)]

    expected = [r"tcp PUT /_mount -> 400: .*mounts", r"tcp GET /no/such/route -> 404: no such endpoint",
                r"tcp PUT /_unmount -> 500: can't unmount 'never-mounted': not mounted",
                r"unix DELETE /mounts -> 405: method DELETE not allowed"]
    lines = wait_for(lambda: (found := logged()) and all(any(re.search(e, x) for x in found) for e in expected)
                     and found, 10, what="a log line per failed request")
    assert len(lines) == 4, lines
    assert all(" INFO " in x for x in lines[:2]) and " WARNING " in lines[2]
    assert secret not in daemon.log.read_text()
