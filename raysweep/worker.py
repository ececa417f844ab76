"""The one worker program: every Ray Train run raysweep launches executes :func:`worker_main` on
each of its workers, reading its :class:`Job` top to bottom:

1. **data**: the downstream dataset (to score, or for the quick probe);
2. **pre-train or reuse**: pre-train on this worker's share of the rendered dataset (continuing
   from the run's latest checkpoint) and publish the model to the store, or read a stored model;
3. **transfer**: a new head for the downstream classes (position embeddings resampled);
4. **probes**: the extra linear probes of the backbone as it enters scoring (``score.extra_probes``);
5. **score**: fine-tuning or a linear probe, then the final report (``finished``).

Every rank reports at the same points. A restarted run (worker failure, or the same command
again) continues where its latest checkpoint says: in pre-training, or in scoring.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import Any

TRAIN_PLACEMENT_GROUP = "train_placement_group"  # reported, so a sweep can free it (tune.callbacks)


@dataclass
class Job:
    """What one Train run does; the worker program reads it top to bottom."""

    config: dict[str, Any]  # the resolved Config
    model_uri: str | None  # the pre-trained model: produced (pretrain=True) or read; None: scratch
    pretrain: bool  # pre-train (continuing from the run's latest checkpoint) and publish model_uri
    score: bool  # transfer, extra probes, downstream scoring
    dataset: str = ""  # pre-training data
    num_classes: int = 0  # LPCE classes
    dataset_images: int = 0
    probe_every: int = 0  # quick downstream probe during pre-training (sweeps)
    threads: int = 1
    device: str | None = None
    source: str = "memory"  # where pre-training's images come from: memory | shards | render (launch.input_source)


def worker_main(config: dict) -> None:
    import numpy as np
    import ray
    import ray.util
    import torch

    from raysweep.core import checkpoint
    from raysweep.config import config_from_dict
    from raysweep.core.context import RayContext

    job = Job(**config)
    cfg = config_from_dict(job.config)
    torch.set_num_threads(job.threads)
    start = time.perf_counter()
    group = ray.util.get_current_placement_group()  # the run's worker group (a sweep frees it if Tune stops the trial)
    ctx = RayContext(device=job.device, tags={TRAIN_PLACEMENT_GROUP: group.id.hex()} if group else None)
    resume = ctx.latest_checkpoint()
    phase = json.loads(open(os.path.join(resume, checkpoint.STATE)).read()).get("phase") if resume else None

    # 1. data
    data = None
    if job.score or job.probe_every:
        from raysweep.score.datasets import load_downstream

        data = load_downstream(cfg.score.dataset, cfg.score.data_root, in_memory_gb=cfg.score.in_memory_gb)

    # 2. pre-train, or reuse
    summary: dict = {}
    weights = None
    pretrained_here = job.pretrain and phase != "score" and not checkpoint.is_complete(job.model_uri)
    stored = checkpoint.read_state(job.model_uri) if job.model_uri and not pretrained_here else {}
    dataset = job.dataset or stored.get("dataset")
    if dataset:  # every report says which dataset the model learned from (the report page shows it)
        ctx.tags["dataset"] = dataset
    if pretrained_here:
        from raysweep.dataset import load_arrays
        from raysweep.pretrain.loop import train

        images = labels = stream = None
        if job.source == "memory":
            images, labels = load_arrays(job.dataset)
            images = np.ascontiguousarray(images[ctx.rank :: ctx.world_size])  # this worker's share, a copy
            labels = labels[ctx.rank :: ctx.world_size].copy()
        else:
            stream = _stream(cfg, job, ctx)
        probe = _quick_probe(cfg, data, ctx) if job.probe_every and ctx.rank == 0 else None
        metrics, model, state = train(cfg, images, labels, job.num_classes, ctx, dataset_uri=job.dataset, probe=probe,
                                      probe_every=job.probe_every, resume=resume if phase == "pretrain" else None,
                                      epoch_images=job.dataset_images, stream=stream)
        del images, labels
        if ctx.rank == 0:
            _publish(model, state, job.model_uri)
        weights = model.state_dict()
        summary = _pretrain_summary(metrics)
    elif job.model_uri:
        summary = _pretrain_summary(stored.get("metrics", {})) if stored.get("phase", "pretrain") == "pretrain" else {}
        if job.probe_every and phase != "score":
            # a reused model: report its quick probe once, at the last step, so schedulers see it too
            weights = checkpoint.read_weights(job.model_uri)
            if ctx.rank == 0:
                from raysweep.score.backbone import transfer

                summary["probe_top1"] = _quick_probe(cfg, data, ctx)(transfer(cfg.model, job.num_classes, weights).to(ctx.device))
            ctx.report({"step": cfg.pretrain.steps, **{k: v for k, v in summary.items() if v is not None}}, None)
    summary = {k: v for k, v in summary.items() if v is not None}
    if not job.score:
        ctx.report({**summary, "step": cfg.pretrain.steps, "model_uri": job.model_uri, "pretrained_here": pretrained_here,
                    "finished": True}, None)
        return

    # 3. transfer (scoring trains on score.shots images per class when set; the quick probe above had the whole set)
    from raysweep.models import create_model
    from raysweep.score.datasets import few_shot

    data = few_shot(data, cfg.score.shots, cfg.seed)
    from raysweep.score.backbone import build_model, transfer

    if weights is None and job.model_uri:
        downstream = build_model(cfg.model, data.num_classes, job.model_uri)
    elif weights is not None:
        downstream = transfer(cfg.model, data.num_classes, weights)
    else:  # no pre-training: the scratch baseline
        torch.manual_seed(cfg.seed)
        downstream = create_model(cfg.model, data.num_classes)

    # 4. probes of the backbone as it enters scoring (side measurements: they report nothing)
    from raysweep.score.loop import finetune, linear_probe

    for blocks in cfg.score.extra_probes:
        probe_cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, mode="linear_probe", probe_blocks=blocks))
        summary[f"probe{blocks}_top1"] = linear_probe(probe_cfg, copy.deepcopy(downstream), data, ctx)["top1"]

    # 5. score, then the final report
    ctx.tags.update({"step": cfg.pretrain.steps, **summary})
    run = linear_probe if cfg.score.mode == "linear_probe" else finetune
    result = run(cfg, downstream, data, ctx, report=ctx.report, resume=resume if phase == "score" else None)
    # "finished", not "done": "done" is Tune's, and a result carrying done=True makes Tune stop the
    # trial at once, killing its Train run (controller, workers) before that run has shut down
    ctx.report({**result, "trial_seconds": time.perf_counter() - start, "node_id": ray.get_runtime_context().get_node_id(),
                "worker_gpus": [str(g) for g in ray.get_gpu_ids()], "model_uri": job.model_uri,
                "pretrained_here": pretrained_here, "finished": True}, None)


def _stream(cfg, job, ctx):
    """``start_step -> batches`` of this worker's stream (rendered on the fly, or read from shards)."""
    from raysweep.config import to_dict
    from raysweep.dataset.stream import StreamPlan, render_stream, shard_stream

    plan = StreamPlan(images=job.dataset_images, instances=cfg.data.instances, seed=cfg.seed, fresh=cfg.data.fresh_instances,
                      global_batch=cfg.pretrain.batch_size, world=ctx.world_size, rank=ctx.rank)
    steps = cfg.pretrain.steps
    if job.source == "render":
        data = to_dict(cfg)["data"]
        return lambda start: render_stream(data, plan, start, steps, cfg.data.stream_actors, cfg.render_resource)
    return lambda start: shard_stream(job.dataset, plan, start, steps)


def _pretrain_summary(metrics: dict) -> dict:
    return {"pretrain_loss": metrics.get("loss"), "pretrain_top1": metrics.get("train_top1"),
            "probe_top1": metrics.get("probe_top1")}


def _quick_probe(cfg, data, ctx):
    """The quick probe (``probe_top1``): a closed-form ridge few-shot evaluator."""
    from raysweep.score.fewshot import FewshotRidge

    return FewshotRidge(cfg, data, ctx.device)


def _publish(model, state: dict, uri: str) -> None:
    """Rank 0 writes the final weights to the store of pre-trained models."""
    import tempfile

    from raysweep.core import checkpoint

    with tempfile.TemporaryDirectory(prefix="raysweep-model-") as tmp:
        checkpoint.save(tmp, model, state)
        checkpoint.publish(tmp, uri)
