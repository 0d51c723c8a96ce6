"""Configuration (STRATEGY §3): defaults, profiles, env knobs, validation, Hydra, vmappability."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paraphina_jax.config import (
    ConfigError,
    apply_env_knobs,
    apply_overrides,
    config_from_dict,
    config_from_env,
    configs_equal,
    make_config,
    parse_profile,
    resolve_key,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def test_defaults_match_spec_tables():
    cfg = make_config()
    assert cfg.n_venues == 5
    assert cfg.venues.venue_ids[1] == "hyperliquid"
    np.testing.assert_array_equal(cfg.venues.maker_fee_bps, [2.0, 1.5, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(cfg.venues.gamma, [0.10, 0.09, 0.11, 0.10, 0.10])
    np.testing.assert_array_equal(cfg.venues.stale_override_ms, [-1, 2000, -1, -1, 3000])
    assert cfg.book.kf_r_b == 100.0 and cfg.vol.vol_ref == 0.028125
    assert cfg.hedge.band_base == 5.625 and cfg.exit.max_venue_tao_per_tick == 6.0
    assert cfg.toxicity.catastrophic_stale_ms == 120_000
    # id-string rank: aster < extended < hyperliquid < lighter < paradex
    np.testing.assert_array_equal(cfg.venues.id_rank(), [1, 2, 0, 3, 4])


@pytest.mark.parametrize(
    "name,band,eta,delta,loss",
    [
        ("balanced", 5.625, 0.10, 100_000.0, 5_000.0),
        ("cons", 2.62125, 0.0466, 46_600.0, 2_000.0),
        ("Loose", 4.86, 0.0864, 86_400.0, 2_000.0),
    ],
)
def test_profiles(name, band, eta, delta, loss):
    cfg = make_config(name)
    assert cfg.hedge.band_base == band and cfg.mm.size_eta == eta
    assert cfg.risk.delta_hard_limit_usd_base == delta and cfg.risk.daily_loss_limit == loss


def test_unknown_profile_refused():
    assert parse_profile(" AGG ") == "aggressive"
    assert parse_profile("medium") is None
    with pytest.raises(ConfigError, match="profile"):
        make_config("medium")


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("risk.delta_warn_frac", 1.5, r"risk.delta_warn_frac.*\[0, 1\]"),
        ("HEDGE_MAX_STEP", -1.0, r"hedge.max_step.*\[0, inf\)"),
        ("mm.size_eta", float("nan"), r"mm.size_eta.*non-finite"),
        ("venues.tick_size", [0.01] * 4, r"venues.tick_size.*5 values"),
        ("venues.lot_size", 0.0, r"venues.lot_size.*\(0, inf\)"),
        ("no_such_knob", 1.0, "unknown config key"),
        ("hedge.no_such", 1.0, "unknown config key"),
        ("loop.main_loop_interval_ms", 2.5, "integer"),
        ("toxicity.tox_med_threshold", 0.95, "tox_high_threshold"),
    ],
)
def test_invalid_values_name_key_and_range(key, value, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(make_config(), {key: value})


def test_spec_names_resolve():
    assert resolve_key("HEDGE_BAND_BASE") == "hedge.band_base"
    assert resolve_key("SIZE_ETA") == "mm.size_eta"
    assert resolve_key("EDGE_EXIT_MIN") == "exit.edge_min_usd"
    assert resolve_key("BOOK_STALE_MS") == "book.book_stale_ms"
    assert resolve_key("KF_R_B") == "book.kf_r_b"
    cfg = apply_overrides(make_config(), {"flags.hedge_band_mode": "spec"})
    assert cfg.flags.hedge_band_mode == "spec"
    with pytest.raises(ConfigError, match="hedge_band_mode"):
        apply_overrides(make_config(), {"flags.hedge_band_mode": "bogus"})


def test_env_knobs():
    env = {
        "PARAPHINA_RISK_PROFILE": "c",
        "PARAPHINA_MM_SIZE_ETA": "0",  # clamped to 1e-6
        "PARAPHINA_HEDGE_K_HEDGE": "3",  # clamped to 1
        "PARAPHINA_DAILY_LOSS_LIMIT": "-750",  # abs
        "PARAPHINA_INIT_Q_TAO": "inf",  # non-finite: ignored
        "PARAPHINA_MAIN_LOOP_INTERVAL_MS": "1.5",  # not an integer: ignored
        "PARAPHINA_RISK_LOOP_INTERVAL_MS": "0",  # max(v, 1)
        "PARAPHINA_HL_STATE_STALE_MS_OVERRIDE": "-5",  # max(v, 0)
        "PARAPHINA_ENABLE_FUNDING_HEDGE": "TRUE",
        "PARAPHINA_ENABLE_FUNDING_MM": "yes",  # anything else: off
        "PARAPHINA_TRADE_MODE": "Paper",
        "PARAPHINA_KILL_BEST_EFFORT": "1",
    }
    cfg, source, notes = config_from_env(None, env)
    assert source == "env" and cfg.profile == "conservative"
    assert cfg.mm.size_eta == 1e-6 and cfg.hedge.k_hedge == 1.0
    assert cfg.risk.daily_loss_limit == 750.0
    assert cfg.loop.initial_q_tao == 0.0 and cfg.loop.main_loop_interval_ms == 250
    assert cfg.loop.risk_loop_interval_ms == 1
    assert cfg.venues.stale_override_ms[1] == 0
    assert cfg.funding.hedge_funding_enabled and not cfg.funding.mm_funding_enabled
    assert cfg.flags.paper_mode and cfg.flags.kill_best_effort
    assert len(notes) == 2
    # CLI beats env; unparseable env profile falls through to the default
    cfg2, src2, _ = config_from_env("aggressive", {"PARAPHINA_RISK_PROFILE": "c"})
    assert cfg2.profile == "aggressive" and src2 == "cli"
    with pytest.warns(UserWarning):
        cfg3, src3, _ = config_from_env(None, {"PARAPHINA_RISK_PROFILE": "zzz"})
    assert cfg3.profile == "balanced" and src3 == "default"
    same, notes = apply_env_knobs(make_config(), {})
    assert configs_equal(same, make_config()) and notes == []


def test_parity_flags_differ_from_rec():
    rec, par = make_config().flags, make_config(parity=True).flags
    assert rec.stale_per_venue and not par.stale_per_venue
    assert rec.sigma_floor_mode == "tick" and par.sigma_floor_mode == "parity"
    assert par.paper_pnl_masks_other_kills and not rec.paper_pnl_masks_other_kills


def test_hydra_profiles_compose_into_the_same_objects():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for name in ("balanced", "conservative", "aggressive"):
            c = compose(config_name="config", overrides=[f"profile={name}"])
            from omegaconf import OmegaConf

            d = OmegaConf.to_container(c.profile, resolve=True)
            cfg = config_from_dict({"profile": d})
            assert configs_equal(cfg, make_config(name))
        c = compose(config_name="config", overrides=["profile=balanced", "profile.mm.size_eta=5"])
        cfg = config_from_dict({"profile": OmegaConf.to_container(c.profile)})
        assert cfg.mm.size_eta == 5.0


def test_batch_of_configs_is_vmappable():
    cfgs = [apply_overrides(make_config(), {"mm.size_eta": e}) for e in (0.05, 0.1, 0.2)]
    batch = jax.tree.map(lambda *x: np.stack([np.asarray(v) for v in x]), *cfgs)

    @jax.jit
    def f(c):
        return c.mm.size_eta * jnp.sum(c.venues.gamma)

    out = jax.vmap(f)(batch)
    np.testing.assert_allclose(out, [0.05 * 0.5, 0.1 * 0.5, 0.2 * 0.5], rtol=1e-6)
