"""The LPCE pre-training loop: one readable function that runs the same under Ray Train (one
process per worker, DDP) and bare (``raysweep.bench train`` compares the two).

Everything a worker needs comes from the config; the only things that differ between Ray and a
bare process are behind :class:`Context`: where the data shard comes from, how the model is
wrapped, how metrics and checkpoints are reported, and where to resume from.
"""

from __future__ import annotations

import json
import math
import os
import queue
import tempfile
import threading
import time
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from raysweep.config import Config, PretrainConfig
from raysweep.config.loading import build_config, flatten
from raysweep.models import create_model
from raysweep.pretrain.augment import BatchAugment

CHECKPOINT_MODEL = "model.pt"
CHECKPOINT_OPTIMIZER = "optimizer.pt"
CHECKPOINT_STATE = "state.json"  # step, metrics, resolved config, classes, dataset


class Context(Protocol):
    rank: int
    world_size: int
    device: torch.device

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module: ...
    def latest_checkpoint(self) -> str | None: ...  # a local directory
    def report(self, metrics: dict, checkpoint_dir: str | None) -> None: ...


def config_from_dict(tree: dict) -> Config:
    return build_config(flatten(tree))


def scaled(value: float, global_batch: int) -> float:
    """The release scales every learning rate by total_batch / 512."""
    return value * global_batch / 512.0


def cosine_lr(step: int, total: int, warmup: int, peak: float, start: float, floor: float) -> float:
    """Linear warm-up from ``start`` to ``peak`` over ``warmup`` steps, then cosine to ``floor``."""
    if step < warmup:
        return start + (peak - start) * step / warmup
    span = max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / span)))


def lr_at(step: int, cfg: PretrainConfig, warmup_steps: int) -> float:
    """The release's schedule: warm-up from warmup_lr to lr, cosine to min_lr (all scaled by batch / 512)."""
    peak, floor, start = (scaled(v, cfg.batch_size) for v in (cfg.lr, cfg.min_lr, cfg.warmup_lr))
    return cosine_lr(step, cfg.steps, warmup_steps, peak, start, floor)


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The randomness of one step on one worker: a resumed run draws exactly what it would have."""
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0]) & (2**63 - 1))
    return g


def working_images(images: np.ndarray, img_size: int, device: torch.device) -> torch.Tensor:
    """uint8 (N, C, H, W) on ``device``, area-downscaled once (anti-aliased) to the crop size.

    The crop is then only ever enlarged by the sampling grid: downscaling sparse fractal points by
    point sampling would alias them into a different pattern on every crop."""
    x = torch.from_numpy(images)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    limit = img_size
    if x.shape[-1] > limit:
        x = torch.cat([F.interpolate(c.float(), size=(limit, limit), mode="area").round().to(torch.uint8) for c in x.split(256)])
    return x.contiguous().to(device)


class Batches:
    """Augmented batches for steps ``start..end-1``, produced ahead by a background thread so the
    training step never waits on augmentation (``wait_seconds`` measures any wait there is)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: BatchAugment, batch: int,
                 seed: int, rank: int, start: int, end: int, depth: int = 2):
        self.images, self.labels, self.augment, self.batch = images, labels, augment, batch
        self.seed, self.rank = seed, rank
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._produce, args=(start, end), daemon=True)
        self._thread.start()

    def make(self, step: int):
        g = step_generator(self.seed, self.rank, step, self.images.device)
        np.random.seed(int(g.initial_seed() % (2**32)))  # timm's Mixup draws from numpy's global RNG
        idx = torch.randint(self.images.shape[0], (self.batch,), generator=g, device=self.images.device)
        hard = self.labels[idx]
        x, soft = self.augment(self.images[idx], hard, g)
        return x, soft, hard

    def _produce(self, start: int, end: int) -> None:
        try:
            for step in range(start, end):
                self._queue.put(self.make(step))
        except BaseException as e:  # noqa: BLE001 - re-raised in the training thread
            self._error = e
            self._queue.put(None)

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        t = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - t
        if item is None:
            raise RuntimeError("augmentation failed") from self._error
        return item


def train(cfg: Config, images: np.ndarray, labels: np.ndarray, num_classes: int, ctx: Context,
          dataset_uri: str = "", on_step: Callable[[int], None] | None = None,
          probe: Callable[[torch.nn.Module], float] | None = None, probe_every: int = 0) -> tuple[dict, torch.nn.Module]:
    """Pre-train ``cfg.model`` on this worker's ``images``/``labels``.

    ``probe`` (rank 0 only), called every ``probe_every`` steps with the bare model, gives a quick
    downstream signal reported as ``probe_top1`` (what ASHA stops trials on).
    Returns the last reported metrics and the trained (unwrapped) model."""
    p = cfg.pretrain
    device = ctx.device
    torch.manual_seed(cfg.seed)
    model = ctx.prepare(create_model(cfg.model, num_classes))
    import timm.optim

    optimizer = timm.optim.create_optimizer_v2(model, opt="adamw", lr=scaled(p.lr, p.batch_size), weight_decay=p.weight_decay)
    start = 0
    resumed_metrics: dict = {}
    resume = ctx.latest_checkpoint()
    if resume:
        state = json.loads(open(os.path.join(resume, CHECKPOINT_STATE)).read())
        _unwrap(model).load_state_dict(torch.load(os.path.join(resume, CHECKPOINT_MODEL), map_location=device))
        optimizer.load_state_dict(torch.load(os.path.join(resume, CHECKPOINT_OPTIMIZER), map_location=device))
        start = int(state["step"])
        resumed_metrics = dict(state.get("metrics", {}))
    local_batch = p.batch_size // ctx.world_size
    steps_per_epoch = max(1.0, len(labels) * ctx.world_size / p.batch_size)
    warmup = int(round(p.warmup_epochs * steps_per_epoch))
    bf16 = device.type == "cuda" and p.precision in ("auto", "bf16") or p.precision == "bf16"
    augment = BatchAugment(p, cfg.model.img_size, num_classes)
    x_all = working_images(images, cfg.model.img_size, device)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    batches = Batches(x_all, y_all, augment, local_batch, cfg.seed, ctx.rank, start, p.steps)
    meter = {"loss": 0.0, "correct": 0, "seen": 0, "t0": time.perf_counter(), "wait0": 0.0, "steps": 0}
    metrics = {"step": start}
    model.train()
    for step in range(start, p.steps):
        x, soft, hard = next(batches)
        lr = lr_at(step, p, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.sum(-soft * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()  # soft-target CE
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        meter["loss"] += loss.item()
        meter["correct"] += int((logits.argmax(-1) == hard).sum())
        meter["seen"] += hard.numel()
        meter["steps"] += 1
        if on_step:
            on_step(step + 1)
        last = step + 1 == p.steps
        save = (step + 1) % p.checkpoint_every == 0 or last
        probe_due = probe is not None and probe_every > 0 and ((step + 1) % probe_every == 0 or last)
        if (step + 1) % p.report_every == 0 or save or probe_due:
            elapsed = time.perf_counter() - meter["t0"]
            metrics = {
                "step": step + 1,
                "loss": meter["loss"] / meter["steps"],
                "train_top1": 100.0 * meter["correct"] / meter["seen"],
                "lr": lr,
                "images_per_second": meter["seen"] * ctx.world_size / elapsed,
                "data_wait_fraction": (batches.wait_seconds - meter["wait0"]) / elapsed,
            }
            if probe_due and ctx.rank == 0:
                metrics["probe_top1"] = probe(_unwrap(model))
                model.train()
            _report(ctx, model, optimizer, metrics, cfg, num_classes, dataset_uri, save, resumed_from=start)
            meter = {"loss": 0.0, "correct": 0, "seen": 0, "t0": time.perf_counter(), "wait0": batches.wait_seconds, "steps": 0}
    if start >= p.steps:  # a finished run asked again: report where it stands, no new checkpoint
        metrics = {**resumed_metrics, "step": start, "finished": True}
        ctx.report(metrics, None)
    return metrics, _unwrap(model)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _report(ctx: Context, model, optimizer, metrics: dict, cfg: Config, num_classes: int, dataset_uri: str, save: bool,
            resumed_from: int) -> None:
    if not save:
        ctx.report(metrics, None)
        return
    from raysweep.config import to_dict

    with tempfile.TemporaryDirectory(prefix="raysweep-ckpt-") as tmp:
        if ctx.rank == 0:
            torch.save(_unwrap(model).state_dict(), os.path.join(tmp, CHECKPOINT_MODEL))
            torch.save(optimizer.state_dict(), os.path.join(tmp, CHECKPOINT_OPTIMIZER))
            state = {"step": metrics["step"], "metrics": metrics, "config": to_dict(cfg), "num_classes": num_classes,
                     "dataset": dataset_uri, "model": cfg.model.name, "resumed_from": resumed_from}
            with open(os.path.join(tmp, CHECKPOINT_STATE), "w") as f:
                json.dump(state, f, indent=1)
        ctx.report(metrics, tmp if ctx.rank == 0 else None)
