"""Ray start-up shared by every stage: join the cluster named by RAY_ADDRESS (``ray job submit``
sets it), or start a local Ray in-process (the embedded default)."""

from __future__ import annotations

import os


def ensure_ray(num_cpus: int | None = None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS") or None
    kwargs = {} if address else {"num_cpus": num_cpus, "dashboard_host": "127.0.0.1"}
    ray.init(address=address, logging_level="warning", log_to_driver=True, **kwargs)
