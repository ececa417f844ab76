"""The one driver through the real CLIs and a real local Ray: DDP with two workers (parameter groups
as with one, reports at the same steps on every rank), pre-trained models content-addressed and
pre-trained once, the same pre-flight on every command path (one line, exit 2, Ray never started),
and the State API address of a local Ray."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from test_tune import TINY, experiment, rows, tune_cli

ROOT = Path(__file__).resolve().parents[1]


def _store(storage: Path) -> list[Path]:
    """The pre-trained models in a storage's content-addressed store."""
    return sorted(p for p in (storage / "pretrain").iterdir() if (p / "state.json").exists()) if (storage / "pretrain").exists() else []


def _finals(run_dir: Path) -> list[dict]:
    out = []
    for path in run_dir.glob("run_trial_*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out.append(lines[-1])
    return out


@pytest.mark.slow
def test_two_worker_trial_trains_with_the_parameter_groups_of_one_worker(ray_cluster, tmp_path):
    # probe_every=7 is no multiple of report_every=5: every rank still reports at the same steps
    common = {"pretrain.steps": 14, "pretrain.batch_size": 16, "pretrain.report_every": 5, "pretrain.checkpoint_every": 14,
              "pretrain.cpus_per_worker": 0.5, "sweep.probe_every": 7, "sweep.trial_cpus": 0.1, "score.epochs": 1}
    two = experiment(tmp_path, "two", {**common, "pretrain.workers": 2})
    proc = tune_cli(two, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (row,) = rows(tmp_path / "runs" / "sweeps" / "two")
    assert row["status"] == "done" and float(row["probe_top1"]) >= 0
    history = [json.loads(line) for line in next((tmp_path / "runs" / "sweeps" / "two").glob("run_trial_*/result.json"))
               .read_text().splitlines() if line.strip()]
    assert [r["step"] for r in history if "probe_top1" in r and "top1" not in r][:2] == [7, 14], "probes at 7 and 14"
    one = experiment(tmp_path, "one", {**common, "pretrain.workers": 1})
    proc = tune_cli(one, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    models = _store(tmp_path / "runs")
    assert len(models) == 2, "one model per worker count (the global batch is split differently)"
    states = {json.loads((m / "state.json").read_text())["config"]["pretrain"]["workers"]: json.loads((m / "state.json").read_text())
              for m in models}
    groups = {w: [(g["weight_decay"], g["params"]) for g in s["param_groups"]] for w, s in states.items()}
    assert groups[2] == groups[1], "DDP must not change which parameters get weight decay"
    no_decay = next(names for wd, names in groups[2] if wd == 0.0)
    assert "pos_embed" in no_decay and "cls_token" in no_decay, "timm's no_weight_decay() of the bare model"


@pytest.mark.slow
def test_trials_that_differ_only_in_scoring_pretrain_once(ray_cluster, tmp_path):
    extra = {"model.depth": 3, "score.mode": "linear_probe", "score.probe_blocks": {"grid": [1, 2, 3]}, "score.epochs": 2,
             "sweep.max_concurrent_trials": 3, "sweep.trial_cpus": 0.1, "pretrain.cpus_per_worker": 0.5}
    exp = experiment(tmp_path, "probes", extra)
    proc = tune_cli(exp, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = rows(tmp_path / "runs" / "sweeps" / "probes")
    assert sorted(r["score.probe_blocks"] for r in table) == ["1", "2", "3"] and all(r["status"] == "done" for r in table)
    (model,) = _store(tmp_path / "runs")
    finals = _finals(tmp_path / "runs" / "sweeps" / "probes")
    assert sorted(f["pretrained_here"] for f in finals) == [False, False, True], "one trial pre-trained, two reused it"
    assert {f["model_uri"] for f in finals} == {str(model)}
    # any later command finds it: a new sweep scoring it another way, and the pre-training command
    again = experiment(tmp_path, "again", {**extra, "score.probe_blocks": 2, "score.mode": "finetune"})
    proc = tune_cli(again, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [f["pretrained_here"] for f in _finals(tmp_path / "runs" / "sweeps" / "again")] == [False]
    cli = subprocess.run([sys.executable, "-m", "raysweep.pretrain", *_overrides(tmp_path / "runs", depth=3)],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert cli.stdout.strip().splitlines()[-1] == str(model) and "reusing the pre-trained model" in cli.stderr
    assert _store(tmp_path / "runs") == [model]


def _overrides(storage: Path, depth: int = 2) -> list[str]:
    """The TINY experiment's pre-training settings as command-line overrides."""
    return ["data.L=8", "data.size=32", "data.pad=2", "data.iterations=5000", "model.img_size=16", "model.patch_size=4",
            f"model.depth={depth}", "model.embed_dim=32", "model.num_heads=2", "model.drop_path=0.0", "pretrain.steps=20",
            "pretrain.batch_size=32", "pretrain.report_every=10", "pretrain.checkpoint_every=10", f"storage={storage}"]


# ----------------------------------------------------------------------------------- pre-flight


def _no_ray_env(tmp_path: Path) -> tuple[dict, Path]:
    """The embedded default (no RAY_ADDRESS) with Ray's temp dir where the test can see it."""
    temp = Path(tempfile.mkdtemp(prefix="rsnr", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(temp)
    return env, temp


def _imagefolder_with_other_val_classes(root: Path) -> Path:
    from PIL import Image

    for split, classes in (("train", ("cat", "dog")), ("val", ("cat", "cow"))):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(root / split / c / "a.png")
    return root


PREFLIGHT = [
    (["model.name=vit_tinny"], "model.name='vit_tinny' is not a timm model; did you mean vit_tiny_patch16_224"),
    (["pretrain.workers=2", "pretrain.batch_size=18"], "pretrain.batch_size / pretrain.workers = 18 / 2 = 9 is odd"),
    (["sweep.scheduler=asha", "sweep.probe_every=50"], "sweep.probe_every=50 exceeds pretrain.steps=20"),
    (["pretrain.use_gpu=true"], "asks for {CPU: 1, GPU: 1}, which no node of this machine"),
    (["score.dataset=imagefolder", "score.data_root=IMAGEFOLDER"], "train/ and val/ have different classes (only in train/: dog; only in val/: cow)"),
    (["score.mode=linear_probe", "score.probe_blocks=5"], "score.probe_blocks=5 is out of range for vit_tiny_patch16_224; allowed: 1..2"),
    (["score.extra_probes=[3]"], "score.extra_probes[]=3 is out of range for vit_tiny_patch16_224; allowed: 1..2"),
]


@pytest.mark.slow
@pytest.mark.parametrize("overrides,message", PREFLIGHT, ids=[m.split("=")[0].split(" ")[0] for _, m in PREFLIGHT])
def test_sweep_preflight_is_one_line_before_ray_starts(tmp_path, overrides, message):
    if any("IMAGEFOLDER" in o for o in overrides):
        root = _imagefolder_with_other_val_classes(tmp_path / "if")
        overrides = [o.replace("IMAGEFOLDER", str(root)) for o in overrides]
    exp = experiment(tmp_path, "pre", {"pretrain.cpus_per_worker": 1})
    env, temp = _no_ray_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "raysweep.tune", str(exp), *overrides], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not list(temp.glob("ray/session_*")), "Ray was started"
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command,overrides,message", [
    ("raysweep.pretrain", ["model.name=vit_tinny"], "model.name='vit_tinny' is not a timm model"),
    ("raysweep.pretrain", ["pretrain.workers=2", "pretrain.batch_size=18"], "= 9 is odd"),
    ("raysweep.pretrain", ["pretrain.use_gpu=true"], "which no node of this machine"),
    ("raysweep.finetune", ["score.dataset=digits", "score.mode=linear_probe", "score.probe_blocks=13"],
     "score.probe_blocks=13 is out of range for vit_tiny_patch16_224; allowed: 1..12"),
    ("raysweep.finetune", ["score.dataset=digits", "score.workers=256", "score.batch_size=256", "pretrain.cpus_per_worker=1"],
     "asks for 256 x {CPU: 1} = 256 CPU in all, but this machine"),
])
def test_single_run_preflight_is_the_same_one_line_before_ray_starts(tmp_path, command, overrides, message):
    env, temp = _no_ray_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", command, *overrides, f"storage={tmp_path / 'runs'}"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not list(temp.glob("ray/session_*")), "Ray was started"


def test_a_broken_yaml_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata:\n  L: 8\n   sigma: 2\n")
    proc = tune_cli(bad, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot read '{bad}': line 4, column 9: mapping values are not allowed here; fix the YAML syntax"]


STATE_API = r"""
import json, ray
from raysweep.runtime import ensure_ray
ensure_ray(num_cpus=1)

@ray.remote
class Probe:
    def ping(self):
        return True

@ray.remote
def state_of(actor_id):
    from ray.util.state import get_actor
    return get_actor(actor_id, timeout=10).state

probe = Probe.remote()
ray.get(probe.ping.remote())
print(json.dumps(ray.get(state_of.remote(probe._actor_id.hex()))))
"""


@pytest.mark.slow
def test_a_local_rays_workers_find_its_state_api_whatever_else_runs_here(tmp_path):
    """Regression: Ray's State API clients in workers (Ray Train's placement-group cleaner) found
    "their" cluster through the address file of the last `ray start` on the machine; a stale one
    (or another Ray) sent them to the wrong cluster: ~40 s per query, 12 s more per Train run."""
    env, temp = _no_ray_env(tmp_path)
    (temp / "ray").mkdir()
    (temp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # a cluster long gone
    proc = subprocess.run([sys.executable, "-c", STATE_API], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == "ALIVE"
