"""Configuration: the pachctl config file, the app's settings, and where state lives.

The pachctl config is shared with pachctl and jupyterlab-pachyderm, so it is edited in place:
fields we do not know are kept, and it is written atomically with mode 0600 (it may hold tokens).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pachtray.files import write_json

MOUNT_SERVER_CONTEXT = "mount-server"
DEFAULT_ALLOWED_ORIGINS = ("http://localhost:8888", "http://127.0.0.1:8888")


# ---- pachctl config ---------------------------------------------------------------------------

def pachctl_config_path() -> Path:
    return Path(os.environ.get("PACH_CONFIG") or Path.home() / ".pachyderm" / "config.json").expanduser()


def read_pachctl_config() -> dict:
    """The whole pachctl config; a fresh skeleton when the file does not exist."""
    path = pachctl_config_path()
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        cfg = {}
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the pachctl config {path}: {e}") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"cannot read the pachctl config {path}: not a JSON object")
    cfg.setdefault("user_id", uuid.uuid4().hex)
    v2 = cfg.setdefault("v2", {})
    v2.setdefault("active_context", "")
    if not isinstance(v2.get("contexts"), dict):
        v2["contexts"] = {}
    return cfg


def write_pachctl_config(cfg: dict) -> None:
    write_json(pachctl_config_path(), cfg)


def active_context(cfg: dict | None = None) -> dict | None:
    """The active context's dict (pachd_address, server_cas, session_token, ...), or None."""
    cfg = read_pachctl_config() if cfg is None else cfg
    name = cfg["v2"].get("active_context") or ""
    ctx = cfg["v2"]["contexts"].get(name)
    return ctx if isinstance(ctx, dict) and ctx.get("pachd_address") else None


def record_context(pachd_address: str, server_cas: str = "", name: str = MOUNT_SERVER_CONTEXT) -> dict:
    """Make ``name`` the active context pointing at ``pachd_address`` (what the reference's PUT /config does).

    The context is replaced as the reference does, except that a session token stays when the
    address did not change.
    """
    cfg = read_pachctl_config()
    old = cfg["v2"]["contexts"].get(name) or {}
    ctx = {"pachd_address": pachd_address}
    if server_cas:
        ctx["server_cas"] = server_cas
    if old.get("pachd_address") == pachd_address and old.get("session_token"):
        ctx["session_token"] = old["session_token"]
    cfg["v2"]["contexts"][name] = ctx
    cfg["v2"]["active_context"] = name
    write_pachctl_config(cfg)
    return cfg


def set_context_token(pachd_address: str, token: str | None) -> dict:
    """Store (or with None, remove) the session token of every context pointing at ``pachd_address``.

    When no context points there, a `mount-server` context is created for it.
    """
    cfg = read_pachctl_config()
    contexts = [c for c in cfg["v2"]["contexts"].values() if isinstance(c, dict) and c.get("pachd_address") == pachd_address]
    if not contexts and token:
        contexts = [cfg["v2"]["contexts"].setdefault(MOUNT_SERVER_CONTEXT, {"pachd_address": pachd_address})]
        cfg["v2"]["contexts"][MOUNT_SERVER_CONTEXT]["pachd_address"] = pachd_address
    for ctx in contexts:
        if token:
            ctx["session_token"] = token
        else:
            ctx.pop("session_token", None)
    write_pachctl_config(cfg)
    return cfg


# ---- app settings and dirs --------------------------------------------------------------------

def data_dir(override: str | os.PathLike | None = None) -> Path:
    """`--data-dir`, else $PACHTRAY_DATA_DIR, else $XDG_DATA_HOME/pachtray (~/.local/share/pachtray)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("PACHTRAY_DATA_DIR"):
        return Path(os.environ["PACHTRAY_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pachtray"


def settings_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "pachtray" / "settings.json"


def default_mount_dir(candidate: Path = Path("/pfs")) -> str:
    """/pfs (what notebooks and pipelines expect) when usable or creatable, else ~/pfs.

    A FUSE mount left by a killed process answers every stat with ENOTCONN; that is still our
    place (the daemon cleans such a mount at start), so it must not break the default.
    """
    try:
        exists = candidate.exists()
    except OSError as e:
        if e.errno == errno.ENOTCONN or os.path.ismount(candidate):
            return str(candidate)
        exists = True
    if exists:
        usable = os.access(candidate, os.W_OK) or os.path.ismount(candidate)
    else:
        parent = candidate.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        usable = os.access(parent, os.W_OK)
    return str(candidate) if usable else str(Path.home() / "pfs")


TOKEN_STORAGES = ("auto", "keyring", "file", "session")


@dataclass
class Settings:
    """The app's own settings (the GUI edits them; the daemon reads them at start)."""

    cluster_address: str = ""  # "" = the pachctl active context if any, else the embedded local server
    tls_ca_file: str = ""
    mount_dir: str = ""  # "" = default_mount_dir()
    api_port: int = 9002
    sock_path: str = "/tmp/pfs.sock"
    local_port: int = 30650  # the embedded local server's (pachctl and the SDK reach it there)
    start_at_login: bool = False
    cache_size_mb: int = 2048
    restore_mounts: bool = True
    allowed_origins: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWED_ORIGINS))
    jupyter_path: str = ""  # "" = Pachtray's own JupyterLab; else the `jupyter` program of the user's own
    stop_jupyter_on_quit: bool = False  # quitting the tray app stops Pachtray's JupyterLab (and its kernels)
    # where login tokens are kept: "auto" (the OS keychain when one is usable, else the pachctl
    # config file), "keyring", "file" (the pachctl config), or "session" (memory only: log in again
    # after a restart) -- the choice for machines with no keychain, e.g. headless Linux
    token_storage: str = "auto"

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        """Settings from disk; missing or unknown keys fall back to defaults, invalid values too."""
        path = path or settings_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read settings {path}: {e}") from e
        if not isinstance(raw, dict):
            raise ValueError(f"cannot read settings {path}: not a JSON object")
        return cls.from_dict(raw)

    @classmethod
    def load_or_default(cls) -> tuple["Settings", str]:
        """(settings, "") from disk, or (the defaults, why the file could not be read): a command
        line tool starts with the defaults and says why, rather than not starting."""
        try:
            return cls.load(), ""
        except ValueError as e:
            return cls(), f"{e}; using default settings"

    @classmethod
    def from_dict(cls, raw: dict) -> "Settings":
        """Known keys only; a value of the wrong type keeps the default (checked by errors())."""
        defaults = cls()
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in raw:
                value = raw[f.name]
                expected = type(getattr(defaults, f.name))
                if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
                    values[f.name] = list(value) if expected is list else value
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path | None = None) -> None:
        errors = self.errors()
        if errors:
            raise ValueError("invalid settings: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
        write_json(path or settings_path(), self.to_dict())

    def effective_mount_dir(self) -> str:
        return self.mount_dir or default_mount_dir()

    def errors(self) -> dict[str, str]:
        """Field -> what is wrong with it (empty when everything is valid)."""
        from pachtray.pfs.client import parse_address

        errs: dict[str, str] = {}
        if self.cluster_address:
            try:
                parse_address(self.cluster_address)
            except ValueError as e:
                errs["cluster_address"] = str(e)
        if self.tls_ca_file and not Path(self.tls_ca_file).expanduser().is_file():
            errs["tls_ca_file"] = f"no such file: {self.tls_ca_file}"
        if self.mount_dir:
            p = Path(self.mount_dir).expanduser()
            if not p.is_absolute():
                errs["mount_dir"] = "must be an absolute path"
            elif p.exists() and not p.is_dir():
                errs["mount_dir"] = f"{p} exists and is not a folder"
        if not isinstance(self.api_port, int) or not 1 <= self.api_port <= 65535:
            errs["api_port"] = "must be a port number between 1 and 65535"
        if not isinstance(self.local_port, int) or not 1 <= self.local_port <= 65535:
            errs["local_port"] = "must be a port number between 1 and 65535"
        elif self.local_port == self.api_port and not self.cluster_address:  # (unused with a cluster)
            errs["local_port"] = "must differ from the API port"
        if self.sock_path and not Path(self.sock_path).is_absolute():
            errs["sock_path"] = "must be an absolute path (or empty for no socket)"
        if not isinstance(self.cache_size_mb, int) or self.cache_size_mb < 16:
            errs["cache_size_mb"] = "must be at least 16 MB"
        bad = [o for o in self.allowed_origins if not _is_origin(o)]
        if bad:
            errs["allowed_origins"] = f"not an origin (scheme://host[:port]): {', '.join(map(repr, bad))}"
        if self.jupyter_path and not Path(self.jupyter_path).expanduser().exists():
            errs["jupyter_path"] = f"no such file: {self.jupyter_path}"
        if self.token_storage not in TOKEN_STORAGES:
            errs["token_storage"] = f"must be one of {', '.join(TOKEN_STORAGES)}"
        return errs


def _is_origin(text: object) -> bool:
    from urllib.parse import urlsplit

    if not isinstance(text, str):
        return False
    try:
        u = urlsplit(text)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.hostname) and u.path in ("", "/") and not u.query
