"""Renderer throughput on ONE core: images/s at the release's settings (512 px, 100,000 points,
3x3 patches) and at 224 and 64 px, for 1p-frac class systems (sigma 3.5, delta 0.1)."""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np

from raysweep.config import DataConfig
from raysweep.fractal import OnePFracClasses, Renderer, RenderSettings, fill_rate


def pin_to_one_core() -> int:
    """Restrict this process to one CPU (the first it may use); return that CPU's index."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _systems(count: int) -> list:
    """``count`` perturbed 1p-frac systems (sigma 3.5, delta 0.1), as the renderer meets them."""
    classes = OnePFracClasses(DataConfig(L=count, size=64, pad=2, iterations=10_000))
    return [classes.render_instance(label, 0).ifs for label in range(count)]


def images_per_second(settings: RenderSettings, systems: list, seconds: float, repeats: int, check_fill: bool) -> list[float]:
    renderer = Renderer(settings)
    out = np.empty((settings.size, settings.size), np.uint8)
    renderer.render(systems[0], 0, 0, out=out)  # compile / warm up
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            renderer.render(systems[n % len(systems)], n, 7, out=out)
            if check_fill:
                fill_rate(out)
            n += 1
        rates.append(n / elapsed)
    return rates


def run(seconds: float = 1.0, repeats: int = 5, sizes=(512, 224, 64), iterations: int = 100_000) -> dict:
    cpu = pin_to_one_core()
    systems = _systems(32)
    rows = {}
    for size in sizes:
        settings = RenderSettings(size=size, pad=6 if size >= 64 else 1, iterations=iterations, draw="patch", gray=127)
        rates = images_per_second(settings, systems, seconds, repeats, check_fill=False)
        with_fill = images_per_second(settings, systems, seconds, repeats, check_fill=True)
        rows[str(size)] = {
            "images_per_second": statistics.median(rates),
            "images_per_second_with_fill_check": statistics.median(with_fill),
            "all_runs": [round(r, 1) for r in rates],
        }
    return {
        "benchmark": "render",
        "images_per_second_per_core": rows[str(sizes[0])]["images_per_second"],
        "settings": {"iterations": iterations, "draw": "patch", "pad": 6, "systems": "1p-frac sigma=3.5 delta=0.1"},
        "sizes": rows,
        "cpu": cpu,
        "repeats": repeats,
        "seconds_per_repeat": seconds,
        "machine": platform.processor() or platform.machine(),
    }


def format_table(result: dict) -> str:
    lines = [
        f"render: images/s on one core (cpu {result['cpu']}), {result['settings']['iterations']:,} points, 3x3 patches, "
        f"median of {result['repeats']} x {result['seconds_per_repeat']:g} s",
        f"{'size':>6} {'images/s':>10} {'+fill check':>12}",
    ]
    for size, row in result["sizes"].items():
        lines.append(f"{size:>6} {row['images_per_second']:>10.0f} {row['images_per_second_with_fill_check']:>12.0f}")
    return "\n".join(lines)
