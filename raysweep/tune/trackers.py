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

import ray
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback

from raysweep.config import to_dict
from raysweep.config.loading import flatten
from raysweep.config.schema import SweepConfig
from raysweep.tune.space import Experiment


def callbacks(exp: Experiment) -> list:
    """Tune logger callbacks for the MLflow and W&B entries of ``sweep.loggers`` (this module imports
    both trackers' integrations, so a sweep imports it only when it uses one)."""
    sweep = exp.cfg.sweep
    out: list = []
    if "mlflow" in sweep.loggers:
        # no URI given: None, so that MLflow reads MLFLOW_TRACKING_URI itself (it may hold credentials)
        out.append(MLflowTrialLogger(exp, tracking_uri=sweep.mlflow_tracking_uri, experiment_name=mlflow_experiment(exp)))
    if "wandb" in sweep.loggers:
        out.append(WandbTrialLogger(exp, project=wandb_project(exp)))
    return out


def mlflow_tracking_uri(sweep: SweepConfig) -> tuple[str | None, str]:
    """The tracking URI the sweep will use and where it comes from (None: MLflow's default)."""
    if sweep.mlflow_tracking_uri:
        return sweep.mlflow_tracking_uri, "sweep.mlflow_tracking_uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    return None, "MLflow's default tracking URI"


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


class MLflowTrialLogger(MLflowLoggerCallback):
    """Ray Tune's MLflow logger: one MLflow run per trial (named after the trial, in the sweep's
    experiment), Tune's config and every reported metric at each training iteration; plus the
    trial's whole resolved configuration as params (Ray's ``_trial_runs`` maps a trial to its run;
    checked on Ray 2.60.0)."""

    def __init__(self, experiment: Experiment, **kwargs):
        super().__init__(**kwargs)
        self.experiment = experiment

    def log_trial_start(self, trial):
        super().log_trial_start(trial)  # the run; Tune's trial config (the swept values) as params
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        params = [Param(key, str(value)) for key, value in trial_params(self.experiment, trial.config).items()
                  if key not in trial.config]
        client = MlflowClient()  # the tracking URI the callback's setup set
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self._trial_runs[trial], params=params[i:i + 100])


class WandbTrialLogger(WandbLoggerCallback):
    """Ray Tune's W&B logger: one W&B run per trial (grouped by sweep), logged from a Ray actor on
    the driver's node; plus the trial's whole resolved configuration as the run's config.

    Ray passes that actor only ``WANDB_API_KEY`` of the driver's environment, so on a Ray started
    by another process (a cluster, a test session) it would log with the environment Ray was
    started with: online, into the trial's directory. The actor gets every ``WANDB_*`` variable of
    the driver instead (``WANDB_MODE``, ``WANDB_DIR``, ``WANDB_ENTITY``, ``WANDB_BASE_URL``, ...);
    they stay in memory (the actor's runtime environment), never in the callback Tune pickles,
    which is built lazily like Ray's own. Overrides Ray's private ``_start_logging_actor``
    (checked on Ray 2.60.0)."""

    def __init__(self, experiment: Experiment, **kwargs):
        super().__init__(**kwargs)
        self.experiment = experiment

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs):
        if not self._remote_logger_class:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            self._remote_logger_class = ray.remote(num_cpus=0, scheduling_strategy=here, runtime_env={"env_vars": wandb_env()},
                                                   max_restarts=-1, max_task_retries=-1)(self._logger_actor_cls)
        wandb_init_kwargs["config"] = {**trial_params(self.experiment, trial.config), **wandb_init_kwargs.get("config", {})}
        super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)


def wandb_env() -> dict[str, str]:
    """The driver's ``WANDB_*`` variables (a relative ``WANDB_DIR`` made absolute: the actor runs in the trial's directory)."""
    env = {key: value for key, value in os.environ.items() if key.startswith("WANDB_")}
    if env.get("WANDB_DIR"):
        env["WANDB_DIR"] = os.path.abspath(os.path.expanduser(env["WANDB_DIR"]))
    return env
