"""Downstream scoring on one worker: full fine-tuning (a recipe of :mod:`raysweep.score.recipes`) or a linear probe
on frozen features of the first k blocks/stages, both through one epoch loop (:func:`_fit`).

Loops return their final metrics (``top1``, ``top5``, ``best_top1``, ...). At every evaluation they
call ``report(metrics, payload)`` when given one: the worker program reports it (with a checkpoint
of ``payload``); side measurements pass none. Every rank runs the same number of steps (each rank's
share of the training set is padded to the same length) and the same collectives, and the hot path
never reads a tensor back to the host.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from raysweep.config import Config, to_dict
from raysweep.core.context import LocalContext
from raysweep.core.inputs import model_input
from raysweep.core.schedule import cosine_lr, scaled, step_generator
from raysweep.score.backbone import build_model, check_probe_blocks, probe_features
from raysweep.score.datasets import Downstream, FileSplit, few_shot
from raysweep.score.recipes import autocast_for, create_recipe

EVAL_BATCH = 256
Report = Callable[[dict, "dict | None"], None]


def shard(n: int, rank: int, world: int) -> np.ndarray:
    """This rank's share of ``n`` samples: every ``world``-th, padded (wrapping around) so that
    every rank has ``ceil(n / world)`` of them and runs the same number of steps."""
    per = -(-n // world)
    return (np.arange(per) * world + rank) % n


def _all_reduce(values: list[float], ctx) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    if ctx.world_size > 1:
        torch.distributed.all_reduce(t)
    return t.tolist()


def array_batches(split, indices: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, None]]:
    """Rows ``indices`` of an in-memory split as (images, labels, valid=None) batches."""
    for i in range(0, len(indices), batch_size):
        yield *split.take(indices[i : i + batch_size]), None


def batches(split, indices: np.ndarray, batch_size: int):
    """Rows ``indices`` of ``split`` in order as (uint8 ``(n, H, W, 3)`` images, labels, valid)
    batches: sliced from memory, or streamed through Ray Data for a :class:`FileSplit` (``valid``:
    None when every image decoded, else a bool mask; an image that did not decode is zeros)."""
    if isinstance(split, FileSplit):
        from raysweep.dataset.stream import file_stream

        return ((x, y, None if v.all() else v) for x, y, v in file_stream(split, indices, batch_size))
    return array_batches(split, indices, batch_size)


@torch.no_grad()
def evaluate(forward, split, size: int, num_classes: int, ctx) -> tuple[float, float, int]:
    """top-1 and top-5 (percent) of ``forward`` on this rank's share of ``split``, summed over ranks
    (one collective), and the images skipped because they did not decode."""
    hits = torch.zeros(3, dtype=torch.float64, device=ctx.device)
    mine = np.arange(ctx.rank, len(split), ctx.world_size)
    for images, labels, valid in batches(split, mine, EVAL_BATCH):
        x = model_input(images, size, ctx.device)
        y = torch.from_numpy(labels).to(ctx.device)
        top = forward(x).topk(min(5, num_classes), dim=-1).indices
        h = torch.stack([top[:, 0] == y, (top == y[:, None]).any(-1)]).double()
        if valid is not None:
            h = h * torch.from_numpy(valid).to(ctx.device)
            hits[2] += float((~valid).sum())
        hits[:2] += h.sum(1)
    c1, c5, skipped = _all_reduce([*hits.tolist()], ctx)
    n = _all_reduce([float(len(mine))], ctx)[0] - skipped
    return 100.0 * c1 / max(n, 1), 100.0 * c5 / max(n, 1), int(skipped)


def score(cfg: Config, data: Downstream, ctx=None, *, report: Report | None = None, resume: str | None = None) -> dict:
    """Fine-tune or probe ``cfg.model`` (from ``cfg.score.checkpoint`` or scratch) on ``data`` (its training
    split cut to ``score.shots`` images per class when set)."""
    ctx = ctx or LocalContext()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, cfg.score.checkpoint)
    data = few_shot(data, cfg.score.shots, cfg.seed)
    run = linear_probe if cfg.score.mode == "linear_probe" else finetune
    return run(cfg, model, data, ctx, report=report, resume=resume)


def finetune(cfg: Config, model: torch.nn.Module, data: Downstream, ctx=None, *, report: Report | None = None,
             resume: str | None = None) -> dict:
    """Train every parameter of ``model`` (its head already sized for ``data``)."""
    ctx = ctx or LocalContext()
    s, size, num_classes = cfg.score, cfg.model.img_size, data.num_classes
    bare = model.to(ctx.device)
    recipe = create_recipe(cfg, bare, num_classes, ctx)  # score.recipe: optimizer, schedule, augmentation, loss
    mine = shard(len(data.train), ctx.rank, ctx.world_size)
    local_batch = s.batch_size // ctx.world_size
    skipped = [0]
    if data.streamed:  # read, decoded and resized by Ray Data tasks, this rank's share once per epoch
        def epoch_batches(order: torch.Tensor):
            skipped[0] = 0
            for x, y, valid in batches(data.train, mine[order.numpy()], local_batch):
                skipped[0] += 0 if valid is None else int((~valid).sum())
                yield (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(ctx.device), torch.from_numpy(y).to(ctx.device),
                       None if valid is None else torch.from_numpy(valid).to(ctx.device))
    else:  # held on the device, sliced
        images, labels = data.train.take(mine)
        images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(ctx.device)
        labels = torch.from_numpy(labels).to(ctx.device)

        def epoch_batches(order: torch.Tensor):
            for idx in order.to(ctx.device).split(local_batch):
                yield images[idx], labels[idx], None

    def step_loss(module, batch, step: int) -> torch.Tensor:
        x, y, valid = batch
        return recipe.loss(module, x, y, step, valid)

    return _fit(cfg, bare, recipe.optimizer, step_loss, epoch_batches, len(mine), peak=recipe.peak_lr,
                warmup_epochs=recipe.warmup_epochs, evaluate=lambda: evaluate(recipe.predict(bare), data.test, size, num_classes, ctx),
                ctx=ctx, report=report, resume=resume, train_mode=True, train_skipped=lambda: skipped[0])


def linear_probe(cfg: Config, model: torch.nn.Module, data: Downstream, ctx=None, *, report: Report | None = None,
                 resume: str | None = None) -> dict:
    """Train a linear classifier on standardised, frozen features of the first k blocks/stages."""
    ctx = ctx or LocalContext()
    check_probe_blocks(model, cfg.model, cfg.score.probe_blocks)
    s, size, num_classes = cfg.score, cfg.model.img_size, data.num_classes
    backbone = model.to(ctx.device).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def features(split, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Features, labels and (when an image did not decode) a validity mask of rows ``indices``."""
        f, y, v = [], [], []
        for images, labels, valid in batches(split, indices, EVAL_BATCH):
            with autocast_for(s.precision, ctx.device)():  # bf16 on GPU; probe_features returns fp32
                f.append(probe_features(backbone, model_input(images, size, ctx.device), s.probe_blocks))
            y.append(torch.from_numpy(labels))
            v.append(torch.ones(len(labels), dtype=torch.bool) if valid is None else torch.from_numpy(valid))
        mask = torch.cat(v)
        return torch.cat(f), torch.cat(y).to(ctx.device), None if bool(mask.all()) else mask.to(ctx.device)

    mine = shard(len(data.train), ctx.rank, ctx.world_size)
    f_train, y_train, w_train = features(data.train, mine)
    f_test, y_test, w_test = features(data.test, np.arange(ctx.rank, len(data.test), ctx.world_size))
    f_train, f_test = standardize(f_train, f_test, ctx, w_train)
    torch.manual_seed(cfg.seed)
    probe = torch.nn.Linear(f_train.shape[1], num_classes).to(ctx.device)
    optimizer = torch.optim.SGD(probe.parameters(), lr=scaled(s.probe_lr, s.batch_size), momentum=s.momentum, weight_decay=0.0)

    local_batch = s.batch_size // ctx.world_size

    def epoch_batches(order: torch.Tensor):
        yield from order.to(ctx.device).split(local_batch)

    def step_loss(module, idx: torch.Tensor, step: int) -> torch.Tensor:
        if w_train is None:
            return F.cross_entropy(module(f_train[idx]), y_train[idx])
        w = w_train[idx].float()  # images that did not decode weigh nothing
        return (F.cross_entropy(module(f_train[idx]), y_train[idx], reduction="none") * w).sum() / w.sum().clamp(min=1)

    @torch.no_grad()
    def probe_eval() -> tuple[float, float, int]:
        top = probe(f_test).topk(min(5, num_classes), dim=-1).indices
        h = torch.stack([top[:, 0] == y_test, (top == y_test[:, None]).any(-1)]).double()
        valid = torch.ones_like(y_test, dtype=torch.float64) if w_test is None else w_test.double()
        c1, c5, n = _all_reduce([*(h * valid).sum(1).tolist(), float(valid.sum())], ctx)
        return 100.0 * c1 / max(n, 1), 100.0 * c5 / max(n, 1), int(_all_reduce([float(len(y_test))], ctx)[0] - n)

    result = _fit(cfg, probe, optimizer, step_loss, epoch_batches, len(mine), peak=scaled(s.probe_lr, s.batch_size),
                  warmup_epochs=min(s.warmup_epochs, s.epochs / 10), evaluate=probe_eval, ctx=ctx, report=report,
                  resume=resume, train_mode=False, extra={"feature_dim": int(f_train.shape[1])},
                  train_skipped=lambda: 0 if w_train is None else int((~w_train).sum()))
    return result


def standardize(f_train: torch.Tensor, f_test: torch.Tensor, ctx=None, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardise features by the training set's mean and (unbiased) std, over all ranks' shares
    (a BatchNorm without affine); rows with ``valid`` false are left out of the moments."""
    f = f_train.double() if valid is None else f_train.double()[valid]
    moments = torch.cat([f.sum(0), (f * f).sum(0), torch.tensor([float(len(f))], dtype=torch.float64, device=f.device)])
    if ctx is not None and ctx.world_size > 1:
        torch.distributed.all_reduce(moments)
    d = f.shape[1]
    n = moments[-1]
    mean = moments[:d] / n
    var = ((moments[d : 2 * d] - n * mean * mean) / (n - 1).clamp(min=1)).clamp(min=0)
    std = var.sqrt().clamp(min=1e-6)
    return ((f_train - mean) / std).float(), ((f_test - mean) / std).float()


def _fit(cfg: Config, module: torch.nn.Module, optimizer, step_loss, epoch_batches, n_local: int, *, peak: float,
         warmup_epochs: float, evaluate, ctx, report: Report | None, resume: str | None, train_mode: bool,
         extra: dict | None = None, train_skipped: Callable[[], int] = lambda: 0) -> dict:
    """The epoch loop both scorers share: SGD with a linear warm-up and cosine decay to 0 over
    ``score.epochs``, an evaluation every ``score.eval_every`` epochs (and at the end), reported
    with a checkpoint of ``module``. Each epoch draws an order of this rank's ``n_local`` rows
    (from seed, rank, epoch); ``epoch_batches(order)`` yields its batches, ``step_loss(module,
    batch, step)`` their loss; ``evaluate()`` returns (top-1, top-5, images skipped), and
    ``train_skipped()`` this rank's training images of the epoch that did not decode."""
    from raysweep.core import checkpoint

    s = cfg.score
    extra = dict(extra or {})
    start_epoch, best = 0, 0.0
    if resume:
        state = checkpoint.resume(resume, module, optimizer, ctx.device)
        start_epoch, best = int(state["epoch"]), float(state["metrics"].get("best_top1", 0.0))
        if start_epoch >= s.epochs and "top1" in state["metrics"]:
            # a finished run asked again (a sweep killed after the trial's last report, before Tune
            # recorded it as done): its result stands, nothing is trained or evaluated again
            return dict(state["metrics"])
    wrapped = ctx.prepare(module)
    local_batch = s.batch_size // ctx.world_size
    steps_per_epoch = max(1, math.ceil(n_local / local_batch))
    total, warmup = s.epochs * steps_per_epoch, int(round(warmup_epochs * steps_per_epoch))
    metrics: dict = {}
    for epoch in range(start_epoch, s.epochs):
        wrapped.train(train_mode)
        order = torch.randperm(n_local, generator=step_generator(cfg.seed, ctx.rank, epoch, torch.device("cpu")))
        loss_sum = torch.zeros((), device=ctx.device)
        for i, batch in enumerate(epoch_batches(order)):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:  # lr_scale: timm's layer-wise lr decay (score.vit.layer_decay)
                group["lr"] = cosine_lr(step, total, warmup, peak, 0.0, 0.0) * group.get("lr_scale", 1.0)
            loss = step_loss(wrapped, batch, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        if (epoch + 1) % s.eval_every == 0 or epoch + 1 == s.epochs:
            wrapped.eval()
            top1, top5, skipped = evaluate()
            best = max(best, top1)
            metrics = {"epoch": epoch + 1, "train_loss": loss_sum.item() / steps_per_epoch, "top1": top1, "top5": top5,
                       "best_top1": best, **extra}
            skipped_train = int(_all_reduce([float(train_skipped())], ctx)[0])  # this epoch's, over ranks
            metrics.update({k: v for k, v in (("skipped_train_images", skipped_train), ("skipped_test_images", skipped)) if v})
            if report is not None:
                state = {"phase": "score", "epoch": epoch + 1, "metrics": metrics, "config": to_dict(cfg), "mode": s.mode,
                         "module": "probe" if not train_mode else "model"}
                report(metrics, {"module": module, "optimizer": optimizer, "state": state})
    if not metrics:  # no epochs to run (epochs=0): evaluate as is
        wrapped.eval()
        top1, top5, skipped = evaluate()
        metrics = {"epoch": start_epoch, "top1": top1, "top5": top5, "best_top1": max(best, top1), **extra,
                   **({"skipped_test_images": skipped} if skipped else {})}
    return metrics
