"""Launch LPCE pre-training on Ray Train (a TorchTrainer, Train V2 API).

The run's name is derived from everything that determines its result (dataset spec, model,
recipe, seed), so running the same command again finds the run in storage and Ray Train resumes
it from its latest checkpoint; a worker failure restarts the workers from that checkpoint too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import torch

from raysweep.config import Config, ConfigError, to_dict
from raysweep.pretrain.loop import CHECKPOINT_STATE, config_from_dict, train
from raysweep.runtime import LocalContext, RayContext  # noqa: F401 - re-exported for callers
from raysweep.storage import filesystem, is_s3, join


def decode_shard(rows) -> tuple[np.ndarray, np.ndarray]:
    """Decode one worker's shard of the Ray Dataset (PNG bytes) into arrays."""
    from raysweep.dataset.png import decode_png

    images, labels = [], []
    for batch in rows.iter_batches(batch_size=256, batch_format="numpy"):
        images.extend(decode_png(b) for b in batch["image"])
        labels.extend(int(v) for v in batch["label"])
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def train_loop_per_worker(config: dict) -> None:
    import ray.train

    cfg = config_from_dict(config["cfg"])
    torch.set_num_threads(max(1, int(config.get("threads_per_worker", 1))))
    images, labels = decode_shard(ray.train.get_dataset_shard("train"))
    train(cfg, images, labels, config["num_classes"], RayContext(), dataset_uri=config["dataset_uri"])


def run_name(cfg: Config, dataset_hash: str) -> str:
    """``{name}-{hash}``: the same command always names the same run (so it resumes)."""
    key = {"dataset": dataset_hash, "model": dataclasses.asdict(cfg.model), "pretrain": dataclasses.asdict(cfg.pretrain), "seed": cfg.seed}
    return f"{cfg.name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]}"


def storage_args(uri: str) -> dict:
    """RunConfig's storage_path (+ filesystem for s3://, through the same s3fs as everything else)."""
    if is_s3(uri):
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs, path = filesystem(uri)
        return {"storage_path": path, "storage_filesystem": PyFileSystem(FSSpecHandler(fs))}
    return {"storage_path": filesystem(uri)[1]}


def checkpoint_uri(checkpoint, storage: str) -> str:
    return f"s3://{checkpoint.path}" if is_s3(storage) else checkpoint.path


def build_trainer(cfg: Config, dataset_uri: str, num_classes: int, dataset_hash: str, use_gpu: bool):
    import ray.train
    from ray.train.torch import TorchTrainer

    from raysweep.dataset import ray_dataset

    p = cfg.pretrain
    # Each worker reserves one CPU in Ray's accounting and runs torch with its share of the
    # cluster's cores as threads. The dataset is read here, before the workers start, into Arrow
    # blocks: rendered datasets are small, and Ray Data read tasks scheduled while the workers
    # hold every CPU would starve.
    threads = max(1, int(ray_cpus() // max(1, p.workers)))
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": to_dict(cfg), "num_classes": num_classes, "dataset_uri": dataset_uri, "threads_per_worker": threads},
        scaling_config=ray.train.ScalingConfig(num_workers=p.workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=run_name(cfg, dataset_hash),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=p.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=p.max_failures),
            **storage_args(join(cfg.storage, "pretrain")),
        ),
        datasets={"train": ray_dataset(dataset_uri, in_process=True)},
    )


def ray_cpus() -> float:
    import ray

    return ray.cluster_resources().get("CPU", 1.0)


def pretrain(cfg: Config, log=print) -> str:
    """Render or reuse the dataset, pre-train on Ray Train, return the final checkpoint's URI."""
    from raysweep.dataset import materialize
    from raysweep.models import create_model
    from raysweep.runtime import ensure_ray
    from raysweep.spec import spec_of

    create_model(cfg.model, cfg.data.L)  # a bad model name or size fails here, before any cluster work
    if cfg.pretrain.steps < 1:
        raise ConfigError("pretrain.steps=0: nothing to pre-train; allowed: >= 1 (use score.checkpoint=none for scratch)")
    spec = spec_of(cfg.data)
    ensure_ray()
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    use_gpu = bool(gpus) if cfg.pretrain.use_gpu is None else cfg.pretrain.use_gpu
    if use_gpu and gpus < cfg.pretrain.workers:
        raise ConfigError(f"pretrain.workers={cfg.pretrain.workers} with GPUs needs as many GPUs; the cluster has {gpus:g}")
    local_batch = cfg.pretrain.batch_size // cfg.pretrain.workers
    if (cfg.pretrain.mixup > 0 or cfg.pretrain.cutmix > 0) and local_batch % 2:
        raise ConfigError(f"pretrain.batch_size / pretrain.workers = {local_batch} is odd; Mixup/CutMix needs an even batch per worker")
    dataset_uri = materialize(cfg.data, cfg.storage, log=log, render_resource=cfg.render_resource)
    trainer = build_trainer(cfg, dataset_uri, spec.num_classes, spec.hash, use_gpu)
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"pre-training finished without a checkpoint: {result.error}")
    uri = checkpoint_uri(result.checkpoint, cfg.storage)
    log(f"final checkpoint {uri}")
    return uri


def read_checkpoint_state(uri: str) -> dict:
    from raysweep.storage import read_bytes

    return json.loads(read_bytes(join(uri, CHECKPOINT_STATE)))
