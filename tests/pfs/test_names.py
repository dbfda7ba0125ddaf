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


def test_each_mount_name_problem_is_said_and_long_names_are_fitted():
    assert names.mount_name_problem("a\\b") == "a mount name must not contain '\\'"
    assert names.mount_name_problem("é" * 128) == "a mount name must not be longer than 255 bytes (it has 256)"
    assert names.mount_name_problem("\ud800") == "a mount name must be UTF-8 text (it has a lone surrogate)"
    assert names.mount_name_problem("ok") is None
    fitted = names.fit_name("é" * 200, "_1a2b3c4")  # 247 bytes of room: a character is never cut in half
    assert len(fitted.encode()) == 254 and fitted.endswith("é_1a2b3c4") and names.is_mount_name(fitted)
    long_a, long_b = "default_" + "r" * 255, "default_" + "r" * 254 + "s"
    assert names.digest_fit("short") == "short"
    assert names.digest_fit(long_a) != names.digest_fit(long_b)
    assert all(len(names.digest_fit(n).encode()) == 255 for n in (long_a, long_b))
    assert names.quoted("x" * 300).endswith("(300 characters)") and len(names.quoted("x" * 300)) < 100


def test_a_reproduce_suggestion_for_a_255_byte_name_is_a_mount_name():
    from pachtray.repro.reproduce import _free_name

    base = names.fit_name("n" * 255, "_0123abcd")
    taken = {base}
    suggestion = _free_name(base, taken)
    assert names.is_mount_name(suggestion) and suggestion not in taken and suggestion.endswith("_2")
