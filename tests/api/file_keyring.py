"""A keyring backend for tests: a JSON file at $PACHTRAY_TEST_KEYRING stands in for the OS keychain.

The daemon loads it with PYTHON_KEYRING_BACKEND=file_keyring.FileKeyring and this folder on PYTHONPATH;
PACHTRAY_TEST_KEYRING_LOCKED=1 makes it answer as a locked keychain.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 1

    @property
    def path(self) -> Path:
        return Path(os.environ["PACHTRAY_TEST_KEYRING"])

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        if os.environ.get("PACHTRAY_TEST_KEYRING_LOCKED"):  # as a locked login keychain answers
            raise KeyringLocked("Failed to unlock the collection!")
        return self._load().get(f"{service}|{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}|{username}"] = password
        self.path.write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}|{username}", None) is None:
            raise PasswordDeleteError(f"no password for {service}/{username}")
        self.path.write_text(json.dumps(data))
