"""Session tokens: kept in the OS keychain per cluster address, never in logs or error messages.

Where no keychain is usable (headless Linux: keyring's fail/null backends) tokens fall back to the
pachctl config file, as pachctl itself keeps them; `storage()` says which one is in use so the
API and GUI can tell the user.
"""

from __future__ import annotations

import logging
import threading

from pachtray import config
from pachtray.errors import PachtrayError

SERVICE = "pachtray"
log = logging.getLogger(__name__)

_secrets: set[str] = set()
_lock = threading.Lock()


def remember(token: str | None) -> None:
    """Register a token so that redact() hides it wherever it would appear."""
    if token:
        with _lock:
            _secrets.add(token)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that hides every remembered token in the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class KeychainLocked(PachtrayError):
    """The keychain would not give the token (locked, or access refused): the user must unlock it;
    not the same as being logged out."""

    def __init__(self, address: str, cause: BaseException):
        super().__init__(f"cannot read the login token for {address} from the keychain ({type(cause).__name__}: "
                         f"{cause}); unlock the keychain, then restart Pachtray or log in again",
                         title="Keychain locked")
        self.address = address


def _keyring():
    """The keyring module when a real backend is usable, else None."""
    import keyring
    from keyring.backends import fail, null

    backend = keyring.get_keyring()
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return None
    if getattr(backend, "backends", None) == []:  # a chainer with nothing behind it
        return None
    return keyring


def storage(policy: str = "auto") -> str:
    """Where tokens go under ``policy`` (Settings.token_storage): `keyring (<backend>)`,
    `file (<pachctl config path>)` or `session (...)`."""
    kr = _keyring() if policy in ("auto", "keyring") else None
    if kr is not None:
        return f"keyring ({type(kr.get_keyring()).__module__})"
    if policy == "keyring":
        return "session (no usable keychain on this machine; log in again after a restart)"
    if policy == "session":
        return "session (kept in memory only; log in again after a restart)"
    return f"file ({config.pachctl_config_path()})"


def load(address: str, policy: str = "auto") -> str | None:
    """The keychain's token for a cluster address (None when none, no keychain, or not wanted);
    KeychainLocked when the keychain is there but will not answer."""
    kr = _keyring() if policy in ("auto", "keyring") else None
    if kr is None:
        return None
    try:
        token = kr.get_password(SERVICE, address)
    except Exception as e:  # noqa: BLE001 - every backend fails its own way (KeyringLocked, D-Bus errors, ...)
        raise KeychainLocked(address, e) from e
    remember(token)
    return token


def same_address(text: object, address) -> bool:
    """Whether a pachctl context's `pachd_address` text names ``address`` (a pfs.client.Address)."""
    from pachtray.pfs.client import parse_address

    try:
        return isinstance(text, str) and parse_address(text) == address
    except ValueError:
        return False


def for_address(address, policy: str = "auto") -> str | None:
    """The token to use for a cluster (a pfs.client.Address): the active pachctl context's when it
    points there, else the keychain's, else any context's for that address. KeychainLocked (after
    looking at the contexts) when only a locked keychain could have one."""
    try:
        cfg = config.read_pachctl_config()
    except ValueError as e:
        log.warning("%s", e)
        cfg = {"v2": {"active_context": "", "contexts": {}}}
    contexts = cfg["v2"]["contexts"]
    active = contexts.get(cfg["v2"].get("active_context") or "")
    candidates = ([active] if isinstance(active, dict) else []) + [None] + \
        [c for c in contexts.values() if isinstance(c, dict)]
    locked = None
    for ctx in candidates:
        if ctx is None:
            try:
                token = load(address.url, policy)
            except KeychainLocked as e:
                locked, token = e, None
        elif same_address(ctx.get("pachd_address"), address):
            token = ctx.get("session_token")
        else:
            continue
        if token:
            remember(token)
            return token
    if locked is not None:
        raise locked
    return None


def save(address: str, token: str, policy: str = "auto") -> str:
    """Keep ``token`` for ``address`` as ``policy`` says; returns where it went (see storage())."""
    remember(token)
    where = storage(policy)
    if where.startswith("session"):
        return where
    kr = _keyring() if where.startswith("keyring") else None
    if kr is not None:
        try:
            kr.set_password(SERVICE, address, token)
            return where
        except Exception as e:  # noqa: BLE001 - fall back to the file rather than lose the login
            if policy == "keyring":
                log.warning("cannot store the token for %s in the keychain (%s); keeping it for this session", address, e)
                return "session (the keychain refused it; log in again after a restart)"
            log.warning("cannot store the token for %s in the keychain (%s); using the pachctl config", address, e)
    config.set_context_token(address, token)
    return f"file ({config.pachctl_config_path()})"


def forget(address: str) -> None:
    """Remove the token for ``address`` from the keychain and the pachctl config."""
    kr = _keyring()
    if kr is not None:
        try:
            kr.delete_password(SERVICE, address)
        except Exception as e:  # noqa: BLE001 - PasswordDeleteError when there was none
            log.debug("no keychain token to delete for %s: %s", address, e)
    config.set_context_token(address, None)
