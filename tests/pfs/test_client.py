"""pfs.client: address parsing and deadlines on every RPC (against the real embedded server, and a
deliberately silent gRPC server for the "hung cluster" case)."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest
from pachyderm_sdk.api import pfs

from pachtray.pfs.client import (BAD_ADDRESS, Address, RpcIdleTimeout, connect, get_file, modify_file,
                                 parse_address, short_deadline)


@pytest.mark.parametrize("text,expected", [
    ("localhost", Address("localhost", 30650, False)),
    ("127.0.0.1:31000", Address("127.0.0.1", 31000, False)),
    ("grpc://pachd.example.com:80", Address("pachd.example.com", 80, False)),
    ("grpcs://pachd.example.com", Address("pachd.example.com", 30650, True)),
    ("https://h:443", Address("h", 443, True)),
    ("http://h:8080/", Address("h", 8080, False)),
    ("  grpc://[::1]:650  ", Address("::1", 650, False)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "ftp://h:1", "grpc://", "grpc://h:99999", "grpc://h:1/x",
                                  "grpc://u:p@h:1", "grpc://h:port", "grpc://h:1?q=1",
                                  "grpc://bad host:1", "bad host"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError, match=BAD_ADDRESS):
        parse_address(text)


def test_address_url_round_trips():
    for a in (Address("h", 1), Address("::1", 2, True)):
        assert parse_address(a.url) == a
    assert Address("::1", 2, True).url == "grpcs://[::1]:2"


def test_connect_talks_to_pachd(pachd, unique_name):
    c = connect(pachd.address, rpc_timeout=5)
    try:
        name = unique_name("client")
        c.pfs.create_repo(repo=pfs.Repo(name=name))
        assert name in [r.repo.name for r in c.pfs.list_repo()]
        c.auth_token = "not-used-without-auth"  # the SDK rebuilds its channel; ours must follow
        assert c.pfs.inspect_repo(repo=pfs.Repo(name=name)).repo.name == name
    finally:
        c.close()


def test_refused_connection_fails_instead_of_waiting():
    from conftest import free_port

    c = connect(f"127.0.0.1:{free_port()}", rpc_timeout=30)
    with pytest.raises((grpc.RpcError, ConnectionError)):
        c.pfs.inspect_repo(repo=pfs.Repo(name="x"))
    with pytest.raises((grpc.RpcError, ConnectionError)):
        list(c.pfs.list_repo())
    c.close()


@pytest.fixture
def silent_server():
    """A gRPC server that accepts InspectRepo/ListRepo and then never answers (a hung pachd)."""
    release = threading.Event()

    def hang_unary(request, context):
        release.wait(60)
        return b""

    def hang_stream(request, context):
        yield pfs.RepoInfo(repo=pfs.Repo(name="first"))
        release.wait(60)

    def hang_upload(requests, context):
        next(requests)  # takes the first request, then neither reads nor answers (a frozen pachd)
        release.wait(60)
        return b""

    handlers = {
        "InspectRepo": grpc.unary_unary_rpc_method_handler(hang_unary, response_serializer=bytes),
        "ListRepo": grpc.unary_stream_rpc_method_handler(hang_stream, response_serializer=bytes),
        "ModifyFile": grpc.stream_unary_rpc_method_handler(hang_upload, response_serializer=bytes),
    }
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pfs_v2.API", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    release.set()
    server.stop(0)


def test_unary_call_gets_a_deadline(silent_server):
    c = connect(f"127.0.0.1:{silent_server}", rpc_timeout=1)
    with pytest.raises(grpc.RpcError) as info:
        c.pfs.inspect_repo(repo=pfs.Repo(name="x"))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    c.close()


def test_stream_gets_an_idle_deadline(silent_server):
    c = connect(f"127.0.0.1:{silent_server}", rpc_timeout=1)
    got = []
    with pytest.raises(RpcIdleTimeout) as info:
        for r in c.pfs.list_repo():
            got.append(r.repo.name)
    assert got == ["first"]
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "ListRepo" in info.value.details()
    c.close()


def test_an_upload_pachd_stops_taking_is_cancelled_at_the_idle_deadline(silent_server):
    """The SDK's blocking ModifyFile would wait for keepalive (~60 s); the commit path's does not."""
    c = connect(f"127.0.0.1:{silent_server}", rpc_timeout=1)

    def requests():
        yield pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri("r@master"))
        for i in range(10_000):  # more than the stream's windows hold
            yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=f"/f{i}", raw=b"x" * 4096))
    started = time.monotonic()
    with pytest.raises(RpcIdleTimeout) as info:
        modify_file(c, requests())
    assert time.monotonic() - started < 5
    assert "ModifyFile" in info.value.details()
    c.close()


def test_short_deadline_bounds_unary_calls_of_its_thread_only(silent_server):
    c = connect(f"127.0.0.1:{silent_server}", rpc_timeout=3)
    started = time.monotonic()
    with short_deadline(0.3), pytest.raises(grpc.RpcError) as info:
        c.pfs.inspect_repo(repo=pfs.Repo(name="x"))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - started < 2
    started = time.monotonic()
    with pytest.raises(grpc.RpcError):
        c.pfs.inspect_repo(repo=pfs.Repo(name="x"))
    assert time.monotonic() - started > 2.5  # outside, the client's own deadline again
    c.close()


def test_abandoned_downloads_are_cancelled_and_free_the_server(local_pachd_factory, unique_name):
    """A reader that has the bytes it wanted cancels the rest of the download: 100 abandoned
    downloads (more than the server has threads) must leave the server answering at once. (The
    SDK's own get_file generator lets go of its call only when garbage collected; until then the
    server keeps a thread pushing the rest of the file.)"""
    server = local_pachd_factory()
    c = connect(server.address, rpc_timeout=10)
    repo = unique_name("cancel")
    c.pfs.create_repo(repo=pfs.Repo(name=repo))
    with c.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as commit:
        commit.put_file_from_bytes(path="/big.bin", data=b"x" * (32 << 20))
    file = pfs.File.from_uri(f"{repo}@master:/big.bin")
    held = []
    for i in range(100):
        call = get_file(c, file=file, offset=i)
        assert next(iter(call)).value[:1] == b"x"
        call.cancel()
        held.append(call)  # still referenced: only the cancel can free the server's thread
    assert [r.repo.name for r in c.pfs.list_repo()] == [repo]
    c.close()


def test_an_upload_whose_answer_takes_longer_than_the_idle_deadline_still_lands():
    """Once every request is sent, pachd may work on the whole stream before it answers: that wait
    is not a stalled upload (ANSWER_IDLE, not the idle deadline, bounds it)."""
    got = []

    def slow_answer(requests, context):
        got.extend(requests)
        time.sleep(2.5)
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pfs_v2.API", {
        "ModifyFile": grpc.stream_unary_rpc_method_handler(slow_answer, response_serializer=bytes)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    c = connect(f"127.0.0.1:{port}", rpc_timeout=1)
    try:
        modify_file(c, iter([pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri("r@master"))] * 3))
        assert len(got) == 3
    finally:
        c.close()
        server.stop(0)
