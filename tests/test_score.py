"""Downstream scoring: fine-tuning and linear probes on real data, checkpoints really loaded."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from raysweep.config import ConfigError, load_config
from raysweep.score.backbone import build_model
from raysweep.score.datasets import few_shot, load_downstream
from raysweep.score.loop import finetune, linear_probe, score

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
VIT = ["model.img_size=16", "model.patch_size=4", "model.depth=2", "model.embed_dim=64", "model.num_heads=2", "model.drop_path=0"]
QUICK = ["score.batch_size=64", "score.warmup_epochs=1", "score.lr=0.8", "score.crop_scale_min=0.8"]


@pytest.fixture(scope="module")
def digits():
    return load_downstream("digits", None)


@pytest.fixture(scope="module")
def pretrained(ray_cluster, tmp_path_factory):
    """A real pre-training checkpoint (a few Ray Train steps of a tiny ViT on 1p-frac)."""
    from raysweep.launch import pretrain

    storage = tmp_path_factory.mktemp("pretrained")
    cfg = load_config([*VIT, "data.L=8", "data.size=32", "data.pad=2", "data.iterations=5000", "pretrain.steps=4",
                       "pretrain.batch_size=16", "pretrain.checkpoint_every=4", f"storage={storage}", "name=ft"])
    return pretrain(cfg, log=lambda m: None)


@pytest.mark.slow
def test_short_finetune_on_digits_beats_chance(digits):
    cfg = load_config([*VIT, *QUICK, "score.dataset=digits", "score.epochs=15"])
    reports = []
    result = score(cfg, digits, report=lambda metrics, payload: reports.append(metrics))
    assert len(reports) == 15 and reports[-1] == result
    assert result["top1"] > 25.0, result  # chance: 10%
    assert result["top1"] <= result["top5"] <= 100.0 and result["best_top1"] >= result["top1"]


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR.exists(), reason="shared CIFAR-10 subset not present")
def test_short_finetune_on_real_cifar10_beats_chance():
    cfg = load_config([*VIT, "score.dataset=cifar10", f"score.data_root={CIFAR}", "score.epochs=3", "score.batch_size=128",
                       "score.warmup_epochs=1", "score.lr=0.4"])
    result = score(cfg, load_downstream("cifar10", str(CIFAR)))
    assert result["top1"] > 18.0, result  # chance: 10% (seen: 26.5 after 3 epochs)


def test_a_finished_scoring_run_asked_again_returns_its_result_without_evaluating(digits, tmp_path):
    """A sweep killed after a trial's last report but before Tune recorded the trial as done resumes
    that trial from its final checkpoint: its result stands, nothing is trained or evaluated again."""
    from raysweep.core import checkpoint

    cfg = load_config([*VIT, *QUICK, "score.dataset=digits", "score.epochs=1"])
    saved = []
    result = score(cfg, digits, report=lambda metrics, payload: saved.append(
        checkpoint.save(str(tmp_path / f"c{len(saved)}"), payload["module"], payload["state"], payload["optimizer"])))
    empty = dataclasses.replace(digits, test=dataclasses.replace(digits.test, images=digits.test.images[:0],
                                                                   labels=digits.test.labels[:0]))
    again = score(cfg, empty, resume=saved[-1])  # an evaluation on no test images would fail or differ
    assert again == result


def test_linear_probe_trains_only_the_probe(digits):
    cfg = load_config([*VIT, *QUICK, "score.mode=linear_probe", "score.probe_blocks=1", "score.epochs=20", "score.dataset=digits"])
    model = build_model(cfg.model, 10, None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = linear_probe(cfg, model, digits)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the backbone must stay frozen"
    assert result["feature_dim"] == 64
    assert result["top1"] > 25.0, result


def test_probe_blocks_for_a_cnn_are_stages(digits):
    # CNNs use timm's feature_info order: for ResNets 1 = the stem, 2..5 = stages 1..4
    cfg = load_config(["model.name=resnet18", "model.img_size=16", "score.mode=linear_probe", "score.probe_blocks=3",
                       "score.epochs=2", "score.batch_size=256", "score.dataset=digits"])
    result = linear_probe(cfg, build_model(cfg.model, 10, None), digits)
    assert result["feature_dim"] == 128  # resnet18's stage 2 (layer2)
    with pytest.raises(ConfigError, match=r"score.probe_blocks=9 is out of range for resnet18; allowed: 1..5"):
        linear_probe(load_config([*cfg_overrides(cfg), "score.probe_blocks=9"]), build_model(cfg.model, 10, None), digits)


def test_few_shot_cuts_the_training_split_per_class_by_seed(digits):
    ten = few_shot(digits, 10, seed=0)
    assert len(ten.train) == 100 and sorted(np.bincount(ten.train.labels).tolist()) == [10] * 10
    assert ten.test is digits.test and few_shot(digits, 0, seed=0) is digits
    rows = {tuple(img.ravel()) for img in digits.train.images}
    assert all(tuple(img.ravel()) in rows for img in ten.train.images), "images of the training split, unchanged"
    pairs = {(tuple(img.ravel()), int(y)) for img, y in zip(digits.train.images, digits.train.labels)}
    assert all((tuple(img.ravel()), int(y)) in pairs for img, y in zip(ten.train.images, ten.train.labels)), "labels kept"
    again, other = few_shot(digits, 10, seed=0), few_shot(digits, 10, seed=1)
    assert np.array_equal(again.train.images, ten.train.images), "the same seed draws the same images"
    assert not np.array_equal(other.train.images, ten.train.images), "another seed, another draw"
    smallest = int(np.bincount(digits.train.labels).min())
    assert len(few_shot(digits, 10_000, seed=0).train) == len(digits.train) and smallest < 10_000, "a class keeps what it has"
    with pytest.raises(ConfigError, match=r"score.shots=-1 is out of range; allowed: >= 0"):
        load_config(["score.shots=-1"])


def test_scoring_trains_on_the_shots_alone(digits, monkeypatch):
    import raysweep.score.loop as loop

    seen = []
    monkeypatch.setattr(loop, "linear_probe", lambda cfg, model, data, ctx, **kw: seen.append(data) or {"top1": 0.0})
    cfg = load_config(["model.name=resnet18", "model.img_size=16", "score.mode=linear_probe", "score.dataset=digits",
                       "score.shots=3", "seed=4"])
    score(cfg, digits)
    (data,) = seen
    assert np.bincount(data.train.labels).tolist() == [3] * 10 and len(data.test) == len(digits.test)
    assert np.array_equal(data.train.images, few_shot(digits, 3, seed=4).train.images), "the trial's seed draws them"


def cfg_overrides(cfg):
    return ["model.name=resnet18", "model.img_size=16", "score.mode=linear_probe", "score.epochs=1", "score.dataset=digits"]


def test_checkpoint_weights_are_really_loaded(pretrained):
    state = torch.load(Path(pretrained) / "model.pt", map_location="cpu")
    cfg = load_config(VIT)
    model = build_model(cfg.model, 10, pretrained)
    loaded = model.state_dict()
    assert loaded["head.weight"].shape == (10, 64)  # replaced for the downstream classes
    for key, value in state.items():
        if not key.startswith("head."):
            assert torch.equal(loaded[key], value), key
    scratch = build_model(cfg.model, 10, None).state_dict()
    assert not torch.equal(scratch["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])


def test_position_embeddings_are_interpolated_for_another_resolution(pretrained):
    from timm.layers import resample_abs_pos_embed

    state = torch.load(Path(pretrained) / "model.pt", map_location="cpu")
    model = build_model(load_config([*VIT, "model.img_size=32"]).model, 10, pretrained)
    assert model.pos_embed.shape == (1, 1 + 8 * 8, 64)
    expected = resample_abs_pos_embed(state["pos_embed"], new_size=(8, 8), num_prefix_tokens=1)
    assert torch.allclose(model.pos_embed.detach(), expected)
    assert torch.equal(model.state_dict()["blocks.1.mlp.fc1.weight"], state["blocks.1.mlp.fc1.weight"])


def test_checkpoint_of_another_architecture_is_refused(pretrained):
    with pytest.raises(ConfigError, match=r"is a vit_tiny_patch16_224 with model.depth=2, but model.depth=3 was asked for"):
        build_model(load_config([*VIT, "model.depth=3"]).model, 10, pretrained)
    with pytest.raises(ConfigError, match=r"with model.name='vit_tiny_patch16_224', but model.name='resnet18'"):
        build_model(load_config(["model.name=resnet18"]).model, 10, pretrained)


def _finetune_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raysweep.finetune", *args], capture_output=True, text=True, timeout=timeout)


def test_cli_finetunes_a_pretrained_checkpoint_on_ray_train(pretrained, tmp_path):
    proc = _finetune_cli(*VIT, *QUICK, f"score.checkpoint={pretrained}", "score.dataset=digits", "score.epochs=2",
                         f"storage={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["checkpoint"] == pretrained and result["mode"] == "finetune" and result["epoch"] == 2
    assert 0.0 <= result["top1"] <= 100.0 and result["top5"] >= result["top1"]


@pytest.mark.slow
def test_cli_bad_input_is_one_line(tmp_path):
    cases = {
        ("score.dataset=cifar10", f"score.data_root={tmp_path / 'nope'}"): "score.data_root",
        ("score.dataset=svhn",): "score.dataset='svhn' is not allowed; choose one of: cifar10, cifar100, imagefolder, digits",
        ("score.dataset=digits", f"score.checkpoint={tmp_path / 'missing'}"): "is not a raysweep checkpoint",
    }
    for args, message in cases.items():
        proc = _finetune_cli(*args, f"storage={tmp_path}", timeout=120)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
