"""The release's training augmentation as batched tensor operations (on the GPU when there is one).

timm's transforms work one PIL image at a time in data-loader processes; here every random
parameter is drawn per sample but applied to the whole batch at once, so augmentation costs a few
kernels per step and never stalls the model:

1. RandomResizedCrop (scale (s, 1), ratio (3/4, 4/3)), horizontal and vertical flips, and the
   geometric RandAugment ops (rotate, shear, translate) compose into ONE affine map per sample,
   applied by a single bicubic ``grid_sample``.
2. The photometric RandAugment ops ("rand-m9-mstd0.5-inc1": 2 layers, each op applied with
   probability 0.5, magnitude ~ N(9, 0.5) clipped to [0, 10], timm's "increasing" variants) on
   the samples that drew them. Colour jitter applies only when RandAugment is off (as in timm).
3. Normalisation (mean = std = 0.5), random erasing (per-pixel normal noise, area 2%..1/3,
   aspect 0.3..3.3), then Mixup/CutMix with label smoothing through timm's ``Mixup``.

Geometric ops are composed before the photometric ones (timm interleaves them in the drawn
order); both commute except at the fill colour of uncovered pixels, which is timm's mean gray.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from raysweep.config import ConfigError, PretrainConfig, ScoreConfig
from raysweep.core.inputs import normalize

# timm's increasing RandAugment set, in its order
OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
    "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
    "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)
GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}
FILL = 128.0 / 255.0  # timm fills uncovered pixels with the mean (0.5 here)


@dataclass(frozen=True)
class RandAugmentSpec:
    layers: int = 2
    magnitude: float = 9.0
    magnitude_std: float = 0.5
    prob: float = 0.5

    @classmethod
    def parse(cls, text: str, key: str = "pretrain.randaugment") -> "RandAugmentSpec | None":
        """timm's string form, e.g. ``rand-m9-mstd0.5-inc1`` (n: layers, m: magnitude, mstd, p)."""
        if not text:
            return None
        parts = text.split("-")
        if parts[0] != "rand":
            raise ConfigError(f"{key}={text!r} is not a RandAugment spec like 'rand-m9-mstd0.5-inc1'")
        values = {"layers": 2, "magnitude": 9.0, "magnitude_std": 0.5, "prob": 0.5}
        for part in parts[1:]:
            m = re.fullmatch(r"(mstd|inc|m|n|p)([0-9.]+)", part)
            if not m:
                raise ConfigError(f"{key}={text!r}: cannot read {part!r} (known: n, m, mstd, p, inc)")
            key, value = m.groups()
            if key == "inc":
                if float(value) != 1:
                    raise ConfigError(f"{key}={text!r}: only the increasing op set (inc1) is implemented")
                continue
            values[{"m": "magnitude", "n": "layers", "mstd": "magnitude_std", "p": "prob"}[key]] = float(value)
        return cls(int(values["layers"]), values["magnitude"], values["magnitude_std"], values["prob"])


class BatchAugment:
    """``augment(images uint8 (B, C, H, W), labels, generator) -> (inputs float (B, 3, S, S), soft targets)``.

    Explicit keyword arguments (timm's ``create_transform`` style); :func:`for_pretraining` and
    :func:`for_finetuning` build one from either stage's config. Every random parameter comes from
    the given generator (and timm's Mixup from numpy's global RNG), so a step draws the same batch
    whenever it is run. No operation reads a tensor back to the host: the training device's queue
    never stalls on augmentation."""

    def __init__(self, img_size: int, num_classes: int, *, crop_scale_min: float = 0.08, hflip: float = 0.5,
                 vflip: float = 0.0, randaugment: str = "", color_jitter: float = 0.0, reprob: float = 0.0,
                 mixup: float = 0.0, cutmix: float = 0.0, mix_prob: float = 1.0, mix_switch_prob: float = 0.5,
                 smoothing: float = 0.1, randaugment_key: str = "randaugment", sync_free: bool | None = None):
        self.size, self.num_classes = img_size, num_classes
        self.sync_free = sync_free  # None: on accelerators (see _apply_photometric)
        self.crop_scale_min, self.hflip, self.vflip = crop_scale_min, hflip, vflip
        self.color_jitter, self.reprob, self.smoothing = color_jitter, reprob, smoothing
        self.randaugment = RandAugmentSpec.parse(randaugment, key=randaugment_key)
        self.mixup = None
        if (mixup > 0 or cutmix > 0) and mix_prob > 0:
            from timm.data import Mixup

            self.mixup = Mixup(
                mixup_alpha=mixup, cutmix_alpha=cutmix, prob=mix_prob, switch_prob=mix_switch_prob,
                mode="batch", label_smoothing=smoothing, num_classes=num_classes,
            )

    # -- 1. geometry ------------------------------------------------------------------------
    def _crop_flip(self, b: int, g: torch.Generator, device) -> torch.Tensor:
        """(B, 2, 3) maps from output to source coordinates (both in [-1, 1])."""
        u = torch.rand(b, 6, generator=g, device=device)
        area = self.crop_scale_min + (1.0 - self.crop_scale_min) * u[:, 0]
        log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[:, 1]
        ratio = torch.exp(log_ratio)
        w = torch.sqrt(area * ratio).clamp(max=1.0)  # half-extent in normalised units = fraction of the side
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (1.0 - w) * (2.0 * u[:, 2] - 1.0)
        cy = (1.0 - h) * (2.0 * u[:, 3] - 1.0)
        fx = torch.where(u[:, 4] < self.hflip, -1.0, 1.0)
        fy = torch.where(u[:, 5] < self.vflip, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0] = w * fx
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h * fy
        theta[:, 1, 2] = cy
        return theta

    @staticmethod
    def _geometric(op: str, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """(N, 3, 3) inverse maps (output -> input) of one geometric op at magnitudes ``level``."""
        n = level.shape[0]
        m = torch.eye(3, device=level.device).repeat(n, 1, 1)
        frac = level / 10.0 * sign
        if op == "Rotate":
            a = torch.deg2rad(30.0 * frac)
            c, s = torch.cos(a), torch.sin(a)
            m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
        elif op == "ShearX":
            m[:, 0, 1] = 0.3 * frac
        elif op == "ShearY":
            m[:, 1, 0] = 0.3 * frac
        elif op == "TranslateXRel":
            m[:, 0, 2] = 2 * 0.45 * frac
        elif op == "TranslateYRel":
            m[:, 1, 2] = 2 * 0.45 * frac
        return m

    # -- 2. photometric ops on float images in [0, 1] -----------------------------------------
    @staticmethod
    def _photometric(op: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        frac = (level / 10.0).view(-1, 1, 1, 1)
        factor = 1.0 + 0.9 * frac * sign.view(-1, 1, 1, 1)  # timm's "increasing" enhance level
        if op == "AutoContrast":
            lo = x.amin(dim=(2, 3), keepdim=True)
            hi = x.amax(dim=(2, 3), keepdim=True)
            return torch.where(hi > lo, (x - lo) / (hi - lo).clamp(min=1e-6), x)
        if op == "Equalize":
            from torchvision.transforms.v2.functional import equalize

            return equalize((x * 255).round().to(torch.uint8)).float() / 255.0
        if op == "Invert":
            return 1.0 - x
        q = (x * 255).round()
        if op == "PosterizeIncreasing":
            bits = (4 - (frac * 4).floor()).clamp(0, 8)
            step = torch.pow(2.0, 8 - bits)
            return torch.floor(q / step) * step / 255.0
        if op == "SolarizeIncreasing":
            threshold = 256 - (frac * 256).floor()
            return torch.where(q >= threshold, 255 - q, q) / 255.0
        if op == "SolarizeAdd":
            add = (frac * 110).floor()
            return torch.where(q < 128, (q + add).clamp(max=255), q) / 255.0
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        if op == "ColorIncreasing":
            return (gray + (x - gray) * factor).clamp(0, 1)
        if op == "ContrastIncreasing":
            mean = gray.mean(dim=(2, 3), keepdim=True)
            return (mean + (x - mean) * factor).clamp(0, 1)
        if op == "BrightnessIncreasing":
            return (x * factor).clamp(0, 1)
        if op == "SharpnessIncreasing":
            kernel = torch.ones(3, 3, device=x.device)  # built on the device: no host-to-device copy
            kernel[1, 1] = 5.0
            kernel = kernel / 13.0
            smooth = F.conv2d(x, kernel.expand(x.shape[1], 1, 3, 3), padding=1, groups=x.shape[1])
            out = (smooth + (x - smooth) * factor).clamp(0, 1)
            out[..., 0, :], out[..., -1, :], out[..., :, 0], out[..., :, -1] = x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]
            return out
        raise ValueError(op)

    # -- the whole pipeline -------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        b, device = images.shape[0], images.device
        x = images.float() / 255.0
        theta = self._crop_flip(b, g, device)
        plan = self._draw_randaugment(b, g, device)
        eye = torch.eye(3, device=device).expand(b, 3, 3)
        for op_idx, apply, level, sign in plan:  # compose each layer's geometric op: out -> in
            chosen = eye
            for k, op in enumerate(OPS):
                if op in GEOMETRIC:
                    sel = (apply & (op_idx == k)).view(-1, 1, 1)
                    chosen = torch.where(sel, self._geometric(op, level, sign), chosen)
            theta = theta @ chosen
        grid = F.affine_grid(theta, [b, x.shape[1], self.size, self.size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False).clamp_(0, 1)
        outside = (grid.abs() > 1).any(dim=-1, keepdim=True).permute(0, 3, 1, 2)
        x = torch.where(outside, FILL, x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = self._apply_photometric(x, plan)
        if not plan and self.color_jitter > 0:
            x = self._color_jitter(x, g)
        x = normalize(x)
        if self.reprob > 0:
            x = self._erase(x, g)
        return self._targets(x, labels)

    def _apply_photometric(self, x: torch.Tensor, plan) -> torch.Tensor:
        """Each layer's photometric ops on the samples that drew them (one op per sample and layer).

        On an accelerator every op is computed for the whole batch and kept where it was drawn:
        static shapes, so the host never waits for the device to learn who drew what. On the CPU,
        where reading a tensor costs nothing, each op runs on its samples only (4x less work at the
        release's recipe). Both give the same images."""
        sync_free = self.sync_free if self.sync_free is not None else x.device.type != "cpu"
        for op_idx, apply, level, sign in plan:
            if sync_free:
                out = x
                for k, op in enumerate(OPS):
                    if op not in GEOMETRIC:
                        sel = (apply & (op_idx == k)).view(-1, 1, 1, 1)
                        out = torch.where(sel, self._photometric(op, x, level, sign), out)
                x = out
                continue
            for k, op in enumerate(OPS):
                if op not in GEOMETRIC:
                    sel = (apply & (op_idx == k)).nonzero().squeeze(1)
                    if sel.numel():
                        x = x.index_copy(0, sel, self._photometric(op, x.index_select(0, sel), level[sel], sign[sel]))
        return x

    def _draw_randaugment(self, b: int, g: torch.Generator, device):
        spec = self.randaugment
        if spec is None:
            return []
        plan = []
        for _ in range(spec.layers):
            op_idx = torch.randint(len(OPS), (b,), generator=g, device=device)
            apply = torch.rand(b, generator=g, device=device) < spec.prob
            level = (spec.magnitude + spec.magnitude_std * torch.randn(b, generator=g, device=device)).clamp(0, 10)
            sign = torch.where(torch.rand(b, generator=g, device=device) < 0.5, -1.0, 1.0)
            plan.append((op_idx, apply, level, sign))
        return plan

    def _color_jitter(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cj = self.color_jitter
        f = (1 - cj + 2 * cj * torch.rand(x.shape[0], 3, generator=g, device=x.device)).clamp(min=0).view(-1, 3, 1, 1, 1)
        x = (x * f[:, 0]).clamp(0, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (mean + (x - mean) * f[:, 1]).clamp(0, 1)
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        return (gray + (x - gray) * f[:, 2]).clamp(0, 1)

    def _erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, c, s, _ = x.shape
        u = torch.rand(b, 5, generator=g, device=x.device)
        area = (0.02 + (1 / 3 - 0.02) * u[:, 0]) * s * s
        aspect = torch.exp(math.log(0.3) + (math.log(1 / 0.3) - math.log(0.3)) * u[:, 1])
        h = torch.sqrt(area * aspect).round().clamp(1, s - 1)
        w = torch.sqrt(area / aspect).round().clamp(1, s - 1)
        top = ((s - h + 1) * u[:, 2]).floor()
        left = ((s - w + 1) * u[:, 3]).floor()
        on = u[:, 4] < self.reprob
        r = torch.arange(s, device=x.device).float()
        rows = (r >= top[:, None]) & (r < (top + h)[:, None])
        cols = (r >= left[:, None]) & (r < (left + w)[:, None])
        mask = (rows[:, :, None] & cols[:, None, :] & on[:, None, None]).unsqueeze(1)
        noise = torch.randn(x.shape, generator=g, device=x.device)
        return torch.where(mask, noise, x)

    def _targets(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mixup is not None:
            return self.mixup(x, labels)
        off = self.smoothing / self.num_classes
        target = torch.full((labels.shape[0], self.num_classes), off, device=x.device)
        target.scatter_(1, labels.view(-1, 1), 1.0 - self.smoothing + off)
        return x, target


def for_pretraining(p: PretrainConfig, img_size: int, num_classes: int) -> BatchAugment:
    """The release's pre-training recipe (``pretrain.*``)."""
    return BatchAugment(img_size, num_classes, crop_scale_min=p.crop_scale_min, hflip=p.hflip, vflip=p.vflip,
                        randaugment=p.randaugment, color_jitter=p.color_jitter, reprob=p.reprob, mixup=p.mixup,
                        cutmix=p.cutmix, mix_prob=p.mix_prob, mix_switch_prob=p.mix_switch_prob, smoothing=p.smoothing)


def for_finetuning(s: ScoreConfig, img_size: int, num_classes: int) -> BatchAugment:
    """The release's fine-tuning augmentation (``score.*``): RandomResizedCrop, horizontal flips,
    label smoothing."""
    return BatchAugment(img_size, num_classes, crop_scale_min=s.crop_scale_min, hflip=s.hflip, vflip=0.0,
                        smoothing=s.smoothing)
