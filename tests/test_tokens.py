"""Tokens: which one a cluster gets, where they are kept, redaction, and a locked keychain told
apart from having no token (fast: no server)."""

from __future__ import annotations

import json
import logging

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked

from pachtray import config, tokens
from pachtray.daemon.connection import Connection
from pachtray.pfs.client import parse_address

pytestmark = pytest.mark.fast


class _Keychain(KeyringBackend):
    priority = 1

    def __init__(self, locked: bool = False):
        super().__init__()
        self.locked, self.data = locked, {}

    def get_password(self, service, username):
        if self.locked:
            raise KeyringLocked("Failed to unlock the collection!")
        return self.data.get((service, username))

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def delete_password(self, service, username):
        self.data.pop((service, username), None)


@pytest.fixture
def keychain():
    before = keyring.get_keyring()
    kc = _Keychain()
    keyring.set_keyring(kc)
    yield kc
    keyring.set_keyring(before)


def test_the_active_context_then_the_keychain_then_any_context():
    config.write_pachctl_config({"v2": {"active_context": "a", "contexts": {
        "a": {"pachd_address": "localhost:30650", "session_token": "active-token"},
        "b": {"pachd_address": "grpc://other:1", "session_token": "other-token"}}}})
    assert tokens.for_address(parse_address("grpc://localhost:30650")) == "active-token"
    assert tokens.for_address(parse_address("other:1")) == "other-token"  # any context for that address
    assert tokens.for_address(parse_address("grpc://third:2")) is None


def test_a_locked_keychain_is_a_typed_error_not_a_logout(keychain):
    address = parse_address("grpc://cluster:1")
    keychain.data[(tokens.SERVICE, address.url)] = "kept"
    assert tokens.for_address(address) == "kept"
    keychain.locked = True
    with pytest.raises(tokens.KeychainLocked) as e:
        tokens.for_address(address)
    assert e.value.title == "Keychain locked" and "KeyringLocked" in e.value.message
    assert "unlock the keychain" in e.value.message
    # A context holding a token for that cluster still answers: the keychain is not needed then.
    config.write_pachctl_config({"v2": {"active_context": "", "contexts": {
        "c": {"pachd_address": "grpc://cluster:1", "session_token": "from-context"}}}})
    assert tokens.for_address(address) == "from-context"


def test_the_daemon_notes_a_locked_keychain_for_the_user(keychain, tmp_path):
    import threading

    keychain.locked = True
    conn = Connection(settings=config.Settings(), data_dir=tmp_path, mode="daemon", local_port=1,
                      stopping=threading.Event())
    assert conn.token_for(parse_address("grpc://cluster:1")) is None
    assert conn.token_problem.startswith("cannot read the login token for grpc://cluster:1 from the keychain")
    keychain.locked = False
    assert conn.token_for(parse_address("grpc://cluster:1")) is None and conn.token_problem == ""


def test_tokens_fall_back_to_the_pachctl_config_without_a_keychain():
    # conftest selects keyring's null backend: no usable keychain.
    assert tokens.storage() == f"file ({config.pachctl_config_path()})"
    where = tokens.save("grpc://h:1", "tok-123")
    assert where.startswith("file (")
    assert config.read_pachctl_config()["v2"]["contexts"]["mount-server"]["session_token"] == "tok-123"
    tokens.forget("grpc://h:1")
    assert "session_token" not in json.dumps(config.read_pachctl_config())


def test_tokens_are_redacted_from_log_records(caplog):
    tokens.remember("sekrit-token-value")
    logger = logging.getLogger("pachtray.test")
    logger.addFilter(tokens.RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="pachtray.test"):
            logger.info("calling with %s", "sekrit-token-value")
    finally:
        logger.filters.clear()
    assert "sekrit-token-value" not in caplog.text and "<redacted>" in caplog.text
    assert tokens.redact("x sekrit-token-value y") == "x <redacted> y"
