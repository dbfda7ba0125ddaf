"""Whether a pachd answers: its gRPC health service on a fresh channel (no reconnect backoff)."""

from __future__ import annotations

import grpc

from pachtray.pfs.client import Address

PROBE_TIMEOUT = 2.0


def probe(address: Address, root_certs: bytes | None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether pachd answers its gRPC health service within ``timeout``."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if root_certs is not None or address.tls:
        channel = grpc.secure_channel(address.target, grpc.ssl_channel_credentials(root_certificates=root_certs))
    else:
        channel = grpc.insecure_channel(address.target)
    try:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return resp.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        channel.close()
