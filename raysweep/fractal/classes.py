"""Class images from the fractal engine: 1p-frac (one system, L perturbations) and the
FractalDB-C / OFDB-C baselines (C independent systems), with bounded fill-rate rejection.

Every random draw comes from a stream named by ``(seed, purpose, indices...)`` through numpy's
SeedSequence, so a class renders the same whether it is rendered first, last, alone or on another
machine: Ray Data actors can render any subset of classes in any order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from raysweep.config.errors import ConfigError
from raysweep.config.schema import DataConfig
from raysweep.fractal.ifs import IFS, sample_ifs
from raysweep.fractal.liep import perturb, reweight
from raysweep.fractal.raster import Renderer, RenderSettings, fill_rate

# stream names (part of the dataset's identity: changing them changes every image)
BASE, CLASS, MASK, MAPS, CATEGORY, INSTANCE = 1, 2, 3, 4, 5, 6


def stream(seed: int, *path: int) -> np.random.Generator:
    """An independent generator for one purpose (e.g. ``stream(seed, CLASS, label, attempt)``)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=tuple(path))))


def key(seed: int, *path: int) -> int:
    """A 64-bit key for the renderer's counter-based hashing."""
    return int(np.random.SeedSequence(seed, spawn_key=tuple(path)).generate_state(1, np.uint64)[0])


class RenderFailure(ConfigError):
    """A configuration cannot produce a valid (non-empty enough) image within the redraw budget."""


@dataclass
class ClassImage:
    """One rendered image of one class, with the system that produced it."""

    label: int
    instance: int
    image: np.ndarray  # (size, size) uint8, gray on black
    ifs: IFS
    fill: float  # fraction of nonzero pixels
    redraws: int  # rejected draws before this one was accepted

    @property
    def params(self) -> list[list[float]]:
        """The class's parameters as stored with the image: rows [a, b, c, d, e, f, p]."""
        return self.ifs.to_list()


def settings_of(cfg: DataConfig) -> RenderSettings:
    return RenderSettings(
        size=cfg.size, pad=cfg.pad, iterations=cfg.iterations, draw=cfg.draw, gray=cfg.gray, framing=cfg.framing
    )


class FractalClasses(ABC):
    """Shared machinery: keys, rendering with rejection. Subclasses define the class systems."""

    def __init__(self, cfg: DataConfig, renderer: Renderer | None = None):
        self.cfg = cfg
        self.renderer = renderer if renderer is not None else Renderer(settings_of(cfg))
        if self.renderer.settings != settings_of(cfg):
            raise ValueError("renderer settings differ from the data config")
        self._systems: dict[int, ClassImage] = {}  # label -> its first valid system (pixels dropped)

    def _first(self, label: int) -> ClassImage:
        """Instance 0 of class ``label``: drawn (with rejection) once, its system kept for the other
        instances (a stream renders instances of a class in any order, many times)."""
        self._check_label(label)
        known = self._systems.get(label)
        if known is not None:
            img, _ = self._render(known.ifs, label, 0)
            return replace(known, image=img)
        first = self._draw_first(label)
        self._systems[label] = replace(first, image=None)
        return first

    @abstractmethod
    def _draw_first(self, label: int) -> ClassImage:
        """The first valid system of class ``label`` and its image (instance 0)."""

    @property
    def num_classes(self) -> int:
        return self.cfg.L

    def map_key(self, label: int, instance: int) -> int:
        if self.cfg.fixed_map_sequence:  # the release: one sequence of map choices for every class
            return key(self.cfg.seed, MAPS, instance)
        return key(self.cfg.seed, MAPS, instance, label + 1)

    def mask_key(self, label: int, instance: int) -> int:
        return key(self.cfg.seed, MASK, label, instance)

    def _render(self, ifs: IFS, label: int, instance: int, keys: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
        mask_key, map_key = keys if keys is not None else (self.mask_key(label, instance), self.map_key(label, instance))
        img = self.renderer.render(ifs, mask_key, map_key)
        return img, fill_rate(img)

    def _first_valid(
        self, draw, label: int, instance: int, what: str, keys: tuple[int, int] | None = None
    ) -> ClassImage:
        """Draw systems with ``draw(attempt)`` until one renders with enough nonzero pixels."""
        best = 0.0
        for attempt in range(self.cfg.max_redraws):
            ifs = draw(attempt)
            img, fill = self._render(ifs, label, instance, keys)
            if fill >= self.cfg.fill_threshold:
                return ClassImage(label, instance, img, ifs, fill, attempt)
            best = max(best, fill)
        c = self.cfg
        raise RenderFailure(
            f"{what}: no image with fill rate >= data.fill_threshold={c.fill_threshold:g} in data.max_redraws={c.max_redraws} "
            f"draws (best {best:.4f}) with data.source={c.source}, data.sigma={c.sigma:g}, data.delta={c.delta:g}, "
            f"data.size={c.size}, data.iterations={c.iterations}; lower data.fill_threshold or change sigma/delta"
        )

    def render_instance(self, label: int, instance: int) -> ClassImage:
        """Image ``instance`` of class ``label`` (in any order: the class system is kept)."""
        if instance == 0:
            return self._first(label)
        self._check_label(label)
        return self._other(self._systems.get(label) or self._first(label), instance)

    def render_class(self, label: int) -> list[ClassImage]:
        """All ``instances`` images of class ``label`` (the class system is drawn once)."""
        first = self._first(label)
        return [first, *(self._other(first, k) for k in range(1, self.cfg.instances))]

    @abstractmethod
    def _other(self, first: ClassImage, instance: int) -> ClassImage:
        """Image ``instance`` > 0 of the class whose instance 0 is ``first``."""

    def anchors(self) -> list[tuple[str, np.ndarray]]:
        """Images a preview shows before the classes (none here)."""
        return []

    def _check_label(self, label: int) -> None:
        if not 0 <= label < self.cfg.L:
            raise IndexError(f"class {label} is out of range 0..{self.cfg.L - 1}")


class OnePFracClasses(FractalClasses):
    """1p-frac: one base system of sigma-factor ``sigma``; class ``l`` is a perturbation of it."""

    @cached_property
    def base(self) -> ClassImage:
        """The one fractal: the first sigma-sampled system whose own image is valid (label -1)."""
        c = self.cfg
        return self._first_valid(
            lambda attempt: sample_ifs(c.n_maps, c.sigma, stream(c.seed, BASE, attempt), sigma_jitter=c.sigma_jitter),
            label=0, instance=0, what="base system",
            keys=(key(c.seed, BASE, MASK), self.map_key(0, 0)),
        )

    def anchors(self) -> list[tuple[str, np.ndarray]]:
        """The base system every class perturbs."""
        return [("base", self.base.image.copy())]

    def _draw_first(self, label: int) -> ClassImage:
        base = self.base.ifs
        return self._first_valid(
            lambda attempt: perturb(base, self.cfg.delta, stream(self.cfg.seed, CLASS, label, attempt)),
            label, 0, what=f"class {label}",
        )

    def _other(self, first: ClassImage, instance: int) -> ClassImage:
        """Another image of the same class: new patch masks (and map choices), same system."""
        img, fill = self._render(first.ifs, first.label, instance)
        return ClassImage(first.label, instance, img, first.ifs, fill, 0)


class FractalDBClasses(FractalClasses):
    """FractalDB-C: category ``c`` is its own system, N ~ U{2..n_maps_max} maps and sigma-factor
    ~ U[(5 + N) / 2, (6 + N) / 2] (Anderson & Farrell's range); instance ``m > 0`` re-weights one
    coefficient of one map by 0.8..1.2 and redraws the patch masks."""

    def _category(self, label: int, attempt: int) -> IFS:
        rng = stream(self.cfg.seed, CATEGORY, label, attempt)
        n = int(rng.integers(2, self.cfg.n_maps_max + 1))
        sigma = rng.uniform((5 + n) / 2, (6 + n) / 2)
        return sample_ifs(n, sigma, rng)

    def _draw_first(self, label: int) -> ClassImage:
        return self._first_valid(lambda attempt: self._category(label, attempt), label, 0, what=f"category {label}")

    def _other(self, first: ClassImage, instance: int) -> ClassImage:
        return self._first_valid(
            lambda attempt: reweight(first.ifs, stream(self.cfg.seed, INSTANCE, first.label, instance, attempt)),
            first.label, instance, what=f"category {first.label} instance {instance}",
        )


class OFDBClasses(FractalDBClasses):
    """OFDB-C: FractalDB-C with one instance per category (the config enforces instances == 1)."""
