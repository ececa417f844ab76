"""The LPCE pre-training loop: one readable function that runs the same under Ray Train (one
process per worker, DDP) and bare (``raysweep.bench train`` compares the two).

Everything a worker needs comes from the config; what differs between Ray and a bare process is
behind :class:`Context` (rank, device, data-parallel wrapping, reporting). Every rank reports at
the same steps (Ray Train's report is a barrier), and the hot path never reads a tensor back to
the host: loss and accuracy accumulate on the device and are read once per report.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from raysweep.core import checkpoint
from raysweep.config import Config, PretrainConfig, to_dict
from raysweep.models import create_model
from raysweep.core.augment import BatchAugment, for_pretraining
from raysweep.core.schedule import cosine_lr, scaled, step_generator


class Context(Protocol):
    rank: int
    world_size: int
    device: torch.device

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module: ...
    def report(self, metrics: dict, payload: dict | None = None) -> None: ...


def lr_at(step: int, cfg: PretrainConfig, warmup_steps: int) -> float:
    """The release's schedule: warm-up from warmup_lr to lr, cosine to min_lr (all scaled by batch / 512)."""
    peak, floor, start = (scaled(v, cfg.batch_size) for v in (cfg.lr, cfg.min_lr, cfg.warmup_lr))
    return cosine_lr(step, cfg.steps, warmup_steps, peak, start, floor)


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
    training step never waits on augmentation (``wait_seconds`` measures any wait there is).

    The images come from the device (``images``/``labels`` held there: each step samples its batch
    at random) or from a ``stream`` of uint8 numpy batches (Ray Data: rendered on the fly, or read
    from shards), moved to the device and downscaled there."""

    def __init__(self, images: torch.Tensor | None, labels: torch.Tensor | None, augment: BatchAugment, batch: int,
                 seed: int, rank: int, start: int, end: int, depth: int = 2, stream: Iterator | None = None,
                 img_size: int = 0, device: torch.device | None = None):
        self.images, self.labels, self.augment, self.batch = images, labels, augment, batch
        self.seed, self.rank, self.stream, self.img_size = seed, rank, stream, img_size
        self.device = device if device is not None else images.device
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._produce, args=(start, end), daemon=True)
        self._thread.start()

    def make(self, step: int):
        g = step_generator(self.seed, self.rank, step, self.device)
        np.random.seed(int(g.initial_seed() % (2**32)))  # timm's Mixup draws from numpy's global RNG
        if self.stream is None:
            idx = torch.randint(self.images.shape[0], (self.batch,), generator=g, device=self.device)
            images, hard = self.images[idx], self.labels[idx]
        else:
            pixels, classes = next(self.stream)
            images = working_images(pixels, self.img_size, self.device)
            hard = torch.from_numpy(np.asarray(classes, dtype=np.int64)).to(self.device)
        x, soft = self.augment(images, hard, g)
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

    def close(self) -> None:
        """Wait for the producer, which has made every batch once the loop has taken them all."""
        self._thread.join(timeout=60)

    def __next__(self):
        t = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - t
        if item is None:
            raise RuntimeError("augmentation failed") from self._error
        return item


def train(cfg: Config, images: np.ndarray | None, labels: np.ndarray | None, num_classes: int, ctx: Context, *,
          dataset_uri: str = "", probe: Callable[[torch.nn.Module], float] | None = None, probe_every: int = 0,
          resume: str | None = None, epoch_images: int | None = None,
          stream: Callable[[int], Iterator] | None = None) -> tuple[dict, torch.nn.Module, dict]:
    """Pre-train ``cfg.model`` on this worker's ``images``/``labels`` (uint8, one worker's share),
    or on ``stream(start_step)``: this worker's batches from the step it starts at.

    ``probe`` (given on rank 0 only) is called with the bare model every ``probe_every`` steps and
    at the end; its value is reported as ``probe_top1`` (what ASHA stops trials on). Every rank
    reports at those steps, so ``probe_every`` and ``pretrain.report_every`` need not agree.
    ``resume``: a local checkpoint directory of this run to continue from. ``epoch_images``: the
    dataset's size over all workers (warm-up is in epochs).

    Returns the last metrics, the trained bare model and the checkpoint state of the final weights."""
    p = cfg.pretrain
    device = ctx.device
    torch.manual_seed(cfg.seed)
    import timm.optim

    bare = create_model(cfg.model, num_classes).to(device)
    # parameter groups from the bare model: a DDP wrapper hides no_weight_decay() (pos_embed, cls_token)
    optimizer = timm.optim.create_optimizer_v2(bare, opt="adamw", lr=scaled(p.lr, p.batch_size), weight_decay=p.weight_decay)
    start, metrics = 0, {}
    if resume:
        state = checkpoint.resume(resume, bare, optimizer, device)
        start, metrics = int(state["step"]), dict(state.get("metrics", {}))
    model = ctx.prepare(bare)
    local_batch = p.batch_size // ctx.world_size
    steps_per_epoch = max(1.0, (epoch_images or len(labels) * ctx.world_size) / p.batch_size)
    warmup = int(round(p.warmup_epochs * steps_per_epoch))
    bf16 = device.type == "cuda" and p.precision in ("auto", "bf16") or p.precision == "bf16"
    augment = for_pretraining(p, cfg.model.img_size, num_classes)
    if stream is None:
        x_all = working_images(images, cfg.model.img_size, device)
        y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        batches = Batches(x_all, y_all, augment, local_batch, cfg.seed, ctx.rank, start, p.steps)
    else:
        batches = Batches(None, None, augment, local_batch, cfg.seed, ctx.rank, start, p.steps, stream=stream(start),
                          img_size=cfg.model.img_size, device=device)
    groups = checkpoint.param_groups(bare, optimizer)

    def state_of(metrics: dict) -> dict:
        return {"phase": "pretrain", "step": metrics["step"], "metrics": metrics, "config": to_dict(cfg),
                "num_classes": num_classes, "dataset": dataset_uri, "model": cfg.model.name, "resumed_from": start,
                "param_groups": groups}

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen, count, t0, wait0 = 0, 0, time.perf_counter(), 0.0
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
        loss_sum += loss.detach()
        correct += (logits.detach().argmax(-1) == hard).sum()
        seen, count = seen + hard.shape[0], count + 1
        done = step + 1
        last = done == p.steps
        save = done % p.checkpoint_every == 0 or last
        probe_due = probe_every > 0 and (done % probe_every == 0 or last)  # the same on every rank
        if done % p.report_every == 0 or save or probe_due:
            mean_loss, hits = loss_sum.item() / count, int(correct.item())  # the one host read per report
            elapsed = time.perf_counter() - t0
            metrics = {"step": done, "loss": mean_loss, "train_top1": 100.0 * hits / seen, "lr": lr,
                       "images_per_second": seen * ctx.world_size / elapsed,
                       "data_wait_fraction": (batches.wait_seconds - wait0) / elapsed}
            if probe_due and probe is not None:
                metrics["probe_top1"] = probe(bare)
                model.train()
            payload = {"module": bare, "optimizer": optimizer, "state": state_of(metrics)} if save else None
            ctx.report(metrics, payload)
            loss_sum.zero_()
            correct.zero_()
            seen, count, t0, wait0 = 0, 0, time.perf_counter(), batches.wait_seconds
    batches.close()
    final = {**metrics, "step": max(start, p.steps)}
    return final, bare, state_of(final)

