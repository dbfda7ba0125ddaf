"""A mount appears in the mount dir only once it can answer, and never with a listing that is
empty because it could not be made (MountManager, real FUSE, the real embedded server behind a
forwarding gRPC proxy that can refuse ListFile)."""

from __future__ import annotations

import os

import grpc
import pytest

from benchmarks.grpc_proxy import CountingProxy
from conftest import force_unmount
from pachtray.errors import ApiError
from pachtray.mount.manager import MountManager, MountRequest
from pachtray.pfs.client import connect

from mounthelpers import put_commit

LIST_FILE = "/pfs_v2.API/ListFile"


class RefusingProxy(CountingProxy):
    """Forwards every call but ListFile while `refuse_listing` is set (a cluster that cannot list)."""

    refuse_listing = False

    def forward(self, method, request_iterator, context):
        if self.refuse_listing and method == LIST_FILE:
            self.count(method)
            context.abort(grpc.StatusCode.INTERNAL, "listing refused by the test proxy")
        yield from super().forward(method, request_iterator, context)


@pytest.fixture
def proxied(tmp_path, pachd):
    proxy = RefusingProxy(f"127.0.0.1:{pachd.port}").start()
    mount_dir = tmp_path / "pfs"
    mount_dir.mkdir()
    manager = MountManager(mount_dir, tmp_path / "data")
    manager.start()
    client = connect(proxy.address, rpc_timeout=5)
    manager.set_client(client)
    try:
        yield manager, proxy
    finally:
        manager.stop()
        client.close()
        proxy.stop()
        if os.path.ismount(mount_dir):
            force_unmount(mount_dir)


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_new_mount_answers_its_first_listing_at_once(proxied, client, unique_name, mode):
    manager, proxy = proxied
    repo = unique_name("ready")
    put_commit(client, repo, {"/a.txt": b"a", "/d/b.txt": b"b"})
    manager.mount([MountRequest(name="m", repo=repo, mode=mode)])
    proxy.reset()
    assert sorted(os.listdir(manager.mount_dir / "m")) == ["a.txt", "d"]
    assert proxy.counts().get(LIST_FILE, 0) == 0  # listed before it appeared


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_mount_that_cannot_list_is_refused_and_never_appears(proxied, client, unique_name, mode):
    manager, proxy = proxied
    repo = unique_name("unlistable")
    put_commit(client, repo, {"/a.txt": b"a"})
    proxy.refuse_listing = True
    with pytest.raises(ApiError) as e:
        manager.mount([MountRequest(name="m", repo=repo, mode=mode)])
    assert e.value.status == 500 and "cannot list" in e.value.message
    assert os.listdir(manager.mount_dir) == [] and manager.mounted() == []
    assert not (manager.records.staging_dir("m")).exists()
    proxy.refuse_listing = False
    manager.mount([MountRequest(name="m", repo=repo, mode=mode)])
    assert os.listdir(manager.mount_dir / "m") == ["a.txt"]
    proxy.refuse_listing = True  # listed already: answered from what was fetched
    assert os.listdir(manager.mount_dir / "m") == ["a.txt"]
