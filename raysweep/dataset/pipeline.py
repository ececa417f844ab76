"""Render a dataset spec through Ray Data into Parquet shards plus a manifest.

``materialize(cfg.data, storage)`` resolves the spec's content address, reuses a complete dataset
found there, and otherwise renders only the shards that are missing: an autoscaling pool of Ray
Data actors (one CPU each) renders shards in parallel and writes each atomically; the driver
writes ``manifest.json`` last. A render that dies leaves no manifest, so the dataset is never half
used, and running the same command again completes it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np

from raysweep.config import ConfigError, DataConfig
from raysweep.dataset.shards import shard_name, write_shard
from raysweep.render.spec import DatasetSpec, data_config, resolve_spec
from raysweep.storage import atomic_write, check_writable, join, listdir, read_bytes, remove, sha256

MANIFEST = "manifest.json"


class ShardWriter:
    """A Ray Data actor: builds its source once, then renders and writes the shards it is given."""

    def __init__(self, spec: dict, dataset_uri: str):
        import ray

        from raysweep.metrics import RenderMetrics
        from raysweep.render.sources import create_source

        self.spec = DatasetSpec(**spec)
        self.source = create_source(data_config(self.spec))
        self.uri = dataset_uri
        self.node = ray.get_runtime_context().get_node_id()
        self.metrics = RenderMetrics(self.spec.source)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entries = []
        for i in batch["shard"]:
            start = time.perf_counter()
            entry = write_shard(self.source, self.spec, int(i), self.uri)
            self.metrics.shard_written(entry["rows"], time.perf_counter() - start)
            entries.append({**entry, "node": self.node})
        return {key: np.array([e[key] for e in entries]) for key in entries[0]}


def read_manifest(dataset_uri: str) -> dict | None:
    """The manifest of a complete dataset, or None when there is none (yet)."""
    try:
        return json.loads(read_bytes(join(dataset_uri, MANIFEST)))
    except FileNotFoundError:
        return None


def is_complete(dataset_uri: str, spec: DatasetSpec) -> bool:
    manifest = read_manifest(dataset_uri)
    if manifest is None or manifest.get("spec_hash") != spec.hash:
        return False
    present = set(listdir(dataset_uri))
    return all(entry["file"] in present for entry in manifest["shards"])


class Materialized(NamedTuple):
    uri: str  # where the dataset is: {storage}/datasets/{source}-{hash}
    spec: DatasetSpec  # what it holds (resolved once: for a real image, its content's digest)


def materialize(
    cfg: DataConfig, storage: str, max_actors: int | None = None, progress: bool = True, log=print,
    render_resource: str | None = None, spec: DatasetSpec | None = None,
) -> Materialized:
    """Render (or reuse) the dataset of ``cfg`` under ``storage``; return its URI and spec.

    ``render_resource``: a custom Ray resource every render actor asks one unit of (e.g. ``render``,
    which the render nodes of ``cluster/cluster.yaml`` advertise), so rendering lands on those nodes.
    ``spec``: ``resolve_spec(cfg)`` when the caller has resolved it already (a real image is then not
    fetched again)."""
    spec = spec or resolve_spec(cfg)  # validates a real image before anything else
    uri = spec.uri(storage)
    check_writable(storage)
    if is_complete(uri, spec):
        log(f"reusing {uri}")
        return Materialized(uri, spec)
    _check_source(cfg)
    present = set(listdir(uri))
    for name in present:  # temporary files of writers that died
        if ".tmp-" in name:
            remove(join(uri, name))
    missing = [i for i in range(spec.num_shards) if shard_name(i) not in present]
    log(f"rendering {spec.num_images} images of {spec.source} into {uri} ({len(missing)} of {spec.num_shards} shards to do)")
    start = time.perf_counter()
    rendered = _render_with_ray(spec, uri, missing, max_actors, progress, render_resource) if missing else []
    elapsed = time.perf_counter() - start
    entries = {e["index"]: e for e in rendered}
    for i in range(spec.num_shards):
        if i not in entries:  # written by an earlier, interrupted run: whole, because writes are atomic
            data = read_bytes(join(uri, shard_name(i)))
            entries[i] = {"index": i, "file": shard_name(i), "sha256": sha256(data), "bytes": len(data),
                          "rows": len(spec.shard_classes(i)) * spec.data["instances"]}
    manifest = {
        "spec": spec.to_dict(),
        "spec_hash": spec.hash,
        "counts": {"classes": spec.num_classes, "instances": spec.data["instances"], "images": spec.num_images,
                   "shards": spec.num_shards},
        "shards": [entries[i] for i in range(spec.num_shards)],
        "software": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "render_seconds": round(elapsed, 3),
    }
    atomic_write(join(uri, MANIFEST), json.dumps(manifest, indent=1).encode())
    return Materialized(uri, spec)


def _check_source(cfg: DataConfig) -> None:
    """The source's pre-flight on the driver, so a configuration that cannot render fails in one
    line before any cluster work (e.g. a 1p-frac base system that never passes the fill threshold)."""
    from raysweep.render.sources import source

    source(cfg.source).check(cfg)


def _render_with_ray(spec: DatasetSpec, uri: str, shards: list[int], max_actors: int | None, progress: bool,
                     render_resource: str | None = None) -> list[dict]:
    import ray
    import ray.data

    from raysweep.runtime import ensure_ray

    ensure_ray()
    # whether some node type can provide render_resource is checked before any work (raysweep.preflight);
    # on a cluster that autoscales from zero there may be none yet: the autoscaler launches them
    resources = {render_resource: 1} if render_resource else None
    slots = _cluster_cpus() if not render_resource else int(ray.cluster_resources().get(render_resource, 0))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.print_on_execution_start = progress
    items = ray.data.from_items([{"shard": i} for i in shards], override_num_blocks=len(shards))
    written = items.map_batches(
        ShardWriter,
        fn_constructor_kwargs={"spec": dataclasses.asdict(spec), "dataset_uri": uri},
        batch_size=1,
        # start as many actors as can be busy at once; the pool still shrinks and grows with load
        compute=ray.data.ActorPoolStrategy(
            min_size=1, max_size=max_actors, initial_size=max(1, min(len(shards), max_actors or slots or 1))
        ),
        num_cpus=1,
        resources=resources,
    )
    rows = written.take_all()
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


def _cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _versions() -> dict:
    import numba
    import pyarrow

    import raysweep
    from raysweep.render.spec import ENGINE_VERSION

    return {"raysweep": raysweep.__version__, "engine": ENGINE_VERSION, "numpy": np.__version__, "numba": numba.__version__,
            "pyarrow": pyarrow.__version__, "python": sys.version.split()[0]}
