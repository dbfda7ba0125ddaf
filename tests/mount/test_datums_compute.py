"""Datum computation: spec parsing and defaults, glob capture groups, and the datum sets of pfs,
cross, union, join and group inputs computed against the real embedded server."""

from __future__ import annotations

import pytest
from pachyderm_sdk.api import pfs

from pachtray.mount import datums


def put_files(client, repo: str, files: dict[str, bytes], branch: str = "master", project: str = "default"):
    """Create ``repo`` if needed and commit ``files`` to ``branch``; returns the commit id."""
    r = pfs.Repo(name=repo, type="user", project=pfs.Project(name=project))
    if not client.pfs.repo_exists(r):
        client.pfs.create_repo(repo=r)
    with client.pfs.commit(branch=pfs.Branch(repo=r, name=branch)) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)
    return c.id


def as_sets(ds: list) -> set[frozenset]:
    """A datum set as {frozenset of (input name, path)}: order-free, like pachd's."""
    return {frozenset((f.name, f.path) for f in d) for d in ds}


# --------------------------------------------------------------------------- spec parsing

def test_defaults_filled_as_the_reference():
    inp = datums.parse_spec({"input": {"cross": [
        {"pfs": {"repo": "a", "glob": "/*"}},
        {"pfs": {"repo": "b", "branch": "dev", "glob": "/", "project": "p"}},
        {"pfs": {"repo": "c", "glob": "/*", "name": "mine", "joinOn": "$1"}},
    ]}})
    assert datums.input_json(inp) == {"cross": [
        {"pfs": {"project": "default", "name": "default_a", "repo": "a", "branch": "master", "glob": "/*"}},
        {"pfs": {"project": "p", "name": "p_b_dev", "repo": "b", "branch": "dev", "glob": "/"}},
        {"pfs": {"project": "default", "name": "mine", "repo": "c", "branch": "master", "glob": "/*",
                 "join_on": "$1"}},
    ]}


@pytest.mark.parametrize("spec, message", [
    ({}, "datum input is not specified"),
    ([], "must be a JSON object"),
    ({"input": {"pfs": {"repo": "a", "glob": "/*", "commit": "0" * 32}}}, "cannot specify commit"),
    ({"input": {"pfs": {"glob": "/*"}}}, "input.pfs.repo is required"),
    ({"input": {"pfs": {"repo": "a"}}}, "input.pfs.glob is required"),
    ({"input": {"pfs": {"repo": 3, "glob": "/*"}}}, "input.pfs.repo must be a string"),
    ({"input": {"pfs": {"repo": "a", "glob": "/*", "outer_join": "yes"}}}, "outer_join must be a boolean"),
    ({"input": {"pfs": {"repo": "a", "glob": "/{x"}}}, "unclosed"),
    ({"input": {"pfs": {"repo": "a", "glob": "/*", "colour": 1}}}, "unknown field 'colour'"),
    ({"input": {"bogus": []}}, "unknown field 'bogus'"),
    ({"input": {}}, "exactly one of"),
    ({"input": {"pfs": {"repo": "a", "glob": "/*"}, "cross": [{"pfs": {"repo": "b", "glob": "/*"}}]}},
     "exactly one of"),
    ({"input": {"cross": {"pfs": {"repo": "a", "glob": "/*"}}}}, "input.cross must be a list"),
    ({"input": {"cron": {"name": "tick", "spec": "@every 1m"}}}, "cron inputs"),
    ({"input": {"union": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "a", "glob": "/"}}]}},
     "'default_a' is used twice"),
    ({"input": {"pfs": {"repo": "a", "glob": "/*", "name": "out"}}}, "cannot be a mount name"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(datums.SpecError, match=message.replace("(", r"\(").replace("{", r"\{")):
        datums.parse_spec(spec)


# --------------------------------------------------------------------------- capture groups

@pytest.mark.parametrize("glob, path, template, key", [
    ("/(*)_(*).txt", "/a_b.txt", "$2-$1", "b-a"),
    ("/(*).txt", "/x.txt", "${1}", "x"),
    ("/*/(*)", "/d/f", "$1", "f"),
    ("/@(a|b)/*(*).csv", "/b/q.csv", "$1:$2", "b:q"),
    ("/+(a|b)/x", "/abba/x", "$1", "abba"),
    ("/{a,b}/(*)", "/a/z", "$1", "z"),  # braces do not capture
    ("/*", "/f", "$1", ""),  # no group 1: Go expands it to ''
    ("/(*)", "/f", "$$1", "$1"),
    ("/(*)", "/f", "", ""),
    ("/(*).txt", "/other.csv", "$1", "/other.csv"),  # no match: the path itself
])
def test_join_keys_use_capture_groups_like_pachd(glob, path, template, key):
    assert datums._replace(datums._capture_regex(glob), path, template) == key


def f(name, path, key="", outer=False):
    return datums.DatumFile(name=name, project="default", repo=name, branch="master", commit="c" * 32,
                            path=path, join_on=key, group_by=key, outer_join=outer)


def test_join_keeps_outer_join_files_without_partner():
    a = [(f("A", "/1", "1"),), (f("A", "/2", "2", outer=True),), (f("A", "/3", "3"),)]
    b = [(f("B", "/x1", "1", outer=True),), (f("B", "/x4", "4", outer=True),), (f("B", "/y1", "1", outer=True),)]
    got = as_sets(datums._join([a, b]))
    assert got == {frozenset({("A", "/1"), ("B", "/x1")}), frozenset({("A", "/1"), ("B", "/y1")}),
                   frozenset({("A", "/2")}), frozenset({("B", "/x4")})}


def test_group_collects_every_file_with_the_key():
    a = [(f("A", "/1a", "1"),), (f("A", "/1b", "1"),), (f("A", "/2", "2"),)]
    b = [(f("B", "/b1", "1"),), (f("B", "/b3", "3"),)]
    assert datums._group([a, b]) == [
        (f("A", "/1a", "1"), f("A", "/1b", "1"), f("B", "/b1", "1")), (f("A", "/2", "2"),), (f("B", "/b3", "3"),)]


def test_datum_mounts_group_paths_by_input():
    d = (f("A", "/1"), f("B", "/x"), f("A", "/2"))
    assert datums.datum_mounts(d) == [
        {"name": "A", "project": "default", "repo": "A", "branch": "master", "commit": "c" * 32, "paths": ["/1", "/2"]},
        {"name": "B", "project": "default", "repo": "B", "branch": "master", "commit": "c" * 32, "paths": ["/x"]},
    ]


# --------------------------------------------------------------------------- against pachd

@pytest.fixture
def repos(client, unique_name):
    """Two repos: images (a1,a2,b1 + a dir), labels (a1,b1,c1) and a `dev` branch on labels."""
    images, labels = unique_name("img"), unique_name("lbl")
    head_i = put_files(client, images, {"/a_1.png": b"1", "/a_2.png": b"2", "/b_1.png": b"3", "/d/e.png": b"4"})
    head_l = put_files(client, labels, {"/1.txt": b"x", "/2.txt": b"y", "/7.txt": b"z"})
    put_files(client, labels, {"/only-dev.txt": b"d"}, branch="dev")
    return images, labels, head_i, head_l


def compute(client, spec):
    return datums.compute_datums(client, datums.parse_spec({"input": spec}))


def test_pfs_input_one_datum_per_match_pinned_to_head(client, repos):
    images, _, head, _ = repos
    got = compute(client, {"pfs": {"repo": images, "glob": "/*"}})
    name = f"default_{images}"
    assert as_sets(got) == {frozenset({(name, p)}) for p in ("/a_1.png", "/a_2.png", "/b_1.png", "/d")}
    assert {df.commit for d in got for df in d} == {head}
    assert {df.branch for d in got for df in d} == {"master"}
    whole = compute(client, {"pfs": {"repo": images, "glob": "/"}})
    assert as_sets(whole) == {frozenset({(name, "/")})}


def test_pfs_input_on_a_branch_and_empty_glob_match(client, repos):
    _, labels, _, _ = repos
    got = compute(client, {"pfs": {"repo": labels, "branch": "dev", "glob": "/only-*"}})
    assert as_sets(got) == {frozenset({(f"default_{labels}_dev", "/only-dev.txt")})}
    assert compute(client, {"pfs": {"repo": labels, "glob": "/nothing*"}}) == []


def test_cross_and_union(client, repos):
    images, labels, _, _ = repos
    a = {"pfs": {"repo": images, "glob": "/a_*", "name": "img"}}
    b = {"pfs": {"repo": labels, "glob": "/[12].txt", "name": "lbl"}}
    crossed = as_sets(compute(client, {"cross": [a, b]}))
    assert crossed == {frozenset({("img", i), ("lbl", l)}) for i in ("/a_1.png", "/a_2.png")
                       for l in ("/1.txt", "/2.txt")}
    united = compute(client, {"union": [a, b]})
    assert as_sets(united) == {frozenset({("img", "/a_1.png")}), frozenset({("img", "/a_2.png")}),
                               frozenset({("lbl", "/1.txt")}), frozenset({("lbl", "/2.txt")})}


def test_join_on_capture_groups_inner_and_outer(client, repos):
    images, labels, _, _ = repos
    img = {"pfs": {"repo": images, "glob": "/(*)_(*).png", "join_on": "$2", "name": "img"}}
    lbl = {"pfs": {"repo": labels, "glob": "/(*).txt", "join_on": "$1", "name": "lbl"}}
    inner = as_sets(compute(client, {"join": [img, lbl]}))
    assert inner == {frozenset({("img", "/a_1.png"), ("lbl", "/1.txt")}),
                     frozenset({("img", "/b_1.png"), ("lbl", "/1.txt")}),
                     frozenset({("img", "/a_2.png"), ("lbl", "/2.txt")})}
    lbl_outer = {"pfs": dict(lbl["pfs"], outer_join=True)}
    outer = as_sets(compute(client, {"join": [img, lbl_outer]}))
    assert outer == inner | {frozenset({("lbl", "/7.txt")})}


def test_group_by_capture_group(client, repos):
    images, labels, _, _ = repos
    img = {"pfs": {"repo": images, "glob": "/(*)_(*).png", "group_by": "$2", "name": "img"}}
    lbl = {"pfs": {"repo": labels, "glob": "/(*).txt", "group_by": "$1", "name": "lbl"}}
    got = as_sets(compute(client, {"group": [img, lbl]}))
    assert got == {frozenset({("img", "/a_1.png"), ("img", "/b_1.png"), ("lbl", "/1.txt")}),
                   frozenset({("img", "/a_2.png"), ("lbl", "/2.txt")}),
                   frozenset({("lbl", "/7.txt")})}


def test_missing_repo_or_branch_is_not_found(client, repos, unique_name):
    import grpc

    with pytest.raises(grpc.RpcError) as e:
        compute(client, {"pfs": {"repo": unique_name("nope"), "glob": "/*"}})
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        compute(client, {"pfs": {"repo": repos[0], "branch": "nobranch", "glob": "/*"}})
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_huge_cross_is_refused_before_building_it(client, repos, monkeypatch):
    images, labels, _, _ = repos
    monkeypatch.setattr(datums, "MAX_DATUMS", 5)
    spec = {"cross": [{"pfs": {"repo": images, "glob": "/*"}}, {"pfs": {"repo": labels, "glob": "/*"}}]}
    with pytest.raises(datums.SpecError, match="the cross produces 12 datums; datum mode mounts at most 5"):
        compute(client, spec)
