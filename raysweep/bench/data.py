"""Rendering on the fly into a training process: sustained images/s of the stream that feeds a Train
worker when ``data.materialize=false`` (FractalDB, the release's 100,000 points per image).

In one run, on one local Ray with 2 CPUs, for each image size (default 64 and 224 px) over the
same ``images`` items (default 20,000: FractalDB-1k with 20 instances per class):

* ``plain``: the renderer in a loop in this process (one core);
* ``warm_2proc``: the same items split over two worker processes that were started, and had their
  renderer built, before the clock starts; no Ray (the machine's two-core ceiling);
* ``stream_1actor`` / ``stream_2actor``: :func:`raysweep.dataset.stream.render_stream` with one
  and two render actors (one CPU each), consumed batch by batch in a Ray actor that holds no CPU,
  as a Train worker consumes it (uint8 batches through the object store).

For the streams, steady-state images/s counts from the first batch received to the last (what a
long pre-training sees); ``fixed_cost_s`` is what one execution adds before that (new actor
processes, the renderer built in each), reported on its own. ``stream_scaling_2cpu_over_1cpu`` =
ips(2 actors) / ips(1 actor); ``stream_efficiency`` = ips(stream, k actors) / (ips(plain) x k),
for k = 2 at top level. Variants interleave within a repeat; medians over repeats.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time

VARIANTS = ("plain", "warm_2proc", "stream_1actor", "stream_2actor")
BATCH = 256  # the consumer's batch (a Train worker's local batch)


def _plan(images: int, instances: int):
    from raysweep.dataset.stream import StreamPlan

    return StreamPlan(images=images, instances=instances, seed=0, fresh=False, global_batch=BATCH, world=1, rank=0)


def _data(size: int, images: int, instances: int) -> dict:
    from raysweep.config import load_config, to_dict

    cfg = load_config(["data.source=fractaldb", f"data.L={images // instances}", f"data.instances={instances}",
                       f"data.size={size}", "data.materialize=false",
                       "data.fill_threshold=0.02"])  # 224 px: a few of FractalDB-1k's classes stay under 5 % fill
    return to_dict(cfg)["data"]


def _render(data: dict, items: list[tuple[int, int]], build_only: bool = False) -> float:
    """Build the source (untimed), then render ``items``; returns the seconds rendering took."""
    from raysweep.config import DataConfig
    from raysweep.render.sources import create_source

    source = create_source(DataConfig(**data))
    source.render_instance(0, 0)  # compiled code loaded
    if build_only:
        return 0.0
    start = time.perf_counter()
    for label, instance in items:
        source.render_instance(label, instance)
    return time.perf_counter() - start


def _items(plan, steps: int) -> list[tuple[int, int]]:
    return [plan.item(plan.position(step, j)) for step in range(steps) for j in range(plan.local_batch)]


def _warm_2proc(pool, data: dict, items: list) -> float:
    start = time.perf_counter()
    pool.starmap(_render, [(data, items[0::2]), (data, items[1::2])])
    return time.perf_counter() - start


def _consumer():
    import ray

    @ray.remote(num_cpus=0)
    class Consumer:
        """A stand-in for a Train worker: takes the stream's batches and keeps none."""

        def consume(self, data: dict, plan: dict, steps: int, actors: int) -> tuple[float, float, int]:
            from raysweep.dataset.stream import StreamPlan, render_stream

            start = time.perf_counter()
            first = None
            n = 0
            for images, _ in render_stream(data, StreamPlan(**plan), 0, steps, actors):
                if first is None:
                    first = time.perf_counter()
                else:
                    n += len(images)
            end = time.perf_counter()
            return first - start, end - first, n

    return Consumer.remote()


def run(sizes: tuple[int, ...] = (64, 224), images: int = 20_000, repeats: int = 3, instances: int = 20) -> dict:
    from dataclasses import asdict

    import ray

    from raysweep.runtime import ensure_ray

    ensure_ray()  # the embedded default, as the commands start it
    consumer = _consumer()
    steps = images // BATCH
    plan = _plan((images // instances) * instances, instances)
    items = _items(plan, steps)
    per_size: dict[str, dict] = {}
    with multiprocessing.get_context("spawn").Pool(2) as pool:  # spawned: this process runs Ray's threads
        for size in sizes:
            data = _data(size, images, instances)
            pool.starmap(_render, [(data, [], True)] * 2)  # both processes warm: renderer built, code loaded
            _render(data, items[:BATCH])
            secs: dict[str, list[float]] = {k: [] for k in VARIANTS}
            fixed: dict[str, list[float]] = {"stream_1actor": [], "stream_2actor": []}
            for _ in range(repeats):
                secs["plain"].append(_render(data, items) / len(items))
                secs["warm_2proc"].append(_warm_2proc(pool, data, items) / len(items))
                for actors in (1, 2):
                    t_first, t_rest, n = ray.get(consumer.consume.remote(data, asdict(plan), steps, actors))
                    secs[f"stream_{actors}actor"].append(t_rest / n)
                    fixed[f"stream_{actors}actor"].append(t_first - BATCH * t_rest / n)
            ips = {k: 1.0 / statistics.median(v) for k, v in secs.items()}
            per_size[str(size)] = {
                "images_per_second": {k: round(v, 1) for k, v in ips.items()},
                "stream_scaling_2cpu_over_1cpu": round(ips["stream_2actor"] / ips["stream_1actor"], 3),
                "stream_efficiency": round(ips["stream_2actor"] / (2 * ips["plain"]), 3),
                "stream_efficiency_1actor": round(ips["stream_1actor"] / ips["plain"], 3),
                "ceiling_2proc": round(ips["warm_2proc"] / ips["plain"], 3),
                "fixed_cost_s": {k: round(statistics.median(v), 2) for k, v in fixed.items()},
                "all_runs_images_per_second": {k: [round(1.0 / x, 1) for x in v] for k, v in secs.items()},
            }
    first = per_size[str(sizes[0])]
    return {
        "benchmark": "data",
        "source": "fractaldb", "images": len(items), "sizes": per_size, "repeats": repeats,
        "settings": {"iterations": 100_000, "instances": instances, "consumer_batch": BATCH},
        "stream_scaling_2cpu_over_1cpu": first["stream_scaling_2cpu_over_1cpu"],
        "stream_efficiency": first["stream_efficiency"],
        "fixed_cost_s": first["fixed_cost_s"]["stream_1actor"],
    }


def format_table(result: dict) -> str:
    lines = [f"data: FractalDB rendered on the fly into a consumer, {result['images']:,} images per run, "
             f"median of {result['repeats']}",
             f"{'px':>4} {'variant':>14} {'images/s':>9}"]
    for size, fig in result["sizes"].items():
        for k in VARIANTS:
            lines.append(f"{size:>4} {k:>14} {fig['images_per_second'][k]:>9.0f}")
        lines.append(f"{size:>4}: stream_scaling_2cpu_over_1cpu = {fig['stream_scaling_2cpu_over_1cpu']:.2f} (goal >= 1.6; "
                     f"two warm processes: {fig['ceiling_2proc']:.2f}), stream_efficiency = {fig['stream_efficiency']:.2f} "
                     f"(goal >= 0.8; 1 actor: {fig['stream_efficiency_1actor']:.2f}), fixed cost "
                     f"{fig['fixed_cost_s']['stream_1actor']:.1f} s / {fig['fixed_cost_s']['stream_2actor']:.1f} s per execution")
    return "\n".join(lines)
