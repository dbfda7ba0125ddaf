"""Pachyderm's glob syntax (pachtray.pfs.glob), as pachd's GlobFile matches paths."""

from __future__ import annotations

import pytest

from pachtray.pfs.glob import GlobError, clean_path, literal_prefix, matcher

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("pattern, yes, no", [
    ("/*", ["/a", "/dir/"], ["/a/b", "/"]),
    ("/**", ["/a", "/a/b/c"], []),
    ("/a/*.csv", ["/a/x.csv"], ["/a/b/x.csv", "/a/x.txt"]),
    ("/**.csv", ["/x.csv", "/a/b/x.csv"], ["/x.txt"]),
    ("/?", ["/a"], ["/ab", "//"]),
    ("/[ab]*", ["/a1", "/b"], ["/c"]),
    ("/[!ab]*", ["/c"], ["/a", "/b"]),
    ("/[a-c]", ["/b"], ["/d"]),
    ("/{x,y/z}", ["/x", "/y/z"], ["/y"]),
    ("/{a,{b,c}}d", ["/ad", "/cd"], ["/d"]),
    ("/@(foo|bar).txt", ["/foo.txt", "/bar.txt"], ["/baz.txt"]),
    ("/+(ab).txt", ["/abab.txt"], ["/.txt"]),
    ("/!(foo).txt", ["/bar.txt"], ["/foo.txt"]),
    ("/a\\*b", ["/a*b"], ["/axb"]),
    ("/", ["/"], ["/a"]),
])
def test_matches(pattern, yes, no):
    match = matcher(pattern)
    for p in yes:
        assert match(p), (pattern, p)
    for p in no:
        assert not match(p), (pattern, p)


def test_helpers():
    assert clean_path("a//b/") == "/a/b"
    assert clean_path("") == "/"
    assert literal_prefix("/data/2024-*/x") == "/data/2024-"
    assert literal_prefix("/plain/path") == "/plain/path"


@pytest.mark.parametrize("bad", ["/[abc", "/{a,b", "/@(a|b"])
def test_malformed(bad):
    with pytest.raises(GlobError):
        matcher(bad)
