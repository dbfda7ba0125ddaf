"""Which cluster the daemon connects to at start, and the last cluster used kept as the daemon's
own state (settings.json stays the user's) — fast: no server is contacted."""

from __future__ import annotations

import threading

import pytest

from pachtray import config
from pachtray.daemon.connection import Connection, LastCluster
from pachtray.pfs.client import parse_address

pytestmark = pytest.mark.fast


def _conn(tmp_path, mode="daemon", **settings) -> Connection:
    return Connection(settings=config.Settings(**settings), data_dir=tmp_path, mode=mode, local_port=1,
                      stopping=threading.Event())


def test_the_last_cluster_counts_while_the_setting_it_overrode_is_unchanged(tmp_path):
    last = LastCluster(tmp_path)
    assert last.load("") is None
    last.save("grpc://other:1", "", "")
    assert last.load("") == ("grpc://other:1", "")
    assert last.load("grpc://chosen:2") is None  # the user chose another cluster since
    (tmp_path / "last-cluster.json").write_text("{not json")
    assert last.load("") is None


def test_start_order_flag_then_last_then_setting_then_context_then_local(tmp_path):
    assert _conn(tmp_path)._start_target(None) is None  # nothing: the embedded local server
    config.record_context("grpc://ctx:3")
    assert _conn(tmp_path)._start_target(None)[0] == parse_address("grpc://ctx:3")
    assert _conn(tmp_path, cluster_address="grpc://set:4")._start_target(None)[0] == parse_address("grpc://set:4")
    LastCluster(tmp_path).save("grpc://last:5", "", "grpc://set:4")
    assert _conn(tmp_path, cluster_address="grpc://set:4")._start_target(None)[0] == parse_address("grpc://last:5")
    assert _conn(tmp_path, cluster_address="grpc://new:6")._start_target(None)[0] == parse_address("grpc://new:6")
    assert _conn(tmp_path)._start_target("grpc://flag:7")[0] == parse_address("grpc://flag:7")
    LastCluster(tmp_path).save("", "", "")  # the embedded local server was chosen last
    assert _conn(tmp_path)._start_target(None) is None
    # The drop-in keeps no such state: the pachctl context, as the reference.
    assert _conn(tmp_path, mode="mount-server")._start_target(None)[0] == parse_address("grpc://ctx:3")
    assert not config.settings_path().exists()
