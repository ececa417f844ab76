"""What every training stage shares: Ray start-up (join the cluster named by RAY_ADDRESS, as
``ray job submit`` sets it, or start a local Ray in-process: the embedded default) and the two
worker contexts a training loop runs in (a Ray Train worker, or a bare process)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a context is built, not by every command
    import torch


def ensure_ray(num_cpus: int | None = None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or None
    # Without RAY_ADDRESS: always a new local Ray ("local"), never one that happens to run on this
    # machine already, and reachable from this machine only.
    kwargs = {} if address else {"num_cpus": num_cpus, "dashboard_host": "127.0.0.1"}
    if not address:
        loopback_only()
    ray.init(address=address or "local", logging_level="warning", log_to_driver=True, **kwargs)


def pin_autoscaling_coordinator() -> None:
    """Create Ray's cluster-wide AutoscalingCoordinator (a detached, named actor that Ray Data and
    Ray Train share) on this node, the driver's, before any trial does.

    Ray pins that actor, without fallback, to the node of whoever first asks for it. Left to the
    first trial, that is a worker node; when that node dies, the actor can never be placed again
    and every later resource request to it fails for the rest of the cluster's life. The driver's
    node (the head, under ``ray job submit``) lives as long as the sweep."""
    try:
        from ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator import (
            get_or_create_autoscaling_coordinator,
        )
    except ImportError:  # a Ray without it: nothing to pin
        return
    get_or_create_autoscaling_coordinator()


def loopback_only() -> None:
    """Make the local Ray about to start bind its servers (GCS, raylet, workers, agents) to
    127.0.0.1 instead of this machine's network address.

    Ray on Linux resolves "localhost" to the node's network IP (it assumes a cluster may join);
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 gives the single-machine behaviour Ray has on macOS and
    Windows: the node IP is the loopback address. The environment variable reaches Ray's child
    processes; the constant is read by this process's ``ray`` (already imported or not)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray._private.ray_constants as ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


class RayContext:
    """The Train worker's view: its rank, its device, DDP, and ray.train's report/checkpoint."""

    def __init__(self, tags: dict | None = None) -> None:
        import ray.train
        import ray.train.torch

        self.tags = dict(tags or {})  # added to every report
        ctx = ray.train.get_context()
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self._checkpoint = ray.train.get_checkpoint()
        self._dir = None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def latest_checkpoint(self) -> str | None:
        if self._checkpoint is None:
            return None
        self._dir = self._checkpoint.to_directory()
        return self._dir

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report({**metrics, **self.tags}, checkpoint=checkpoint)


class LocalContext:
    """A bare process: one worker, no Ray; reports are kept in memory, checkpoints in a folder."""

    def __init__(self, device: str = "cpu", checkpoint_root: str | None = None) -> None:
        import torch

        self.rank, self.world_size, self.device = 0, 1, torch.device(device)
        self.reports: list[dict] = []
        self.checkpoint_root = checkpoint_root

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def latest_checkpoint(self) -> str | None:
        return None

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir and self.checkpoint_root:
            import shutil

            shutil.copytree(checkpoint_dir, os.path.join(self.checkpoint_root, f"step-{metrics['step']:08d}"), dirs_exist_ok=True)
