"""Run the benchmarks of issue #8 and write the table to docs/benchmarks.md.

    .venv/bin/python benchmarks/run.py            # full sizes (1 GiB, 100,000 files, ...)
    .venv/bin/python benchmarks/run.py --quick    # small sizes, for a CI smoke run

Starts its own embedded server(s) and daemon(s) on free ports with temporary folders, so it can run
next to a user's Pachtray. Only the text between the table markers of the output file is replaced.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import suite  # noqa: E402

BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
COLUMNS = ("benchmark", "measured", "baseline", "ratio", "target", "met?")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cells(row: suite.Row) -> tuple[str, ...]:
    ratio = "" if row.ratio is None else f"{row.ratio:.2f}"
    met = {True: "yes", False: "**no**", None: "n/a"}[row.met]
    return row.benchmark, row.measured, row.baseline, ratio, row.target, met


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r) for r in [COLUMNS, *rows])


def report(rows: list[tuple[str, ...]], quick: bool, took: float) -> str:
    m = harness.machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = sorted(rows, key=lambda r: r[0].split(".", 1)[0])  # issue order; they run server-only first
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "`--quick` (small sizes)" if quick else "full sizes"
    return "\n".join([
        BEGIN,
        f"Run {when}, {mode}, {took:.0f} s: `.venv/bin/python benchmarks/run.py{' --quick' if quick else ''}`",
        "",
        f"Machine: {m['CPU']}, {m['cores']} cores, {m['RAM']} RAM, Linux {m['kernel']}, Python {m['Python']}, "
        f"temp on {m['disk']}; load average {load} (1, 5, 15 min) at the end.",
        "",
        markdown_table(rows),
        END,
    ])


def write_report(path: Path, block: str) -> None:
    """Replace the marked block in ``path`` (keeping the text around it), or create the file."""
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = (old.rstrip() + "\n\n" if old else "# Benchmarks\n\n") + block + "\n"
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--output", type=Path, default=HERE.parent / "docs" / "benchmarks.md",
                        help="markdown file whose table block is replaced (default: docs/benchmarks.md)")
    parser.add_argument("--only", default=",".join(suite.BENCHMARKS),
                        help="comma-separated benchmark numbers to run (default: all)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy profiles (raw collapsed stacks) of the measured parts into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    args = parser.parse_args(argv)

    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in suite.BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(suite.BENCHMARKS)}")
    if args.profile:
        if not Path(sys.executable).with_name("py-spy").exists():
            parser.error(f"--profile needs py-spy next to {sys.executable}: {Path(sys.executable).parent}/pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

    tmp = Path(tempfile.mkdtemp(prefix="pachtray-bench-"))
    log(f"working in {tmp}")
    rows: list[tuple[str, ...]] = []
    failed = False
    t0 = time.monotonic()
    ctx = suite.Context(tmp, suite.QUICK if args.quick else suite.FULL, log, args.profile)
    try:
        for number in chosen:
            fn = suite.BENCHMARKS[number]
            log(f"benchmark {number}: {fn.__doc__.splitlines()[0]}")
            started = time.monotonic()
            try:
                for row in fn(ctx):
                    rows.append(cells(row))
                    log("  " + " | ".join(rows[-1]))
            except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others
                failed = True
                log(traceback.format_exc())
                rows.append((f"{number}. {fn.__doc__.splitlines()[0]}", f"failed: {type(e).__name__}: {e}"[:200],
                             "", "", "", "**no**"))
            log(f"  ({time.monotonic() - started:.0f} s)")
    finally:
        ctx.close()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    took = time.monotonic() - t0
    print(text_table(rows))
    write_report(args.output, report(rows, args.quick, took))
    log(f"table written to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
