"""The router's `{param}` path segments (fast: no server): one segment each, percent-decoded,
exact paths first, 405 naming the methods a templated path has."""

from __future__ import annotations

import pytest

from pachtray.api.routing import Router
from pachtray.errors import ApiError

pytestmark = pytest.mark.fast


def _router() -> Router:
    r = Router()
    r.add("GET", "/pachtray/v1/mounts", lambda req, app: "all")
    r.add("GET", "/pachtray/v1/mounts/{name}/changes", lambda req, app: "changes")
    r.add("PUT", "/pachtray/v1/mounts/{name}/_discard", lambda req, app: "discard")
    return r


def test_a_template_matches_one_decoded_segment():
    params: dict[str, str] = {}
    route = _router().match("GET", "/pachtray/v1/mounts/my%20mount/changes/", params)
    assert route.path == "/pachtray/v1/mounts/{name}/changes" and params == {"name": "my mount"}


def test_exact_paths_win_and_a_segment_never_spans_a_slash():
    r = _router()
    assert r.match("GET", "/pachtray/v1/mounts").path == "/pachtray/v1/mounts"
    with pytest.raises(ApiError) as e:
        r.match("GET", "/pachtray/v1/mounts/a/b/changes")
    assert e.value.status == 404


def test_another_method_on_a_templated_path_is_405_naming_the_allowed_one():
    with pytest.raises(ApiError) as e:
        _router().match("PUT", "/pachtray/v1/mounts/x/changes")
    assert e.value.status == 405 and "allowed: GET" in e.value.message
