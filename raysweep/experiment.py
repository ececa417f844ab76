"""Experiments: an experiment YAML (Hydra-composed) plus ``key=value`` overrides become a base
configuration, a search space, variants, a budget and a study, every value of which is validated
against the schema before Ray starts. Sweeps (``raysweep.tune``) run experiments and reports
(``raysweep.report``) read them; a single run's :class:`~raysweep.config.Config` knows none of it.

Search-space syntax, for any schema key in the YAML::

    data:
      delta: {grid: [0.01, 0.05, 0.1, 0.2]}     # every value (grid search)
      sigma: {uniform: [1.0, 5.5]}              # random / optuna: sampled
      L: {choice: [16, 64, 256]}
      size: {randint: [32, 129]}                # [low, high)
    pretrain:
      lr: {loguniform: [1.0e-4, 1.0e-2]}

On the command line Hydra's sweep syntax does the same: ``data.delta=0.01,0.1`` (grid),
``data.L=range(16,80,16)`` (grid), ``data.sigma=interval(1,5)`` (uniform). Five top-level entries
belong to the experiment, not to a run's configuration:

- ``variants:`` a list of override sets crossed with the grid (e.g. the baselines: scratch,
  FractalDB, OFDB, 1p-frac), each optionally with a ``label``;
- ``budgets:`` named override sets, applied with ``budget=NAME`` (e.g. ``budget=paper``);
- ``study:`` which of the paper's studies the sweep repeats (the report sets the published
  reference beside our numbers);
- ``baseline:`` the configuration the others are compared with, seed by seed, in ``results.md``
  and the report: one swept setting, e.g. ``baseline: {variant: scratch}`` or
  ``baseline: {data.delta: 0.1}`` (``baseline.data.delta=0.1`` on the command line). Without it the
  report chooses (``raysweep.report.stats.baseline_of``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from raysweep.config import Config, ConfigError
from raysweep.config.loading import build_config, check_key, compose_yaml, flatten, is_space, parse_overrides

#: the paper's studies (the report page lays its table out like the paper's)
STUDIES = ("baselines", "delta", "sigma", "L", "real_image", "linear_probe", "table8")
#: top-level keys of an experiment that are not configuration keys
EXPERIMENT_KEYS = ("budget", "budgets", "variants", "study", "baseline")
#: the file of a sweep's run directory that records its experiment
EXPERIMENT_FILE = "experiment.json"
#: keys holding local paths: relative ones are made absolute where the command runs
LOCAL_PATH_KEYS = ("storage", "score.data_root", "data.image")


@dataclass
class Experiment:
    base: dict[str, Any]  # flat {dotted key: value} of the configuration, budget applied, no search spaces
    space: dict[str, dict[str, list]]  # {dotted key: {kind: args}}
    variants: list[dict[str, Any]] = field(default_factory=list)  # flat override sets
    budget: str | None = None  # the budget applied
    budgets: dict[str, Any] = field(default_factory=dict)
    study: str | None = None
    baseline: dict[str, Any] = field(default_factory=dict)  # {swept key or "variant": value}, at most one entry
    baseline_from: str = "the experiment"  # who named the baseline (not recorded: the report's command line may)
    cfg: Config = None  # the base configuration, validated  # type: ignore[assignment]

    def with_seed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Tune's parameters of a trial with its seed: optuna/random search with repeats give the
        Repeater's index (``__trial_index__``) into ``sweep.seeds`` instead of a seed."""
        if "__trial_index__" in params:
            return {**params, "seed": self.cfg.sweep.seeds[int(params["__trial_index__"])]}
        return dict(params)

    def first_point(self) -> dict[str, Any]:
        """The first value of every search space (what validation and pre-flight checks use)."""
        return {k: next(iter(v.values()))[0] for k, v in self.space.items()}

    def config_for(self, params: Mapping[str, Any]) -> Config:
        """The configuration of one trial: base, then its sampled values, variant and seed."""
        values = dict(self.base)
        values.update({k: _plain(params[k]) for k in self.space})
        if self.variants:
            values.update(self.variant(int(params["variant"])))
        if "seed" in params:
            values["seed"] = int(params["seed"])
            values["data.seed"] = int(params["seed"])
        return build_config(values)

    def variant(self, index: int) -> dict[str, Any]:
        """The configuration overrides of variant ``index`` (without its label)."""
        return {k: v for k, v in self.variants[index].items() if k != "label"}

    def configs_to_check(self) -> list[Config]:
        """The base configuration (every space at its first value), then one per grid value, per end
        of every range and per variant, each differing from the base in that one place: what is
        validated, and what the pre-flight checks, before any cluster work."""
        probe = {**self.base, **self.first_point()}
        configs = [build_config(dict(probe))]
        for key, spec in self.space.items():
            (kind, args), = spec.items()
            values = list(args) if kind in ("grid", "choice") else [args[0], args[1] - 1 if kind == "randint" else args[1]]
            configs += [build_config({**probe, key: value}) for value in values]
        configs += [build_config({**probe, **self.variant(i)}) for i in range(len(self.variants))]
        return configs

    def swept_keys(self) -> list[str]:
        return [*self.space, *(["variant"] if self.variants else []), *(["seed"] if len(self.cfg.sweep.seeds) > 1 else [])]

    def variant_name(self, index: int) -> str:
        v = self.variants[index]
        return str(v.get("label") or ",".join(f"{k}={val}" for k, val in v.items()))

    def with_baseline(self, key: str, value: Any) -> "Experiment":
        """This experiment compared with another baseline (one value the sweep runs; a one-line
        ConfigError otherwise): what ``python -m raysweep.report RUN_DIR baseline.KEY=VALUE`` reads."""
        exp = dataclasses.replace(self, baseline={key: value}, baseline_from="the command line of python -m raysweep.report")
        _check_baseline(exp)
        return exp

    def record(self) -> dict[str, Any]:
        """What a run directory's experiment.json keeps (and :meth:`from_record` reads back)."""
        return {"fingerprint": self.fingerprint, "base": self._record_base(), "space": self.space, "variants": self.variants}

    def _record_base(self) -> dict[str, Any]:
        extra = {"budget": self.budget, **({"budgets": self.budgets} if self.budgets else {}),
                 **({"variants": self.variants} if self.variants else {}), **({"study": self.study} if self.study else {}),
                 **({"baseline": self.baseline} if self.baseline else {})}
        return {**self.base, **extra}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Experiment":
        """The experiment as a run directory's experiment.json recorded it."""
        base = dict(record["base"])
        meta = {k: base.pop(k, None) for k in EXPERIMENT_KEYS}
        return _checked(cls(base=base, space=dict(record["space"]), variants=list(record.get("variants") or []),
                            budget=meta["budget"], budgets=dict(meta["budgets"] or {}), study=meta["study"],
                            baseline=dict(meta["baseline"] or {})))

    @property
    def fingerprint(self) -> str:
        """What identifies the sweep (a rerun with the same fingerprint resumes it)."""
        blob = json.dumps({"base": self._record_base(), "space": self.space, "variants": self.variants}, sort_keys=True,
                          default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def load_experiment(yaml_path: str | None, overrides: Sequence[str]) -> Experiment:
    """The experiment of a YAML file and command-line overrides, validated."""
    values: dict[str, Any] = flatten(compose_yaml(yaml_path)) if yaml_path else {}
    cli = parse_overrides(overrides, sweeps=True)
    budget = cli.pop("budget", values.pop("budget", None))
    budgets = values.pop("budgets", None) or {}
    if budget is not None:
        if budget not in budgets:
            raise ConfigError(f"budget={budget!r} is not defined in the experiment; choose one of: {', '.join(budgets) or '(none defined)'}")
        values.update(flatten(budgets[budget]))
    values.update(cli)
    study = values.pop("study", None)
    if study is not None and study not in STUDIES:
        raise ConfigError(f"study={study!r} is not allowed; choose one of: {', '.join(STUDIES)}")
    variants = [flatten(v) if isinstance(v, Mapping) else v for v in (values.pop("variants", None) or [])]
    # baseline: {variant: scratch} is flattened like any map: baseline.variant
    baseline = {k.split(".", 1)[1]: values.pop(k) for k in [k for k in values if k.startswith("baseline.")]}
    if "baseline" in values:
        raise ConfigError(f"baseline={values['baseline']!r} must name one swept setting, e.g. baseline.variant=scratch "
                          "or baseline.data.delta=0.1")
    _absolute_paths(values)
    space = {k: v for k, v in values.items() if is_space(v)}
    base = {k: v for k, v in values.items() if not is_space(v)}
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
    exp = _checked(Experiment(base=base, space=space, variants=variants, budget=budget, budgets=dict(budgets), study=study,
                              baseline=baseline))
    _check_baseline(exp)
    return exp


def same_value(a: Any, b: Any) -> bool:
    """Whether two swept values are the same setting (numbers compared as numbers: '0.10' is 0.1)."""
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return str(a) == str(b)


def swept_values(exp: Experiment, key: str) -> list | None:
    """The values a swept key takes (a variant: its labels); None for a sampled range."""
    if key == "variant":
        return [exp.variant_name(i) for i in range(len(exp.variants))] if exp.variants else None
    (kind, args), = exp.space.get(key, {"": None}).items()
    return list(args) if kind in ("grid", "choice") else None


def _check_baseline(exp: Experiment) -> None:
    """A named baseline is one value the sweep runs: a variant's label or one value of a grid."""
    if not exp.baseline:
        return
    if len(exp.baseline) > 1:
        raise ConfigError(f"baseline names {len(exp.baseline)} settings ({', '.join(exp.baseline)}); name one, "
                          "e.g. baseline.variant=scratch")
    (key, value), = exp.baseline.items()
    values = swept_values(exp, key)
    if values is None:
        swept = [k for k in [*exp.space, "variant"] if swept_values(exp, k)]
        raise ConfigError(f"baseline.{key}={value!r}: {key} is not swept by a grid or variants; "
                          f"choose one of: {', '.join(swept) or '(nothing is)'}")
    if not any(same_value(value, v) for v in values):
        raise ConfigError(f"baseline.{key}={value!r} is not a value the sweep runs; choose one of: {', '.join(map(str, values))}")


def _checked(exp: Experiment) -> Experiment:
    """Build every configuration (every grid value, both ends of every range, every variant): any
    invalid value is reported, in one line naming it, before Ray starts."""
    exp.cfg = exp.configs_to_check()[0]
    return exp


def _absolute_paths(values: dict[str, Any]) -> None:
    """Relative local paths are relative to where the command runs, not to where Ray runs a trial
    (Tune and Train give their workers other working directories): make them absolute here."""
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
