"""Downstream scoring on one worker: full fine-tuning (the release's SGD recipe) or a linear probe
on frozen features of the first k blocks. Same context, report and checkpoint conventions as the
pre-training loop; every evaluation reports top-1/top-5 on the held-out split and the best so far.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

from raysweep.config import Config, PretrainConfig
from raysweep.pretrain.augment import BatchAugment
from raysweep.pretrain.loop import cosine_lr, scaled, step_generator
from raysweep.runtime import LocalContext
from raysweep.score.backbone import build_model, check_probe_blocks, probe_features
from raysweep.score.datasets import Downstream, resize_batch

EVAL_BATCH = 256


def _augment_config(cfg: Config) -> PretrainConfig:
    """Fine-tuning augmentation: RandomResizedCrop and horizontal flips, label smoothing."""
    s = cfg.score
    return PretrainConfig(crop_scale_min=s.crop_scale_min, hflip=s.hflip, vflip=0.0, randaugment="", color_jitter=0.0,
                          reprob=0.0, mixup=0.0, cutmix=0.0, smoothing=s.smoothing)


def _normalized(images: np.ndarray, size: int, device) -> torch.Tensor:
    return (resize_batch(images, size).to(device) - 0.5) / 0.5


def _all_reduce(values: list[float], ctx) -> list[float]:
    if ctx.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    torch.distributed.all_reduce(t)
    return t.tolist()


@torch.no_grad()
def evaluate(forward, images: np.ndarray, labels: np.ndarray, size: int, ctx) -> tuple[float, float]:
    """top-1 and top-5 (percent) over this worker's slice, summed over workers."""
    correct1 = correct5 = 0
    for i in range(0, len(labels), EVAL_BATCH):
        x = _normalized(images[i : i + EVAL_BATCH], size, ctx.device)
        y = torch.from_numpy(labels[i : i + EVAL_BATCH]).to(ctx.device)
        top = forward(x).topk(min(5, forward.num_classes), dim=-1).indices
        correct1 += int((top[:, 0] == y).sum())
        correct5 += int((top == y[:, None]).any(-1).sum())
    c1, c5, n = _all_reduce([correct1, correct5, len(labels)], ctx)
    return 100.0 * c1 / max(n, 1), 100.0 * c5 / max(n, 1)


class _Forward:
    """A callable for evaluate(): the model's (or probe's) logits, eval mode, with its class count."""

    def __init__(self, fn, num_classes: int):
        self.fn, self.num_classes = fn, num_classes

    def __call__(self, x):
        return self.fn(x)


def score(cfg: Config, data: Downstream, ctx=None, on_report=None) -> dict:
    """Fine-tune or probe ``cfg.model`` (from ``cfg.score.checkpoint`` or scratch) on ``data``."""
    ctx = ctx or LocalContext()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, cfg.score.checkpoint)
    if cfg.score.mode == "linear_probe":
        return linear_probe(cfg, model, data, ctx, on_report)
    return finetune(cfg, model, data, ctx, on_report)


def _slices(data: Downstream, ctx):
    """This worker's share of the train and test splits (every world_size-th sample)."""
    r, w = ctx.rank, ctx.world_size
    return data.train.images[r::w], data.train.labels[r::w], data.test.images[r::w], data.test.labels[r::w]


def finetune(cfg: Config, model: torch.nn.Module, data: Downstream, ctx=None, on_report=None) -> dict:
    """Train every parameter of ``model`` (its head already sized for ``data``)."""
    ctx = ctx or LocalContext()
    num_classes = data.num_classes
    train_x, train_y, test_x, test_y = _slices(data, ctx)
    import timm.optim

    s, size = cfg.score, cfg.model.img_size
    model = ctx.prepare(model)
    optimizer = timm.optim.create_optimizer_v2(model, opt="momentum", lr=scaled(s.lr, s.batch_size),
                                               weight_decay=s.weight_decay, momentum=s.momentum)
    local_batch = s.batch_size // ctx.world_size
    steps_per_epoch = max(1, math.ceil(len(train_y) / local_batch))
    total, warmup = s.epochs * steps_per_epoch, int(round(s.warmup_epochs * steps_per_epoch))
    augment = BatchAugment(_augment_config(cfg), size, num_classes)
    images = torch.from_numpy(train_x).permute(0, 3, 1, 2).contiguous().to(ctx.device)
    labels = torch.from_numpy(train_y).to(ctx.device)
    start_epoch, best = _resume(ctx, model, optimizer)
    forward = _Forward(lambda x: model(x), num_classes)
    metrics = {}
    for epoch in range(start_epoch, s.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=step_generator(cfg.seed, ctx.rank, epoch, torch.device("cpu")))
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * local_batch : (i + 1) * local_batch].to(ctx.device)
            if len(idx) == 0:
                continue
            step = epoch * steps_per_epoch + i
            x, soft = augment(images[idx], labels[idx], step_generator(cfg.seed, ctx.rank, step, ctx.device))
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, warmup, scaled(s.lr, s.batch_size), 0.0, 0.0)
            loss = torch.sum(-soft * F.log_softmax(model(x), dim=-1), dim=-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if (epoch + 1) % s.eval_every == 0 or epoch + 1 == s.epochs:
            model.eval()
            top1, top5 = evaluate(forward, test_x, test_y, size, ctx)
            best = max(best, top1)
            metrics = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                       "top1": top1, "top5": top5, "best_top1": best}
            _report(ctx, model, optimizer, metrics, cfg, save=True)
            if on_report:
                on_report(metrics)
    if not metrics:  # no epochs to run (epochs=0, or a finished run asked again): evaluate as is
        model.eval()
        top1, top5 = evaluate(forward, test_x, test_y, size, ctx)
        metrics = {"epoch": start_epoch, "top1": top1, "top5": top5, "best_top1": max(best, top1)}
        ctx.report(metrics, None)
    return metrics


def linear_probe(cfg: Config, model: torch.nn.Module, data: Downstream, ctx=None, on_report=None) -> dict:
    """Train a linear classifier on standardised, frozen features of the first k blocks/stages."""
    ctx = ctx or LocalContext()
    check_probe_blocks(model, cfg.model, cfg.score.probe_blocks)
    num_classes = data.num_classes
    train_x, train_y, test_x, test_y = _slices(data, ctx)
    s, size = cfg.score, cfg.model.img_size
    model = model.to(ctx.device).eval()
    for p in model.parameters():
        p.requires_grad_(False)

    @torch.no_grad()
    def features(images: np.ndarray) -> torch.Tensor:
        return torch.cat([probe_features(model, _normalized(images[i : i + EVAL_BATCH], size, ctx.device), s.probe_blocks)
                          for i in range(0, len(images), EVAL_BATCH)])

    f_train, f_test = features(train_x), features(test_x)
    mean, std = f_train.mean(0), f_train.std(0).clamp(min=1e-6)  # standardised features (as BN without affine)
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    probe = ctx.prepare(torch.nn.Linear(f_train.shape[1], num_classes))
    optimizer = torch.optim.SGD(probe.parameters(), lr=scaled(s.probe_lr, s.batch_size), momentum=s.momentum, weight_decay=0.0)
    y_train = torch.from_numpy(train_y).to(ctx.device)
    y_test = torch.from_numpy(test_y).to(ctx.device)
    local_batch = s.batch_size // ctx.world_size
    steps_per_epoch = max(1, math.ceil(len(y_train) / local_batch))
    total, warmup = s.epochs * steps_per_epoch, int(round(min(s.warmup_epochs, s.epochs / 10) * steps_per_epoch))
    start_epoch, best = _resume(ctx, probe, optimizer)
    metrics = {}
    for epoch in range(start_epoch, s.epochs):
        order = torch.randperm(len(y_train), generator=step_generator(cfg.seed, ctx.rank, epoch, torch.device("cpu"))).to(ctx.device)
        losses = []
        for i in range(steps_per_epoch):
            idx = order[i * local_batch : (i + 1) * local_batch]
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(epoch * steps_per_epoch + i, total, warmup, scaled(s.probe_lr, s.batch_size), 0.0, 0.0)
            loss = F.cross_entropy(probe(f_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if (epoch + 1) % s.eval_every == 0 or epoch + 1 == s.epochs:
            top1, top5 = _probe_eval(probe, f_test, y_test, num_classes, ctx)
            best = max(best, top1)
            metrics = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "top1": top1, "top5": top5, "best_top1": best,
                       "feature_dim": int(f_train.shape[1])}
            _report(ctx, probe, optimizer, metrics, cfg, save=True)
            if on_report:
                on_report(metrics)
    if not metrics:
        top1, top5 = _probe_eval(probe, f_test, y_test, num_classes, ctx)
        metrics = {"epoch": start_epoch, "top1": top1, "top5": top5, "best_top1": max(best, top1)}
        ctx.report(metrics, None)
    return metrics


@torch.no_grad()
def _probe_eval(probe, f_test, y_test, num_classes, ctx) -> tuple[float, float]:
    top = probe(f_test).topk(min(5, num_classes), dim=-1).indices
    c1, c5, n = _all_reduce([float((top[:, 0] == y_test).sum()), float((top == y_test[:, None]).any(-1).sum()), len(y_test)], ctx)
    return 100.0 * c1 / max(n, 1), 100.0 * c5 / max(n, 1)


def _resume(ctx, module, optimizer) -> tuple[int, float]:
    path = ctx.latest_checkpoint()
    if not path:
        return 0, 0.0
    state = json.loads(open(os.path.join(path, "state.json")).read())
    target = module.module if hasattr(module, "module") else module
    target.load_state_dict(torch.load(os.path.join(path, "model.pt"), map_location=ctx.device))
    optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), map_location=ctx.device))
    return int(state["metrics"]["epoch"]), float(state["metrics"]["best_top1"])


def _report(ctx, module, optimizer, metrics: dict, cfg: Config, save: bool) -> None:
    from raysweep.config import to_dict

    with tempfile.TemporaryDirectory(prefix="raysweep-score-") as tmp:
        if ctx.rank == 0 and save:
            target = module.module if hasattr(module, "module") else module
            torch.save(target.state_dict(), os.path.join(tmp, "model.pt"))
            torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({"metrics": metrics, "config": to_dict(cfg), "mode": cfg.score.mode}, f, indent=1)
        ctx.report(metrics, tmp if ctx.rank == 0 and save else None)
