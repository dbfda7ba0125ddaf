"""Datum mode: the datums a pipeline with this `input` would see, computed here from GlobFile.

The reference asked pachd's ListDatum for join and group inputs, which needs a full cluster with
workers; computing them here works on any pachd, the embedded one included. Semantics follow
pachd's datum iterators (pfs, cross, union, join with `join_on`/`outer_join`, group with
`group_by`); join and group datums come out ordered by key (pachd orders by key hash).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pachyderm_sdk.api import pfs, pps

from pachtray.pfs import glob as pfs_glob
from pachtray.pfs import names as pfs_names
from pachtray.pfs.gojson import go_json

INPUT_KINDS = ("pfs", "cross", "union", "join", "group")
PFS_FIELDS = {"project", "name", "repo", "repo_type", "branch", "commit", "glob", "join_on",
              "outer_join", "group_by", "lazy", "empty_files", "s3", "trigger"}
_BOOL_FIELDS = {"outer_join", "lazy", "empty_files", "s3"}
_JSON_TYPES = {bool: "boolean", dict: "JSON object", str: "string"}
OUT_NAME = "out"
MAX_DATUMS = 1_000_000  # datum mode is for stepping through by hand; bounds memory on huge crosses


class SpecError(ValueError):
    """A datum spec that cannot be mounted (the API answers 400 with this message)."""


@dataclass(frozen=True)
class DatumFile:
    """One matched file (or folder) of one pfs input, with the keys join/group use."""

    name: str
    project: str
    repo: str
    branch: str
    commit: str
    path: str
    join_on: str = ""
    group_by: str = ""
    outer_join: bool = False


Datum = tuple[DatumFile, ...]


def _snake(key: str) -> str:
    """protojson accepts both the proto name and the lowerCamel JSON name; so do we."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def parse_spec(spec: Any) -> pps.Input:
    """The `input` of a pipeline spec, validated, with pfs defaults filled (as the reference).

    Defaults: project `default`, branch `master`, name `<project>_<repo>` plus `_<branch>` when the
    branch is not master. Raises SpecError with a message naming the offending field.
    """
    if not isinstance(spec, dict):
        raise SpecError("datum spec must be a JSON object with an \"input\" field")
    if spec.get("input") is None:
        raise SpecError("datum input is not specified")
    normalized = _normalize(spec["input"], "input")
    names: set[str] = set()
    _check_names(normalized, names)
    return pps.Input().from_dict(normalized)


def _normalize(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a JSON object")
    raw = {_snake(k): v for k, v in raw.items()}
    if "cron" in raw:
        raise SpecError(f"{where}: cron inputs cannot be mounted as datums")
    unknown = sorted(set(raw) - set(INPUT_KINDS))
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r} (expected one of {', '.join(INPUT_KINDS)})")
    kinds = [k for k in INPUT_KINDS if raw.get(k) not in (None, [], {})]
    if len(kinds) != 1:
        raise SpecError(f"{where} must set exactly one of {', '.join(INPUT_KINDS)}")
    kind = kinds[0]
    if kind == "pfs":
        return {"pfs": _normalize_pfs(raw["pfs"], f"{where}.pfs")}
    children = raw[kind]
    if not isinstance(children, list):
        raise SpecError(f"{where}.{kind} must be a list of inputs")
    return {kind: [_normalize(c, f"{where}.{kind}[{i}]") for i, c in enumerate(children)]}


def _normalize_pfs(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a JSON object")
    raw = {_snake(k): v for k, v in raw.items()}
    unknown = sorted(set(raw) - PFS_FIELDS)
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r}")
    for key, value in raw.items():
        want = bool if key in _BOOL_FIELDS else dict if key == "trigger" else str
        if value is not None and not isinstance(value, want):
            raise SpecError(f"{where}.{key} must be a {_JSON_TYPES[want]}")
    out = {k: v for k, v in raw.items() if v not in (None, "", False) and k != "trigger"}
    if out.get("commit"):
        raise SpecError("cannot specify commit in mounting datums Input")
    if not out.get("repo"):
        raise SpecError(f"{where}.repo is required")
    if not out.get("glob"):
        raise SpecError(f"{where}.glob is required")
    try:
        _capture_regex(out["glob"])
    except pfs_glob.GlobError as e:
        raise SpecError(f"{where}.glob: {e}") from None
    out.setdefault("project", "default")
    out.setdefault("branch", "master")
    if not out.get("name"):
        out["name"] = pfs_names.digest_fit(
            f"{out['project']}_{out['repo']}" + ("" if out["branch"] == "master" else f"_{out['branch']}"))
    return out


def _check_names(normalized: dict, names: set[str]) -> None:
    if "pfs" in normalized:
        name = normalized["pfs"]["name"]
        problem = pfs_names.mount_name_problem(name) or (f"'{OUT_NAME}' is the datum's output folder"
                                                         if name == OUT_NAME else None)
        if problem:
            raise SpecError(f"input name {pfs_names.quoted(name)} cannot be a mount name: {problem}")
        if name in names:
            raise SpecError(f"input name {pfs_names.quoted(name)} is used twice; give each input a unique name")
        names.add(name)
        return
    for children in normalized.values():
        for child in children:
            _check_names(child, names)


def input_json(inp: pps.Input) -> dict:
    """The input as GET /datums shows it: the reference's encoding (proto field names, unset fields left out)."""
    return go_json(inp)


def compute_datums(client, inp: pps.Input) -> list[Datum]:
    """Every datum of ``inp`` on the branches' current heads (GlobFile and InspectBranch only)."""
    kind = _kind(inp)
    if kind == "pfs":
        return _pfs_datums(client, inp.pfs)
    children = [compute_datums(client, c) for c in getattr(inp, kind)]
    if kind == "union":
        return [d for child in children for d in child]
    if kind == "cross":
        count = math.prod(len(c) for c in children)
        if count > MAX_DATUMS:
            raise SpecError(f"the cross produces {count} datums; datum mode mounts at most {MAX_DATUMS}")
        return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*children)]
    if kind == "join":
        return _join(children)
    return _group(children)


def _kind(inp: pps.Input) -> str:
    for kind in INPUT_KINDS:
        value = getattr(inp, kind)
        if (kind == "pfs" and value.repo) or (kind != "pfs" and value):
            return kind
    raise SpecError("input must set exactly one of " + ", ".join(INPUT_KINDS))


def _pfs_datums(client, p: pps.PfsInput) -> list[Datum]:
    branch = pfs.Branch(repo=pfs.Repo(name=p.repo, type="user", project=pfs.Project(name=p.project)), name=p.branch)
    head = client.pfs.inspect_branch(branch=branch).head
    if head is None or not head.id:
        return []
    commit = pfs.Commit(branch=branch, id=head.id, repo=branch.repo)
    rx = _capture_regex(p.glob)
    datums = []
    # `(a|b)` and `@(a|b)` mean the same to pachd; the explicit form also suits simpler matchers.
    for fi in client.pfs.glob_file(commit=commit, pattern=p.glob):
        path = fi.file.path.rstrip("/") or "/"
        datums.append((DatumFile(
            name=p.name, project=p.project, repo=p.repo, branch=p.branch, commit=head.id, path=path,
            join_on=_replace(rx, path, p.join_on), group_by=_replace(rx, path, p.group_by),
            outer_join=p.outer_join),))
    return datums


def _join(children: list[list[Datum]]) -> list[Datum]:
    """pachd's join: per key, the cross of every child's files; with some children missing, only
    the outer-join files are kept (a datum with none of them is dropped)."""
    keyed: list[dict[str, list[DatumFile]]] = []
    for child in children:
        by_key: dict[str, list[DatumFile]] = defaultdict(list)
        for datum in child:
            for f in datum:
                by_key[f.join_on].append(f)
        keyed.append(by_key)
    out: list[Datum] = []
    seen: set[Datum] = set()
    for key in sorted(set().union(*keyed)):
        present = [k[key] for k in keyed if key in k]
        for combo in itertools.product(*present):
            datum = combo if len(present) == len(children) else tuple(f for f in combo if f.outer_join)
            if datum and datum not in seen:
                seen.add(datum)
                out.append(datum)
    return out


def _group(children: list[list[Datum]]) -> list[Datum]:
    """pachd's group: one datum per `group_by` key with every file of every child having it."""
    groups: dict[str, list[DatumFile]] = defaultdict(list)
    for child in children:
        for datum in child:
            for f in datum:
                groups[f.group_by].append(f)
    return [tuple(groups[key]) for key in sorted(groups)]


def datum_mounts(datum: Datum) -> list[dict]:
    """The read-only mounts that show ``datum``: one per input name, `paths` = its matched files."""
    mounts: dict[str, dict] = {}
    for f in datum:
        m = mounts.setdefault(f.name, {"name": f.name, "project": f.project, "repo": f.repo,
                                       "branch": f.branch, "commit": f.commit, "paths": []})
        if f.path not in m["paths"]:
            m["paths"].append(f.path)
    return list(mounts.values())


def _capture_regex(glob: str) -> re.Pattern:
    return pfs_glob.compile_glob(pfs_glob.clean_path(glob), capture=True)


_TEMPLATE_REF = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


def _replace(rx: re.Pattern, path: str, template: str) -> str:
    """Go's Regexp.ReplaceAllString on a whole-path match: `$1`/`${1}` expand to groups, `$$` is
    `$`, unknown names expand to ''; a path the glob does not match stays as it is."""
    if not template:
        return ""
    m = rx.match(path)
    if m is None:
        return path

    def expand(ref: re.Match) -> str:
        name = ref.group(1) or ref.group(2)
        if name is None:
            return "$"
        if name.isdigit() and int(name) <= rx.groups:
            return m.group(int(name)) or ""
        return ""

    return _TEMPLATE_REF.sub(expand, template)
