"""Strict parser for scenario files, `scenario_version: 1` (SIMULATION.md §7.1, §2.4, §14 [REC]).

Schema (types and allowed ranges; `T` = horizon.steps, `N` = venue count, default 5):

```text
scenario_id          str, required, [A-Za-z0-9][A-Za-z0-9_.-]* (≤ 128 chars)
scenario_version     int, required, must be 1
engine               rl_sim_env | core_sim | replay_stub            (default rl_sim_env)
horizon              {steps: int [1, 1e7], dt_seconds: [0.001, 3600]}   (default {1000, 1.0})
rng                  {base_seed: int [0, 2^64−1], num_seeds: int [1, 100000]}   (default {42, 1})
initial_state        {risk_profile: profile name (§3.10 aliases), init_q_tao: [−1e4, 1e4]}
market_model         {type: synthetic | historical_stub,
                      synthetic: {process: gbm | jump_diffusion_stub,
                                  params: {vol [0, 10], drift [−10, 10] (per day),
                                           jump_intensity [0, 1] (per step), jump_sigma [0, 1]}},
                      historical_stub: {dataset_id: str}}
microstructure_model {fees_bps_maker [−100, 100], fees_bps_taker [−100, 100], latency_ms [0, 6e4]}
invariants           {expect_kill_switch: always | never | allowed,
                      pnl_linearity_check: enabled | disabled}
partial_fill         {enabled: bool, base_fill_prob [0, 1], latency_sensitivity [0, 1],
                      latency_ref_ms (0, 1e6], depth_ref (0, 1e12], min_fill_frac [0, 1],
                      max_fill_frac [min_fill_frac, 1], apply_to_mm: bool}
latency_spike        {spike_ms [0, 6e4], start_step [0, T−1], end_step [start_step, T−1]}
cancel_storm         {start_step, end_step (as above), spread_mult (0, 100], depth_mult [0, 100],
                      toxicity_floor [0, 1]}
spread_shock_bps     number [0, 10000]
depth_shock_pct      number [−100, 1000]
venue_outage         {venue_index [0, N−1], start_step [0, T−1], end_step [start_step, T−1]}
funding_inversion    {type: sign_flip, trigger_step [0, T−1]}
funding_drift        {drift_bps_per_step [−100, 100], start_step [0, T−1]}
basis_spike          {magnitude_bps [−5000, 5000], venue_index [0, N−1], trigger_step [0, T−1],
                      duration_steps [1, T − trigger_step]}
adversarial_params   {vol_multiplier (0, 10], daily_loss_limit (0, 1e9]}
```

Stricter than the original evaluator (documented [REC] choices, §14): unknown keys, duplicate keys,
wrong types (a bool is not a number; a float is not an integer), non-finite numbers, values out of
range, windows outside `[0, T−1]`, venue indices outside `[0, N−1]` and a scenario_version other
than 1 are refused. Defaults apply per block: an absent block takes its defaults; a present block
must give every field, except `synthetic.params` (a missing field is 0) and `invariants` (a missing
field is allowed / disabled). `partial_fill` must be complete when present (the original fills
missing fields with 0/false), and it is range-checked even when disabled. `process: gbm` with a
non-zero jump parameter is refused. Every error is a one-line :class:`ScenarioError`
`<file>: <key.path>: <problem> (allowed: <range>)`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

from paraphina_jax.config.defaults import parse_profile
from paraphina_jax.config.types import VENUE_IDS
from paraphina_jax.scenarios.types import (
    ENGINES,
    EXPECT_KILL,
    FUNDING_INVERSION_TYPES,
    LINEARITY,
    MARKET_TYPES,
    PROCESSES,
    SCENARIO_VERSION,
    U64_MOD,
    AdversarialParams,
    BasisSpike,
    CancelStorm,
    FundingDrift,
    FundingInversion,
    Horizon,
    InitialState,
    Invariants,
    LatencySpike,
    MarketModel,
    Microstructure,
    PartialFill,
    RngSpec,
    ScenarioError,
    ScenarioSpec,
    SyntheticModel,
    SyntheticParams,
    VenueOutage,
)

INF = math.inf
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PROFILE_CHOICES = "balanced|bal|b | conservative|cons|c | aggressive|agg|a|loose|l"
TOP_LEVEL_KEYS: tuple[str, ...] = (
    "scenario_id",
    "scenario_version",
    "engine",
    "horizon",
    "rng",
    "initial_state",
    "market_model",
    "microstructure_model",
    "latency_spike",
    "partial_fill",
    "cancel_storm",
    "invariants",
    "spread_shock_bps",
    "depth_shock_pct",
    "venue_outage",
    "funding_inversion",
    "funding_drift",
    "basis_spike",
    "adversarial_params",
)


def _fmt(x: float) -> str:
    if isinstance(x, int) or (math.isfinite(x) and float(x).is_integer() and abs(x) < 1e16):
        return str(int(x))
    return repr(float(x))


@dataclasses.dataclass(frozen=True)
class Field:
    """One field: kind `int | num | bool | choice | str`, a range or choices, the out-of-range
    wording (`out of range` or `outside the horizon of T steps`)."""

    kind: str
    lo: float = -INF
    hi: float = INF
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    out_msg: str = "out of range"
    low_msg: str = ""  # wording below `lo` when it differs from `out_msg`

    def describe(self) -> str:
        if self.kind == "bool":
            return "true | false"
        if self.kind == "choice":
            return " | ".join(self.choices)
        if self.kind == "str":
            return "non-empty string"
        if self.kind == "int" and self.lo == self.hi:
            return _fmt(self.lo)
        name = "integer" if self.kind == "int" else "number"
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"{name} in {left}{_fmt(self.lo)}, {_fmt(self.hi)}{right}"


class Reader:
    """Builds one-line errors `<source>: <path>: <what> (allowed: <range>)`."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, what: str, allowed: str) -> NoReturn:
        raise ScenarioError(f"{self.source}: {path}: {what} (allowed: {allowed})")

    def value(self, raw: Any, path: str, f: Field) -> Any:
        desc = f.describe()
        if f.kind == "bool":
            if not isinstance(raw, bool):
                self.fail(path, f"expected true/false, got {_show(raw)}", desc)
            return raw
        if f.kind in ("choice", "str"):
            if not isinstance(raw, str) or not raw.strip():
                self.fail(path, f"expected a string, got {_show(raw)}", desc)
            if f.kind == "choice" and raw not in f.choices:
                self.fail(path, f"{raw!r} is not an allowed value", desc)
            return raw
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            word = "an integer" if f.kind == "int" else "a number"
            self.fail(path, f"expected {word}, got {_show(raw)}", desc)
        if f.kind == "int" and not isinstance(raw, int):
            self.fail(path, f"expected an integer, got {_show(raw)}", desc)
        if not math.isfinite(raw):
            self.fail(path, f"non-finite value {raw!r}", desc)
        low_bad = raw <= f.lo if f.lo_open else raw < f.lo
        high_bad = raw >= f.hi if f.hi_open else raw > f.hi
        if low_bad or high_bad:
            msg = f.low_msg if low_bad and f.low_msg else f.out_msg
            self.fail(path, f"{_fmt(raw)} {msg}", desc)
        return int(raw) if f.kind == "int" else float(raw)

    def block(
        self,
        raw: Any,
        path: str,
        fields: Mapping[str, Field],
        defaults: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Parse a mapping of scalar fields; every field required unless `defaults` gives it."""
        m = self.mapping(raw, path, tuple(fields))
        out: dict[str, Any] = {}
        for key, f in fields.items():
            if key in m:
                out[key] = self.value(m[key], f"{path}.{key}", f)
            elif defaults is not None and key in defaults:
                out[key] = defaults[key]
            else:
                self.fail(
                    f"{path}.{key}",
                    f"missing (a present '{path}' block gives every field)",
                    f.describe(),
                )
        return out

    def mapping(self, raw: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            self.fail(
                path or "<root>",
                f"expected a mapping, got {_show(raw)}",
                "keys " + ", ".join(allowed),
            )
        for key in raw:
            if key not in allowed:
                self.fail(f"{path}.{key}" if path else str(key), "unknown key", ", ".join(allowed))
        return raw


def _show(raw: Any) -> str:
    text = repr(raw)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(raw).__name__} {text}"


def num_field(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Field:
    return Field("num", lo, hi, lo_open, hi_open)


def int_field(lo: float, hi: float, out_msg: str = "out of range") -> Field:
    return Field("int", lo, hi, out_msg=out_msg)


def choice_field(*choices: str) -> Field:
    return Field("choice", choices=choices)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads YAML 1.2 floats such as `3e-4`."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str, source: str = "<memory>") -> Any:
    """Parse YAML text strictly (duplicate keys refused); errors name the file and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError(
            f"{source}: {where}: invalid YAML: {problem} (allowed: a YAML mapping without "
            "duplicate keys)"
        ) from None


def _window(
    r: Reader,
    raw: Any,
    path: str,
    steps: int,
    before: Mapping[str, Field] | None = None,
    after: Mapping[str, Field] | None = None,
) -> dict:
    """A block with an inclusive `[start_step, end_step]` window inside `[0, T−1]`."""
    horizon = f"outside the horizon of {steps} steps"
    start = int_field(0, steps - 1, horizon)
    end = int_field(0, steps - 1, horizon)
    if isinstance(raw, Mapping) and "start_step" in raw:
        first = r.value(raw["start_step"], f"{path}.start_step", start)
        end = Field(
            "int", first, steps - 1, out_msg=horizon, low_msg=f"is before start_step {first}"
        )
    fields = {**(before or {}), "start_step": start, "end_step": end, **(after or {})}
    return r.block(raw, path, fields)


def _market_model(r: Reader, raw: Any) -> MarketModel:
    m = r.mapping(raw, "market_model", ("type", "synthetic", "historical_stub"))
    if "type" not in m:
        r.fail("market_model.type", "missing", choice_field(*MARKET_TYPES).describe())
    mtype = r.value(m["type"], "market_model.type", choice_field(*MARKET_TYPES))
    synthetic = None
    if "synthetic" in m:
        s = r.mapping(m["synthetic"], "market_model.synthetic", ("process", "params"))
        for key in ("process", "params"):
            if key not in s:
                allowed = choice_field(*PROCESSES).describe() if key == "process" else "a mapping"
                r.fail(f"market_model.synthetic.{key}", "missing", allowed)
        process = r.value(s["process"], "market_model.synthetic.process", choice_field(*PROCESSES))
        pfields = {
            "vol": num_field(0, 10),
            "drift": num_field(-10, 10),
            "jump_intensity": num_field(0, 1),
            "jump_sigma": num_field(0, 1),
        }
        zeros = dict.fromkeys(pfields, 0.0)
        p = r.block(s["params"], "market_model.synthetic.params", pfields, zeros)
        if process == "gbm":
            for key in ("jump_intensity", "jump_sigma"):
                if p[key] != 0.0:
                    r.fail(
                        f"market_model.synthetic.params.{key}",
                        f"{_fmt(p[key])} with process gbm",
                        "0 for gbm; jumps need process jump_diffusion_stub",
                    )
        synthetic = SyntheticModel(process=process, params=SyntheticParams(**p))
    elif mtype == "synthetic":
        r.fail("market_model.synthetic", "missing (required when type is synthetic)", "a mapping")
    dataset_id = None
    if "historical_stub" in m:
        h = r.block(
            m["historical_stub"], "market_model.historical_stub", {"dataset_id": Field("str")}
        )
        dataset_id = h["dataset_id"]
    elif mtype == "historical_stub":
        r.fail(
            "market_model.historical_stub",
            "missing (required when type is historical_stub)",
            "a mapping {dataset_id: str}",
        )
    return MarketModel(type=mtype, synthetic=synthetic, dataset_id=dataset_id)


def parse_scenario(
    data: Any, source: str = "<memory>", n_venues: int | None = None
) -> ScenarioSpec:
    """Validate a loaded YAML document and build the frozen :class:`ScenarioSpec`.

    Args:
        data: the YAML document (a mapping).
        source: file name used in error messages.
        n_venues: venue count bounding `venue_index` (default: the five venues of STRATEGY §1).

    Raises:
        ScenarioError: one line naming `source`, the key path and the allowed range.
    """
    r = Reader(str(source))
    n = len(VENUE_IDS) if n_venues is None else int(n_venues)
    m = r.mapping(data, "", TOP_LEVEL_KEYS)
    for key in ("scenario_id", "scenario_version"):
        if key not in m:
            r.fail(key, "missing", "non-empty id" if key == "scenario_id" else "1")
    sid = m["scenario_id"]
    if not isinstance(sid, str) or not _ID_RE.match(sid):
        r.fail("scenario_id", f"invalid id {_show(sid)}", "[A-Za-z0-9][A-Za-z0-9_.-]*, ≤ 128")
    version = r.value(m["scenario_version"], "scenario_version", int_field(1, SCENARIO_VERSION))
    engine = r.value(m.get("engine", "rl_sim_env"), "engine", choice_field(*ENGINES))

    horizon = Horizon()
    if "horizon" in m:
        h = r.block(
            m["horizon"],
            "horizon",
            {"steps": int_field(1, 1e7), "dt_seconds": num_field(1e-3, 3600)},
        )
        horizon = Horizon(**h)
    steps = horizon.steps
    rng = RngSpec()
    if "rng" in m:
        rng = RngSpec(
            **r.block(
                m["rng"],
                "rng",
                {"base_seed": int_field(0, U64_MOD - 1), "num_seeds": int_field(1, 1e5)},
            )
        )
    initial = InitialState()
    if "initial_state" in m:
        d = r.block(
            m["initial_state"],
            "initial_state",
            {"risk_profile": Field("str"), "init_q_tao": num_field(-1e4, 1e4)},
        )
        if parse_profile(d["risk_profile"]) is None:
            r.fail(
                "initial_state.risk_profile",
                f"unknown risk profile {d['risk_profile']!r}",
                PROFILE_CHOICES,
            )
        initial = InitialState(**d)
    market = _market_model(r, m["market_model"]) if "market_model" in m else MarketModel()
    micro = Microstructure()
    if "microstructure_model" in m:
        micro = Microstructure(
            **r.block(
                m["microstructure_model"],
                "microstructure_model",
                {
                    "fees_bps_maker": num_field(-100, 100),
                    "fees_bps_taker": num_field(-100, 100),
                    "latency_ms": num_field(0, 6e4),
                },
            )
        )
    invariants = Invariants()
    if "invariants" in m:
        invariants = Invariants(
            **r.block(
                m["invariants"],
                "invariants",
                {
                    "expect_kill_switch": choice_field(*EXPECT_KILL),
                    "pnl_linearity_check": choice_field(*LINEARITY),
                },
                dataclasses.asdict(Invariants()),
            )
        )
    partial = PartialFill()
    if "partial_fill" in m:
        d = r.block(
            m["partial_fill"],
            "partial_fill",
            {
                "enabled": Field("bool"),
                "base_fill_prob": num_field(0, 1),
                "latency_sensitivity": num_field(0, 1),
                "latency_ref_ms": num_field(0, 1e6, lo_open=True),
                "depth_ref": num_field(0, 1e12, lo_open=True),
                "min_fill_frac": num_field(0, 1),
                "max_fill_frac": num_field(0, 1),
                "apply_to_mm": Field("bool"),
            },
        )
        if d["max_fill_frac"] < d["min_fill_frac"]:
            r.fail(
                "partial_fill.max_fill_frac",
                f"{_fmt(d['max_fill_frac'])} is below min_fill_frac",
                num_field(d["min_fill_frac"], 1).describe(),
            )
        partial = PartialFill(**d)

    def opt(key: str, build: Any) -> Any:
        return build(m[key]) if key in m else None

    latency_spike = opt(
        "latency_spike",
        lambda raw: LatencySpike(
            **_window(r, raw, "latency_spike", steps, before={"spike_ms": num_field(0, 6e4)})
        ),
    )
    cancel_storm = opt(
        "cancel_storm",
        lambda raw: CancelStorm(
            **_window(
                r,
                raw,
                "cancel_storm",
                steps,
                after={
                    "spread_mult": num_field(0, 100, lo_open=True),
                    "depth_mult": num_field(0, 100),
                    "toxicity_floor": num_field(0, 1),
                },
            )
        ),
    )
    venue = int_field(0, n - 1)
    spread_shock = opt(
        "spread_shock_bps", lambda raw: r.value(raw, "spread_shock_bps", num_field(0, 1e4))
    )
    depth_shock = opt(
        "depth_shock_pct", lambda raw: r.value(raw, "depth_shock_pct", num_field(-100, 1e3))
    )
    outage = opt(
        "venue_outage",
        lambda raw: VenueOutage(
            **_window(r, raw, "venue_outage", steps, before={"venue_index": venue})
        ),
    )
    in_horizon = int_field(0, steps - 1, f"outside the horizon of {steps} steps")
    inversion = opt(
        "funding_inversion",
        lambda raw: FundingInversion(
            **r.block(
                raw,
                "funding_inversion",
                {"type": choice_field(*FUNDING_INVERSION_TYPES), "trigger_step": in_horizon},
            )
        ),
    )
    drift = opt(
        "funding_drift",
        lambda raw: FundingDrift(
            **r.block(
                raw,
                "funding_drift",
                {"drift_bps_per_step": num_field(-100, 100), "start_step": in_horizon},
            )
        ),
    )
    basis = opt("basis_spike", lambda raw: _basis_spike(r, raw, steps, venue, in_horizon))
    adversarial = opt(
        "adversarial_params",
        lambda raw: AdversarialParams(
            **r.block(
                raw,
                "adversarial_params",
                {
                    "vol_multiplier": num_field(0, 10, lo_open=True),
                    "daily_loss_limit": num_field(0, 1e9, lo_open=True),
                },
            )
        ),
    )
    return ScenarioSpec(
        scenario_id=sid,
        scenario_version=version,
        engine=engine,
        horizon=horizon,
        rng=rng,
        initial_state=initial,
        market_model=market,
        microstructure_model=micro,
        invariants=invariants,
        partial_fill=partial,
        latency_spike=latency_spike,
        cancel_storm=cancel_storm,
        spread_shock_bps=spread_shock,
        depth_shock_pct=depth_shock,
        venue_outage=outage,
        funding_inversion=inversion,
        funding_drift=drift,
        basis_spike=basis,
        adversarial_params=adversarial,
        source=str(source),
    )


def _basis_spike(r: Reader, raw: Any, steps: int, venue: Field, trigger: Field) -> BasisSpike:
    d = r.block(
        raw,
        "basis_spike",
        {
            "magnitude_bps": num_field(-5000, 5000),
            "venue_index": venue,
            "trigger_step": trigger,
            "duration_steps": int_field(1, 1e7),
        },
    )
    room = steps - d["trigger_step"]
    if d["duration_steps"] > room:
        r.fail(
            "basis_spike.duration_steps",
            f"{d['duration_steps']} runs past the horizon of {steps} steps",
            int_field(1, room).describe(),
        )
    return BasisSpike(**d)


def parse_scenario_text(
    text: str, source: str = "<memory>", n_venues: int | None = None
) -> ScenarioSpec:
    """Parse scenario YAML text (see :func:`parse_scenario`)."""
    return parse_scenario(load_yaml(text, source), source, n_venues)


def load_scenario(path: str | Path, n_venues: int | None = None) -> ScenarioSpec:
    """Read and parse a scenario file; a missing or unreadable file is a ScenarioError too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(
            f"{p}: <file>: cannot read ({type(e).__name__}) (allowed: a UTF-8 YAML file)"
        ) from None
    return parse_scenario_text(text, str(p), n_venues)
