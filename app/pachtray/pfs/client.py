"""Cluster addresses and a pachyderm_sdk Client whose every RPC has a deadline.

The SDK's own Client waits forever on a dead or hung cluster; a FUSE read or an HTTP handler
must instead fail within seconds, so unary calls get a deadline and streams a per-message idle
deadline (a long download is fine as long as messages keep arriving).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import threading
import time
import weakref
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
from betterproto.lib.google.protobuf import BytesValue, Empty
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs
from pachyderm_sdk.constants import GRPC_CHANNEL_OPTIONS
from pachyderm_sdk.interceptor import MetadataClientInterceptor

from pachtray.pfs import codec

DEFAULT_PORT = 30650
BAD_ADDRESS = "either empty or poorly formatted cluster endpoint"
_SCHEMES = {"grpc": False, "http": False, "grpcs": True, "https": True}

# Reconnect quickly after a cluster restart (gRPC's default backoff grows to two minutes),
# and notice a silently dead connection through keepalive pings.
CHANNEL_OPTIONS = [
    *GRPC_CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 300),
    ("grpc.min_reconnect_backoff_ms", 300),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 15000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 0),
    # A server stream's messages are taken in by the thread that iterates it, not handed over by
    # gRPC's channel thread (one GIL hand-off less per message): a listing's client side measured
    # 26-29 instead of 46-62 µs of CPU per entry. (grpc.experimental.ChannelOptions' name for it.)
    ("SingleThreadedUnaryStream", 1),
]


class _QuietOnPurposeCancels(logging.Filter):
    """Cancelling a stream early (a chunk read that has its bytes, an abandoned iterator) makes
    the SDK's interceptor fail in a done-callback, which gRPC logs as an error. It is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "FutureCancelledError" not in record.getMessage()


logging.getLogger("grpc._channel").addFilter(_QuietOnPurposeCancels())


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'grpcs' if self.tls else 'grpc'}://{host}:{self.port}"

    @property
    def target(self) -> str:
        """host:port as gRPC wants it."""
        return self.url.split("://", 1)[1]


# A DNS name or an IPv4/IPv6 literal: no spaces or other characters a resolver would refuse later.
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")


def parse_address(text: str) -> Address:
    """Parse `host[:port]`, `grpc://host[:port]` or `grpcs://...` (also http/https), as pachctl does."""
    text = (text or "").strip()
    if not text:
        raise ValueError(BAD_ADDRESS)
    if "://" not in text:
        text = "grpc://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(BAD_ADDRESS) from None
    if (parts.scheme not in _SCHEMES or not parts.hostname or parts.path not in ("", "/")
            or parts.query or parts.fragment or parts.username or parts.password
            or not _HOST.fullmatch(parts.hostname)):
        raise ValueError(BAD_ADDRESS)
    return Address(parts.hostname, port or DEFAULT_PORT, _SCHEMES[parts.scheme])


class RpcIdleTimeout(grpc.RpcError):
    """A stream delivered no message (or consumed no request) within the idle deadline."""

    def __init__(self, method: str, seconds: float):
        super().__init__(f"{method}: no message from pachd within {seconds:g}s")
        self._details = str(self)

    def code(self):
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self):
        return self._details


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


def _with_timeout(details, timeout: float | None) -> _CallDetails:
    return _CallDetails(details.method, timeout, details.metadata, details.credentials,
                        getattr(details, "wait_for_ready", None), getattr(details, "compression", None))


class _Watchdog:
    """One thread for all streams: cancels a call that waited longer than its idle deadline."""

    def __init__(self):
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[_Watched] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def add(self, watched: "_Watched") -> None:
        with self._lock:
            self._watched.add(watched)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="grpc-idle-watchdog", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:
                watched = list(self._watched)
            for w in watched:
                w.check(now)


_WATCHDOG = _Watchdog()


class _Watched:
    """Idle bookkeeping of one streaming call."""

    def __init__(self, call, method: str, idle: float):
        self.call = call
        self.method = method
        self.idle = idle
        self.waiting_since: float | None = None
        self.timed_out = False
        self.done = False

    def check(self, now: float) -> None:
        since = self.waiting_since
        if not self.done and self.call is not None and since is not None and now - since > self.idle:
            self.timed_out = True
            self.call.cancel()

    def error(self, e: Exception) -> Exception:
        return RpcIdleTimeout(self.method, self.idle) if self.timed_out else e


class _IdleStream:
    """Iterator over a streaming response that is cancelled if a message takes too long."""

    def __init__(self, call, method: str, idle: float):
        self._call = call
        self._w = _Watched(call, method, idle)
        _WATCHDOG.add(self._w)

    def __iter__(self):
        return self

    def __next__(self):
        self._w.waiting_since = time.monotonic()
        try:
            return next(self._call)
        except StopIteration:
            self._w.done = True
            raise
        except grpc.RpcError as e:
            self._w.done = True
            raise self._w.error(e) from None
        finally:
            self._w.waiting_since = None

    def cancel(self) -> bool:
        self._w.done = True
        return self._call.cancel()

    def __getattr__(self, name):
        return getattr(self._call, name)

    def __del__(self):
        if not self._w.done:
            self._call.cancel()


ANSWER_IDLE = 60.0  # seconds a client-streaming call may wait for its answer once every request is sent


class _IdleUpload:
    """Future of a client-streaming call whose request iterator must keep moving.

    Only the `.future()` form of a call can be cancelled while it runs; the blocking form
    returns a finished outcome, so there the keepalive pings are what notices a dead peer.
    """

    def __init__(self, continuation, details, requests, method: str, idle: float):
        self._w = _Watched(None, method, idle)
        self._w.waiting_since = time.monotonic()
        self._call = continuation(details, self._pump(requests))
        self._w.call = self._call
        self._call.add_done_callback(lambda _f: setattr(self._w, "done", True))
        _WATCHDOG.add(self._w)

    def _pump(self, requests):
        for r in requests:
            self._w.waiting_since = time.monotonic()
            yield r
        # All sent: pachd may still work on the whole stream before it answers (a big commit on slow
        # storage), so the answer gets longer than a request that does not move.
        self._w.idle = max(self._w.idle, ANSWER_IDLE)
        self._w.waiting_since = time.monotonic()

    def result(self, timeout=None):
        try:
            return self._call.result(timeout)
        except (grpc.RpcError, grpc.FutureCancelledError) as e:  # the watchdog's cancel is the latter
            raise self._w.error(e) from None

    def __getattr__(self, name):
        return getattr(self._call, name)


_short = threading.local()


@contextlib.contextmanager
def short_deadline(seconds: float):
    """Unary calls this thread makes inside get at most `seconds` (best-effort clean-up after the
    cluster stopped answering: not another full deadline per call)."""
    before = getattr(_short, "seconds", None)
    _short.seconds = seconds
    try:
        yield
    finally:
        _short.seconds = before


class DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                          grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Unary calls: a deadline of `timeout` s (less inside `short_deadline`); streams: at most
    `timeout` s between messages."""

    def __init__(self, timeout: float):
        self.timeout = timeout

    def intercept_unary_unary(self, continuation, details, request):
        if details.timeout is None:
            details = _with_timeout(details, min(self.timeout, getattr(_short, "seconds", None) or self.timeout))
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        return _IdleStream(continuation(details, request), details.method, self.timeout)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return _IdleUpload(continuation, details, request_iterator, details.method, self.timeout)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return _IdleStream(continuation(details, request_iterator), details.method, self.timeout)


class CodecChannel(grpc.Channel):
    """A channel on which the SDK's stubs encode and decode the hot-path RPCs' messages natively
    (`codec.METHODS`; the same messages and bytes as betterproto, see pachtray.pfs.codec)."""

    def __init__(self, channel: grpc.Channel):
        self._channel = channel

    def _callable(self, make, method, request_serializer=None, response_deserializer=None, *args, **kwargs):
        return make(method, codec.serializer_for(method, request_serializer),
                    codec.deserializer_for(method, response_deserializer), *args, **kwargs)

    def unary_unary(self, method, *args, **kwargs):
        return self._callable(self._channel.unary_unary, method, *args, **kwargs)

    def unary_stream(self, method, *args, **kwargs):
        return self._callable(self._channel.unary_stream, method, *args, **kwargs)

    def stream_unary(self, method, *args, **kwargs):
        return self._callable(self._channel.stream_unary, method, *args, **kwargs)

    def stream_stream(self, method, *args, **kwargs):
        return self._callable(self._channel.stream_stream, method, *args, **kwargs)

    def subscribe(self, callback, try_to_connect=False):
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback):
        self._channel.unsubscribe(callback)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class PachClient(Client):
    """The SDK Client on a channel with deadlines, fast reconnects and an explicit close()."""

    def __init__(self, address: Address, *, token: str | None, root_certs: bytes | None, rpc_timeout: float):
        self.rpc_timeout = rpc_timeout
        self.pachd_address = address
        self._raw_channel: grpc.Channel | None = None
        self._ours: grpc.Channel | None = None
        super().__init__(host=address.host, port=address.port, auth_token=token, root_certs=root_certs,
                         tls=address.tls)

    def _init_api(self):
        # Called by the SDK after every (re)build of its channel; replace that channel by ours.
        if getattr(self, "_channel", None) is not None and self._channel is not self._ours:
            self._channel.close()
        if self.root_certs is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=self.root_certs)
            raw = grpc.secure_channel(self.pachd_address.target, creds, options=CHANNEL_OPTIONS)
        else:
            raw = grpc.insecure_channel(self.pachd_address.target, options=CHANNEL_OPTIONS)
        old, self._raw_channel = self._raw_channel, raw
        if old is not None:
            old.close()
        self._channel = self._ours = CodecChannel(grpc.intercept_channel(
            raw, MetadataClientInterceptor(self._metadata), DeadlineInterceptor(self.rpc_timeout)))
        super()._init_api()

    def close(self) -> None:
        if self._raw_channel is not None:
            self._raw_channel.close()


def connect(address: Address | str, *, token: str | None = None, root_certs: bytes | None = None,
            rpc_timeout: float = 10.0) -> PachClient:
    """A Client for `address`; gRPC connects lazily, so this never blocks on the network."""
    if isinstance(address, str):
        address = parse_address(address)
    return PachClient(address, token=token, root_certs=root_certs, rpc_timeout=rpc_timeout)


_LIST_FILE = f"/{pfs.ApiBase.__proto_path__}/ListFile"


def list_file(client: Client, *, file: pfs.File, pagination_marker: pfs.File | None = None,
              number: int = 0, fields: tuple[str, ...] | None = None):
    """`client.pfs.list_file` with a page size and marker, decoded natively (pachtray.pfs.codec).
    The answers are SDK FileInfos; the Commit and the time every answer repeats are decoded once
    and shared (`file.commit` and `committed` are read-only). With `fields` (attribute paths such
    as "file.path") each answer is the tuple of those fields instead (`codec.field_reader`: no
    FileInfo is made, half the decoding)."""
    request = pfs.ListFileRequest(file=file, number=number)
    if pagination_marker is not None:
        request.pagination_marker = pagination_marker
    decode = codec.deserializer(pfs.FileInfo, share=(pfs.Commit,)) if fields is None else \
        codec.field_reader(pfs.FileInfo, fields, share=(pfs.Commit,))
    call = client._channel.unary_stream(_LIST_FILE, request_serializer=codec.serialize, response_deserializer=decode)
    return call(request)


_DIFF_FILE = f"/{pfs.ApiBase.__proto_path__}/DiffFile"
_DIFF_FIELDS = ("new_file.file_type", "new_file.file.path", "old_file.file_type", "old_file.file.path")


def diff_files(client: Client, *, new_file: pfs.File, old_file: pfs.File):
    """`client.pfs.diff_file` of two folders, as (new path, old path) of each file that differs
    ("" on the side it is missing from; folders left out), decoded natively (`codec.field_reader`)."""
    request = pfs.DiffFileRequest(new_file=new_file, old_file=old_file)
    decode = codec.field_reader(pfs.DiffFileResponse, _DIFF_FIELDS, share=(pfs.Commit,))
    call = client._channel.unary_stream(_DIFF_FILE, request_serializer=codec.serialize, response_deserializer=decode)
    for new_type, new_path, old_type, old_path in call(request):
        new_path = new_path if new_type == pfs.FileType.FILE else ""
        old_path = old_path if old_type == pfs.FileType.FILE else ""
        if new_path or old_path:
            yield new_path, old_path


_GET_FILE = f"/{pfs.ApiBase.__proto_path__}/GetFile"
_MODIFY_FILE = f"/{pfs.ApiBase.__proto_path__}/ModifyFile"


def modify_file(client: Client, requests) -> None:
    """`client.pfs.modify_file` as a future, so the idle watchdog can cancel it when the requests
    stop moving (a frozen pachd): the SDK's blocking form ends only when keepalive gives up,
    ~60 s measured, with the rw mount's writes waiting for the commit all that time."""
    call = client._channel.stream_unary(_MODIFY_FILE, request_serializer=pfs.ModifyFileRequest.SerializeToString,
                                        response_deserializer=Empty.FromString)
    call.future(requests).result()


def get_file(client: Client, *, file: pfs.File, offset: int = 0):
    """`client.pfs.get_file` as the call itself, so a reader that has what it wanted can
    `cancel()` it: the SDK's generator only lets go of the call when it is garbage collected,
    and until then the server keeps a thread busy pushing the rest of the file."""
    request = pfs.GetFileRequest(file=file, offset=offset)
    call = client._channel.unary_stream(_GET_FILE, request_serializer=pfs.GetFileRequest.SerializeToString,
                                        response_deserializer=_bytes_value_view)
    return call(request)


def _bytes_value_view(raw: bytes) -> BytesValue:
    """A GetFile message whose `value` is a memoryview into the message's bytes: betterproto slices
    what it is given, so parsing a view skips the copy of every 4 MiB of content (~0.1 ms of CPU a
    MiB, the SDK's `get_file` pays it)."""
    return BytesValue().parse(memoryview(raw))


_LIST_BRANCH = f"/{pfs.ApiBase.__proto_path__}/ListBranch"
BRANCH_HEAD_FIELDS = ("branch.repo.project.name", "branch.repo.name", "branch.repo.type", "branch.name", "head.id")


def list_branch_heads(client: Client, repo: pfs.Repo | None = None):
    """ListBranch (of ``repo``, or of every repo) answering only (project, repo, repo type, branch,
    head id) tuples, decoded natively (`codec.field_reader`): the cluster watcher reads every
    branch of the cluster every round and needs nothing else."""
    request = pfs.ListBranchRequest(repo=repo) if repo is not None else pfs.ListBranchRequest()
    decode = codec.field_reader(pfs.BranchInfo, BRANCH_HEAD_FIELDS, share=(pfs.Repo,))
    call = client._channel.unary_stream(_LIST_BRANCH, request_serializer=codec.serialize, response_deserializer=decode)
    return call(request)
