"""Ray start-up, in one place: join the cluster named by ``RAY_ADDRESS`` (as ``ray job submit``
sets it), or start a local Ray in-process (the embedded default). Commands, benchmarks and tests
all start Ray here."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Mapping


def ensure_ray(num_cpus: int | None = None) -> None:
    """The one place raysweep starts or joins Ray: the cluster named by ``RAY_ADDRESS``, or a new
    local Ray reachable from this machine only (never one that happens to run here already)."""
    import ray

    if ray.is_initialized():
        return
    from raysweep import ray_private

    ray_private.set_env_defaults()
    address = os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, logging_level="warning", log_to_driver=True)
        return
    ray_private.loopback_only()
    # the dashboard (loopback) serves the State API, which Ray Train's placement-group cleaner needs.
    # Every process of this Ray is told where it is: the raylet, started by ray.init, inherits this
    # environment and hands it to every worker. It is taken out of this process's environment again,
    # so that other Rays started from here (tests) do not inherit it.
    port = ray_private.free_loopback_port()
    with environment(ray_private.state_api_env(port)):
        ray.init(address="local", num_cpus=num_cpus or local_cpus(), include_dashboard=True, dashboard_host="127.0.0.1",
                 dashboard_port=port, logging_level="warning", log_to_driver=True)


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def local_cpus() -> int:
    """The CPUs this process may use (what the embedded local Ray is started with)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
