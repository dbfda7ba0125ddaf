"""A transparent gRPC proxy that counts the RPCs passing through it.

Benchmark 4 points the daemon at this proxy to count how many RPCs one REST call costs, without
touching the server under test. Messages are forwarded as raw bytes: every method is handled as a
stream-stream call, which is the same thing on the wire as unary and one-sided streaming calls.
"""

from __future__ import annotations

import collections
import threading
from concurrent import futures

import grpc

# Large messages (file chunks) must pass unchanged.
_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
# Transport-level headers that grpcio sets itself and refuses as call metadata.
_SKIPPED_METADATA = ("user-agent", "te", "content-type", "grpc-accept-encoding", "grpc-encoding", "grpc-timeout")


class CountingProxy:
    """Listens on 127.0.0.1:``port`` (0 = any free port) and forwards to ``upstream`` (host:port)."""

    def __init__(self, upstream: str, port: int = 0, max_workers: int = 64):
        self._channel = grpc.insecure_channel(upstream, options=_OPTIONS)
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                                   handlers=[_ForwardingHandler(self)], options=_OPTIONS)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        if not self.port:
            raise OSError(f"counting proxy could not bind 127.0.0.1:{port}")

    @property
    def address(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> "CountingProxy":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait()
        self._channel.close()

    def count(self, method: str) -> None:
        with self._lock:
            self._counts[method] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def counts(self) -> dict[str, int]:
        """RPCs seen since the last reset, by full method name (e.g. ``/pfs_v2.API/ListRepo``)."""
        with self._lock:
            return dict(self._counts)

    def forward(self, method: str, request_iterator, context: grpc.ServicerContext):
        self.count(method)
        metadata = [(k, v) for k, v in context.invocation_metadata()
                    if not k.startswith(":") and k not in _SKIPPED_METADATA]
        remaining = context.time_remaining()
        call = self._channel.stream_stream(method)(request_iterator, metadata=metadata,
                                                   timeout=remaining if remaining and remaining < 1e8 else None)
        context.add_callback(call.cancel)
        try:
            yield from call
        except grpc.RpcError as e:
            context.abort(e.code(), e.details() or "")


class _ForwardingHandler(grpc.GenericRpcHandler):
    def __init__(self, proxy: CountingProxy):
        self._proxy = proxy

    def service(self, handler_call_details):
        method = handler_call_details.method

        def behavior(request_iterator, context):
            return self._proxy.forward(method, request_iterator, context)

        return grpc.stream_stream_rpc_method_handler(behavior)
