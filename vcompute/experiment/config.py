"""Experiment configs: TOML files validated before anything runs.

A config names a task, fixed ``[params]``, a ``[grid]`` of swept
parameters, seeds, the report table and plots (format in
``docs/dev/conventions.md``). :func:`load_config` parses, applies
``--set`` overrides (and the ``[smoke]`` variant), and validates every run
the grid expands to against the task's ``Params`` model. Any problem raises
:class:`ConfigError` naming the key path and what is allowed; nothing runs.
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vcompute.core.hashing import canonical_json, digest_hex
from vcompute.core.registry import UnknownPluginError

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "ExperimentSection",
    "PlotSpec",
    "ReportSection",
    "RunSpec",
    "load_config",
    "parse_overrides",
    "expand_runs",
    "plot_x_is_metric",
]

_SECTIONS = ("experiment", "params", "grid", "report", "plots", "smoke")


class ConfigError(ValueError):
    """A config problem: the message names the key path and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentSection(_Strict):
    """The ``[experiment]`` table."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="run directory prefix")
    task: str = Field(description="a registered task (`vcompute list tasks`)")
    description: str = ""
    seeds: int | list[int] = Field(1, description="N for seeds 0..N-1, or a list of seeds")
    executor: str = Field("local", description="local | serial | ray (`vcompute list executors`)")
    workers: int = Field(2, ge=1, le=1024)
    address: str | None = Field(None, description="Ray cluster address (executor = 'ray')")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int):
            if v < 1:
                raise ValueError("seeds must be >= 1 (a count) or a non-empty list of seeds")
        else:
            if not v:
                raise ValueError("seeds list is empty")
            if len(set(v)) != len(v):
                raise ValueError("seeds list has duplicates")
            if any(s < 0 for s in v):
                raise ValueError("seeds must be non-negative")
        return v

    def seed_list(self) -> list[int]:
        """The explicit list of seeds."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class ReportSection(_Strict):
    """The ``[report]`` table: rows of the printed table."""

    group_by: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list, description="empty: every numeric metric")


class PlotSpec(_Strict):
    """One ``[[plots]]`` entry.

    ``x`` names a parameter (one point per value, mean over seeds and the
    other parameters' values) or, with ``x_metric = true``, a metric: then
    each parameter set is one point at (mean x, mean y) over its seeds with
    standard-error bars on both axes (a trade-off frontier), coloured by
    ``hue`` and joined in the order of the parameter ``order`` (default: by x).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    x: str = Field(description="a parameter, or a metric with x_metric = true")
    y: str | list[str]
    hue: str | None = None
    kind: Literal["line", "bar", "scatter"] = "line"
    x_metric: bool = Field(False, description="x names a metric: one point per parameter set")
    order: str | None = Field(None, description="metric x: the parameter whose values a line runs through")
    logx: bool = False
    logy: bool = False
    title: str | None = None

    def ys(self) -> list[str]:
        """The y metrics as a list."""
        return [self.y] if isinstance(self.y, str) else list(self.y)


class ExperimentConfig(_Strict):
    """A whole experiment config."""

    experiment: ExperimentSection
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    report: ReportSection = Field(default_factory=ReportSection)
    plots: list[PlotSpec] = Field(default_factory=list)
    smoke: dict[str, Any] = Field(default_factory=dict)

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for k, vals in v.items():
            if not vals:
                raise ValueError(f"grid key {k!r} has an empty list; give at least one value")
        return v


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: resolved task parameters and a seed.

    Attributes:
        key: hash of task + resolved params + seed; stable across sweeps.
        task: the task name.
        params: the task's parameters as a JSON-ready dict (defaults filled).
        seed: the run's seed.
    """

    key: str
    task: str
    params: dict[str, Any]
    seed: int


def _fmt_loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(e: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    lines = []
    for err in e.errors():
        loc = _fmt_loc(err["loc"])
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1]) if model else None
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{where}: unknown key{hint}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) else ""
            lines.append(f"{where}: {msg}{shown}")
    return "\n".join(lines)


def _allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str] | None:
    m: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(m, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        m = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if m is None:
            return None
    return sorted(getattr(m, "model_fields", {}))


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """Parse ``key=value`` strings; values are TOML (``4``, ``[1, 2]``, ``"x"``), else strings.

    Raises:
        ConfigError: for an item without ``=``.

    Example:
        >>> parse_overrides(["params.rounds=4", "grid.n=[64, 128]", "params.backend=torch"])
        [('params.rounds', 4), ('grid.n', [64, 128]), ('params.backend', 'torch')]
    """
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set params.rounds=4")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out.append((key, value))
    return out


def _apply_override(raw: dict[str, Any], key: str, value: Any, origin: str) -> None:
    section, _, rest = key.partition(".")
    if section not in _SECTIONS or not rest and section not in ("plots",):
        guess = _guess_section(raw, key) if section not in _SECTIONS else ""
        raise ConfigError(f"{origin} {key!r}: the key must start with one of "
                          f"{', '.join(s for s in _SECTIONS if s != 'smoke')}{guess}")
    if section == "grid":
        if not isinstance(value, list):
            value = [value]
        raw.setdefault("grid", {})[rest] = value
        raw.get("params", {}).pop(rest, None)
        return
    if section == "params":
        _set_nested(raw.setdefault("params", {}), rest.split("."), value)
        raw.get("grid", {}).pop(rest, None)
        return
    if section == "plots":
        raise ConfigError(f"{origin} {key!r}: plots cannot be overridden from the command line")
    _set_nested(raw.setdefault(section, {}), rest.split("."), value)


def _guess_section(raw: dict[str, Any], key: str) -> str:
    """``; did you mean S.key?`` when ``key`` starts with a field of section S, else ``""``.

    Only a path whose first part exists is suggested (``seeds`` -> ``experiment.seeds``,
    a task parameter -> ``params.<it>``); a wholly unknown key gets no guess.
    """
    first = key.split(".")[0]
    if first in ExperimentSection.model_fields:
        return f"; did you mean experiment.{key}?"
    if first in ReportSection.model_fields:
        return f"; did you mean report.{key}?"
    task = raw.get("experiment", {}).get("task") if isinstance(raw.get("experiment"), dict) else None
    try:
        from vcompute.experiment.tasks import TASKS

        fields = TASKS.get(task).Params.model_fields if isinstance(task, str) else {}
    except (UnknownPluginError, AttributeError):
        fields = {}
    return f"; did you mean params.{key}?" if first in fields else ""


def _set_nested(d: dict[str, Any], path: list[str], value: Any) -> None:
    for p in path[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {p!r} is not a table")
        d = nxt
    d[path[-1]] = value


def load_config(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    overrides: Sequence[str] = (),
    smoke: bool = False,
) -> ExperimentConfig:
    """Load, override and fully validate an experiment config.

    Args:
        path: the TOML file (or None with ``text``).
        text: TOML source instead of a file.
        overrides: ``key=value`` items (``--set``), applied after ``[smoke]``.
        smoke: apply the config's ``[smoke]`` overrides (the quick variant).

    Returns:
        The validated config.

    Raises:
        ConfigError: naming the key path and what is allowed.
    """
    where = str(path) if path is not None else "<text>"
    if text is None:
        if path is None:
            raise ConfigError("load_config needs a path or text")
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise ConfigError(f"{where}: no such config file") from None
        except OSError as e:
            raise ConfigError(f"{where}: cannot read: {e.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    unknown = [k for k in raw if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(_SECTIONS)}")
    if smoke:
        for k, v in dict(raw.get("smoke", {})).items():
            _apply_override(raw, k, v, f"{where} [smoke] (the --smoke variant)")
    for k, v in parse_overrides(overrides):
        _apply_override(raw, k, v, "--set")
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{where}:\n{_explain(e, model=ExperimentConfig)}") from None
    _validate_task(cfg, where)
    if not smoke and cfg.smoke:
        # The quick variant is validated too, so a bad [smoke] table fails now, not in a test run.
        try:
            load_config(path, text=text, overrides=overrides, smoke=True)
        except ConfigError as e:
            raise ConfigError(f"{where}: the [smoke] table (the --smoke variant) is invalid; fix the key it "
                              f"names there:\n{e}") from None
    return cfg


def _task_params_model(cfg: ExperimentConfig, where: str) -> type[BaseModel]:
    from vcompute.experiment.tasks import TASKS

    try:
        task = TASKS.get(cfg.experiment.task)
    except UnknownPluginError as e:
        raise ConfigError(f"{where}: experiment.task: {e}") from None
    return task.Params


def _validate_task(cfg: ExperimentConfig, where: str) -> None:
    from vcompute.experiment.executors import EXECUTORS

    if cfg.experiment.executor not in EXECUTORS:
        raise ConfigError(f"{where}: experiment.executor: unknown executor {cfg.experiment.executor!r}; "
                          f"known executors: {', '.join(EXECUTORS.names())}")
    model = _task_params_model(cfg, where)
    for key in cfg.grid:
        if _get_nested(cfg.params, key.split(".")) is not _MISSING:
            raise ConfigError(f"{where}: grid.{key} is also set in [params]; keep it in one place")
    # The fixed params first (with each grid key at its first value), so an
    # error in [params] is reported there; then each grid value, so an error
    # names grid.KEY[i].
    base = copy.deepcopy(cfg.params)
    for key, values in cfg.grid.items():
        _set_nested(base, key.split("."), values[0])
    try:
        model.model_validate(base)
    except ValidationError as e:
        grid_locs = {tuple(k.split(".")) for k in cfg.grid}
        own = [err for err in e.errors() if tuple(str(x) for x in err["loc"][:len(err["loc"])]) not in grid_locs
               and not any(tuple(str(x) for x in err["loc"][:len(g)]) == g for g in grid_locs)]
        if own:
            raise ConfigError(f"{where}:\n{_explain(e, 'params.', model)}") from None
    for key, values in cfg.grid.items():
        for i, v in enumerate(values):
            p = copy.deepcopy(base)
            _set_nested(p, key.split("."), v)
            try:
                model.model_validate(p)
            except ValidationError as e:
                raise ConfigError(f"{where}: grid.{key}[{i}] = {v!r}:\n"
                                  f"{_explain(e, 'params.', model)}") from None
    runs = expand_runs(cfg, where=where)
    names = set(_flat_keys(runs[0].params)) | {"seed"}
    for key in cfg.report.group_by:
        if key not in names:
            raise ConfigError(f"{where}: report.group_by: {key!r} is not a parameter; "
                              f"parameters: {', '.join(sorted(names))}")
    metrics = getattr(_task_class(cfg), "metrics", None)
    for i, plot in enumerate(cfg.plots):
        _validate_plot(plot, f"{where}: plots[{i}]", names, metrics, cfg.experiment.task)
    if metrics:
        named = [(f"plots[{i}].y" + (f"[{j}]" if isinstance(p.y, list) else ""), y)
                 for i, p in enumerate(cfg.plots) for j, y in enumerate(p.ys())]
        named += [(f"report.metrics[{j}]", m) for j, m in enumerate(cfg.report.metrics)]
        for key, y in named:
            if y not in metrics and y not in names:
                raise ConfigError(f"{where}: {key}: metric {y!r} is not produced by task "
                                  f"{cfg.experiment.task!r}; its metrics: {', '.join(metrics)}")


def plot_x_is_metric(plot: PlotSpec, params: Any) -> bool:
    """Whether ``plot`` puts a metric on x (``params``: the config's parameter names)."""
    return plot.x_metric or plot.x not in params


def _validate_plot(plot: PlotSpec, at: str, names: set[str], metrics: Sequence[str] | None, task: str) -> None:
    """Check one validated ``[[plots]]`` entry against the parameters (and declared metrics) before running.

    A metric on x is only checked against the task's metrics when the task
    declares them (a ``metrics`` attribute); otherwise the report checks the
    name against the results and fails there naming ``plots[i].x``.
    """
    params = ", ".join(sorted(names))
    bad_hue = plot.hue is not None and plot.hue not in names
    if plot.x in names:
        if bad_hue:
            raise ConfigError(f"{at}.hue: {plot.hue!r} is not a parameter; parameters: {params}")
        if plot.x_metric:
            raise ConfigError(f"{at}.x_metric: x = {plot.x!r} is a parameter, not a metric; "
                              f"remove x_metric (or name a metric on x)")
        if plot.order is not None:
            raise ConfigError(f"{at}.order: only a plot with a metric on x (x_metric = true) takes order; "
                              f"with the parameter {plot.x!r} on x the points follow x; remove order")
        return
    declared = bool(metrics) and plot.x in metrics  # type: ignore[operator]
    if not plot.x_metric and not declared:
        raise ConfigError(f"{at}.x: {plot.x!r} is not a parameter; parameters: {params}. To put a metric "
                          f"on x (one point per parameter set), add x_metric = true to this plot")
    if metrics and plot.x not in metrics:
        raise ConfigError(f"{at}.x: metric {plot.x!r} is not produced by task {task!r}; "
                          f"its metrics: {', '.join(metrics)}")
    if bad_hue:
        raise ConfigError(f"{at}.hue: {plot.hue!r} is not a parameter; parameters: {params}")
    if plot.kind == "bar":
        raise ConfigError(f"{at}.kind: 'bar' needs a parameter on x, and {plot.x!r} is a metric; "
                          f"use kind = 'line' (points joined) or 'scatter'")
    if plot.order is not None and (plot.order not in names or plot.order == "seed"):
        raise ConfigError(f"{at}.order: {plot.order!r} is not a parameter (points are means over seeds, so "
                          f"not 'seed' either); parameters: {', '.join(sorted(names - {'seed'}))}")


def _task_class(cfg: ExperimentConfig) -> Any:
    from vcompute.experiment.tasks import TASKS

    return TASKS.get(cfg.experiment.task)


_MISSING = object()


def _get_nested(d: dict[str, Any], path: list[str]) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return _MISSING
        d = d[p]
    return d


def _flat_keys(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
            nested = _flat_keys(v, f"{prefix}{k}.")
            out.update(nested if nested else {f"{prefix}{k}": v})
        else:
            out[f"{prefix}{k}"] = v
    return out


def flatten_params(params: dict[str, Any]) -> dict[str, Any]:
    """Nested params as dotted keys (``{"market": {"p": 1}}`` -> ``{"market.p": 1}``)."""
    return _flat_keys(params)


def expand_runs(cfg: ExperimentConfig, *, where: str = "<config>") -> list[RunSpec]:
    """Every run of the config: the grid's cartesian product times the seeds.

    Raises:
        ConfigError: if a combination fails the task's validation.
    """
    model = _task_params_model(cfg, where)
    keys = list(cfg.grid)
    runs = []
    for combo in itertools.product(*(cfg.grid[k] for k in keys)):
        p = copy.deepcopy(cfg.params)
        for k, v in zip(keys, combo):
            _set_nested(p, k.split("."), v)
        try:
            resolved = model.model_validate(p).model_dump(mode="json")
        except ValidationError as e:
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, combo))
            raise ConfigError(f"{where}: grid combination ({shown}):\n{_explain(e, 'params.', model)}") from None
        for seed in cfg.experiment.seed_list():
            key = digest_hex(canonical_json({"task": cfg.experiment.task, "params": resolved, "seed": seed}))[:16]
            runs.append(RunSpec(key=key, task=cfg.experiment.task, params=resolved, seed=seed))
    return runs

