"""H2 (the original's Monte Carlo harness) reproduced in both engines against recorded runs.

Recorded runs: ../shared/reference_runs (SIMULATION.md §13). Every metric to 1e-9 relative.
The JAX engine runs in a subprocess so it can request IEEE-exact XLA division before JAX starts.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paraphina_jax.compat.jitter import XorShift64Star, run_seed, tick_times
from paraphina_jax.compat.mc_output import summary
from paraphina_jax.config import make_config
from paraphina_jax.config.types import KILL_REASON_NAMES
from paraphina_jax.reference.compat_h2 import h2_run

RUNS = Path(__file__).resolve().parents[2] / "shared" / "reference_runs"
REC_DIR = RUNS / "h2_07_bal_t5_j2_T600"
METRICS = (
    "pnl_total",
    "max_drawdown",
    "kill_switch",
    "kill_tick",
    "kill_reason",
    "ticks_executed",
    "max_abs_delta_usd",
    "max_abs_basis_usd",
    "max_abs_q_tao",
    "max_venue_toxicity",
)


def _close(a, b):
    if isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _recorded():
    run0 = json.loads((RUNS / "h2_monte_carlo_balanced_600ticks_seed12345_run0.json").read_text())
    jit = [json.loads(x) for x in (REC_DIR / "mc_runs.jsonl").read_text().splitlines()]
    return run0, jit


def test_xorshift_generator():
    g = XorShift64Star(0)
    assert g.state == 0x9E3779B97F4A7C15
    g = XorShift64Star(1)
    x = g.next_u64()
    # x = 1 ^ (1 << 25) ^ ((1 ^ 1 << 25) >> 27) = 0x2000001, times the multiplier mod 2^64
    assert x == (0x2000001 * 0x2545F4914F6CDD1D) % (1 << 64)
    assert g.uniform_int(5, 5) == 5 and g.uniform_int(7, 3) == 7
    assert run_seed((1 << 64) - 1, 2) == 1
    seq = tick_times(51, 600, 5, 2)
    assert np.all(np.diff(seq) >= 3) and np.all(np.diff(seq) <= 7) and seq[0] >= 3
    np.testing.assert_array_equal(tick_times(9, 4, 1000, 0), [1000, 2000, 3000, 4000])


@pytest.mark.parametrize("which", ["seed12345", "t5_j2_run0", "t5_j2_run19"])
def test_reference_engine_reproduces_recorded_runs(which):
    run0, jit = _recorded()
    cfg = make_config("balanced", parity=True)
    if which == "seed12345":
        rec, seq = run0, tick_times(12345, 600, 1000, 0)
    else:
        rec = jit[0] if which.endswith("run0") else jit[19]
        seq = tick_times(rec["seed"], 600, 5, 2)
    got = h2_run(seq, cfg)
    got["kill_reason"] = KILL_REASON_NAMES[got["kill_reason"]]
    for k in METRICS:
        assert _close(got[k], rec[k]), (k, got[k], rec[k])


_JAX_SCRIPT = r"""
import json, sys
import numpy as np
from paraphina_jax.utils.x64 import request_ieee_exact_xla
assert request_ieee_exact_xla()
from paraphina_jax.cli.compat_cmd import mc_metrics
from paraphina_jax.compat.jitter import run_seed, tick_times
from paraphina_jax.compat.mc_output import run_records
from paraphina_jax.config import make_config
cfg = make_config("balanced", parity=True)
out = {}
seeds = [run_seed(51, i) for i in range(20)]
seqs = np.stack([tick_times(s, 600, 5, 2) for s in seeds])
out["jit"] = run_records(mc_metrics(cfg, seqs, "jax"), seeds)
seqs = np.stack([tick_times(12345, 600, 1000, 0)] * 20)  # same shape: one compile
out["run0"] = run_records(mc_metrics(cfg, seqs, "jax"), [12345] * 20)[0]
print(json.dumps(out))
"""


def test_jax_engine_reproduces_recorded_runs_and_summary():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    res = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    run0, jit = _recorded()
    for k in METRICS:
        assert _close(out["run0"][k], run0[k]), (k, out["run0"][k], run0[k])
    for got, rec in zip(out["jit"], jit):
        for k in rec:
            assert _close(got[k], rec[k]), (rec["run_index"], k, got[k], rec[k])
    recorded = json.loads((REC_DIR / "mc_summary.json").read_text())
    ours = summary(out["jit"], recorded["config"])
    assert ours["tail_risk"]["kill_probability"] == recorded["tail_risk"]["kill_probability"]
    for key in ("pnl", "max_abs_delta_usd", "max_abs_q_tao"):
        for stat, v in recorded["aggregate"][key].items():
            assert math.isclose(ours["aggregate"][key][stat], v, rel_tol=1e-9), (key, stat)


def test_summary_and_stdout_formats_match_recording():
    from paraphina_jax.compat.mc_output import summary_lines

    recorded = json.loads((REC_DIR / "mc_summary.json").read_text())
    _, jit = _recorded()
    assert summary(jit, recorded["config"]) == recorded
    stdout = (REC_DIR / "stdout.txt").read_text().splitlines()
    lines = summary_lines(jit, 0)
    assert lines[1:] == stdout[2 : 2 + len(lines) - 1]


_IDLE_SCRIPT = r"""
import json
import jax
import numpy as np
from paraphina_jax.utils.x64 import request_ieee_exact_xla
assert request_ieee_exact_xla()
jax.config.update("jax_enable_x64", True)
from paraphina_jax.compat.h2 import h2_batch
from paraphina_jax.compat.jitter import run_seed, tick_times
from paraphina_jax.config import make_config
cfg = make_config("balanced", parity=True)
fast = [tick_times(run_seed(7, i), 120, 2, 1) for i in range(3)]
slow = [tick_times(run_seed(8, i), 120, 1000, 0) for i in range(3)]
f = jax.jit(h2_batch, static_argnames="skip_idle")
out = []
for seqs in (fast, slow, fast[:1] + slow[:2]):
    seqs = np.stack(seqs)
    a, b = (jax.device_get(f(seqs, cfg, skip_idle=s)) for s in (True, False))
    out.append({k: [np.asarray(getattr(x, k)).tolist() for x in (a, b)] for k in a.__dataclass_fields__})
print(json.dumps(out))
"""


def test_jax_idle_skip_changes_nothing():
    """Skipping the trading phases on batch-wide idle ticks gives bitwise the same metrics as
    running them (IEEE-exact XLA division, x64): a batch that trades all along (2 ms ticks), one
    that turns idle (1000 ms ticks: every venue Disabled after two ticks) and a mixed batch."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    res = subprocess.run(
        [sys.executable, "-c", _IDLE_SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for batch in out:
        for k, (skipped, full) in batch.items():
            assert skipped == full, (k, skipped, full)
    assert out[0]["max_abs_q_tao"][0] != out[1]["max_abs_q_tao"][0]  # the batches differ
