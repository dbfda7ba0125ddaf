"""The naming rules (pachtray.pfs.names), once for the API, the GUI and lock files."""

from __future__ import annotations

import pytest

from pachtray.pfs import names

pytestmark = pytest.mark.fast


def test_names_commit_ids_and_mount_names():
    assert names.is_name("images_2-x") and not names.is_name("a b") and not names.is_name("") and not names.is_name(3)
    assert names.is_commit_id("0123456789abcdef0123456789abcdef")
    assert not names.is_commit_id("0123456789ABCDEF0123456789ABCDEF") and not names.is_commit_id("abc")
    assert names.is_mount_name("data") and names.is_mount_name("n" * 255)
    for bad in ("", ".", "..", "a/b", "a\\b", "a\0b", "n" * 256, "é" * 128, None):
        assert not names.is_mount_name(bad), bad
    r = names.commit("p", "r", "c" * 32)
    assert (r.repo.project.name, r.repo.name, r.repo.type, r.id) == ("p", "r", "user", "c" * 32)


def test_a_trailing_newline_is_not_part_of_a_valid_name():
    """Python's `$` also matches before a final newline; pachd's (Go's) does not."""
    assert not names.is_name("images\n")
    assert not names.is_commit_id("0123456789abcdef0123456789abcdef\n")
