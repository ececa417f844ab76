"""Launch downstream scoring on Ray Train (a TorchTrainer, like pre-training)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from raysweep.config import Config, ConfigError, to_dict
from raysweep.pretrain.loop import config_from_dict
from raysweep.pretrain.run import ray_cpus, storage_args
from raysweep.storage import join


def score_loop_per_worker(config: dict) -> None:
    import torch

    from raysweep.runtime import RayContext
    from raysweep.score.datasets import load_downstream
    from raysweep.score.loop import score

    cfg = config_from_dict(config["cfg"])
    torch.set_num_threads(max(1, int(config.get("threads_per_worker", 1))))
    score(cfg, load_downstream(cfg.score.dataset, cfg.score.data_root), RayContext())


def run_name(cfg: Config) -> str:
    key = {"model": dataclasses.asdict(cfg.model), "score": dataclasses.asdict(cfg.score), "seed": cfg.seed}
    return f"{cfg.name}-{cfg.score.mode}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]}"


def validate(cfg: Config) -> None:
    """Everything that can be checked before any cluster work: data, checkpoint, model."""
    from raysweep.models import create_model
    from raysweep.score.backbone import build_model, check_probe_blocks
    from raysweep.score.datasets import load_downstream

    data = load_downstream(cfg.score.dataset, cfg.score.data_root)
    model = build_model(cfg.model, data.num_classes, cfg.score.checkpoint) if cfg.score.checkpoint else create_model(cfg.model, data.num_classes)
    if cfg.score.mode == "linear_probe":
        check_probe_blocks(model, cfg.model, cfg.score.probe_blocks)


def run_score(cfg: Config, log=print) -> dict:
    """Fine-tune or probe on Ray Train; return the final metrics (``top1``, ``top5``, ``best_top1``)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from raysweep.runtime import ensure_ray

    validate(cfg)
    ensure_ray()
    import ray

    s = cfg.score
    use_gpu = bool(ray.cluster_resources().get("GPU", 0)) if cfg.pretrain.use_gpu is None else cfg.pretrain.use_gpu
    trainer = TorchTrainer(
        score_loop_per_worker,
        train_loop_config={"cfg": to_dict(cfg), "threads_per_worker": max(1, int(ray_cpus() // s.workers))},
        scaling_config=ray.train.ScalingConfig(num_workers=s.workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=run_name(cfg),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            failure_config=ray.train.FailureConfig(max_failures=s.max_failures),
            **storage_args(join(cfg.storage, "score")),
        ),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    metrics = {k: v for k, v in result.metrics.items() if k in ("epoch", "top1", "top5", "best_top1", "train_loss")}
    if "top1" not in metrics:
        raise ConfigError(f"scoring reported no evaluation (score.epochs={s.epochs})")
    return {**metrics, "dataset": s.dataset, "mode": s.mode, "probe_blocks": s.probe_blocks if s.mode == "linear_probe" else None,
            "checkpoint": s.checkpoint, "model": cfg.model.name}
