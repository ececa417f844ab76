"""Tune's search space of an experiment: grid values as ``grid_search`` (``choice`` for model-based
search), ranges as Tune's samplers, variants and seeds as further dimensions."""

from __future__ import annotations

from typing import Any

from raysweep.config import ConfigError
from raysweep.config.loading import SPACE_KINDS
from raysweep.experiment import Experiment


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
