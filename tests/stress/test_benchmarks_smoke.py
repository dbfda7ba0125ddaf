"""`benchmarks/run.py --quick` runs every benchmark end to end and writes its table.

No target is asserted here (CI machines vary); a benchmark that crashes or checks wrong data
(each one verifies what it read or committed) fails the run.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import PY, ROOT

pytestmark = pytest.mark.slow


def test_quick_benchmarks_write_a_table(tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nHand-written text stays.\n\n<!-- benchmarks:begin -->\nold\n<!-- benchmarks:end -->\n"
                   "\nAnd so does this.\n")
    proc = subprocess.run([PY, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(out)],
                          capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert proc.returncode == 0, f"run.py --quick failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written text stays.") and text.rstrip().endswith("And so does this.")
    assert "\nold\n" not in text
    assert "| benchmark | measured | baseline | ratio | target | met? |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")]
    numbers = {re.match(r"\| (\d)\.", row).group(1) for row in rows}
    assert numbers == {"1", "2", "3", "4", "5", "6", "7", "8"}, rows
    assert not any("failed:" in row for row in rows), rows
    assert re.search(r"Machine: .+, \d+ cores, [\d.]+ GiB RAM, Linux ", text)
    assert "benchmark" in proc.stdout and "met?" in proc.stdout
