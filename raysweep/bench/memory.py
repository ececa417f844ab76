"""Memory that does not grow with the data: peak RSS of the driver process and of the Train worker
process, for a dataset and one ten times larger, in one run.

* ``pretrain``: FractalDB at 64 px, 4 vs 40 instances per class of L = 1,000 (4,000 vs 40,000
  images), pre-trained from its shards streamed through Ray Data (``pretrain.in_memory_gb=0``),
  beside the in-memory path (the default for small datasets; the reference that grows);
* ``finetune``: an ImageFolder of JPEGs written from the CIFAR-10 subset in ``../shared``, N vs
  10 N training images, fine-tuned with the tree streamed (``score.in_memory_gb=0``).

Each run is one command's driver in a fresh process (it joins this benchmark's local Ray) that
prints its own ``ru_maxrss``; the Train worker reports its own (``worker_peak_rss_mb``), and every
run gets fresh worker processes. ``rss_growth_*`` = max over the two processes of RSS(10x) / RSS(1x).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED_CIFAR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-subset"
MODEL = ["model.name=vit_tiny_patch16_224", "model.img_size=32", "model.patch_size=4", "model.depth=2", "model.embed_dim=64",
         "model.num_heads=2", "model.drop_path=0"]
PRETRAIN = ["data.source=fractaldb", "data.L=1000", "data.size=64", "data.pad=2", "data.iterations=20000",
            "pretrain.batch_size=64", "pretrain.steps=100", "pretrain.report_every=50", "pretrain.checkpoint_every=100"]
FINETUNE = ["score.dataset=imagefolder", "score.epochs=1", "score.batch_size=64", "score.in_memory_gb=0", "score.eval_every=1"]

_DRIVER = """
import json, resource, sys
from raysweep.config import load_config
from raysweep.launch import run
from raysweep.preflight import preflight
pretrain = sys.argv[1] == "pretrain"
cfg = load_config(sys.argv[2:])
outcome = run(cfg, preflight([cfg], pretrain=pretrain, score=not pretrain), pretrain=pretrain, score=not pretrain,
              log=lambda m: None, render_progress=False)
print(json.dumps({"driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "worker_peak_rss_mb": outcome.metrics.get("worker_peak_rss_mb")}))
"""


def _command(kind: str, overrides: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", _DRIVER, kind, *overrides], capture_output=True, text=True, env=env,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"bench memory: {kind} {' '.join(overrides)} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _growth(small: dict, large: dict) -> float:
    return round(max(large[k] / small[k] for k in ("driver_peak_rss_mb", "worker_peak_rss_mb")), 3)


def _median(runs: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}


def run(repeats: int = 1, instances: tuple[int, int] = (4, 40), train_images: tuple[int, int] = (500, 5000)) -> dict:
    import ray

    from raysweep.runtime import ensure_ray
    from raysweep.score.datasets import load_downstream, write_imagefolder

    if not SHARED_CIFAR.exists():
        raise SystemExit(f"error: bench memory writes its ImageFolder from the CIFAR-10 subset, not found at {SHARED_CIFAR}")
    ensure_ray()  # the embedded default; every driver below joins it
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    scratch = Path(tempfile.mkdtemp(prefix="raysweep-bench-memory-"))
    pretrain: dict[str, dict] = {}
    finetune: dict[str, dict] = {}
    try:
        cifar = load_downstream("cifar10", str(SHARED_CIFAR))
        trees = {n: write_imagefolder(cifar, scratch / f"tree-{n}", limit=n) for n in train_images}
        for r in range(repeats):
            for n in instances:
                base = [*MODEL, *PRETRAIN, f"data.instances={n}", f"storage={scratch / 'runs'}"]
                for path, budget in (("streamed", 0), ("in_memory", 4)):
                    key = f"{path}-{n * 1000}"
                    # a fresh model each time (the input path and seed are in its key), the dataset rendered once
                    runs = pretrain.setdefault(key, [])
                    runs.append(_command("pretrain", [*base, f"pretrain.in_memory_gb={budget}", f"seed={r}", f"name={key}-{r}"], env))
            for n, tree in trees.items():
                finetune.setdefault(f"streamed-{n}", []).append(
                    _command("score", [*MODEL, *FINETUNE, f"score.data_root={tree}", f"storage={scratch / 'runs'}", f"seed={r}"], env))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pre = {k: _median(v) for k, v in pretrain.items()}
    fin = {k: _median(v) for k, v in finetune.items()}
    small, large = (n * 1000 for n in instances)
    return {
        "benchmark": "memory",
        "pretrain_images": [small, large], "finetune_train_images": list(train_images), "repeats": repeats,
        "pretrain_peak_rss_mb": pre, "finetune_peak_rss_mb": fin,
        "rss_growth_pretrain": _growth(pre[f"streamed-{small}"], pre[f"streamed-{large}"]),
        "rss_growth_pretrain_in_memory": _growth(pre[f"in_memory-{small}"], pre[f"in_memory-{large}"]),
        "rss_growth_finetune": _growth(fin[f"streamed-{train_images[0]}"], fin[f"streamed-{train_images[1]}"]),
    }


def format_table(result: dict) -> str:
    lines = [f"memory: peak RSS (MiB), median of {result['repeats']}", f"{'run':>24} {'driver':>8} {'worker':>8}"]
    for group in ("pretrain_peak_rss_mb", "finetune_peak_rss_mb"):
        for k, v in result[group].items():
            lines.append(f"{group.split('_')[0] + ' ' + k:>24} {v['driver_peak_rss_mb']:>8.0f} {v['worker_peak_rss_mb']:>8.0f}")
    lines.append(f"rss_growth_pretrain = {result['rss_growth_pretrain']:.3f} (goal <= 1.2; in memory: "
                 f"{result['rss_growth_pretrain_in_memory']:.3f}), rss_growth_finetune = {result['rss_growth_finetune']:.3f} (goal <= 1.2)")
    return "\n".join(lines)
