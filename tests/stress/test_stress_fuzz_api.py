"""Property-based fuzzing of every endpoint in /openapi.json with malformed bodies and parameters.

Properties: never a 5xx (except the few answers the reference itself gives as 500, listed below),
never a traceback in the body, the daemon stays healthy, and GET /mounts and GET /repos are the
same before and after. Runs derandomized, so a failure reproduces.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stress_helpers import create_repo, mount
from stress_helpers import no_leftover_mounts  # noqa: F401 - autouse: unmount leftovers

pytestmark = pytest.mark.slow

# GETs take no body, so fewer examples cover their parameters.
EXAMPLES = {"PUT": 25, "GET": 12, "shaped": 40}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
# Actions that change state by design whatever the body (they take none, or, as the reference's
# /datums/_mount, unmount everything before they read it); they are fuzzed separately, with nothing
# mounted, where they have nothing to change.
NO_INPUT_ACTIONS = {("PUT", "/_unmount_all"), ("PUT", "/auth/_logout"), ("PUT", "/datums/_mount")}
# Stops the daemon: an action without input, nothing to fuzz.
SKIPPED = {("PUT", "/pachtray/v1/_shutdown")}
# The reference answers these well-formed requests with 500, so Pachtray does too: acting on a
# mount that is not there (or is read-only), OIDC login when the cluster has auth off, and a datum
# spec that matches nothing.
REFERENCE_500 = re.compile(r"not mounted|mounted read-only|auth( service)? is(n't| not) activated|no datums to mount")
KNOWN_FIELDS = ["mounts", "mount", "name", "repo", "project", "branch", "commit", "paths", "mode", "input",
                "oidc", "pachd_address", "server_cas", "files", "since", "timeout", "path", "id"]
QUERY_KEYS = ["since", "timeout", "repo", "project", "branch", "commit", "path", "after", "limit", "offset", "id"]
BAD_ADDRESSES = ["", "   ", "grpc://", "grpc://:", "ftp://host:1", "grpc://host:notaport", "grpc://host:99999",
                 "grpc://host/some/path", "grpc://user:secret@host:1", "grpc://host:1?x=1", "http://[::1"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
# Values that are wrong for every field: the wrong type, or strings no name/path/mode accepts.
bad_strings = st.sampled_from(["", ".", "..", "../etc", "a/b", "/", "x\x00y", "rx", "RO ", "é" * 200, "0" * 31,
                               "g" * 32, "not a repo!", "a" * 300])
non_strings = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False), st.lists(json_scalars, max_size=3),
                        st.dictionaries(st.text(max_size=5), json_scalars, max_size=3))
wrong_values = st.one_of(st.none(), bad_strings, non_strings)


def mount_entries():
    """Mount requests for a repo that does not exist, some fields replaced by wrong values."""
    base = st.fixed_dictionaries({"name": st.sampled_from(["fz", "fz-2"]), "repo": st.just("no-such-repo")})
    wrong = st.dictionaries(st.sampled_from(["name", "repo", "project", "branch", "commit", "paths", "mode"]),
                            wrong_values, max_size=3)
    return st.tuples(base, wrong).map(lambda t: {**t[0], **t[1]})


def datum_inputs():
    """Pipeline inputs over repos that do not exist, with wrong values sprinkled in."""
    pfs_input = st.fixed_dictionaries({"repo": st.one_of(st.just("no-such-repo"), wrong_values)},
                                      optional={"glob": st.one_of(st.sampled_from(["/*", "/", "**", "[", "/{a,"]),
                                                                  wrong_values),
                                                "branch": wrong_values, "commit": wrong_values, "name": wrong_values,
                                                "join_on": wrong_values, "group_by": wrong_values})
    return st.recursive(st.fixed_dictionaries({"pfs": st.one_of(pfs_input, wrong_values)}),
                        lambda inner: st.one_of(
                            st.fixed_dictionaries({"cross": st.one_of(st.lists(inner, max_size=3), wrong_values)}),
                            st.fixed_dictionaries({"union": st.lists(inner, max_size=3)}),
                            st.fixed_dictionaries({"join": st.lists(inner, max_size=3)}),
                            st.fixed_dictionaries({"group": st.lists(inner, max_size=3)})),
                        max_leaves=4)


ONE_MOUNT = st.fixed_dictionaries({"mount": st.one_of(wrong_values, st.just("not-mounted"))})
SHAPED = {
    "/_mount": st.fixed_dictionaries({"mounts": st.lists(mount_entries(), min_size=1, max_size=3)}),
    "/_unmount": st.fixed_dictionaries({"mounts": st.lists(st.one_of(wrong_values, st.just("not-mounted")),
                                                           min_size=1, max_size=3)}),
    "/_commit": ONE_MOUNT,
    "/pachtray/v1/_discard": ONE_MOUNT,
    "/pachtray/v1/_refresh": ONE_MOUNT,
    "/datums/_mount": st.fixed_dictionaries({"input": datum_inputs()}),
    "/auth/_login_token": st.fixed_dictionaries({"oidc": st.one_of(wrong_values, st.text(max_size=20))}),
    # A well-formed address that cannot be reached is a 500 in the reference, so only malformed ones.
    "/config": st.fixed_dictionaries({"pachd_address": st.one_of(st.sampled_from(BAD_ADDRESSES), non_strings)},
                                     optional={"server_cas": wrong_values}),
}


def malformed_bodies(path: str):
    return st.one_of(
        st.binary(max_size=64).map(lambda b: ("raw", b)),
        json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: ("json", v)),
        st.dictionaries(st.text(max_size=12).filter(lambda k: k not in KNOWN_FIELDS), json_values,
                        max_size=4).map(lambda v: ("json", v)),
        st.dictionaries(st.sampled_from(KNOWN_FIELDS), wrong_values, min_size=1, max_size=4)
        .filter(lambda v: path != "/config" or not isinstance(v.get("pachd_address"), str))
        .map(lambda v: ("json", v)),
    )


queries = st.dictionaries(st.one_of(st.sampled_from(QUERY_KEYS), st.text(max_size=8)),
                          st.one_of(bad_strings, st.text(max_size=20), st.integers().map(str)), max_size=3)


def endpoints(daemon) -> list[tuple[str, str]]:
    r = daemon.get("/openapi.json")
    assert r.status_code == 200, r.text
    found = [(method.upper(), path) for path, ops in r.json()["paths"].items() for method in ops]
    assert ("PUT", "/_mount") in found and ("GET", "/repos") in found, f"openapi.json lacks core routes: {found}"
    return sorted(found)


def state(daemon) -> tuple:
    mounts, repos = daemon.get("/mounts"), daemon.get("/repos")
    assert mounts.status_code == 200 and repos.status_code == 200, (mounts.text, repos.text)
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731 - order of listings is not the point
    return sorted(mounts.json()["mounted"], key=key), sorted(repos.json(), key=key)


def send(daemon, method: str, path: str, body, query: dict) -> requests.Response:
    kind, value = body
    data = value if kind == "raw" else json.dumps(value).encode()
    # `timeout=0` keeps long polls short unless the fuzzer picked a timeout itself.
    params = {"timeout": "0", **query} if method == "GET" else query
    return requests.request(method, daemon.url + path, data=data if method != "GET" else None, params=params,
                            headers={"Content-Type": "application/json"}, timeout=90)


def check(daemon, method: str, path: str, body, query: dict) -> None:
    r = send(daemon, method, path, body, query)
    where = f"{method} {path} body={body!r} query={query!r} -> {r.status_code} {r.text[:300]!r}"
    assert not TRACEBACK.search(r.text), f"traceback in the answer: {where}"
    if r.status_code == 500 and REFERENCE_500.search(r.text):
        assert r.text.count("\n") <= 1, f"500 with more than a one-line message: {where}"
        return
    assert r.status_code < 500, where


def fuzz(daemon, targets: list[tuple[str, str]]) -> None:
    for method, path in targets:
        runs = [(malformed_bodies(path), EXAMPLES[method])]
        if path in SHAPED:  # the request's own shape with wrong parts, to reach the deeper checks
            runs.append((SHAPED[path].map(lambda v: ("json", v)), EXAMPLES["shaped"]))
        for body_strategy, examples in runs:
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(body=body_strategy, query=queries)
            def one(body, query):
                check(daemon, method, path, body, query)

            one()


def test_fuzz_every_endpoint_keeps_state(daemon, client, unique_name):
    repo = create_repo(client, unique_name("fuzz"), {"/a.txt": b"a\n", "/dir/b.txt": b"b\n"})
    create_repo(client, unique_name("fuzz-empty"))
    mount(daemon, "keep", repo)
    before = state(daemon)
    targets = [e for e in endpoints(daemon) if e not in NO_INPUT_ACTIONS | SKIPPED]
    fuzz(daemon, targets)
    assert daemon.get("/health").status_code == 200
    assert state(daemon) == before


def test_fuzz_no_input_actions_with_nothing_mounted(daemon, client, unique_name):
    create_repo(client, unique_name("fuzz"), {"/a.txt": b"a\n"})
    before = state(daemon)
    assert before[0] == [], f"a new daemon has mounts: {before[0]}"
    fuzz(daemon, sorted(NO_INPUT_ACTIONS & set(endpoints(daemon))))
    assert daemon.get("/health").status_code == 200
    assert state(daemon) == before
