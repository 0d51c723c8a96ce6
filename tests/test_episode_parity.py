"""Whole-episode parity: the JAX episode in float64 against the float64 NumPy reference episode.

Both engines consume the same draws. Required: identical discrete events (fills per venue and
tick, risk regime path, venue status, kill tick and reason) and 1e-6 relative agreement
(|jax − ref| / max(|ref|, 1)) on PnL, cash and positions, over varied market settings.
The default test runs 4 episodes × 120 ticks; the full requirement (50 × 600) is `slow`.
"""

from __future__ import annotations

import numpy as np
import pytest

from paraphina_jax.cli.parity_cmd import X64_RTOL, report, run_parity, varied_episode_params
from paraphina_jax.config.defaults import make_config

CFG_DEFAULT = make_config("balanced")
# Venues stay Healthy (see tests/test_episode.py): hundreds of fills, exits, hedges and kills.
CFG = CFG_DEFAULT.replace(toxicity=CFG_DEFAULT.toxicity.replace(vol_tox_scale=50.0))


def varied_params(seed: int, n_episodes: int, n_ticks: int):
    return varied_episode_params(CFG, seed, n_episodes, n_ticks)


def _check(divs, n_ticks):
    del n_ticks
    rep = report(divs, x64=True)
    for i, d in enumerate(divs):
        assert d.first_discrete_tick == -1, (i, d.first_tick)
        assert not d.summary, (i, d.summary)
        assert all(v <= X64_RTOL for v in d.max_rel.values()), (i, d.max_rel)
    assert rep["ok"], rep["verdict"]
    return rep


def test_parity_whole_episodes_x64_small():
    k, t = 4, 120
    params = varied_params(7, k, t)
    divs, times, res = run_parity(CFG, params, np.arange(100, 100 + k), t, x64=True, chunk_ticks=60)
    _check(divs, t)
    assert times["reference_s"] > 0.0
    # Non-vacuous: both fill kinds occur in these settings.
    assert int(res.maker_fills.sum()) >= 20 and int(res.taker_fills.sum()) >= 3


@pytest.mark.slow
def test_parity_whole_episodes_x64_50x600():
    """The full acceptance run: 50 episodes × 600 ticks across varied market settings."""
    k, t = 25, 600
    fills = kills = 0
    for cfg, seed in ((CFG, 2026), (CFG_DEFAULT, 2027)):  # 2 × 25 episodes, one program
        params = varied_episode_params(cfg, seed, k, t)
        divs, _, res = run_parity(cfg, params, np.arange(k), t, x64=True, chunk_ticks=120)
        _check(divs, t)
        fills += int(res.fills.sum())
        kills += int(res.kill_switch.sum())
    assert fills >= 500 and kills >= 1
