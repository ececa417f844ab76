"""One trial of a sweep: dataset (rendered or reused) -> pre-train -> score, as ONE Ray Train run
launched from the Tune function trainable (the Train V2 pattern). Every Train report reaches Tune
(TuneReportCallback): during pre-training the loss and a quick downstream probe (``probe_top1``,
ASHA's signal), at the end the downstream ``top1``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time

import numpy as np
import torch
from ray.train.torch import TorchTrainer

from raysweep.config import Config, to_dict

REPORT_POLL_SECONDS = 0.25
TRAIN_PLACEMENT_GROUP = "train_placement_group"  # reported, so the sweep can free it (tune.callbacks)


class QuickProbe:
    """A cheap downstream signal: a ridge-regression linear probe (closed form, no epochs) on
    standardised features of the first ``score.probe_blocks`` blocks, on a fixed subset of the
    downstream dataset."""

    def __init__(self, cfg: Config, data, device: torch.device, ridge: float = 1.0):
        from raysweep.score.datasets import resize_batch

        rng = np.random.default_rng(0)
        tr = rng.permutation(len(data.train.labels))[: cfg.sweep.probe_train]
        te = rng.permutation(len(data.test.labels))[: cfg.sweep.probe_test]
        size = cfg.model.img_size
        self.x_train = (resize_batch(data.train.images[tr], size).to(device) - 0.5) / 0.5
        self.x_test = (resize_batch(data.test.images[te], size).to(device) - 0.5) / 0.5
        self.y_train = torch.from_numpy(data.train.labels[tr]).to(device)
        self.y_test = torch.from_numpy(data.test.labels[te]).to(device)
        self.classes, self.blocks, self.ridge = data.num_classes, cfg.score.probe_blocks, ridge

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> float:
        from raysweep.score.backbone import probe_features

        model.eval()
        f_train = torch.cat([probe_features(model, x, self.blocks) for x in self.x_train.split(256)]).double()
        f_test = torch.cat([probe_features(model, x, self.blocks) for x in self.x_test.split(256)]).double()
        mean, std = f_train.mean(0), f_train.std(0).clamp(min=1e-6)
        f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
        ones = torch.ones(len(f_train), 1, dtype=f_train.dtype, device=f_train.device)
        a = torch.cat([f_train, ones], 1)
        targets = torch.nn.functional.one_hot(self.y_train, self.classes).double()
        w = torch.linalg.solve(a.T @ a + self.ridge * torch.eye(a.shape[1], dtype=a.dtype, device=a.device), a.T @ targets)
        pred = torch.cat([f_test, torch.ones(len(f_test), 1, dtype=f_test.dtype, device=f_test.device)], 1) @ w
        return 100.0 * float((pred.argmax(1) == self.y_test).float().mean())


class ScorePhase:
    """The context the scoring phase runs in: reports go to Train (and so to Tune) with the
    pre-training summary attached; no checkpoints (the run's checkpoints are pre-training's)."""

    def __init__(self, ctx, summary: dict):
        self.ctx, self.summary = ctx, summary
        self.rank, self.world_size, self.device = ctx.rank, ctx.world_size, ctx.device

    def prepare(self, model):
        return self.ctx.prepare(model)

    def latest_checkpoint(self):
        return None

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.ctx.report({**self.summary, **metrics}, None)


class SilentPhase(ScorePhase):
    """A side measurement (the extra probes): runs on the trial's workers, reports nothing itself."""

    def __init__(self, ctx):
        super().__init__(ctx, {})

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        pass


def trial_loop_per_worker(config: dict) -> None:
    import ray.train
    import ray.util

    from raysweep.pretrain.loop import config_from_dict, train
    from raysweep.dataset import load_arrays
    from raysweep.runtime import RayContext
    from raysweep.score.backbone import transfer
    from raysweep.score.datasets import load_downstream
    from raysweep.score.loop import finetune, linear_probe
    from raysweep.models import create_model

    cfg = config_from_dict(config["cfg"])
    torch.set_num_threads(max(1, int(config.get("threads_per_worker", 1))))
    start = time.perf_counter()
    group = ray.util.get_current_placement_group()  # the Train run's worker group
    ctx = RayContext(tags={TRAIN_PLACEMENT_GROUP: group.id.hex()} if group else None)
    data = load_downstream(cfg.score.dataset, cfg.score.data_root)
    summary: dict = {"step": cfg.pretrain.steps}
    if cfg.pretrain.steps > 0:
        # The rendered dataset is small (L x instances images): each worker reads its slice of the
        # shards straight from storage, with no Ray Data execution inside the trial.
        images, labels = load_arrays(config["dataset_uri"])
        images, labels = images[ctx.rank :: ctx.world_size], labels[ctx.rank :: ctx.world_size]
        probe = QuickProbe(cfg, data, ctx.device) if cfg.sweep.probe_every and ctx.rank == 0 else None
        metrics, model = train(cfg, images, labels, config["num_classes"], ctx, dataset_uri=config["dataset_uri"],
                               probe=probe, probe_every=cfg.sweep.probe_every)
        summary.update({"pretrain_loss": metrics.get("loss"), "pretrain_top1": metrics.get("train_top1"),
                        "probe_top1": metrics.get("probe_top1")})
        downstream = transfer(cfg.model, data.num_classes, model.state_dict())
    else:  # no pre-training: the scratch baseline
        torch.manual_seed(cfg.seed)
        downstream = create_model(cfg.model, data.num_classes)
    for blocks in cfg.score.extra_probes:  # linear probes of the backbone as it enters scoring
        probe_cfg = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, mode="linear_probe", probe_blocks=blocks))
        result = linear_probe(probe_cfg, copy.deepcopy(downstream), data, SilentPhase(ctx))
        summary[f"probe{blocks}_top1"] = result["top1"]
    phase = ScorePhase(ctx, {k: v for k, v in summary.items() if v is not None})
    run = linear_probe if cfg.score.mode == "linear_probe" else finetune
    result = run(cfg, downstream, data, phase)
    # "finished", not "done": "done" is Tune's, and a result carrying done=True makes Tune stop the
    # trial at once, killing its Train run (controller, workers) before that run has shut down
    phase.report({**result, "trial_seconds": time.perf_counter() - start, "node_id": ray.get_runtime_context().get_node_id(),
                  "finished": True}, None)


def run_name(cfg: Config) -> str:
    key = {k: dataclasses.asdict(getattr(cfg, k)) for k in ("data", "model", "pretrain", "score")}
    key["seed"] = cfg.seed
    key["probe"] = [cfg.sweep.probe_every, cfg.sweep.probe_train, cfg.sweep.probe_test]
    return f"trial-{hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]}"


class TrialTrainer(TorchTrainer):
    """TorchTrainer for a trial, without Ray Train's dataset actor.

    A trial's workers read their dataset straight from storage (no Ray Dataset is handed to the
    trainer), yet Ray Train 2.60 starts a DatasetManager actor at every worker-group start
    regardless, and the workers wait for it: a process and ~1.5 s of every trial's fixed cost on
    a small machine. With no datasets given, this trainer leaves out the callback that starts it."""

    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        if self.datasets:
            return callbacks
        try:
            from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
        except ImportError:  # another Ray layout: keep Ray's defaults
            return callbacks
        return [c for c in callbacks if not isinstance(c, DatasetsCallback)]


def run_trial(params: dict, experiment) -> None:
    """The Tune function trainable: resolve the trial's config, render/reuse its dataset, launch
    its Train run. (Its results reach Tune through TuneReportCallback.)"""
    import ray.train
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysweep.dataset import materialize
    from raysweep.pretrain.run import ray_cpus, storage_args
    from raysweep.spec import spec_of
    from raysweep.storage import join

    # Train's controller collects the workers' reports when it polls them, every 2 s by default: the
    # final result of a trial then reaches Tune up to 2 s after it exists, once per report. The poll
    # is a small RPC; poll more often (an explicit setting in the environment wins).
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", str(REPORT_POLL_SECONDS))
    cfg = experiment.config_for(experiment.with_seed(params))
    dataset_uri, num_classes = "", cfg.data.L
    if cfg.pretrain.steps > 0:
        dataset_uri = materialize(cfg.data, cfg.storage, log=lambda m: None, progress=False,
                                  render_resource=cfg.render_resource)
        num_classes = spec_of(cfg.data).num_classes
    import ray

    use_gpu = bool(ray.cluster_resources().get("GPU", 0)) if cfg.pretrain.use_gpu is None else cfg.pretrain.use_gpu
    workers = cfg.pretrain.workers
    trainer = TrialTrainer(
        trial_loop_per_worker,
        train_loop_config={"cfg": to_dict(cfg), "num_classes": num_classes, "dataset_uri": dataset_uri,
                           "threads_per_worker": max(1, int(ray_cpus() // workers))},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(
            name=run_name(cfg),
            callbacks=[TuneReportCallback()],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.pretrain.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=cfg.pretrain.max_failures),
            **storage_args(join(cfg.storage, "trials")),
        ),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
