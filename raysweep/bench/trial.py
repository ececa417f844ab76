"""The fixed cost of a sweep trial on the local default: scheduling, the Train run's start (its
controller and worker processes), dataset resolution (a cached dataset) and downstream loading.

A sweep of ``trials`` trials is run whose work is nearly nil (1 pre-training step, scoring by
evaluation only); a trial's fixed cost is its wall time as Tune measures it minus the seconds its
worker spent in its own loop after start-up. Medians over the trials are reported.

The trials differ in their learning rate only, so they share one dataset, rendered by a warm-up
sweep beforehand: what is measured is resolving a dataset that exists (the reuse the sweep makes
of it), not rendering one. (Repeats over seeds render one dataset per seed: that is work.)
"""

from __future__ import annotations

import csv
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

EXPERIMENT = {
    "name": "bench-trial",
    "data": {"L": 8, "size": 32, "pad": 2, "iterations": 5000},
    "model": {"img_size": 16, "patch_size": 4, "depth": 2, "embed_dim": 32, "num_heads": 2, "drop_path": 0.0},
    "pretrain": {"steps": 1, "batch_size": 8, "report_every": 1, "checkpoint_every": 1},
    "score": {"dataset": "digits", "epochs": 0},
}


def run(trials: int = 4) -> dict:
    from raysweep.runtime import ensure_ray

    from raysweep.tune.run import run_sweep
    from raysweep.experiment import load_experiment

    ensure_ray()  # the embedded default, as the commands start it
    scratch = Path(tempfile.mkdtemp(prefix="raysweep-bench-trial-"))
    try:
        doc = {**EXPERIMENT, "storage": str(scratch), "sweep": {"seeds": [0]}}
        path = scratch / "bench.yaml"
        path.write_text(yaml.safe_dump(doc))
        # a first sweep renders the dataset and warms Ray's worker pool (a cold start is not a trial's cost)
        warm = load_experiment(str(path), ["name=warmup"])
        run_sweep(warm, log=lambda m: None)
        lrs = ",".join(f"{1e-4 * (k + 1):g}" for k in range(trials))
        exp = load_experiment(str(path), [f"pretrain.lr={{grid:[{lrs}]}}"])
        start = time.perf_counter()
        run_dir = run_sweep(exp, log=lambda m: None)
        sweep_seconds = time.perf_counter() - start
        with open(Path(run_dir) / "results.csv") as f:
            rows = list(csv.DictReader(f))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    wall = [float(r["wall_seconds"]) for r in rows]
    inside = [float(r["trial_seconds"]) for r in rows]
    return {
        "benchmark": "trial",
        "trials": len(rows),
        "fixed_cost_seconds": round(statistics.median(w - i for w, i in zip(wall, inside)), 2),
        "trial_wall_seconds": round(statistics.median(wall), 2),
        "worker_loop_seconds": round(statistics.median(inside), 2),
        "sweep_seconds": round(sweep_seconds, 1),
        "all_wall": [round(w, 2) for w in wall],
    }


def format_table(result: dict) -> str:
    return "\n".join([
        f"trial: {result['trials']} near-empty trials (1 pre-training step, evaluation only), dataset reused",
        f"  trial wall time (Tune)   {result['trial_wall_seconds']:.2f} s (median)",
        f"  worker loop after start  {result['worker_loop_seconds']:.2f} s",
        f"fixed_cost_seconds = {result['fixed_cost_seconds']:.2f} (goal <= 10)",
        f"  whole sweep: {result['sweep_seconds']} s",
    ])
