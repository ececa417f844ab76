"""Every use of Ray's private modules and undocumented knobs, in one place.

raysweep otherwise uses Ray's public API (``ray.init``, Ray Data, Ray Train V2, Ray Tune). Each
entry below names what it touches, the Ray version it was checked on (``RAY_CHECKED``) and why
raysweep needs it. When Ray is upgraded, this file is the one to read: nothing else in the
package imports ``ray._private``, ``ray._raylet``, ``ray.*._internal`` or ``ray.experimental``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.train.torch import TorchTrainer

RAY_CHECKED = "2.60.0"

#: Environment knobs set (as defaults: an explicit value in the environment wins) by every driver
#: that launches Ray Train runs or Tune sweeps. Checked on Ray 2.60.0.
ENV_DEFAULTS = {
    # Ray Train V2's controller collects the workers' reports when it polls them, every 2 s by
    # default, so each report (and the final result of a sweep trial) reached Tune up to 2 s late.
    # The poll is a small RPC. Train propagates this variable to its controller actor.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    # A sweep trial reports pre-training metrics first (loss, probe_top1) and the downstream top-1
    # only at its end; Tune's strict check would reject the early results for lacking the metric.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # Tune's compact progress output (the new reporter) instead of the legacy table.
    "RAY_AIR_NEW_OUTPUT": "1",
}


def set_env_defaults() -> None:
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def free_loopback_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def state_api_env(dashboard_port: int) -> dict[str, str]:
    """The environment that points Ray's State API clients at this Ray's dashboard.

    A State API client (``ray.util.state``) that is given no address, such as Ray Train's
    ``PlacementGroupCleaner`` actor, finds "its" cluster through ``RAY_ADDRESS``, else the
    ``/tmp/ray/ray_current_cluster`` file of the last ``ray start`` on the machine, else the GCS
    processes it sees. A Ray started in-process (``ray.init(address="local")``) writes no such file,
    so with another Ray on the machine (or a stale file) the cleaner queries the wrong cluster for
    ~40 s and every Train run waits 12 s more at its end. ``RAY_API_SERVER_ADDRESS`` (the Jobs and
    State API address variable) names this one. Checked on Ray 2.60.0."""
    return {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dashboard_port}"}


def loopback_only() -> None:
    """Make the local Ray about to start bind its servers (GCS, raylet, workers, agents) to
    127.0.0.1 instead of this machine's network address.

    Ray on Linux resolves "localhost" to the node's network IP (it assumes a cluster may join);
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` gives the single-machine behaviour Ray has on macOS and
    Windows, where the node IP is the loopback address. The environment variable reaches Ray's
    child processes; the constant (``ray._private.ray_constants.ENABLE_RAY_CLUSTER``, read when
    ``ray.init`` picks the node IP) is this process's, imported or not. Checked on Ray 2.60.0."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def pin_autoscaling_coordinator() -> None:
    """Create Ray's cluster-wide AutoscalingCoordinator (a detached, named actor that Ray Data and
    Ray Train share) on this node, the driver's, before any trial does.

    Ray pins that actor, without fallback, to the node of whoever first asks for it. Left to the
    first trial, that is a worker node; when that node dies, the actor can never be placed again
    and every later resource request to it fails for the rest of the cluster's life. The driver's
    node (the head, under ``ray job submit``) lives as long as the sweep. Checked on Ray 2.60.0
    (``ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator``)."""
    try:
        from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import (
            get_or_create_autoscaling_coordinator,
        )
    except ImportError:  # a Ray without it: nothing to pin
        return
    get_or_create_autoscaling_coordinator()


def _built(name: str):
    """A class of this module built on first use (pickled by reference, as ``raysweep.ray_private.<name>``)."""
    if name not in globals():
        globals()[name] = _FACTORIES[name]()
    return globals()[name]


def lean_trainer_class() -> type["TorchTrainer"]:
    """A TorchTrainer that starts no Ray Data dataset actor when it is given no datasets.

    Ray Train 2.60 starts a ``DatasetManager`` actor at every worker-group start, datasets or not,
    and the workers wait for it: a process and ~1.5 s of every run's fixed cost on a small machine.
    raysweep's workers read small rendered datasets themselves, so with no datasets this trainer
    leaves out the callback that starts it (``TorchTrainer._create_default_callbacks``, a private
    method; ``ray.train.v2._internal.callbacks.datasets.DatasetsCallback``). Checked on Ray 2.60.0."""
    return _built("_LeanTorchTrainer")


def _make_lean_trainer():
    from ray.train.torch import TorchTrainer

    class LeanTorchTrainer(TorchTrainer):
        def _create_default_callbacks(self):
            callbacks = super()._create_default_callbacks()
            if self.datasets:
                return callbacks
            try:
                from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
            except ImportError:  # another Ray layout: keep Ray's defaults
                return callbacks
            return [c for c in callbacks if not isinstance(c, DatasetsCallback)]

    LeanTorchTrainer.__module__ = __name__
    LeanTorchTrainer.__qualname__ = "_LeanTorchTrainer"
    return LeanTorchTrainer


def mlflow_logger_class():
    """Ray Tune's MLflow logger that also logs each trial's whole resolved configuration as params
    (``params_of(trial)``, set on the instance). Reads Ray's private ``_trial_runs`` (trial -> MLflow
    run id). Checked on Ray 2.60.0."""
    return _built("_MLflowTrialLogger")


def _make_mlflow_logger():
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflowTrialLogger(MLflowLoggerCallback):
        params_of = None  # trial -> {dotted key: value}

        def log_trial_start(self, trial):
            super().log_trial_start(trial)  # the run; Tune's trial config (the swept values) as params
            if self.params_of is None:
                return
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient

            params = [Param(k, str(v)) for k, v in self.params_of(trial).items() if k not in trial.config]
            client = MlflowClient()  # the tracking URI the callback's setup set
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                client.log_batch(self._trial_runs[trial], params=params[i : i + 100])

    MLflowTrialLogger.__module__, MLflowTrialLogger.__qualname__ = __name__, "_MLflowTrialLogger"
    return MLflowTrialLogger


def wandb_logger_class():
    """Ray Tune's W&B logger whose logging actor gets the driver's ``WANDB_*`` variables
    (``env_of()``, set on the instance) and each trial's whole resolved configuration
    (``params_of(trial)``). Ray passes that actor only ``WANDB_API_KEY``, so on a Ray started by
    another process (a cluster, a test session) it would log with that process's environment.
    Overrides Ray's private ``_start_logging_actor`` and sets its ``_remote_logger_class``
    (from ``_logger_actor_cls``). Checked on Ray 2.60.0."""
    return _built("_WandbTrialLogger")


def _make_wandb_logger():
    import ray
    from ray.air.integrations.wandb import WandbLoggerCallback

    class WandbTrialLogger(WandbLoggerCallback):
        params_of = None  # trial -> {dotted key: value}
        env_of = None  # () -> {name: value}, read when the actor starts (never pickled with the callback)

        def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs):
            if not self._remote_logger_class and self.env_of is not None:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
                self._remote_logger_class = ray.remote(num_cpus=0, scheduling_strategy=here,
                                                       runtime_env={"env_vars": self.env_of()}, max_restarts=-1,
                                                       max_task_retries=-1)(self._logger_actor_cls)
            if self.params_of is not None:
                wandb_init_kwargs["config"] = {**self.params_of(trial), **wandb_init_kwargs.get("config", {})}
            super()._start_logging_actor(trial, exclude_results, **wandb_init_kwargs)

    WandbTrialLogger.__module__, WandbTrialLogger.__qualname__ = __name__, "_WandbTrialLogger"
    return WandbTrialLogger


_FACTORIES = {"_LeanTorchTrainer": _make_lean_trainer, "_MLflowTrialLogger": _make_mlflow_logger,
              "_WandbTrialLogger": _make_wandb_logger}


def __getattr__(name: str):
    # built on first use: importing this module must not import Ray Train or the trackers (the CLIs
    # validate their input before they import anything heavy); unpickling finds them here too
    if name in _FACTORIES:
        return _built(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def release_placement_group(group_hex: str) -> bool:
    """Remove the placement group with this id unless it is gone already; True if removed.

    Needs a ``PlacementGroup`` rebuilt from its hex id (``ray._raylet.PlacementGroupID``): a Tune
    callback only sees the id a trial reported. Checked on Ray 2.60.0."""
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    group = PlacementGroup(PlacementGroupID(bytes.fromhex(group_hex)))
    try:
        if placement_group_table(group).get("state") in (None, "REMOVED"):
            return False
        remove_placement_group(group)
        return True
    except Exception:  # noqa: BLE001 - removed meanwhile by its own run
        return False


# ---------------------------------------------------------------------------- the autoscaler's view


def cluster_node_types() -> list[dict] | None:
    """The node types this cluster's autoscaler may launch, as Ray's GCS holds them, or None.

    Ray keeps the autoscaler's cluster config (``autoscaler_pb2.ClusterConfig``: per node group its
    resources and min/max count) in its GCS, where KubeRay reports it and where Ray Data's own
    autoscaler reads it (``ray._private.state.state.get_cluster_config``). A VM cluster started by
    ``ray up`` does not report it; ``cluster/cluster.yaml`` runs ``python -m raysweep.cluster
    publish`` on the head for that (see :func:`publish_cluster_config`). Checked on Ray 2.60.0."""
    import ray._private.state

    config = ray._private.state.state.get_cluster_config()
    if config is None or not config.node_group_configs:
        return None
    return [{"name": g.name, "resources": dict(g.resources), "min_count": int(g.min_count), "max_count": int(g.max_count)}
            for g in config.node_group_configs]


def publish_cluster_config(node_types: list[dict]) -> None:
    """Report node types to the GCS as the autoscaler's cluster config (what KubeRay does), through
    the GCS client's ``report_cluster_config`` RPC (``ray._raylet``; the message is
    ``ray.core.generated.autoscaler_pb2.ClusterConfig``). Needs a connected driver. Checked on
    Ray 2.60.0."""
    import ray
    from ray.core.generated import autoscaler_pb2

    config = autoscaler_pb2.ClusterConfig()
    for t in node_types:
        group = config.node_group_configs.add()
        group.name = t["name"]
        group.min_count = int(t.get("min_count", 0))
        group.max_count = int(t.get("max_count", 0))
        for key, value in t["resources"].items():
            group.resources[key] = int(value)
    ray._private.worker.global_worker.gcs_client.report_cluster_config(config.SerializeToString())

