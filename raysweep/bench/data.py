"""Ray Data rendering of release-setting images (512 px, 100,000 points, 3x3 patches).

In one run, on one local Ray with 2 CPUs, for each dataset size L (default 1,000, the issue's
figure, and 10,000):

* ``plain``: the shard function (render, PNG-encode, write Parquet) in a loop in this process;
* ``warm_2proc``: the same shards split over two worker processes that were started, and had
  their renderer loaded, before the clock starts; no Ray (the machine's own two-core ceiling);
* ``ray_1cpu``: the Ray Data pipeline with at most one render actor (1 CPU);
* ``ray_2cpu``: the same with at most two actors.

Each repeat renders into a fresh directory (no cache hit); the variants are interleaved, so drifts
in machine load hit all alike. Medians are reported, with ``scaling_2cpu_over_1cpu`` =
t(ray_1cpu) / t(ray_2cpu), ``ray_overhead`` = t(ray_1cpu) / t(plain) - 1, ``fixed_cost_s`` =
t(ray_1cpu) - t(plain) (what one Ray Data execution adds: its actors are new processes) and
``ceiling_2proc`` = t(plain) / t(warm_2proc). The top-level ``scaling_2cpu_over_1cpu`` and
``ray_overhead`` are those of the first size.
"""

from __future__ import annotations

import multiprocessing
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from raysweep.config import DataConfig
from raysweep.dataset.pipeline import materialize
from raysweep.dataset.shards import write_shard
from raysweep.render.sources import create_source
from raysweep.render.spec import resolve_spec

VARIANTS = ("plain", "warm_2proc", "ray_1cpu", "ray_2cpu")
_WARMUP = DataConfig(L=4, size=64, iterations=1000)


def _write_shards(cfg: DataConfig, uri: str, shards: list[int]) -> None:
    """Build the source, then render and write ``shards``: the work of every variant."""
    spec = resolve_spec(cfg)
    source = create_source(cfg)
    for shard in shards:
        write_shard(source, spec, shard, uri)


def _plain(cfg: DataConfig, root: Path) -> float:
    start = time.perf_counter()
    spec = resolve_spec(cfg)
    _write_shards(cfg, spec.uri(str(root)), list(range(spec.num_shards)))
    return time.perf_counter() - start


def _warm_2proc(pool, cfg: DataConfig, root: Path) -> float:
    start = time.perf_counter()
    spec = resolve_spec(cfg)
    uri = spec.uri(str(root))
    shards = list(range(spec.num_shards))
    pool.starmap(_write_shards, [(cfg, uri, shards[0::2]), (cfg, uri, shards[1::2])])
    return time.perf_counter() - start


def _ray(cfg: DataConfig, root: Path, actors: int) -> float:
    start = time.perf_counter()
    materialize(cfg, str(root), max_actors=actors, progress=False, log=lambda m: None)
    return time.perf_counter() - start


def _figures(med: dict[str, float], L: int) -> dict:
    return {
        "seconds": {k: round(v, 3) for k, v in med.items()},
        "images_per_second": {k: round(L / v, 1) for k, v in med.items()},
        "scaling_2cpu_over_1cpu": round(med["ray_1cpu"] / med["ray_2cpu"], 3),
        "ray_overhead": round(med["ray_1cpu"] / med["plain"] - 1.0, 3),
        "fixed_cost_s": round(med["ray_1cpu"] - med["plain"], 3),
        "ceiling_2proc": round(med["plain"] / med["warm_2proc"], 3),
    }


def run(sizes: tuple[int, ...] = (1000, 10_000), repeats: int = 3, size: int = 512, iterations: int = 100_000) -> dict:
    from raysweep.runtime import ensure_ray

    ensure_ray()  # the embedded default, as the commands start it
    scratch = Path(tempfile.mkdtemp(prefix="raysweep-bench-data-"))
    per_size: dict[str, dict] = {}
    # spawned, not forked: this process runs Ray's threads
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        try:
            # load the renderer's compiled code everywhere outside the timings
            _plain(_WARMUP, scratch / "warmup")
            pool.starmap(_write_shards, [(_WARMUP, str(scratch / f"warmup-{i}"), [0]) for i in range(2)])
            _ray(_WARMUP, scratch / "warmup-ray", 2)
            for L in sizes:
                cfg = DataConfig(L=L, size=size, iterations=iterations)
                times: dict[str, list[float]] = {k: [] for k in VARIANTS}
                for r in range(repeats):
                    times["plain"].append(_plain(cfg, scratch / f"plain-{L}-{r}"))
                    times["warm_2proc"].append(_warm_2proc(pool, cfg, scratch / f"proc2-{L}-{r}"))
                    times["ray_1cpu"].append(_ray(cfg, scratch / f"ray1-{L}-{r}", 1))
                    times["ray_2cpu"].append(_ray(cfg, scratch / f"ray2-{L}-{r}", 2))
                    for path in scratch.glob(f"*-{L}-{r}"):  # keep the disk use to one repeat
                        shutil.rmtree(path, ignore_errors=True)
                med = {k: statistics.median(v) for k, v in times.items()}
                per_size[str(L)] = {**_figures(med, L), "all_runs": {k: [round(x, 3) for x in v] for k, v in times.items()}}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    first = per_size[str(sizes[0])]
    return {
        "benchmark": "data",
        "images": sizes[0],
        "settings": {"size": size, "iterations": iterations, "draw": "patch",
                     "images_per_shard": resolve_spec(DataConfig(L=sizes[0], size=size, iterations=iterations)).classes_per_shard},
        "scaling_2cpu_over_1cpu": first["scaling_2cpu_over_1cpu"],
        "ray_overhead": first["ray_overhead"],
        "sizes": per_size,
        "repeats": repeats,
    }


def format_table(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"data: release-setting images ({s['size']} px, {s['iterations']:,} points), median of {result['repeats']}",
        f"{'images':>7} {'variant':>10} {'seconds':>8} {'images/s':>9}",
    ]
    for L, fig in result["sizes"].items():
        for k in VARIANTS:
            lines.append(f"{int(L):>7,} {k:>10} {fig['seconds'][k]:>8.2f} {fig['images_per_second'][k]:>9.0f}")
        lines.append(
            f"{int(L):>7,}: scaling_2cpu_over_1cpu = {fig['scaling_2cpu_over_1cpu']:.2f} (goal >= 1.7), "
            f"ray_overhead = {fig['ray_overhead']:.3f} (goal <= 0.15), fixed cost {fig['fixed_cost_s']:.2f} s, "
            f"two warm processes without Ray: {fig['ceiling_2proc']:.2f}x"
        )
    return "\n".join(lines)
