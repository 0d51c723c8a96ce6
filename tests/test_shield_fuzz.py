"""The shield fuzz harness (`safety_shield.fuzz`, experiments/bench/shield_fuzz.py) at a small
size: hostile cases, zero violations after the twin, twin equal to the reference."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "bench"))


def test_shield_fuzz_bench_small_finds_no_violation_or_mismatch(capsys: pytest.CaptureFixture):
    import shield_fuzz

    rc = shield_fuzz.main(["--cases", "512", "--batch", "256", "--ref-cases", "48", "--no-write"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| default") or line.startswith("| kill")
    ]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "512" and cells[2] == "512"  # every case hostile before the shield
        assert cells[3] == "0"  # violations after
        assert cells[6] == "48" and cells[7] == "0" and cells[8] == "0"  # reference sample
