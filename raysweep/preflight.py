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
  cluster has or can launch, and the GPUs asked for are ones it can provide.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

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
        check_resources(cfg, capacity, pretrain=pretrain, sweep=sweep)
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


def check_resources(cfg: Config, capacity: cluster.Capacity, *, pretrain: bool, sweep: SweepConfig | None) -> None:
    from raysweep.launch import device_override, resources_for

    workers = cfg.pretrain.workers if pretrain else cfg.score.workers
    drivers = sweep.trial_cpus * sweep.max_concurrent_trials if sweep else 0.0
    res = resources_for(cfg, workers, capacity, drivers, device_override())
    gpu = f", pretrain.use_gpu={str(res.use_gpu).lower()}"
    cluster.check_fits(capacity, f"each Train worker ({'pretrain' if pretrain else 'score'}.workers={workers}{gpu})",
                       res.bundle, count=workers)
    if sweep is not None:
        cluster.check_fits(capacity, f"each sweep trial (sweep.trial_cpus={sweep.trial_cpus:g})", {"CPU": sweep.trial_cpus})
        if not capacity.can_grow():
            need = sweep.trial_cpus + workers * res.cpus_per_worker
            if need > capacity.most("CPU") + 1e-9:
                raise ConfigError(
                    f"one sweep trial needs {need:g} CPUs at once (sweep.trial_cpus={sweep.trial_cpus:g} + "
                    f"{workers} Train workers x {res.cpus_per_worker:g}), but {capacity.describe()} has "
                    f"{capacity.most('CPU'):g}; lower sweep.trial_cpus or pretrain.cpus_per_worker")
    if pretrain and cfg.pretrain.steps > 0 and cfg.render_resource:
        cluster.check_fits(capacity, f"each render actor (render_resource={cfg.render_resource!r})",
                           {"CPU": 1.0, cfg.render_resource: 1.0})


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
