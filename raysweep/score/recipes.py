"""Fine-tuning recipes, chosen by one key, ``score.recipe``:

- ``release``: the authors' release (method page §6), the default. SGD with momentum from timm's
  optimizer factory (lr ``score.lr`` per 512 images of batch, ``score.weight_decay``), warm-up
  ``score.warmup_epochs``; RandomResizedCrop, horizontal flips and label smoothing.
- ``vit``: the field's ImageNet fine-tuning of ViTs (DeiT's augmentation and regularisation, BEiT's
  and MAE's optimiser). AdamW from timm's factory with weight decay (not on norms, biases,
  ``pos_embed``, ``cls_token``) and layer-wise lr decay (timm's ``layer_decay``, for models whose
  layers timm can group); RandAugment, random erasing, Mixup/CutMix with label smoothing, and the
  model's drop-path (``model.drop_path``). Its keys are ``score.vit.*``; MAE's ViT-B values are
  the defaults.

Both share the epoch loop of :mod:`raysweep.score.loop` (linear warm-up, then cosine to 0; each
parameter group's lr scaled by its ``lr_scale``) and the batched augmentation that pre-training has
(:class:`raysweep.core.augment.BatchAugment`): uint8 images on the training device in, augmented
float inputs and soft targets out, with no read back to the host.

On CUDA both train and evaluate under bf16 autocast (``score.precision=auto``; ``fp32`` turns it
off, ``bf16`` forces it); on the CPU they run in fp32, exactly as before recipes existed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import numpy as np
import torch
import torch.nn.functional as F

from raysweep.config import Config, ConfigError, ScoreConfig
from raysweep.config.schema import SCORE_RECIPES
from raysweep.core.augment import BatchAugment, for_finetuning
from raysweep.core.schedule import scaled, step_generator

Loss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class Recipe:
    """What the epoch loop needs of a fine-tuning recipe.

    ``loss(module, images, labels, step)``: ``images`` uint8 ``(B, C, H, W)`` and ``labels`` int64
    ``(B,)``, both on the training device; the step's augmentation (drawn from (seed, rank, step), so
    a resumed run draws what it would have) and the soft-target cross entropy of ``module``'s output.
    """

    name: str
    optimizer: torch.optim.Optimizer
    peak_lr: float  # scaled by the global batch; each parameter group gets it times its "lr_scale"
    warmup_epochs: float
    loss: Loss
    autocast: Callable[[], ContextManager]  # the precision of forward passes (training and evaluation)
    layer_decay: float | None = None  # the layer-wise lr decay applied (None: none)

    def predict(self, module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """``module``'s fp32 logits, computed under the recipe's autocast (for evaluation)."""
        def forward(x: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return module(x).float()

        return forward


def uses_bf16(precision: str, device: torch.device) -> bool:
    """``score.precision``: auto is bf16 on CUDA and fp32 elsewhere."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast_for(precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """A context-manager factory: bf16 autocast on ``device`` where ``score.precision`` asks for it,
    otherwise nothing at all (fp32 code paths stay exactly as they were)."""
    if not uses_bf16(precision, device):
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def create_recipe(cfg: Config, model: torch.nn.Module, num_classes: int, ctx) -> Recipe:
    """The recipe ``cfg.score.recipe`` for ``model`` (the bare model, on ``ctx.device``: the
    optimizer's parameter groups come from it, before DDP hides ``no_weight_decay()``)."""
    import timm.optim

    s, size = cfg.score, cfg.model.img_size
    autocast = autocast_for(s.precision, ctx.device)
    if s.recipe == "release":
        peak = scaled(s.lr, s.batch_size)
        optimizer = timm.optim.create_optimizer_v2(model, opt="momentum", lr=peak, weight_decay=s.weight_decay,
                                                   momentum=s.momentum)
        loss = _soft_target_loss(cfg, for_finetuning(s, size, num_classes), autocast, ctx, mixes=False)
        return Recipe("release", optimizer, peak, s.warmup_epochs, loss, autocast)
    if s.recipe == "vit":
        v = s.vit
        peak = scaled(v.lr, s.batch_size)
        decay = v.layer_decay if v.layer_decay is not None and v.layer_decay < 1.0 and layer_groups(model) > 1 else None
        optimizer = timm.optim.create_optimizer_v2(model, opt="adamw", lr=peak, weight_decay=v.weight_decay, layer_decay=decay)
        augment = for_vit_finetuning(s, size, num_classes)
        loss = _soft_target_loss(cfg, augment, autocast, ctx, mixes=augment.mixup is not None)
        return Recipe("vit", optimizer, peak, v.warmup_epochs, loss, autocast, layer_decay=decay)
    raise ConfigError(f"score.recipe={s.recipe!r} is not allowed; choose one of: {', '.join(SCORE_RECIPES)}")


def for_vit_finetuning(s: ScoreConfig, img_size: int, num_classes: int) -> BatchAugment:
    """The ``vit`` recipe's augmentation: pre-training's batched pipeline with fine-tuning settings
    (no vertical flips; RandAugment, random erasing and Mixup/CutMix from ``score.vit``; the crop,
    horizontal flip and label smoothing of ``score``)."""
    v = s.vit
    return BatchAugment(img_size, num_classes, crop_scale_min=s.crop_scale_min, hflip=s.hflip, vflip=0.0,
                        randaugment=v.randaugment, color_jitter=0.4, reprob=v.reprob, mixup=v.mixup, cutmix=v.cutmix,
                        mix_prob=v.mix_prob, mix_switch_prob=v.mix_switch_prob, smoothing=s.smoothing,
                        randaugment_key="score.vit.randaugment")


def layer_groups(model: torch.nn.Module) -> int:
    """How many layers timm's layer-wise lr decay would tell apart in ``model`` (1: it cannot group
    them, and ``layer_decay`` would scale nothing)."""
    if not hasattr(model, "group_matcher"):
        return 1
    from timm.models import group_parameters

    try:
        layer_map = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    except Exception:  # noqa: BLE001 - a model whose matcher does not fit its parameters: no grouping
        return 1
    return max(layer_map.values()) + 1 if layer_map else 1


def _soft_target_loss(cfg: Config, augment: BatchAugment, autocast, ctx, *, mixes: bool) -> Loss:
    seed, rank, device = cfg.seed, ctx.rank, ctx.device

    def loss(module: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, step: int,
             valid: torch.Tensor | None = None) -> torch.Tensor:
        """The batch's mean loss; with ``valid``, samples marked false (images that did not decode)
        weigh nothing."""
        g = step_generator(seed, rank, step, device)
        if mixes:
            np.random.seed(int(g.initial_seed() % (2**32)))  # timm's Mixup draws from numpy's global RNG
            if images.shape[0] % 2:  # it pairs samples: an odd batch (an epoch's last) repeats its last sample
                images, labels = torch.cat([images, images[-1:]]), torch.cat([labels, labels[-1:]])
                valid = None if valid is None else torch.cat([valid, valid[-1:]])
        x, soft = augment(images, labels, g)
        with autocast():
            logits = module(x)
        per_sample = torch.sum(-soft * F.log_softmax(logits.float(), dim=-1), dim=-1)
        if valid is None:
            return per_sample.mean()
        return (per_sample * valid).sum() / valid.sum().clamp(min=1)

    return loss
