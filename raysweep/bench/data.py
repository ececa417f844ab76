"""Ray Data rendering: L = 1,000 release-setting images (512 px, 100,000 points, 3x3 patches).

In one run, on one local Ray with 2 CPUs:
* ``plain``: the shard function (render, PNG-encode, write Parquet) in a loop in this process;
* ``ray_1cpu``: the Ray Data pipeline with at most one render actor (1 CPU);
* ``ray_2cpu``: the same with at most two actors.
Each repeat renders into a fresh directory (no cache hit); medians are reported, with
``scaling_2cpu_over_1cpu`` = t(1 cpu) / t(2 cpu) and ``ray_overhead`` = t(1 cpu) / t(plain) - 1.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from raysweep.config import DataConfig
from raysweep.dataset.pipeline import materialize
from raysweep.dataset.shards import write_shard
from raysweep.render.sources import create_source
from raysweep.spec import spec_of


def _plain(cfg: DataConfig, root: Path) -> float:
    spec = spec_of(cfg)
    start = time.perf_counter()
    source = create_source(cfg)
    uri = spec.uri(str(root))
    for shard in range(spec.num_shards):
        write_shard(source, spec, shard, uri)
    return time.perf_counter() - start


def _ray(cfg: DataConfig, root: Path, actors: int) -> float:
    start = time.perf_counter()
    materialize(cfg, str(root), max_actors=actors, progress=False, log=lambda m: None)
    return time.perf_counter() - start


def run(L: int = 1000, repeats: int = 3, size: int = 512, iterations: int = 100_000) -> dict:
    import ray

    cfg = DataConfig(L=L, size=size, iterations=iterations)
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", logging_level="error", log_to_driver=False)
    scratch = Path(tempfile.mkdtemp(prefix="raysweep-bench-data-"))
    times: dict[str, list[float]] = {"plain": [], "ray_1cpu": [], "ray_2cpu": []}
    try:
        _plain(DataConfig(L=4, size=64, iterations=1000), scratch / "warmup")  # compile outside the timings
        _ray(DataConfig(L=4, size=64, iterations=1000), scratch / "warmup-ray", 2)
        for r in range(repeats):  # interleaved, so drifts in machine load hit every variant alike
            times["plain"].append(_plain(cfg, scratch / f"plain-{r}"))
            times["ray_1cpu"].append(_ray(cfg, scratch / f"ray1-{r}", 1))
            times["ray_2cpu"].append(_ray(cfg, scratch / f"ray2-{r}", 2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "benchmark": "data",
        "images": L,
        "settings": {"size": size, "iterations": iterations, "draw": "patch", "images_per_shard": spec_of(cfg).classes_per_shard},
        "seconds": {k: round(v, 3) for k, v in med.items()},
        "images_per_second": {k: round(L / v, 1) for k, v in med.items()},
        "scaling_2cpu_over_1cpu": round(med["ray_1cpu"] / med["ray_2cpu"], 3),
        "ray_overhead": round(med["ray_1cpu"] / med["plain"] - 1.0, 3),
        "all_runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "repeats": repeats,
    }


def format_table(result: dict) -> str:
    lines = [
        f"data: {result['images']} images at {result['settings']['size']} px, {result['settings']['iterations']:,} points "
        f"(median of {result['repeats']})",
        f"{'variant':>10} {'seconds':>8} {'images/s':>9}",
    ]
    for k in ("plain", "ray_1cpu", "ray_2cpu"):
        lines.append(f"{k:>10} {result['seconds'][k]:>8.2f} {result['images_per_second'][k]:>9.0f}")
    lines.append(f"scaling_2cpu_over_1cpu = {result['scaling_2cpu_over_1cpu']:.2f} (goal >= 1.7)")
    lines.append(f"ray_overhead = {result['ray_overhead']:.3f} (goal <= 0.15)")
    return "\n".join(lines)
