"""config.py: the shared pachctl config is edited in place; settings validate and persist."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import stale_fuse_mount

from pachtray import config


def _pach_config_path():
    return config.pachctl_config_path()


def test_pachctl_config_path_follows_pach_config(tmp_path, monkeypatch):
    monkeypatch.setenv("PACH_CONFIG", str(tmp_path / "c.json"))
    assert config.pachctl_config_path() == tmp_path / "c.json"
    monkeypatch.delenv("PACH_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.pachctl_config_path() == tmp_path / ".pachyderm" / "config.json"


def test_missing_config_reads_as_a_skeleton_with_no_active_context():
    cfg = config.read_pachctl_config()
    assert cfg["v2"]["contexts"] == {} and cfg["v2"]["active_context"] == ""
    assert config.active_context(cfg) is None


def test_record_context_keeps_unknown_fields_and_other_contexts():
    path = _pach_config_path()
    path.write_text(json.dumps({
        "user_id": "u1", "extra_top": {"x": 1},
        "v2": {"active_context": "prod", "metrics": True,
               "contexts": {"prod": {"pachd_address": "grpcs://prod:443", "session_token": "s3cret", "cluster_name": "k"}}},
    }))
    config.record_context("grpc://localhost:30650", server_cas="Q0E=")
    cfg = json.loads(path.read_text())
    assert cfg["user_id"] == "u1" and cfg["extra_top"] == {"x": 1} and cfg["v2"]["metrics"] is True
    assert cfg["v2"]["contexts"]["prod"]["session_token"] == "s3cret"
    assert cfg["v2"]["active_context"] == "mount-server"
    assert cfg["v2"]["contexts"]["mount-server"] == {"pachd_address": "grpc://localhost:30650", "server_cas": "Q0E="}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert config.active_context()["pachd_address"] == "grpc://localhost:30650"


def test_record_context_keeps_the_token_only_for_the_same_address():
    config.record_context("grpc://a:1")
    config.set_context_token("grpc://a:1", "tok")
    config.record_context("grpc://a:1")
    assert config.active_context()["session_token"] == "tok"
    config.record_context("grpc://b:2")
    assert "session_token" not in config.active_context()


def test_set_context_token_creates_removes_and_touches_only_matching_contexts():
    config.set_context_token("grpc://c:3", "t1")
    cfg = config.read_pachctl_config()
    assert cfg["v2"]["contexts"]["mount-server"] == {"pachd_address": "grpc://c:3", "session_token": "t1"}
    cfg["v2"]["contexts"]["other"] = {"pachd_address": "grpc://d:4", "session_token": "keep"}
    config.write_pachctl_config(cfg)
    config.set_context_token("grpc://c:3", None)
    cfg = config.read_pachctl_config()
    assert "session_token" not in cfg["v2"]["contexts"]["mount-server"]
    assert cfg["v2"]["contexts"]["other"]["session_token"] == "keep"


def test_unreadable_pachctl_config_says_which_file():
    _pach_config_path().write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the pachctl config .*pachctl-config.json"):
        config.read_pachctl_config()


def test_data_dir_precedence(tmp_path, monkeypatch):
    assert config.data_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("PACHTRAY_DATA_DIR", str(tmp_path / "env"))
    assert config.data_dir() == tmp_path / "env"
    monkeypatch.delenv("PACHTRAY_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert config.data_dir() == tmp_path / "share" / "pachtray"


def test_settings_defaults_roundtrip_and_location():
    s = config.Settings.load()
    assert (s.cluster_address, s.api_port, s.sock_path, s.restore_mounts) == ("", 9002, "/tmp/pfs.sock", True)
    assert s.allowed_origins == ["http://localhost:8888", "http://127.0.0.1:8888"]
    s.cluster_address = "grpc://example:30650"
    s.allowed_origins = ["http://localhost:9999"]
    s.save()
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "pachtray" / "settings.json"
    assert config.settings_path() == expected and expected.is_file()
    loaded = config.Settings.load()
    assert loaded == s


def test_settings_ignore_unknown_keys_and_wrongly_typed_values():
    config.settings_path().parent.mkdir(parents=True)
    config.settings_path().write_text(json.dumps({"api_port": "9003", "restore_mounts": False, "future": 1,
                                                  "cache_size_mb": True}))
    s = config.Settings.load()
    assert s.api_port == 9002 and s.restore_mounts is False and s.cache_size_mb == 2048


def test_settings_errors_name_each_bad_field(tmp_path):
    s = config.Settings(cluster_address="ftp://x", tls_ca_file=str(tmp_path / "none.pem"), mount_dir="relative",
                        api_port=70000, sock_path="rel.sock", cache_size_mb=1, local_port=0,
                        allowed_origins=["http://ok:1", "not an origin"], jupyter_path=str(tmp_path / "nojup"),
                        token_storage="clipboard")
    errors = s.errors()
    assert set(errors) == {"cluster_address", "tls_ca_file", "mount_dir", "api_port", "sock_path", "cache_size_mb",
                           "allowed_origins", "jupyter_path", "token_storage", "local_port"}
    assert errors["token_storage"] == "must be one of auto, keyring, file, session"
    assert errors["cluster_address"] == "either empty or poorly formatted cluster endpoint"
    assert "'not an origin'" in errors["allowed_origins"]
    with pytest.raises(ValueError, match="api_port"):
        s.save()
    assert config.Settings().errors() == {}
    assert config.Settings(api_port=30650).errors() == {"local_port": "must differ from the API port"}


def test_default_mount_dir_is_absolute():
    assert os.path.isabs(config.default_mount_dir())


def test_default_mount_dir_keeps_a_stale_fuse_mount_for_the_daemon_to_clean(tmp_path):
    """After a crash /pfs can be a dead FUSE mount (every stat says ENOTCONN): it is still the
    default, not an error that stops the daemon from starting (the daemon cleans it at start)."""
    candidate = tmp_path / "pfs"
    with stale_fuse_mount(candidate):
        assert config.default_mount_dir(candidate) == str(candidate)
        assert config.Settings(mount_dir="").effective_mount_dir()  # the real /pfs, whatever its state


def test_default_mount_dir_is_the_candidate_when_it_can_be_created(tmp_path):
    assert config.default_mount_dir(tmp_path / "new" / "pfs") == str(tmp_path / "new" / "pfs")
    assert config.default_mount_dir(tmp_path) == str(tmp_path)
