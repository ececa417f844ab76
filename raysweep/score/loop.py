"""Downstream scoring on one worker: full fine-tuning (the release's SGD recipe) or a linear probe
on frozen features of the first k blocks/stages, both through one epoch loop (:func:`_fit`).

Loops return their final metrics (``top1``, ``top5``, ``best_top1``, ...). At every evaluation they
call ``report(metrics, payload)`` when given one: the worker program reports it (with a checkpoint
of ``payload``); side measurements pass none. Every rank runs the same number of steps (each rank's
share of the training set is padded to the same length) and the same collectives, and the hot path
never reads a tensor back to the host.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from raysweep.config import Config, to_dict
from raysweep.core.augment import for_finetuning
from raysweep.core.context import LocalContext
from raysweep.core.inputs import model_input
from raysweep.core.schedule import cosine_lr, scaled, step_generator
from raysweep.score.backbone import build_model, check_probe_blocks, probe_features
from raysweep.score.datasets import Downstream, few_shot

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


@torch.no_grad()
def evaluate(forward, images: np.ndarray, labels: np.ndarray, size: int, num_classes: int, ctx) -> tuple[float, float]:
    """top-1 and top-5 (percent) of ``forward`` on this rank's slice, summed over ranks (one collective)."""
    hits = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    for i in range(0, len(labels), EVAL_BATCH):
        x = model_input(images[i : i + EVAL_BATCH], size, ctx.device)
        y = torch.from_numpy(labels[i : i + EVAL_BATCH]).to(ctx.device)
        top = forward(x).topk(min(5, num_classes), dim=-1).indices
        hits += torch.stack([(top[:, 0] == y).sum(), (top == y[:, None]).any(-1).sum()]).double()
    c1, c5, n = _all_reduce([*hits.tolist(), float(len(labels))], ctx)
    return 100.0 * c1 / max(n, 1), 100.0 * c5 / max(n, 1)


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
    import timm.optim

    s, size, num_classes = cfg.score, cfg.model.img_size, data.num_classes
    bare = model.to(ctx.device)
    optimizer = timm.optim.create_optimizer_v2(bare, opt="momentum", lr=scaled(s.lr, s.batch_size),
                                               weight_decay=s.weight_decay, momentum=s.momentum)
    mine = shard(len(data.train), ctx.rank, ctx.world_size)
    images = torch.from_numpy(data.train.images[mine]).permute(0, 3, 1, 2).contiguous().to(ctx.device)
    labels = torch.from_numpy(data.train.labels[mine]).to(ctx.device)
    augment = for_finetuning(s, size, num_classes)
    test_x, test_y = data.test.images[ctx.rank :: ctx.world_size], data.test.labels[ctx.rank :: ctx.world_size]

    def step_loss(module, idx: torch.Tensor, step: int) -> torch.Tensor:
        x, soft = augment(images[idx], labels[idx], step_generator(cfg.seed, ctx.rank, step, ctx.device))
        return torch.sum(-soft * F.log_softmax(module(x), dim=-1), dim=-1).mean()

    return _fit(cfg, bare, optimizer, step_loss, len(mine), peak=scaled(s.lr, s.batch_size), warmup_epochs=s.warmup_epochs,
                evaluate=lambda: evaluate(bare, test_x, test_y, size, num_classes, ctx), ctx=ctx, report=report,
                resume=resume, train_mode=True)


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
    def features(images: np.ndarray) -> torch.Tensor:
        return torch.cat([probe_features(backbone, model_input(images[i : i + EVAL_BATCH], size, ctx.device), s.probe_blocks)
                          for i in range(0, len(images), EVAL_BATCH)])

    mine = shard(len(data.train), ctx.rank, ctx.world_size)
    f_train = features(data.train.images[mine])
    f_test = features(data.test.images[ctx.rank :: ctx.world_size])
    f_train, f_test = standardize(f_train, f_test, ctx)
    y_train = torch.from_numpy(data.train.labels[mine]).to(ctx.device)
    y_test = torch.from_numpy(data.test.labels[ctx.rank :: ctx.world_size]).to(ctx.device)
    torch.manual_seed(cfg.seed)
    probe = torch.nn.Linear(f_train.shape[1], num_classes).to(ctx.device)
    optimizer = torch.optim.SGD(probe.parameters(), lr=scaled(s.probe_lr, s.batch_size), momentum=s.momentum, weight_decay=0.0)

    def step_loss(module, idx: torch.Tensor, step: int) -> torch.Tensor:
        return F.cross_entropy(module(f_train[idx]), y_train[idx])

    @torch.no_grad()
    def probe_eval() -> tuple[float, float]:
        top = probe(f_test).topk(min(5, num_classes), dim=-1).indices
        hits = torch.stack([(top[:, 0] == y_test).sum(), (top == y_test[:, None]).any(-1).sum()]).double()
        c1, c5, n = _all_reduce([*hits.tolist(), float(len(y_test))], ctx)
        return 100.0 * c1 / max(n, 1), 100.0 * c5 / max(n, 1)

    result = _fit(cfg, probe, optimizer, step_loss, len(mine), peak=scaled(s.probe_lr, s.batch_size),
                  warmup_epochs=min(s.warmup_epochs, s.epochs / 10), evaluate=probe_eval, ctx=ctx, report=report,
                  resume=resume, train_mode=False, extra={"feature_dim": int(f_train.shape[1])})
    return result


def standardize(f_train: torch.Tensor, f_test: torch.Tensor, ctx=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardise features by the training set's mean and (unbiased) std, over all ranks' shares
    (a BatchNorm without affine)."""
    f = f_train.double()
    moments = torch.cat([f.sum(0), (f * f).sum(0), torch.tensor([float(len(f))], dtype=torch.float64, device=f.device)])
    if ctx is not None and ctx.world_size > 1:
        torch.distributed.all_reduce(moments)
    d = f.shape[1]
    n = moments[-1]
    mean = moments[:d] / n
    var = ((moments[d : 2 * d] - n * mean * mean) / (n - 1).clamp(min=1)).clamp(min=0)
    std = var.sqrt().clamp(min=1e-6)
    return ((f_train - mean) / std).float(), ((f_test - mean) / std).float()


def _fit(cfg: Config, module: torch.nn.Module, optimizer, step_loss, n_local: int, *, peak: float, warmup_epochs: float,
         evaluate, ctx, report: Report | None, resume: str | None, train_mode: bool, extra: dict | None = None) -> dict:
    """The epoch loop both scorers share: SGD with a linear warm-up and cosine decay to 0 over
    ``score.epochs``, an evaluation every ``score.eval_every`` epochs (and at the end), reported
    with a checkpoint of ``module``."""
    from raysweep.core import checkpoint

    s = cfg.score
    extra = dict(extra or {})
    start_epoch, best = 0, 0.0
    if resume:
        state = checkpoint.resume(resume, module, optimizer, ctx.device)
        start_epoch, best = int(state["epoch"]), float(state["metrics"].get("best_top1", 0.0))
    wrapped = ctx.prepare(module)
    local_batch = s.batch_size // ctx.world_size
    steps_per_epoch = max(1, math.ceil(n_local / local_batch))
    total, warmup = s.epochs * steps_per_epoch, int(round(warmup_epochs * steps_per_epoch))
    metrics: dict = {}
    for epoch in range(start_epoch, s.epochs):
        wrapped.train(train_mode)
        order = torch.randperm(n_local, generator=step_generator(cfg.seed, ctx.rank, epoch, torch.device("cpu"))).to(ctx.device)
        loss_sum = torch.zeros((), device=ctx.device)
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, warmup, peak, 0.0, 0.0)
            loss = step_loss(wrapped, order[i * local_batch : (i + 1) * local_batch], step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        if (epoch + 1) % s.eval_every == 0 or epoch + 1 == s.epochs:
            wrapped.eval()
            top1, top5 = evaluate()
            best = max(best, top1)
            metrics = {"epoch": epoch + 1, "train_loss": loss_sum.item() / steps_per_epoch, "top1": top1, "top5": top5,
                       "best_top1": best, **extra}
            if report is not None:
                state = {"phase": "score", "epoch": epoch + 1, "metrics": metrics, "config": to_dict(cfg), "mode": s.mode,
                         "module": "probe" if not train_mode else "model"}
                report(metrics, {"module": module, "optimizer": optimizer, "state": state})
    if not metrics:  # no epochs to run (epochs=0, or a finished run asked again): evaluate as is
        wrapped.eval()
        top1, top5 = evaluate()
        metrics = {"epoch": start_epoch, "top1": top1, "top5": top5, "best_top1": max(best, top1), **extra}
    return metrics
