"""Ray Train overhead: steps/s of the pre-training loop under Ray Train (1 worker) against the
same loop bare in this process: same model (ViT-Tiny at 32 px, patch 4), batch, augmentation
(the release's full recipe) and data (1p-frac, L = 100). Both throughputs come from the loop's
own interval metrics over the same window (the second half of the steps: warm, after the first
report), so start-up is excluded from both alike. A third variant, ``ray_streamed``, is the Ray
run with its input rendered on the fly by a Ray Data render actor (``data.materialize=false``)
instead of held on the device: its ``data_wait_fraction`` is the share of the window the loop
waited for the stream. Repeats alternate the variants; medians reported.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from raysweep.config import load_config

OVERRIDES = [
    "data.L=100", "data.size=64", "data.pad=2", "data.iterations=20000",
    "model.name=vit_tiny_patch16_224", "model.img_size=32", "model.patch_size=4",
    "pretrain.batch_size=64", "pretrain.keep_checkpoints=1",
]


def run(steps: int = 80, repeats: int = 3) -> dict:
    from raysweep.runtime import ensure_ray

    from raysweep.dataset import load_arrays, materialize
    from raysweep.pretrain.loop import train
    from raysweep.core.checkpoint import read_state as read_checkpoint_state
    from raysweep.launch import pretrain
    from raysweep.core.context import LocalContext

    ensure_ray()  # the embedded default, as the commands start it
    scratch = Path(tempfile.mkdtemp(prefix="raysweep-bench-train-"))
    half = max(1, steps // 2)
    base = [*OVERRIDES, f"pretrain.steps={steps}", f"pretrain.report_every={half}", f"pretrain.checkpoint_every={steps}"]
    rates: dict[str, list[float]] = {"bare": [], "ray_train": [], "ray_streamed": []}
    waits: dict[str, list[float]] = {"bare": [], "ray_train": [], "ray_streamed": []}
    try:
        cfg = load_config([*base, f"storage={scratch / 'data'}"])
        images, labels = load_arrays(materialize(cfg.data, cfg.storage, progress=False, log=lambda m: None).uri)
        for r in range(repeats):
            ctx = LocalContext()
            train(cfg, images, labels, cfg.data.L, ctx)
            rates["bare"].append(ctx.reports[-1]["images_per_second"] / cfg.pretrain.batch_size)
            waits["bare"].append(ctx.reports[-1]["data_wait_fraction"])
            run_cfg = load_config([*base, f"storage={scratch / f'ray-{r}'}", f"name=bench{r}"])
            start = time.perf_counter()
            state = read_checkpoint_state(pretrain(run_cfg, log=lambda m: None))
            rates["ray_train"].append(state["metrics"]["images_per_second"] / cfg.pretrain.batch_size)
            waits["ray_train"].append(state["metrics"]["data_wait_fraction"])
            rates.setdefault("ray_wall_seconds", []).append(time.perf_counter() - start)
            stream_cfg = load_config([*base, "data.materialize=false", f"storage={scratch / f'stream-{r}'}", f"name=stream{r}"])
            state = read_checkpoint_state(pretrain(stream_cfg, log=lambda m: None))
            rates["ray_streamed"].append(state["metrics"]["images_per_second"] / cfg.pretrain.batch_size)
            waits["ray_streamed"].append(state["metrics"]["data_wait_fraction"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "benchmark": "train",
        "model": "vit_tiny_patch16_224 img_size=32 patch_size=4",
        "batch_size": 64,
        "steps": steps,
        "steps_per_second": {k: round(med[k], 3) for k in ("bare", "ray_train", "ray_streamed")},
        "ray_train_overhead": round(med["bare"] / med["ray_train"] - 1.0, 3),
        "data_wait_fraction": round(statistics.median(waits["ray_train"]), 4),
        "data_wait_fraction_bare": round(statistics.median(waits["bare"]), 4),
        "data_wait_fraction_streamed": round(statistics.median(waits["ray_streamed"]), 4),
        "ray_run_wall_seconds": round(med["ray_wall_seconds"], 1),
        "all_runs": {k: [round(x, 3) for x in v] for k, v in rates.items()},
        "repeats": repeats,
    }


def format_table(result: dict) -> str:
    sps = result["steps_per_second"]
    return "\n".join([
        f"train: {result['model']}, batch {result['batch_size']}, full recipe, median of {result['repeats']} "
        f"(second half of {result['steps']} steps)",
        f"  bare loop     {sps['bare']:.3f} steps/s",
        f"  Ray Train (1) {sps['ray_train']:.3f} steps/s   (whole Ray run incl. start-up: {result['ray_run_wall_seconds']} s)",
        f"ray_train_overhead = {result['ray_train_overhead']:.3f} (goal <= 0.05)",
        f"  Ray Train (1), input rendered on the fly {sps['ray_streamed']:.3f} steps/s",
        f"data_wait_fraction = {result['data_wait_fraction']:.4f} in device, {result['data_wait_fraction_streamed']:.4f} "
        f"streamed (goal <= 0.05)",
    ])
