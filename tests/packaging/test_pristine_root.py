"""The pieces of pristine_root.py that need no root or network: reading apt sources in both formats,
picking Debian 12's, and the Depends closure the pristine test compares apt's work with."""

from __future__ import annotations

import pytest

from pristine_root import (debian_sources, depends_closure, parse_deb822, parse_one_line,
                           parse_relations, read_sources, release_source, render_sources)

DEB822 = """\
Types: deb deb-src
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://vendor.example/node_20.x
Suites: nodistro
Components: main

Enabled: no
Types: deb
URIs: http://old.example/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# a comment
deb [arch=amd64 signed-by=/etc/apt/keyrings/x.gpg] http://mirror.example/debian bookworm main non-free
deb-src http://mirror.example/debian bookworm main
deb http://mirror.example/debian bookworm-backports main
deb https://cloud.example/apt cloud-sdk-bookworm main
"""


def test_reads_both_formats_and_keeps_debian_12_binary_entries(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(ONE_LINE)
    (tmp_path / "sources.list.d/debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d/vendor.list.disabled").write_text("deb http://ignored.example/ bookworm main\n")
    sources = debian_sources(read_sources(tmp_path))
    assert [(s.uris, s.suites) for s in sources] == [
        (("http://mirror.example/debian",), ("bookworm",)),
        (("http://mirror.example/debian",), ("bookworm", "bookworm-updates")),
        (("http://mirror.example/debian-security",), ("bookworm-security",)),
    ]
    assert sources[0].option("signed-by") == "/etc/apt/keyrings/x.gpg" and sources[0].types == ("deb",)
    assert release_source(sources) is sources[0]


def test_rendered_sources_read_back_the_same():
    sources = debian_sources(parse_deb822(DEB822) + parse_one_line(ONE_LINE))
    assert parse_deb822(render_sources(sources)) == sources
    assert "Architectures: amd64\n" in render_sources(sources)  # one-line `arch=` under its deb822 name


def test_relations_drop_versions_and_architectures():
    assert parse_relations("libc6 (>= 2.31), fuse3 | fuse, python3:any,\n libx11-6 [amd64]") == [
        ["libc6"], ["fuse3", "fuse"], ["python3"], ["libx11-6"]]


AVAILABLE = {
    "app": {"Depends": "liba, libgl1 | libgl-virtual, mail-transport-agent", "Pre-Depends": "", "Provides": ""},
    "liba": {"Depends": "libc6 (>= 2.36), libb", "Pre-Depends": "", "Provides": ""},
    "libb": {"Depends": "", "Pre-Depends": "dpkg", "Provides": ""},
    "libgl1": {"Depends": "libglx0", "Pre-Depends": "", "Provides": ""},
    "libglx0": {"Depends": "", "Pre-Depends": "", "Provides": "libgl-virtual"},
    "exim4": {"Depends": "", "Pre-Depends": "", "Provides": "mail-transport-agent"},
    "postfix": {"Depends": "", "Pre-Depends": "", "Provides": "mail-transport-agent"},
    "libc6": {"Depends": "", "Pre-Depends": "", "Provides": ""},
    "dpkg": {"Depends": "", "Pre-Depends": "", "Provides": ""},
}


def test_closure_adds_what_is_missing_recursively():
    installed = {"libc6": "", "dpkg": ""}
    assert depends_closure(AVAILABLE["app"]["Depends"], AVAILABLE, installed) == {
        "liba", "libb", "libgl1", "libglx0", "exim4"}  # a virtual package: its first provider


def test_closure_counts_what_is_installed_or_provided():
    installed = {"libc6": "", "dpkg": "", "postfix": "mail-transport-agent", "libglx0": "libgl-virtual"}
    assert depends_closure(AVAILABLE["app"]["Depends"], AVAILABLE, installed) == {"liba", "libb"}


def test_closure_settles_plain_clauses_before_choices():
    """`libgl1 | libgl-virtual` is already met once libglx0, which something else needs anyway, is in."""
    available = dict(AVAILABLE, app={"Depends": "libgl1 | libgl-virtual, libglx0", "Pre-Depends": "", "Provides": ""})
    assert depends_closure(available["app"]["Depends"], available, {}) == {"libglx0"}


def test_closure_says_what_nothing_satisfies():
    with pytest.raises(LookupError, match="no-such-lib"):
        depends_closure("no-such-lib | nor-this", AVAILABLE, {})
