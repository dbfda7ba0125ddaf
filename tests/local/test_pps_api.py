"""The embedded server's PPS answers: a cluster that has no pipelines (it runs none)."""

from __future__ import annotations

import grpc
import pytest
from pachyderm_sdk.api import pps


def test_pipelines_that_do_not_exist_are_answered_as_pachd_does(client, unique_name):
    pipeline = pps.Pipeline(name=unique_name("pl"))
    client.pps.delete_pipeline(pipeline=pipeline, force=True)  # nothing to delete: succeeds, as pachd 2.8
    assert list(client.pps.list_pipeline()) == []
    for call in (lambda: client.pps.inspect_pipeline(pipeline=pipeline),
                 lambda: client.pps.delete_pipeline(pipeline=pipeline, must_exist=True)):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and f"default/{pipeline.name} not found" in e.value.details()


def test_running_pipelines_is_not_supported(client, unique_name):
    with pytest.raises(grpc.RpcError) as e:
        client.pps.create_pipeline(pipeline=pps.Pipeline(name=unique_name("pl")))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
