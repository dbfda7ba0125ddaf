"""grpcio plumbing: generic handlers built from pachyderm_sdk's generated service descriptions.

The SDK's `ApiBase` classes name every RPC with its request class and streaming shape; we reuse
that (never hand-written protocol code) and route each RPC to a method of the same name on our
implementation, serializing responses with `bytes(msg)` (a response already given as bytes, made
the same way, is sent as it is). The hot-path RPCs (`codec.METHODS`) encode and decode the same
messages natively (pachtray.pfs.codec).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from pachtray.pfs import codec

log = logging.getLogger("pachtray.local")


class RpcFailure(Exception):
    """An error the client sees as a gRPC status (code + message)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.NOT_FOUND, message)


def already_exists(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.ALREADY_EXISTS, message)


def invalid(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message)


def precondition(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, message)


def unknown(message: str) -> RpcFailure:
    """pachd's plain (un-coded) errors reach clients as UNKNOWN."""
    return RpcFailure(grpc.StatusCode.UNKNOWN, message)


def _abort(context: grpc.ServicerContext, exc: Exception, method: str):
    if isinstance(exc, RpcFailure):
        context.abort(exc.code, exc.message)
    log.exception("internal error in %s", method)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {exc}")


def _serialize(msg) -> bytes:
    """A message, or bytes an implementation already encoded with the SDK's class (kept listings)."""
    return msg if isinstance(msg, bytes) else bytes(msg)


def _serialize_natively(msg) -> bytes:
    return msg if isinstance(msg, bytes) else codec.serialize(msg)


def _wrap(fn: Callable, method: str, streaming_response: bool, before: Callable | None):
    if streaming_response:
        def stream_handler(request, context):
            try:
                if before:
                    before(method, context)
                yield from fn(request, context)
            except Exception as exc:  # noqa: BLE001 - mapped to a gRPC status
                _abort(context, exc, method)
        return stream_handler

    def unary_handler(request, context):
        try:
            if before:
                before(method, context)
            return fn(request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a gRPC status
            _abort(context, exc, method)
    return unary_handler


def _unimplemented(method: str) -> Callable:
    def fn(request, context):
        raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not supported by the Pachtray local server")
    return fn


def generic_handler(base_cls: type, impl: object, before: Callable | None = None) -> grpc.GenericRpcHandler:
    """Route every RPC of the SDK service ``base_cls`` to ``impl.<RpcName>(request, context)``.

    ``before(method, context)`` runs first (authentication); RPCs ``impl`` lacks answer UNIMPLEMENTED.
    """
    service = base_cls.__proto_path__
    handlers = {}
    for name, spec in base_cls().__rpc_methods__.items():
        method = f"/{service}/{name}"
        fn = getattr(impl, name, None) or _unimplemented(method)
        wrapped = _wrap(fn, method, spec.response_streaming, before)
        deser = codec.deserializer_for(method, spec.request_deserializer)
        ser = _serialize_natively if codec.serializer_for(method, bytes) is codec.serialize else _serialize
        if spec.request_streaming and spec.response_streaming:
            h = grpc.stream_stream_rpc_method_handler(wrapped, deser, ser)
        elif spec.request_streaming:
            h = grpc.stream_unary_rpc_method_handler(wrapped, deser, ser)
        elif spec.response_streaming:
            h = grpc.unary_stream_rpc_method_handler(wrapped, deser, ser)
        else:
            h = grpc.unary_unary_rpc_method_handler(wrapped, deser, ser)
        handlers[name] = h
    return grpc.method_handlers_generic_handler(service, handlers)

