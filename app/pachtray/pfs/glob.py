"""Pachyderm's glob syntax (as pachd's ohmyglob matcher with '/' as separator), compiled to a regex.

Supported: `*` (any run without '/'), `**` (any run, '/' included), `?` (one non-'/' char),
`[abc]`, `[a-z]`, `[!x]`/`[^x]`, `{a,b}` alternatives (nestable), extglobs `@(a|b)`, `?(a|b)`,
`*(a|b)`, `+(a|b)`, `!(a|b)`, a bare `(a|b)` (the same as `@(a|b)`), and `\\` escapes. With
``capture=True`` every group but `!(...)` is a numbered regex group, as pachd numbers them for
`join_on`/`group_by` templates. Paths are matched with a leading '/' and without
a trailing one, as pachd does.
"""

from __future__ import annotations

import functools
import re

# The characters pachd treats as glob syntax (also forbidden in file paths).
GLOB_CHARS = re.compile(r"[*?[\]{}!()@+^]")


class GlobError(ValueError):
    """A malformed glob pattern."""


def clean_path(path: str) -> str:
    """pachd's CleanPath: absolute, no duplicate or trailing slashes ('/' stays '/')."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts)


def literal_prefix(glob: str) -> str:
    """The part of ``glob`` before its first glob character (used to narrow a walk)."""
    m = GLOB_CHARS.search(glob)
    return glob if m is None else glob[: m.start()]


def is_glob(pattern: str) -> bool:
    return GLOB_CHARS.search(pattern) is not None


class _Parser:
    def __init__(self, pattern: str, capture: bool = False):
        self.p = pattern
        self.i = 0
        self.capture = capture

    def parse(self, stop: str = "") -> str:
        out: list[str] = []
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if c in stop:
                return "".join(out)
            nxt = p[self.i + 1] if self.i + 1 < len(p) else ""
            if c == "!" and nxt == "(":
                # !(a|b) matches what a or b would not, given what follows: the rest goes in the lookahead.
                body = self._extglob_body(c)
                rest = self.parse(stop)
                end = r"\Z" if not stop else ""
                out.append(f"(?:(?!{body}{rest}{end})[^/]*?){rest}")
                return "".join(out)
            if c in "@?*+" and nxt == "(" or c == "(":
                group = self._extglob_body(c) + {"@": "", "?": "?", "*": "*", "+": "+", "(": ""}[c]
                out.append(f"({group})" if self.capture else group)
            elif c == "*":
                if nxt == "*":
                    self.i += 2
                    out.append(".*")
                else:
                    self.i += 1
                    out.append("[^/]*")
            elif c == "?":
                self.i += 1
                out.append("[^/]")
            elif c == "[":
                out.append(self._class())
            elif c == "{":
                self.i += 1
                alts = [self.parse(",}")]
                while self.i < len(p) and p[self.i] == ",":
                    self.i += 1
                    alts.append(self.parse(",}"))
                if self.i >= len(p):
                    raise GlobError(f"unclosed '{{' in glob {self.p!r}")
                self.i += 1
                out.append("(?:" + "|".join(alts) + ")")
            elif c == "\\":
                if not nxt:
                    raise GlobError(f"trailing '\\' in glob {self.p!r}")
                self.i += 2
                out.append(re.escape(nxt))
            else:
                self.i += 1
                out.append(re.escape(c))
        return "".join(out)

    def _extglob_body(self, kind: str) -> str:
        self.i += 1 if kind == "(" else 2
        alts = [self.parse("|)")]
        while self.i < len(self.p) and self.p[self.i] == "|":
            self.i += 1
            alts.append(self.parse("|)"))
        if self.i >= len(self.p):
            raise GlobError(f"unclosed '{kind}(' in glob {self.p!r}")
        self.i += 1
        return "(?:" + "|".join(alts) + ")"

    def _class(self) -> str:
        p = self.p
        j = self.i + 1
        negate = j < len(p) and p[j] in "!^"
        if negate:
            j += 1
        start = j
        if j < len(p) and p[j] == "]":
            j += 1
        while j < len(p) and p[j] != "]":
            j += 1
        if j >= len(p):
            raise GlobError(f"unclosed '[' in glob {self.p!r}")
        body = p[start:j].replace("\\", "\\\\").replace("^", "\\^")
        self.i = j + 1
        return f"[^/{body}]" if negate else f"[{body}]"


@functools.lru_cache(maxsize=256)
def compile_glob(glob: str, capture: bool = False) -> re.Pattern:
    """Compile a (cleaned) Pachyderm glob to a regex matching whole paths."""
    return re.compile("(?s:" + _Parser(glob, capture).parse() + r")\Z")


def matcher(glob: str):
    """A predicate over pachd paths (leading '/', dirs may end in '/'), as pachd's globFile uses."""
    glob = clean_path(glob)
    rx = compile_glob(glob)

    def match(path: str) -> bool:
        if path == "/" and glob == "/":
            return True
        return rx.match(path.rstrip("/")) is not None

    return match
