"""Experiments: an experiment YAML (Hydra-composed) plus ``key=value`` overrides become a base
configuration, a search space and a list of variants, every value of which is validated against
the schema before Ray starts.

Search-space syntax, for any schema key in the YAML::

    data:
      delta: {grid: [0.01, 0.05, 0.1, 0.2]}     # every value (grid search)
      sigma: {uniform: [1.0, 5.5]}              # random / optuna: sampled
      L: {choice: [16, 64, 256]}
      size: {randint: [32, 129]}                # [low, high)
    pretrain:
      lr: {loguniform: [1.0e-4, 1.0e-2]}

On the command line Hydra's sweep syntax does the same: ``data.delta=0.01,0.1`` (grid),
``data.L=range(16,80,16)`` (grid), ``data.sigma=interval(1,5)`` (uniform). ``variants:`` is a list of
override sets crossed with the grid (e.g. the baselines: scratch, FractalDB, OFDB, 1p-frac);
``budgets:`` holds named override sets applied with ``budget=NAME`` (e.g. ``budget=paper``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from raysweep.config import Config, ConfigError
from raysweep.config.loading import SPACE_KINDS, build_config, check_key, compose_yaml, flatten, is_space, parse_overrides


@dataclass
class Experiment:
    base: dict[str, Any]  # flat {dotted key: value}, budget applied, no search spaces
    space: dict[str, dict[str, list]]  # {dotted key: {kind: args}}
    variants: list[dict[str, Any]] = field(default_factory=list)  # flat override sets
    cfg: Config = None  # the base configuration, validated  # type: ignore[assignment]

    def with_seed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Tune's parameters of a trial with its seed: optuna/random search with repeats give the
        Repeater's index (``__trial_index__``) into ``sweep.seeds`` instead of a seed."""
        if "__trial_index__" in params:
            return {**params, "seed": self.cfg.sweep.seeds[int(params["__trial_index__"])]}
        return dict(params)

    def first_point(self) -> dict[str, Any]:
        """The first value of every search space (what validation and pre-flight checks use)."""
        return {k: _representative(v) for k, v in self.space.items()}

    def config_for(self, params: Mapping[str, Any]) -> Config:
        """The configuration of one trial: base, then its sampled values, variant and seed."""
        values = dict(self.base)
        values.update({k: _plain(params[k]) for k in self.space})
        if self.variants:
            values.update({k: v for k, v in self.variants[int(params["variant"])].items() if k != "label"})
        if "seed" in params:
            values["seed"] = int(params["seed"])
            values["data.seed"] = int(params["seed"])
        values.pop("variants", None)
        values.pop("budgets", None)  # already applied: the trial's config records the result
        values["budget"] = None
        return build_config(values)

    def configs_to_check(self) -> list[Config]:
        """Every configuration the pre-flight checks (see :func:`representative_configs`)."""
        return representative_configs(self)

    def swept_keys(self) -> list[str]:
        return [*self.space, *(["variant"] if self.variants else []), *(["seed"] if len(self.cfg.sweep.seeds) > 1 else [])]

    def variant_name(self, index: int) -> str:
        v = self.variants[index]
        return str(v.get("label") or ",".join(f"{k}={val}" for k, val in v.items()))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Experiment":
        """The experiment as a run directory's experiment.json recorded it."""
        exp = cls(base=dict(record["base"]), space=dict(record["space"]), variants=list(record.get("variants") or []))
        exp.cfg = _validate(exp)
        return exp

    @property
    def fingerprint(self) -> str:
        """What identifies the sweep (a rerun with the same fingerprint resumes it)."""
        blob = json.dumps({"base": self.base, "space": self.space, "variants": self.variants}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def load_experiment(yaml_path: str | None, overrides: Sequence[str]) -> Experiment:
    values: dict[str, Any] = flatten(compose_yaml(yaml_path)) if yaml_path else {}
    cli = parse_overrides(overrides, sweeps=True)
    budget = cli.get("budget", values.get("budget"))
    if budget is not None:
        budgets = values.get("budgets") or {}
        if budget not in budgets:
            raise ConfigError(f"budget={budget!r} is not defined in the experiment; choose one of: {', '.join(budgets) or '(none defined)'}")
        values.update(flatten(budgets[budget]))
    values.update(cli)
    values["budget"] = budget
    _absolute_paths(values)
    space = {k: v for k, v in values.items() if is_space(v)}
    base = {k: v for k, v in values.items() if not is_space(v)}
    variants = [flatten(v) for v in (base.get("variants") or [])]
    for key in space:
        check_key(key)
        _check_space(key, space[key])
        _check_per_sweep(key, f"{key} is a search space")
    for i, variant in enumerate(variants):
        if not isinstance(variant, dict) or not variant:
            raise ConfigError(f"variants[{i}] must be a non-empty map of overrides, e.g. {{pretrain.steps: 0}}")
        for key in variant:
            if key != "label":
                check_key(key)
                _check_per_sweep(key, f"variants[{i}] sets {key}")
    exp = Experiment(base=base, space=space, variants=[{k: v for k, v in var.items()} for var in variants])
    exp.cfg = _validate(exp)
    return exp


LOCAL_PATH_KEYS = ("storage", "score.data_root", "data.image")


def _absolute_paths(values: dict[str, Any]) -> None:
    """Relative local paths are relative to where the command runs, not to where Ray runs a trial
    (Tune and Train give their workers other working directories): make them absolute here."""
    import os

    for key in LOCAL_PATH_KEYS:
        value = values.get(key)
        if isinstance(value, str) and value and "://" not in value and not value.startswith("skimage:") \
                and value.lower() not in ("none", "null"):
            values[key] = os.path.abspath(os.path.expanduser(value))


#: keys set once for the whole sweep (its experiment trackers), never per trial
PER_SWEEP_KEYS = ("sweep.loggers", "sweep.mlflow_tracking_uri", "sweep.mlflow_experiment", "sweep.wandb_project")


def _check_per_sweep(key: str, what: str) -> None:
    if key in PER_SWEEP_KEYS:
        hint = (" (a list is written sweep.loggers=[mlflow,wandb]; sweep.loggers=mlflow,wandb is a grid)"
                if key == "sweep.loggers" else "")
        raise ConfigError(f"{what}, but it is one setting for the whole sweep{hint}")


def _check_space(key: str, spec: dict) -> None:
    (kind, args), = spec.items()
    if not isinstance(args, (list, tuple)) or not args:
        raise ConfigError(f"{key}: {{{kind}: ...}} needs a non-empty list, e.g. {{{kind}: [1, 2]}}")
    if kind in ("uniform", "loguniform", "randint") and len(args) != 2:
        raise ConfigError(f"{key}: {{{kind}: {list(args)}}} needs exactly [low, high]")
    if kind in ("uniform", "loguniform", "randint") and not args[0] < args[1]:
        raise ConfigError(f"{key}: {{{kind}: {list(args)}}} needs low < high")
    if kind == "loguniform" and args[0] <= 0:
        raise ConfigError(f"{key}: {{loguniform: {list(args)}}} needs low > 0")


def _validate(exp: Experiment) -> Config:
    """Build the configuration for every grid value, both ends of every range and every variant:
    any invalid value is reported (one line, naming it) before Ray starts. Returns the base
    configuration (every space at its first value)."""
    return representative_configs(exp)[0]


def representative_configs(exp: Experiment) -> list[Config]:
    """The base configuration (every space at its first value), then one per grid value, per end
    of every range and per variant, each differing from the base in that one place: what the
    pre-flight checks before any cluster work."""
    probe = {**exp.base, **exp.first_point()}
    probe.pop("variants", None)
    configs = [build_config(dict(probe))]
    for key, spec in exp.space.items():
        (kind, args), = spec.items()
        values = list(args) if kind in ("grid", "choice") else [args[0], args[1] - 1 if kind == "randint" else args[1]]
        configs += [build_config({**probe, key: value}) for value in values]
    for variant in exp.variants:
        configs.append(build_config({**probe, **{k: v for k, v in variant.items() if k != "label"}}))
    return configs


def _representative(spec: dict):
    (kind, args), = spec.items()
    return args[0]


def param_space(exp: Experiment) -> dict:
    """Tune's param_space: grid values as grid_search (choice for model-based search)."""
    from ray import tune

    search = exp.cfg.sweep.search
    space: dict[str, Any] = {}
    for key, spec in exp.space.items():
        (kind, args), = spec.items()
        if kind == "grid":
            space[key] = tune.choice(list(args)) if search == "optuna" else tune.grid_search(list(args))
        elif kind == "choice":
            space[key] = tune.choice(list(args))
        elif kind == "uniform":
            space[key] = tune.uniform(*args)
        elif kind == "loguniform":
            space[key] = tune.loguniform(*args)
        elif kind == "randint":
            space[key] = tune.randint(*args)
        else:  # pragma: no cover - rejected by is_space
            raise ConfigError(f"{key}: unknown search space {kind!r}; use one of {', '.join(SPACE_KINDS)}")
    if exp.variants:
        space["variant"] = tune.choice(list(range(len(exp.variants)))) if search == "optuna" else tune.grid_search(list(range(len(exp.variants))))
    seeds = exp.cfg.sweep.seeds
    if search != "optuna":  # optuna repeats through a Repeater (see run.py)
        space["seed"] = tune.grid_search(list(seeds)) if len(seeds) > 1 else seeds[0]
    return space
