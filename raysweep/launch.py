"""The one driver and the one launcher of Ray Train runs.

:func:`run` is the driver function every command uses, the same for a single run and under a
Tuner (Ray's idiom): ``python -m raysweep.pretrain`` (pre-train only), the scoring command (score
only) and each sweep trial (pre-train or reuse, then score). It

1. resolves the run's resources from the config and what the cluster can provide;
2. finds the pre-trained model in the content-addressed store ``{storage}/pretrain/{key}``
   (:func:`raysweep.core.checkpoint.pretrain_key`): a complete one is reused and never trained again.
   Runs that need the same model at the same time take a lease (a named Ray actor, released when
   its holder ends, whatever way it ends): one trains, the others wait and then reuse it;
3. renders or reuses the dataset, if it pre-trains;
4. calls :func:`launch`, the one place that builds a ``TorchTrainer``: scaling (workers, CPUs and
   GPUs per worker), the torch backend, storage, failure and checkpoint config and callbacks. Every
   run executes the one worker program, :func:`raysweep.worker.worker_main`.

A run's name hashes what determines its outcome, so the same command finds its Train run again and
Ray Train resumes it from its latest checkpoint (a worker failure restarts from there too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from raysweep.core import checkpoint
from raysweep.cluster import Capacity, Resources, device_override, resources_for
from raysweep.config import Config, to_dict
from raysweep.storage import filesystem, is_s3, join
from raysweep.dataset.stream import input_source, stream_cpus
from raysweep.worker import Job

@dataclass
class Outcome:
    metrics: dict[str, Any]  # the last report with a checkpoint (Train V2's Result), or the stored model's metrics when reused
    model_uri: str | None
    trained: bool  # whether this run launched Train (False: a complete model was reused as is)
    resources: Resources | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run(cfg: Config, capacity: Capacity, *, pretrain: bool, score: bool, probe_every: int = 0,
        callbacks: Sequence[Any] = (), drivers_cpus: float = 0.0, log: Callable[[str], None] = print,
        render_progress: bool = True, device: str | None = None) -> Outcome:
    """The driver function (see the module docstring). ``device``: :func:`device_override` of the
    command that started the run."""
    from raysweep.runtime import ensure_ray

    workers = cfg.pretrain.workers if pretrain else cfg.score.workers
    produce = pretrain and cfg.pretrain.steps > 0
    model_uri, spec, source = cfg.score.checkpoint, None, "memory"
    if produce:
        from raysweep.render.spec import resolve_spec

        spec = resolve_spec(cfg.data)
        source = input_source(cfg)
    res = resources_for(cfg, workers, capacity, drivers_cpus, device, stream_cpus=stream_cpus(cfg, source, workers, score))
    if produce:
        model_uri = checkpoint.store_uri(cfg.storage, checkpoint.pretrain_key(cfg, spec.hash, res.accelerator, source))
    elif pretrain:  # steps = 0: the scratch baseline
        model_uri = None
    if produce and not score and checkpoint.is_complete(model_uri):
        log(f"reusing the pre-trained model {model_uri}")
        return Outcome(checkpoint.read_state(model_uri).get("metrics", {}), model_uri, trained=False, resources=res)
    ensure_ray()
    lease = None
    try:
        if produce and not checkpoint.is_complete(model_uri):
            lease = acquire(model_uri, log)  # None: someone else completed it meanwhile
        needs_training = produce and not checkpoint.is_complete(model_uri)
        if produce and not needs_training and not score:
            log(f"reusing the pre-trained model {model_uri}")
            return Outcome(checkpoint.read_state(model_uri).get("metrics", {}), model_uri, trained=False, resources=res)
        dataset = ""
        if needs_training and source != "render":
            from raysweep.dataset import materialize

            dataset = materialize(cfg.data, cfg.storage, log=log, progress=render_progress, render_resource=cfg.render_resource,
                                  spec=spec).uri
        elif produce:
            log(f"reusing the pre-trained model {model_uri}")
        job = Job(config=to_dict(cfg), model_uri=model_uri, pretrain=needs_training, score=score, dataset=dataset,
                  num_classes=spec.num_classes if spec else cfg.data.L, dataset_images=spec.num_images if spec else 0,
                  probe_every=probe_every if produce else 0, threads=res.threads, device=res.device, source=source)
        kind = "trial" if pretrain and score else ("pretrain" if pretrain else "score")
        result = launch(job, res, name=run_name(kind, cfg, model_uri, probe_every), storage=cfg.storage,
                        max_failures=(cfg.pretrain if pretrain else cfg.score).max_failures,
                        keep=cfg.pretrain.keep_checkpoints if pretrain else 1, callbacks=callbacks)
    finally:
        release(lease)
    return Outcome(dict(result.metrics or {}), model_uri, trained=True, resources=res)


def run_name(kind: str, cfg: Config, model_uri: str | None, probe_every: int) -> str:
    """``{kind}-{hash}`` of what the run computes: the model it starts from or produces, and for
    scoring the downstream recipe and the quick probe."""
    key: dict[str, Any] = {"model_uri": model_uri, "model": dataclasses.asdict(cfg.model), "seed": cfg.seed}
    if kind != "pretrain":
        key["score"] = score_key(cfg.score)
        key["probe"] = [probe_every, cfg.sweep.probe_train, cfg.sweep.probe_test] if probe_every else None
    if model_uri is None and kind != "score":  # scratch: its seed and model are all there is
        key["scratch"] = True
    return f"{kind}-{hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]}"


def score_key(score) -> dict[str, Any]:
    """The scoring settings a run's name hashes. Keys added after runs were named (the recipe, its
    ``vit`` section, the precision) are left out at their defaults, so the runs of the release
    recipe keep their names (and a run asked again still finds its checkpoints)."""
    key = dataclasses.asdict(score)
    if score.recipe == "release":
        del key["recipe"], key["vit"]  # the release recipe reads nothing of score.vit
    if score.precision == "auto":
        del key["precision"]
    return key


def storage_args(uri: str) -> dict:
    """RunConfig's storage_path (+ filesystem for s3://, through the same s3fs as everything else)."""
    if is_s3(uri):
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs, path = filesystem(uri)
        return {"storage_path": path, "storage_filesystem": PyFileSystem(FSSpecHandler(fs))}
    return {"storage_path": filesystem(uri)[1]}


def launch(job: Job, res: Resources, *, name: str, storage: str, max_failures: int, keep: int,
           callbacks: Sequence[Any] = (), datasets: dict | None = None):
    """Build the run's TorchTrainer and fit it; return Ray Train's Result (its error raised)."""
    import ray.train
    from ray.train.torch import TorchConfig

    from raysweep import ray_private
    from raysweep.worker import worker_main

    ray_private.set_env_defaults()
    trainer_class = ray_private.lean_trainer_class()
    backend = "nccl" if res.use_gpu and res.device in (None, "cuda") else "gloo"
    trainer = trainer_class(
        worker_main,
        train_loop_config=dataclasses.asdict(job),
        scaling_config=ray.train.ScalingConfig(num_workers=res.workers, use_gpu=res.use_gpu, resources_per_worker=res.bundle),
        torch_config=TorchConfig(backend=backend),
        run_config=ray.train.RunConfig(
            name=name,
            callbacks=list(callbacks),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=keep),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            **storage_args(join(storage, "train")),
        ),
        datasets=datasets,
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    return result


def checkpoint_uri(result_checkpoint, storage: str) -> str:
    return f"s3://{result_checkpoint.path}" if is_s3(storage) else result_checkpoint.path


# ------------------------------------------------------------------------------ pre-training lease

LEASE_NAMESPACE = "raysweep"
LEASE_POLL_SECONDS = 2.0


def _lease_class():
    import ray

    @ray.remote(num_cpus=0)
    class PretrainLease:
        """Held (alive) while one run pre-trains a model; dies with the process that holds it."""

        def held(self) -> bool:
            return True

    return PretrainLease


def acquire(model_uri: str, log: Callable[[str], None] = print, poll: float = LEASE_POLL_SECONDS):
    """The lease on pre-training ``model_uri``, once no other run holds it; None when the model
    became complete meanwhile (then reuse it). The lease is a named actor owned by this process:
    Ray ends it when this process ends, so a run that dies hands the work on."""
    import ray

    name = "pretrain-" + hashlib.sha256(model_uri.encode()).hexdigest()[:24]
    cls = _lease_class()
    announced = False
    while not checkpoint.is_complete(model_uri):
        try:
            handle = cls.options(name=name, namespace=LEASE_NAMESPACE).remote()
        except ValueError:  # another run holds it
            if not announced:
                log(f"waiting: another run is pre-training {model_uri}")
                announced = True
            time.sleep(poll)
            continue
        ray.get(handle.held.remote())
        return handle
    return None


def release(handle) -> None:
    if handle is not None:
        import ray

        ray.kill(handle)


# -------------------------------------------------------------------------- the single-run commands


def pretrain(cfg: Config, log: Callable[[str], None] = print) -> str:
    """``python -m raysweep.pretrain``: pre-train (or reuse) the model of ``cfg``; return the
    pre-trained model's URI, ``{storage}/pretrain/{key}``. A complete model is reused without
    starting Ray; an interrupted run is resumed by Ray Train from its latest checkpoint."""
    from raysweep.config import ConfigError
    from raysweep.preflight import preflight

    if cfg.pretrain.steps < 1:
        raise ConfigError("pretrain.steps=0: nothing to pre-train; allowed: >= 1 (use score.checkpoint=none for scratch)")
    capacity = preflight([cfg], pretrain=True, score=False)
    outcome = run(cfg, capacity, pretrain=True, score=False, log=log, device=device_override())
    log(f"pre-trained model {outcome.model_uri}")
    return outcome.model_uri


SCORE_KEYS = ("epoch", "top1", "top5", "best_top1", "train_loss")


def score(cfg: Config, log: Callable[[str], None] = print) -> dict:
    """``python -m raysweep.score``: fine-tune or probe ``score.checkpoint`` (or scratch); return the
    final metrics (``top1``, ``top5``, ``best_top1``) and what was scored."""
    from raysweep.config import ConfigError
    from raysweep.preflight import preflight

    capacity = preflight([cfg], pretrain=False, score=True)
    outcome = run(cfg, capacity, pretrain=False, score=True, log=log, device=device_override())
    metrics = {k: v for k, v in outcome.metrics.items() if k in SCORE_KEYS or k.startswith("skipped_")}
    if "top1" not in metrics:
        raise ConfigError(f"scoring reported no evaluation (score.epochs={cfg.score.epochs})")
    s = cfg.score
    return {**metrics, "dataset": s.dataset, "mode": s.mode, "probe_blocks": s.probe_blocks if s.mode == "linear_probe" else None,
            "checkpoint": s.checkpoint, "model": cfg.model.name}
