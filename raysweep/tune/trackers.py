"""Experiment trackers of a sweep (``sweep.loggers``): TensorBoard, MLflow and Weights & Biases,
through Ray Tune's own logger callbacks, one tracker run per trial.

Each run gets the trial's whole resolved configuration as its params/config (Tune's trial config
holds only the swept values), every metric the trial reports (pre-training's loss, train top-1,
lr, throughput and quick probe, then the final top-1/top-5) and its end state.

Where the runs go comes from the trackers' own environment variables (``MLFLOW_TRACKING_URI``,
``MLFLOW_EXPERIMENT_NAME``, ``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_MODE``, ...) or from
``sweep.mlflow_tracking_uri``, ``sweep.mlflow_experiment`` and ``sweep.wandb_project``.
Credentials (``MLFLOW_TRACKING_TOKEN``/``_PASSWORD``, ``WANDB_API_KEY``, ``wandb login``) are
only ever read from the environment: no callback holds one, so none is pickled with the sweep
(Tune keeps its callbacks in the run directory to restore them).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import functools

from raysweep import ray_private
from raysweep.config import to_dict
from raysweep.config.loading import flatten
from raysweep.experiment import Experiment


def callbacks(exp: Experiment) -> list:
    """Tune logger callbacks for the MLflow and W&B entries of ``sweep.loggers`` (this module imports
    both trackers' integrations, so a sweep imports it only when it uses one)."""
    sweep = exp.cfg.sweep
    out: list = []
    params_of = functools.partial(_trial_params, exp)
    if "mlflow" in sweep.loggers:
        # no URI given: None, so that MLflow reads MLFLOW_TRACKING_URI itself (it may hold credentials)
        logger = ray_private.mlflow_logger_class()(tracking_uri=sweep.mlflow_tracking_uri, experiment_name=mlflow_experiment(exp))
        logger.params_of = params_of
        out.append(logger)
    if "wandb" in sweep.loggers:
        logger = ray_private.wandb_logger_class()(project=wandb_project(exp))
        logger.params_of, logger.env_of = params_of, wandb_env
        out.append(logger)
    return out


def _trial_params(exp: Experiment, trial) -> dict[str, Any]:
    return trial_params(exp, trial.config)


def mlflow_experiment(exp: Experiment) -> str:
    return exp.cfg.sweep.mlflow_experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or exp.cfg.name


def wandb_project(exp: Experiment) -> str:
    # WANDB_PROJECT is W&B's own variable, WANDB_PROJECT_NAME Ray's
    return exp.cfg.sweep.wandb_project or os.environ.get("WANDB_PROJECT") or os.environ.get("WANDB_PROJECT_NAME") or exp.cfg.name


def trial_params(exp: Experiment, config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's whole resolved configuration as flat dotted keys (``data.delta``, ``model.name``, ...)."""
    flat = flatten(to_dict(exp.config_for(exp.with_seed(config))))
    for key in ("budget", "budgets", "variants"):
        flat.pop(key, None)
    if exp.variants and "variant" in config:
        flat["variant.label"] = exp.variant_name(int(config["variant"]))
    return flat


def wandb_env() -> dict[str, str]:
    """The driver's ``WANDB_*`` variables (a relative ``WANDB_DIR`` made absolute: the actor runs in the trial's directory)."""
    env = {key: value for key, value in os.environ.items() if key.startswith("WANDB_")}
    if env.get("WANDB_DIR"):
        env["WANDB_DIR"] = os.path.abspath(os.path.expanduser(env["WANDB_DIR"]))
    return env
