"""raysweep's custom metrics, through ``ray.util.metrics``: Ray exports them on every node's
Prometheus endpoint (``ray start --metrics-export-port``; names get Ray's ``ray_`` prefix) and the
dashboard's Metrics view shows them.

- ``raysweep_render_images_per_second`` (gauge, by source): each render actor, per shard written;
  ``raysweep_render_images`` (counter, by source): images rendered.
- ``raysweep_train_images_per_second`` (gauge, by experiment and trial): pre-training throughput.
- ``raysweep_trial_top1`` (gauge, by experiment and trial): a finished trial's downstream top-1.
- ``raysweep_trials_finished`` (counter, by experiment).

Outside a Ray worker or driver every recording is a no-op, so the stages also run without Ray.
"""

from __future__ import annotations

import functools


def _ray_ready() -> bool:
    try:
        import ray

        return ray.is_initialized()
    except ImportError:  # pragma: no cover - ray is a dependency
        return False


@functools.lru_cache(maxsize=None)
def _gauge(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Gauge

    return Gauge(name, description=description, tag_keys=tags)


@functools.lru_cache(maxsize=None)
def _counter(name: str, description: str, tags: tuple[str, ...]):
    from ray.util.metrics import Counter

    return Counter(name, description=description, tag_keys=tags)


class RenderMetrics:
    def __init__(self, source: str):
        self.tags = {"source": source}

    def shard_written(self, images: int, seconds: float) -> None:
        if not _ray_ready() or images <= 0:
            return
        _gauge("raysweep_render_images_per_second", "Images rendered per second by one render actor", ("source",)).set(
            images / max(seconds, 1e-9), tags=self.tags)
        _counter("raysweep_render_images", "Images rendered", ("source",)).inc(images, tags=self.tags)


def record_trial_result(experiment: str, trial: str, result: dict) -> None:
    """Called by the sweep's driver on every result a trial reports."""
    if not _ray_ready():
        return
    if isinstance(result.get("images_per_second"), (int, float)):
        _gauge("raysweep_train_images_per_second", "Pre-training images per second of a trial (all workers)",
               ("experiment", "trial")).set(float(result["images_per_second"]), tags={"experiment": experiment, "trial": trial})


def record_trial_finished(experiment: str, trial: str, last_result: dict) -> None:
    """Called by the sweep's driver when a trial ends (done, or stopped early by the scheduler)."""
    if not _ray_ready():
        return
    if isinstance(last_result.get("top1"), (int, float)):
        _gauge("raysweep_trial_top1", "Downstream top-1 (%) of a finished trial", ("experiment", "trial")).set(
            float(last_result["top1"]), tags={"experiment": experiment, "trial": trial})
    _counter("raysweep_trials_finished", "Trials finished (done or stopped early)", ("experiment",)).inc(
        1, tags={"experiment": experiment})
