"""Exported weights: timm alone (no raysweep) loads them and computes what raysweep's model computes;
s3:// in and out; bad input is one line."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from raysweep.core import checkpoint
from raysweep.config import load_config
from raysweep.export import export, main
from raysweep.pretrain.loop import train
from raysweep.core.context import LocalContext, save_payload
from raysweep.score.backbone import transfer
from raysweep.score.datasets import Split, load_downstream
from raysweep.score.loop import finetune, linear_probe

VIT = ["model.img_size=16", "model.patch_size=4", "model.depth=2", "model.embed_dim=32", "model.num_heads=2"]
RESNET = ["model.name=resnet18", "model.img_size=32"]
QUICK = ["pretrain.steps=3", "pretrain.batch_size=16", "pretrain.warmup_epochs=0", "data.L=8", "data.instances=4"]
SCORE = ["score.dataset=digits", "score.epochs=1", "score.batch_size=64", "score.warmup_epochs=0"]

# Run in a fresh interpreter that cannot import raysweep: timm alone loads the export, as the README
# shows, and through timm's own Hub-format reader (local-dir:); both outputs come back as safetensors.
LOADER = r"""
import importlib.abc, json, sys

class NoRaysweep(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "raysweep":
            raise ImportError("raysweep is not installed here")

sys.meta_path.insert(0, NoRaysweep())
import safetensors.torch, timm, torch

torch.set_num_threads(1)
directory, inputs, outputs = sys.argv[1:4]
cfg = json.load(open(f"{directory}/config.json"))
model = timm.create_model(cfg["architecture"], pretrained=True, num_classes=cfg["num_classes"],
                          pretrained_cfg_overlay=dict(cfg["pretrained_cfg"], file=f"{directory}/model.safetensors"),
                          **cfg["model_args"]).eval()
hub = timm.create_model(f"local-dir:{directory}", pretrained=True).eval()
x = safetensors.torch.load_file(inputs)["x"]
with torch.no_grad():
    safetensors.torch.save_file({"readme": model(x), "local_dir": hub(x)}, outputs)
assert "raysweep" not in sys.modules
data = timm.data.resolve_model_data_config(model)
print(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}))
"""


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits, cut to two batches: a scoring checkpoint needs a real run, not a good one."""
    full = load_downstream("digits", None)
    return dataclasses.replace(full, train=Split(full.train.images[:128], full.train.labels[:128]),
                               test=Split(full.test.images[:64], full.test.labels[:64]))


def _pretrained(directory: Path, overrides: list[str]) -> tuple[torch.nn.Module, dict]:
    """A real pre-training checkpoint: a few steps of the LPCE loop (bare, no Ray) on random
    images, saved as the store saves it; returns the trained model (eval mode) and its config."""
    cfg = load_config([*overrides, *QUICK])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (cfg.data.L * cfg.data.instances, 32, 32), dtype=np.uint8)
    labels = np.repeat(np.arange(cfg.data.L), cfg.data.instances)
    _, model, state = train(cfg, images, labels, cfg.data.L, LocalContext(), dataset_uri="runs/datasets/1p-frac-0123")
    checkpoint.save(str(directory), model, state)
    return model.eval(), state


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raysweep.export", *args], capture_output=True, text=True, timeout=300)


def _timm_alone(directory: Path, x: torch.Tensor, tmp_path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The export's outputs on ``x`` computed by a fresh process with timm and no raysweep, and the
    preprocessing timm resolves from it."""
    safetensors.torch.save_file({"x": x}, str(tmp_path / "inputs.safetensors"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOADER, str(directory), str(tmp_path / "inputs.safetensors"),
                           str(tmp_path / "outputs.safetensors")], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return safetensors.torch.load_file(str(tmp_path / "outputs.safetensors")), json.loads(proc.stdout.splitlines()[-1])


def _same(outputs: dict[str, torch.Tensor], expected: torch.Tensor) -> None:
    for way, got in outputs.items():
        assert got.shape == expected.shape, way
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (way, (got - expected).abs().max())


@torch.no_grad()
def _raysweep_outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.eval()(x)


@pytest.mark.slow
@pytest.mark.parametrize("overrides, size, model_args, classifier", [
    (VIT, 16, {"img_size": 16, "patch_size": 4, "depth": 2, "embed_dim": 32, "num_heads": 2}, "head"),
    (RESNET, 32, {}, "fc"),
], ids=["tiny-vit", "resnet18"])
def test_export_loads_with_timm_alone_and_computes_raysweeps_outputs(tmp_path, overrides, size, model_args, classifier):
    model, state = _pretrained(tmp_path / "ck", overrides)
    out = tmp_path / "export"
    proc = _cli(str(tmp_path / "ck"), f"out={out}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architecture"] == state["config"]["model"]["name"]
    assert cfg["num_classes"] == cfg["pretrained_cfg"]["num_classes"] == 8
    assert cfg["model_args"] == model_args
    assert cfg["pretrained_cfg"]["input_size"] == [3, size, size]
    assert cfg["pretrained_cfg"]["classifier"] == classifier
    provenance = cfg["raysweep"]
    assert provenance["checkpoint"] == str(tmp_path / "ck") and provenance["phase"] == "pretrain"
    assert provenance["step"] == 3 and provenance["dataset"] == "runs/datasets/1p-frac-0123"
    assert provenance["data"] == state["config"]["data"] and provenance["pretrain"] == state["config"]["pretrain"]

    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    outputs, data_config = _timm_alone(out, x, tmp_path)
    _same(outputs, _raysweep_outputs(model, x))
    # timm's own preprocessing for these weights is raysweep's: the trained size, mean = std = 0.5
    assert data_config["input_size"] == [3, size, size]
    assert data_config["mean"] == data_config["std"] == [0.5, 0.5, 0.5]
    assert data_config["interpolation"] == "bicubic" and data_config["crop_pct"] == 1.0


@pytest.mark.slow
def test_export_reads_and_writes_s3(tmp_path, aws_env, s3_bucket):
    from raysweep.storage import listdir, read_bytes

    model, _ = _pretrained(tmp_path / "ck", VIT)
    source = f"{s3_bucket}/runs/pretrain/0123456789abcdef"
    checkpoint.publish(str(tmp_path / "ck"), source)
    target = f"{s3_bucket}/exports/tiny-vit"
    proc = _cli(source, f"out={target}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == target
    assert listdir(target) == ["config.json", "model.safetensors"]

    local = tmp_path / "downloaded"
    local.mkdir()
    for name in ("config.json", "model.safetensors"):
        (local / name).write_bytes(read_bytes(f"{target}/{name}"))
    assert json.loads((local / "config.json").read_text())["raysweep"]["checkpoint"] == source
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    outputs, _ = _timm_alone(local, x, tmp_path)
    _same(outputs, _raysweep_outputs(model, x))


@pytest.mark.slow
def test_fine_tuned_checkpoint_exports_with_its_downstream_head(tmp_path, digits):
    pre, _ = _pretrained(tmp_path / "ck", VIT)
    cfg = load_config([*VIT, *QUICK, *SCORE])
    payloads = []
    finetune(cfg, transfer(cfg.model, digits.num_classes, pre.state_dict()), digits,
             report=lambda metrics, payload: payloads.append(payload))
    save_payload(str(tmp_path / "scored"), payloads[-1])  # what Ray Train keeps of a scoring run

    export(str(tmp_path / "scored"), str(tmp_path / "export"))
    cfg_json = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg_json["num_classes"] == 10  # digits, not the 8 pre-training classes
    assert cfg_json["raysweep"]["phase"] == "score" and cfg_json["raysweep"]["epoch"] == 1
    assert cfg_json["raysweep"]["score"]["dataset"] == "digits"
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    outputs, _ = _timm_alone(tmp_path / "export", x, tmp_path)
    _same(outputs, _raysweep_outputs(payloads[-1]["module"], x))


def test_a_new_export_replaces_the_old_one(tmp_path):
    _pretrained(tmp_path / "a", VIT)
    model, _ = _pretrained(tmp_path / "b", [*VIT, "seed=1"])
    export(str(tmp_path / "a"), str(tmp_path / "export"))
    export(str(tmp_path / "b"), str(tmp_path / "export"))
    assert json.loads((tmp_path / "export" / "config.json").read_text())["raysweep"]["checkpoint"] == str(tmp_path / "b")
    weights = safetensors.torch.load_file(str(tmp_path / "export" / "model.safetensors"))
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert sorted(os.listdir(tmp_path / "export")) == ["config.json", "model.safetensors"]  # no temporary files left


def _error(capsys, *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def test_linear_probe_checkpoint_is_refused(tmp_path, capsys, digits):
    pre, _ = _pretrained(tmp_path / "ck", VIT)
    cfg = load_config([*VIT, *QUICK, *SCORE, "score.mode=linear_probe", "score.probe_blocks=1"])
    payloads = []
    linear_probe(cfg, transfer(cfg.model, 10, pre.state_dict()), digits,
                 report=lambda metrics, payload: payloads.append(payload))
    save_payload(str(tmp_path / "probe"), payloads[-1])
    err = _error(capsys, str(tmp_path / "probe"), f"out={tmp_path / 'export'}")
    assert err.startswith(f"error: checkpoint={str(tmp_path / 'probe')!r} is a linear probe's checkpoint")
    assert not (tmp_path / "export").exists()


def test_bad_input_is_one_line(tmp_path, capsys):
    _pretrained(tmp_path / "ck", VIT)
    ck, out = str(tmp_path / "ck"), f"out={tmp_path / 'export'}"
    (tmp_path / "empty").mkdir()
    assert f"checkpoint={str(tmp_path / 'empty')!r} is not a raysweep checkpoint" in _error(capsys, str(tmp_path / "empty"), out)
    assert "out= is missing" in _error(capsys, ck)
    assert "give one CHECKPOINT, got 0" in _error(capsys, out)
    assert "give one CHECKPOINT, got 2" in _error(capsys, ck, ck, out)
    assert "unknown option 'outdir'; allowed: out" in _error(capsys, ck, "outdir=x")
    (tmp_path / "file").write_text("not a directory")
    under_a_file = str(tmp_path / "file" / "export")
    assert f"out={under_a_file!r} is not writable: {tmp_path / 'file'} is a file" in _error(capsys, ck, f"out={under_a_file}")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "state.json").write_text("{not json")
    assert f"checkpoint={str(corrupt)!r} cannot be read: JSONDecodeError" in _error(capsys, str(corrupt), out)
    (corrupt / "state.json").write_text((tmp_path / "ck" / "state.json").read_text())
    (corrupt / "model.pt").write_bytes(b"truncated")
    assert f"checkpoint={str(corrupt)!r} cannot be read" in _error(capsys, str(corrupt), out)
    assert not (tmp_path / "export").exists()  # nothing is written before everything is checked


def test_unwritable_bucket_is_one_line(tmp_path, capsys, aws_env):
    _pretrained(tmp_path / "ck", VIT)
    err = _error(capsys, str(tmp_path / "ck"), "out=s3://no-such-bucket-raysweep/export")
    assert err == "error: out='s3://no-such-bucket-raysweep/export' is not writable: the bucket does not exist"


@pytest.mark.slow
def test_cli_error_is_one_line_and_exit_code_2(tmp_path):
    proc = _cli(str(tmp_path), f"out={tmp_path / 'export'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: checkpoint={str(tmp_path)!r} is not a raysweep checkpoint (needs state.json and model.pt)"]
