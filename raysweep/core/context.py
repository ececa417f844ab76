"""Where a training loop runs: a Ray Train worker (:class:`RayContext`) or a bare process
(:class:`LocalContext`: tests, benchmarks).

A context knows its rank, world size and device, wraps a model for data-parallel training, and
reports: ``report(metrics, payload)`` is called by every rank at the same points (Ray Train's
report is a barrier across ranks); a ``payload`` (the module, its optimizer and the checkpoint's
state) is saved by rank 0 as a checkpoint in the one format of :mod:`raysweep.core.checkpoint`.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a context is built
    import torch


def data_parallel(model: "torch.nn.Module", device: "torch.device", world_size: int) -> "torch.nn.Module":
    """``model`` on ``device``, wrapped in DDP when there are several workers. Build the optimizer
    from the bare model first: DDP hides methods such as ``no_weight_decay()``."""
    model = model.to(device)
    if world_size <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def save_payload(directory: str, payload: dict[str, Any]) -> str:
    from raysweep.core import checkpoint

    return checkpoint.save(directory, payload["module"], payload["state"], payload.get("optimizer"))


class RayContext:
    """A Ray Train worker: its rank, its device, DDP, and ray.train's report/checkpoint."""

    def __init__(self, device: str | None = None, tags: dict | None = None) -> None:
        import ray.train
        import torch

        self.tags = dict(tags or {})  # added to every report
        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        if device:  # an override (RAYSWEEP_DEVICE): the resource request stays what the config asks
            self.device = torch.device(device)
        else:
            import ray.train.torch

            self.device = ray.train.torch.get_device()
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
        self._checkpoint = ray.train.get_checkpoint()

    def prepare(self, model: "torch.nn.Module") -> "torch.nn.Module":
        return data_parallel(model, self.device, self.world_size)

    def latest_checkpoint(self) -> str | None:
        """The run's latest checkpoint as a local directory (a resumed or restarted run), or None."""
        return self._checkpoint.to_directory() if self._checkpoint is not None else None

    def report(self, metrics: dict, payload: dict | None = None) -> None:
        import ray.train

        with tempfile.TemporaryDirectory(prefix="raysweep-ckpt-") as tmp:
            checkpoint = None
            if payload is not None and self.rank == 0:
                checkpoint = ray.train.Checkpoint.from_directory(save_payload(tmp, payload))
            ray.train.report({**metrics, **self.tags, "worker_peak_rss_mb": peak_rss_mb()}, checkpoint=checkpoint)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MiB): flat in the dataset's size when its data
    streams (``python -m raysweep.bench memory``)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class LocalContext:
    """A bare process: one worker, no Ray; reports are kept in memory (checkpoints are not kept)."""

    def __init__(self, device: str = "cpu", tags: dict | None = None) -> None:
        import torch

        self.rank, self.world_size, self.device = 0, 1, torch.device(device)
        self.tags = dict(tags or {})
        self.reports: list[dict] = []

    def prepare(self, model: "torch.nn.Module") -> "torch.nn.Module":
        return model.to(self.device)

    def latest_checkpoint(self) -> str | None:
        return None

    def report(self, metrics: dict, payload: dict | None = None) -> None:
        self.reports.append({**metrics, **self.tags})
