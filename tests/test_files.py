"""Atomic writes (pachtray.files): the old content or the new, never half; born with its mode."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pachtray.files import write_atomic, write_json

pytestmark = pytest.mark.fast


def test_replaces_whole_with_the_mode_asked_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "settings.json"
    write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and path.read_text().endswith("\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_atomic(path, "x", mode=0o644, durable=True)
    assert path.read_text() == "x" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["settings.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    path = tmp_path / "lock.json"
    write_json(path, {"old": True})
    with pytest.raises(TypeError):
        write_json(path, {"not json": object()})
    assert json.loads(path.read_text()) == {"old": True} and os.listdir(tmp_path) == ["lock.json"]
