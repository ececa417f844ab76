"""``python -m raysweep.bench gpu``: its ``--tiny`` mode runs every code path of the GPU benchmark on
the CPU (in-device and streamed pre-training, the ViT fine-tuning recipe, Ray Train against the bare
loop) and prints every figure, so the command never rots while no GPU is at hand."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

EXPECTED = {
    "benchmark", "tiny", "device", "torch", "precision", "model", "batch_size", "steps", "pretrain_in_device",
    "pretrain_streamed", "finetune", "ray_train", "goals", "goals_met", "goals_apply", "wall_seconds",
}
NESTED = {
    "pretrain_in_device": {"images_per_second", "data_wait_fraction", "steps"},
    "pretrain_streamed": {"images_per_second", "data_wait_fraction", "steps", "render_actors"},
    "finetune": {"images_per_second", "recipe", "images", "batch_size", "classes"},
    "ray_train": {"bare_images_per_second", "ray_images_per_second", "overhead", "data_wait_fraction", "ray_run_wall_seconds"},
    "goals": {"pretrain_images_per_second", "data_wait_fraction"},
    "goals_met": {"pretrain_images_per_second", "data_wait_fraction", "data_wait_fraction_streamed"},
}


def test_the_tiny_gpu_benchmark_runs_on_the_cpu_and_prints_every_key(ray_cluster, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "raysweep.bench", "gpu", "--tiny", "--json"], capture_output=True,
                          text=True, timeout=900, cwd=tmp_path, env={**os.environ, "RAYSWEEP_DEVICE": "cpu"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == EXPECTED
    for key, keys in NESTED.items():
        assert set(result[key]) == keys, key
    assert result["tiny"] is True and result["device"] == "cpu" and result["precision"] == "fp32"
    assert result["goals"] == {"pretrain_images_per_second": 10_000.0, "data_wait_fraction": 0.05}
    assert result["goals_apply"] is False, "the goals are for the full run on a GPU"
    steps = result["steps"]
    for part in ("pretrain_in_device", "pretrain_streamed"):
        r = result[part]
        assert r["steps"] == steps and r["images_per_second"] > 0 and 0.0 <= r["data_wait_fraction"] < 1.0, (part, r)
    assert result["pretrain_streamed"]["render_actors"] >= 1
    assert result["finetune"]["recipe"] == "vit" and result["finetune"]["images_per_second"] > 0
    t = result["ray_train"]
    assert t["bare_images_per_second"] == result["pretrain_in_device"]["images_per_second"] and t["ray_images_per_second"] > 0
    assert math.isclose(t["overhead"], t["bare_images_per_second"] / t["ray_images_per_second"] - 1, abs_tol=2e-3)
    assert all(isinstance(v, bool) for v in result["goals_met"].values())
    # the table form of the same figures
    from raysweep.bench.gpu import format_table

    table = format_table(result)
    assert "pre-training, in-device input" in table and "pre-training, streamed" in table and "Ray Train, 1 worker" in table
    assert "goal >= 10,000" in table and "goal <= 0.05" in table and "--tiny" in table


def test_the_vit_gpu_study_is_one_seed_of_1p_frac_against_scratch_on_the_cifar_subset():
    from raysweep.experiment import load_experiment

    exp = load_experiment(str(Path(__file__).resolve().parents[1] / "experiments" / "repro_vit_gpu.yaml"), [])
    assert [exp.variant_name(i) for i in range(len(exp.variants))] == ["scratch", "1p-frac"]
    cfg = exp.cfg
    assert cfg.sweep.seeds == [0] and cfg.model.name == "vit_tiny_patch16_224" and cfg.model.img_size == 32
    assert (cfg.model.depth, cfg.model.embed_dim) == (None, None), "ViT-Tiny's own size"
    assert cfg.score.dataset == "cifar10" and cfg.score.data_root.endswith("shared/data/cifar10-subset/cifar-10-batches-py")
    assert cfg.pretrain.use_gpu is True and cfg.score.recipe == "vit"
