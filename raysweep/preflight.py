"""The same pre-flight on every command path, before any cluster work (and, on the embedded
default, before Ray starts): every configuration a command will run is checked, and the first
problem is a one-line :class:`~raysweep.config.ConfigError` naming the value and what is allowed.

- the model: a timm name, sizes it can be built with, ``score.probe_blocks`` and
  ``score.extra_probes`` within its depth;
- the per-worker batch: even when Mixup/CutMix pairs samples;
- intervals: ASHA's probe and grace period within pre-training;
- the data: a real image loads, a 1p-frac base system renders; downstream data by its metadata
  (folders, a few files; never the whole dataset); a checkpoint's state and architecture;
- storage: writable; shared by every node on a cluster spanning several machines;
- resources: every Train worker, render actor and trial driver fits some node or node type the
  cluster has or can launch, and the GPUs asked for are ones it can provide;
- a sweep's experiment trackers: each package imports, MLflow's tracking URI takes runs (a file
  store or SQLite database that can be written, a server that answers), W&B has credentials
  unless it logs offline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

from raysweep import cluster
from raysweep.config import Config, ConfigError
from raysweep.config.schema import SweepConfig


def preflight(configs: Sequence[Config], *, pretrain: bool, score: bool, sweep: SweepConfig | None = None,
              capacity: cluster.Capacity | None = None) -> cluster.Capacity:
    """Check every configuration of a command; return what the cluster can provide."""
    checked: set[str] = set()

    def once(*key) -> bool:
        text = json.dumps(key, sort_keys=True, default=str)
        if text in checked:
            return False
        checked.add(text)
        return True

    if sweep is not None:
        check_trackers(sweep)
    probing = bool(sweep and sweep.probe_every)
    for cfg in configs:
        pretraining = pretrain and cfg.pretrain.steps > 0
        if once("model", dataclasses.asdict(cfg.model), cfg.score.mode, cfg.score.probe_blocks, cfg.score.extra_probes, score):
            check_model(cfg, score=score)
        if pretraining:
            check_batch(cfg)
            if once("data", dataclasses.asdict(cfg.data)):
                check_data(cfg)
        if sweep is not None:
            check_intervals(cfg, sweep)
        if (score or probing) and once("downstream", cfg.score.dataset, cfg.score.data_root):
            from raysweep.score.datasets import check_downstream

            check_downstream(cfg.score.dataset, cfg.score.data_root)
        if score and cfg.score.checkpoint and not pretraining and once("checkpoint", cfg.score.checkpoint, cfg.model.name):
            check_checkpoint(cfg)
        if once("storage", cfg.storage):
            from raysweep.storage import check_writable

            check_writable(cfg.storage)
    capacity = capacity or cluster.current()
    for cfg in configs:
        check_resources(cfg, capacity, pretrain=pretrain, score=score, sweep=sweep)
        if once("shared", cfg.storage):
            cluster.check_storage(capacity, cfg.storage)
    return capacity


def check_model(cfg: Config, score: bool) -> None:
    """Build the model (on the meta device: no memory, no time) to check its name and sizes, and
    the probe depths against it."""
    import torch

    from raysweep.models import check_model_name, create_model
    from raysweep.score.backbone import check_probe_blocks

    check_model_name(cfg.model.name)
    with torch.device("meta"):
        model = create_model(cfg.model, max(2, cfg.data.L))
    for blocks in cfg.score.extra_probes:
        check_probe_blocks(model, cfg.model, blocks, key="score.extra_probes[]")
    if score and cfg.score.mode == "linear_probe":
        check_probe_blocks(model, cfg.model, cfg.score.probe_blocks)


def check_batch(cfg: Config) -> None:
    p = cfg.pretrain
    local = p.batch_size // p.workers
    if (p.mixup > 0 or p.cutmix > 0) and p.mix_prob > 0 and local % 2:
        raise ConfigError(f"pretrain.batch_size / pretrain.workers = {p.batch_size} / {p.workers} = {local} is odd; "
                          f"Mixup/CutMix pairs samples, allowed: an even batch per worker")


def check_intervals(cfg: Config, sweep: SweepConfig) -> None:
    steps = cfg.pretrain.steps
    if sweep.scheduler == "asha" and steps > 0:
        if sweep.probe_every > steps:
            raise ConfigError(f"sweep.probe_every={sweep.probe_every} exceeds pretrain.steps={steps}: ASHA would see one probe "
                              f"at the end only; allowed: 1..{steps}")
        if sweep.grace_period > steps:
            raise ConfigError(f"sweep.grace_period={sweep.grace_period} exceeds pretrain.steps={steps}: ASHA could never stop "
                              f"a trial; allowed: 0..{steps}")


def check_data(cfg: Config) -> None:
    """The data source's own pre-flight: a real image loads, a 1p-frac base system renders."""
    from raysweep.render.sources import source

    source(cfg.data.source).check(cfg.data)


def check_checkpoint(cfg: Config) -> None:
    """The checkpoint's state (not its weights) is readable and of the architecture asked for."""
    from raysweep.core import checkpoint
    from raysweep.score.backbone import check_architecture

    check_architecture(cfg.model, checkpoint.read_state(cfg.score.checkpoint), cfg.score.checkpoint)


def check_resources(cfg: Config, capacity: cluster.Capacity, *, pretrain: bool, sweep: SweepConfig | None,
                    score: bool = False) -> None:
    from raysweep.cluster import device_override, resources_for

    from raysweep.dataset.stream import input_source, stream_cpus

    workers = cfg.pretrain.workers if pretrain else cfg.score.workers
    drivers = sweep.trial_cpus * sweep.max_concurrent_trials if sweep else 0.0
    source = input_source(cfg) if pretrain and cfg.pretrain.steps > 0 else "memory"
    res = resources_for(cfg, workers, capacity, drivers, device_override(), stream_cpus=stream_cpus(cfg, source, workers, score))
    gpu = f", pretrain.use_gpu={str(res.use_gpu).lower()}"
    cluster.check_fits(capacity, f"each Train worker ({'pretrain' if pretrain else 'score'}.workers={workers}{gpu})",
                       res.bundle, count=workers)
    if sweep is not None:
        cluster.check_fits(capacity, f"each sweep trial (sweep.trial_cpus={sweep.trial_cpus:g})", {"CPU": sweep.trial_cpus})
        if not capacity.can_grow():
            need = sweep.trial_cpus + workers * res.cpus_per_worker + stream_cpus(cfg, source, workers, score)
            if need > capacity.most("CPU") + 1e-9:
                raise ConfigError(
                    f"one sweep trial needs {need:g} CPUs at once (sweep.trial_cpus={sweep.trial_cpus:g} + "
                    f"{workers} Train workers x {res.cpus_per_worker:g}), but {capacity.describe()} has "
                    f"{capacity.most('CPU'):g}; lower sweep.trial_cpus or pretrain.cpus_per_worker")
    if pretrain and cfg.pretrain.steps > 0 and (cfg.render_resource or source == "render"):
        actors = workers * cfg.data.stream_actors if source == "render" else 1
        where = f"render_resource={cfg.render_resource!r}" if cfg.render_resource else "one CPU each"
        cluster.check_fits(capacity, f"each render actor ({where})", {"CPU": 1.0, **({cfg.render_resource: 1.0} if cfg.render_resource else {})},
                           count=actors)


def check_trackers(sweep: SweepConfig) -> None:
    """The experiment trackers of ``sweep.loggers`` can take the sweep's runs (TensorBoard's
    writer comes with Ray Tune)."""
    trackers = [name for name in dict.fromkeys(sweep.loggers) if name in ("mlflow", "wandb")]
    what = f"sweep.loggers={list(sweep.loggers)!r}"
    for name in trackers:
        try:
            __import__(name)
        except ImportError as e:
            if e.name == name:
                raise ConfigError(f"{what} needs the {name} package: pip install {name} "
                                  f"(or pip install 'raysweep[trackers]')") from None
            raise ConfigError(f"{what}: the {name} package does not import: {' '.join(str(e).split())[:200]}") from None
    if "mlflow" in trackers:
        check_mlflow(sweep)
    if "wandb" in trackers:
        check_wandb(what)


def check_mlflow(sweep: SweepConfig) -> None:
    """MLflow's tracking URI (the config key, else MLFLOW_TRACKING_URI, else MLflow's default)
    takes runs. Creates nothing: a file store or SQLite database is checked through its nearest
    existing parent; a server is asked for one experiment, without retries."""
    import mlflow

    uri, source = mlflow_tracking_uri(sweep)
    uri = uri or mlflow.get_tracking_uri()
    parts = urlsplit(uri)
    shown = uri.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2]) if "@" in parts.netloc else uri
    what = f"{source} {shown!r}"
    scheme = uri if uri in ("databricks", "databricks-uc", "uc") else parts.scheme.lower()  # names, not paths
    if scheme in ("", "file"):
        import mlflow.environment_variables

        allow = getattr(mlflow.environment_variables, "MLFLOW_ALLOW_FILE_STORE", None)  # recent MLflow (3.18 has it)
        if allow is not None and not allow.get():
            raise ConfigError(f"{what} is a file store, which MLflow {mlflow.__version__} refuses unless "
                              f"MLFLOW_ALLOW_FILE_STORE=true; set that, or use a database (sqlite:///PATH/mlflow.db) "
                              f"or a tracking server (http://HOST:5000)")
        from urllib.request import url2pathname

        _check_writable_path(Path(url2pathname(parts.path) if scheme == "file" else uri), directory=True, what=what)
    elif scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path  # sqlite:///relative, sqlite:////absolute
        if path and path != ":memory:":
            _check_writable_path(Path(path), directory=False, what=what)
    elif scheme in ("http", "https"):
        _check_mlflow_server(uri, what)
    else:  # a database, Databricks, or a plugin's scheme: MLflow builds its store (a database is connected to)
        from mlflow.tracking import MlflowClient

        try:
            MlflowClient(tracking_uri=uri)
        except Exception as e:  # noqa: BLE001 - any failure here means: MLflow cannot use this URI
            text = " ".join(str(e).split())
            if parts.password:  # a database URI from MLFLOW_TRACKING_URI: its driver's message may quote it
                text = text.replace(parts.password, "***")
            schemes = re.search(r"Supported URI schemes are: \[([^\]]*)\]", text)
            if schemes:
                known = ", ".join(s.strip(" '") for s in schemes.group(1).split(",") if s.strip(" '"))
                raise ConfigError(f"{what} has a scheme MLflow does not know ({scheme!r}); MLflow takes: {known}") from None
            raise ConfigError(f"{what} cannot be used: {type(e).__name__}: {text[:200]}") from None


def _check_writable_path(path: Path, *, directory: bool, what: str) -> None:
    """``path`` (a directory, or a file when not ``directory``) exists as such, or can be created."""
    path = path.expanduser().absolute()
    if path.exists():
        if directory and not path.is_dir():
            raise ConfigError(f"{what} is not writable: {path} is a file, not a directory")
        if not directory and path.is_dir():
            raise ConfigError(f"{what} is not writable: {path} is a directory, not a database file")
        existing = path if directory else path.parent
    else:
        existing = next(p for p in path.parents if p.exists())
        if not directory and existing != path.parent:  # SQLite creates the file, never its folder
            raise ConfigError(f"{what} is not writable: the folder {path.parent} does not exist")
    if not existing.is_dir():
        raise ConfigError(f"{what} is not writable: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{what} is not writable: permission denied on {existing if not path.exists() else path}")


def _check_mlflow_server(uri: str, what: str) -> None:
    """One request through MLflow's own client (its credentials from MLFLOW_TRACKING_*), no retries, 10 s at most."""
    from mlflow.tracking import MlflowClient

    from raysweep.runtime import environment

    try:
        with environment({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any failure here means: the sweep could not log there
        text = " ".join(str(e).split())
        status = re.search(r"error code (\d+)", text)
        if status and status.group(1) in ("401", "403"):
            reason = (f"it refused the credentials (HTTP {status.group(1)}); set MLFLOW_TRACKING_USERNAME and "
                      f"MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN")
        elif status:
            reason = f"it answered HTTP {status.group(1)} to an MLflow request; is it an MLflow tracking server?"
        else:
            cause = re.search(r"\[Errno -?\d+\] ([^\"')]+)|(timed out|Read timed out)", text)
            reason = f"not reachable ({(cause.group(1) or cause.group(2)).strip() if cause else type(e).__name__})"
        raise ConfigError(f"{what}: {reason}") from None


def check_wandb(what: str) -> None:
    """W&B finds credentials (WANDB_API_KEY, ``wandb login``'s .netrc, an identity token) unless
    it logs offline or is disabled; nothing is sent to its server."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun", "disabled") or \
            os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        return
    import wandb

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # wandb says where it found the key
            found = wandb.login(prompt=False, verify=False)
    except Exception as e:  # noqa: BLE001 - e.g. a malformed WANDB_API_KEY
        raise ConfigError(f"{what}: W&B credentials are not usable: {' '.join(str(e).split())[:200]}") from None
    if not found:
        raise ConfigError(f"{what} needs W&B credentials: set WANDB_API_KEY or run `wandb login` "
                          f"(or log locally with WANDB_MODE=offline)")


def preflight_render(cfg: Config) -> cluster.Capacity:
    """The dataset command's pre-flight: the data renders, storage is writable and shared, and the
    render actors fit some node (type)."""
    from raysweep.storage import check_writable

    check_data(cfg)
    check_writable(cfg.storage)
    capacity = cluster.current()
    bundle = {"CPU": 1.0, **({cfg.render_resource: 1.0} if cfg.render_resource else {})}
    what = f"each render actor (render_resource={cfg.render_resource!r})" if cfg.render_resource else "each render actor"
    cluster.check_fits(capacity, what, bundle)
    cluster.check_storage(capacity, cfg.storage)
    return capacity


def mlflow_tracking_uri(sweep: SweepConfig) -> tuple[str | None, str]:
    """The tracking URI the sweep will use and where it comes from (None: MLflow's default)."""
    if sweep.mlflow_tracking_uri:
        return sweep.mlflow_tracking_uri, "sweep.mlflow_tracking_uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    return None, "MLflow's default tracking URI"
