"""LPCE pre-training: the loop learns, runs on 2 Ray Train workers, and resumes after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from raysweep.config import ConfigError, load_config
from raysweep.dataset import load_arrays, materialize
from raysweep.core.augment import for_pretraining
from raysweep.pretrain.loop import lr_at, train
from raysweep.core.checkpoint import read_state as read_checkpoint_state
from raysweep.launch import pretrain
from raysweep.core.context import LocalContext

TINY = [
    "data.L=8", "data.size=64", "data.pad=2", "data.iterations=20000", "data.delta=0.3",
    "model.img_size=32", "model.patch_size=8", "model.depth=2", "model.embed_dim=64", "model.num_heads=2", "model.drop_path=0",
]
# an easy LPCE task (4 well-separated classes, light augmentation): a tiny ViT plateaus for ~100
# steps, then learns it (seen on seeds 0, 1, 2: loss 1.43 -> 0.50..0.68 at step 300)
EASY = ["data.L=4", "data.delta=0.9", "model.patch_size=4", "pretrain.randaugment=", "pretrain.reprob=0", "pretrain.mixup=0",
        "pretrain.cutmix=0", "pretrain.crop_scale_min=1.0", "pretrain.hflip=0", "pretrain.vflip=0", "pretrain.lr=0.16",
        "pretrain.warmup_epochs=0", "pretrain.min_lr=0.08"]


def test_tiny_vit_loss_falls(ray_cluster, tmp_path):
    cfg = load_config([*TINY, *EASY, "pretrain.steps=300", "pretrain.batch_size=32", "pretrain.report_every=50",
                       "pretrain.checkpoint_every=1000"])
    dataset = materialize(cfg.data, str(tmp_path), progress=False, log=lambda m: None).uri
    images, labels = load_arrays(dataset)
    ctx = LocalContext()
    train(cfg, images, labels, cfg.data.L, ctx)
    losses = [r["loss"] for r in ctx.reports]
    assert len(losses) == 6
    assert losses[-1] < 0.75 * losses[0], losses
    assert ctx.reports[-1]["train_top1"] > 2 * 100.0 / cfg.data.L


def test_augmentation_shapes_ranges_and_determinism():
    aug = for_pretraining(load_config([]).pretrain, 32, num_classes=10)
    images = torch.randint(0, 255, (8, 1, 64, 64), dtype=torch.uint8)
    labels = torch.arange(8)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    np.random.seed(0)
    x1, t1 = aug(images, labels, g1)
    np.random.seed(0)
    x2, t2 = aug(images, labels, g2)
    assert x1.shape == (8, 3, 32, 32) and t1.shape == (8, 10)
    assert torch.equal(x1, x2) and torch.equal(t1, t2)
    assert torch.allclose(t1.sum(1), torch.ones(8))
    assert t1.max() < 1.0  # label smoothing (and mixing) soften every target


def test_lr_schedule_scales_warms_up_and_decays():
    p = load_config(["pretrain.steps=100", "pretrain.batch_size=256"]).pretrain
    assert lr_at(0, p, 10) == pytest.approx(1e-6 * 0.5)
    assert lr_at(10, p, 10) == pytest.approx(1e-3 * 0.5)
    assert lr_at(100, p, 10) == pytest.approx(1e-5 * 0.5)
    assert lr_at(55, p, 10) < lr_at(20, p, 10)


def test_two_worker_cpu_run_on_ray_train(ray_cluster, tmp_path):
    cfg = load_config([*TINY, "pretrain.steps=6", "pretrain.batch_size=16", "pretrain.workers=2",
                       "pretrain.report_every=3", "pretrain.checkpoint_every=3", f"storage={tmp_path}", "name=two"])
    uri = pretrain(cfg, log=lambda m: None)
    state = read_checkpoint_state(uri)
    assert state["step"] == 6 and state["num_classes"] == 8
    assert state["config"]["pretrain"]["workers"] == 2
    assert np.isfinite(state["metrics"]["loss"]) and state["metrics"]["images_per_second"] > 0
    weights = torch.load(Path(uri) / "model.pt", map_location="cpu")
    assert weights["head.weight"].shape == (8, 64)


def _cli(storage: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "raysweep.pretrain", *TINY, "pretrain.steps=40", "pretrain.batch_size=16",
            "pretrain.report_every=5", "pretrain.checkpoint_every=5", "pretrain.keep_checkpoints=2", f"storage={storage}",
            "name=killme", *extra]


def _registered_step(storage: Path) -> int:
    """The step of the latest checkpoint Ray Train has registered in the run's snapshot (what a
    rerun resumes from); checkpoint folders can be on disk a moment before they are registered."""
    for snap in storage.glob("train/pretrain-*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snap.read_text()).get("latest_checkpoint_result")
        except json.JSONDecodeError:
            continue
        if latest:
            return int(latest["metrics"]["step"])
    return 0


def test_killed_run_resumes_from_its_checkpoint(ray_cluster, tmp_path):
    proc = subprocess.Popen(_cli(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _registered_step(tmp_path) < 10:
        time.sleep(0.2)
    assert _registered_step(tmp_path) >= 10, f"no checkpoint registered: {proc.stderr.read() if proc.poll() is not None else 'running'}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reached = _registered_step(tmp_path)
    assert 10 <= reached < 40
    rerun = subprocess.run(_cli(tmp_path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    final = read_checkpoint_state(rerun.stdout.strip().splitlines()[-1])
    assert final["step"] == 40
    assert final["resumed_from"] >= reached, "the rerun continued from the checkpoint, not from zero"
    (snapshot,) = tmp_path.glob("train/pretrain-*/checkpoint_manager_snapshot.json")
    kept = [r["checkpoint_dir_name"] for r in json.loads(snapshot.read_text())["checkpoint_results"]]
    assert len(kept) == 2, "keep-last-K"
    assert all((snapshot.parent / name / "model.pt").exists() for name in kept)


@pytest.mark.slow
def test_bad_model_fails_before_cluster_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "raysweep.pretrain", "model.name=vit_tinny", f"storage={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: model.name='vit_tinny' is not a timm model")
    with pytest.raises(ConfigError, match="not divisible by pretrain.workers"):
        load_config(["pretrain.batch_size=10", "pretrain.workers=3"])
