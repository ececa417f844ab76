"""The Ray Data pipeline against a real local Ray, local disk and a real S3 API on loopback."""

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

from raysweep.config import ConfigError, DataConfig, load_config
from raysweep.dataset import load_arrays, manifest_of, materialize, ray_dataset
from raysweep.render import create_source
from raysweep.render.spec import resolve_spec

SMALL = dict(size=32, pad=2, iterations=5000)


def checksums(uri: str) -> list[str]:
    return [s["sha256"] for s in manifest_of(uri)["shards"]]


def test_render_then_reuse_and_read_back(ray_cluster, tmp_path):
    cfg = DataConfig(L=12, instances=2, **SMALL)
    logs: list[str] = []
    uri, spec = materialize(cfg, str(tmp_path), log=logs.append, progress=False)
    assert spec == resolve_spec(cfg) and uri == spec.uri(str(tmp_path))
    assert uri == resolve_spec(cfg).uri(str(tmp_path))
    manifest = json.loads(Path(uri, "manifest.json").read_text())
    assert manifest["counts"] == {"classes": 12, "instances": 2, "images": 24, "shards": 1}
    assert manifest["spec_hash"] == resolve_spec(cfg).hash and manifest["software"]["raysweep"]
    images, labels = load_arrays(uri)
    assert images.shape == (24, 32, 32) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == sorted(list(range(12)) * 2)
    # the stored pixels are the renderer's pixels
    again = create_source(cfg).render_class(5)
    stored = images[labels == 5]
    for item in again:
        assert any(np.array_equal(item.image, s) for s in stored)
    ds = ray_dataset(uri)
    assert ds.count() == 24 and set(ds.schema().names) >= {"image", "label", "params"}
    # the same spec again: reused, not rendered
    logs.clear()
    assert materialize(cfg, str(tmp_path), log=logs.append, progress=False).uri == uri
    assert logs == [f"reusing {uri}"]


def test_same_spec_same_checksums_other_seed_other_checksums(ray_cluster, tmp_path):
    cfg = DataConfig(L=300, **SMALL)  # 2 shards
    a = materialize(cfg, str(tmp_path / "a"), progress=False, log=lambda m: None).uri
    b = materialize(cfg, str(tmp_path / "b"), progress=False, log=lambda m: None).uri
    c = materialize(DataConfig(L=300, seed=1, **SMALL), str(tmp_path / "c"), progress=False, log=lambda m: None).uri
    assert len(checksums(a)) == 2
    assert checksums(a) == checksums(b)
    assert not set(checksums(a)) & set(checksums(c))


def test_s3_storage_round_trip(ray_cluster, s3_bucket):
    cfg = DataConfig(L=10, **SMALL)
    uri = materialize(cfg, f"{s3_bucket}/runs", progress=False, log=lambda m: None).uri
    assert uri.startswith(f"{s3_bucket}/runs/datasets/1p-frac-")
    images, labels = load_arrays(uri)
    assert images.shape == (10, 32, 32) and sorted(labels) == list(range(10))
    assert ray_dataset(uri).count() == 10


@pytest.mark.slow
def test_unreachable_storage_fails_in_one_line_before_rendering(s3_endpoint, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"storage 's3://no-such-bucket-xyz/runs' is not writable: the bucket does not exist"):
        materialize(DataConfig(L=4, **SMALL), "s3://no-such-bucket-xyz/runs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ConfigError, match=r"is not writable: the endpoint is unreachable"):
        materialize(DataConfig(L=4, **SMALL), "s3://any-bucket/runs")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not writable"):
        materialize(DataConfig(L=4, **SMALL), str(tmp_path / "file" / "sub"))


def test_reading_a_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no complete dataset at .* render it with: python -m raysweep.render dataset"):
        load_arrays(str(tmp_path / "nothing"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "raysweep.render", "dataset", *args]


def test_killed_render_resumes_to_identical_shards(ray_cluster, tmp_path):
    args = ["data.L=2560", "data.size=128", "data.iterations=50000", "actors=1"]  # 10 shards, one at a time
    storage = tmp_path / "killed"
    proc = subprocess.Popen(_cli(f"storage={storage}", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    shards: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        shards = list(storage.glob("datasets/*/shard-*.parquet"))
        if shards:
            break
        time.sleep(0.2)
    assert shards, f"no shard appeared: {proc.stderr.read() if proc.poll() is not None else 'still running'}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    dataset_dir = shards[0].parent
    # the render actor dies with its driver, but a shard it is writing at that moment may still land:
    # count the shards once the folder has stopped changing
    done, deadline = None, time.time() + 60
    while time.time() < deadline:
        listing = sorted(p.name for p in dataset_dir.iterdir())
        if listing == done:
            break
        done = listing
        time.sleep(3)
    done = [name for name in done if name.endswith(".parquet") and name.startswith("shard-")]
    assert not (dataset_dir / "manifest.json").exists(), "a killed render must not look complete"
    assert 1 <= len(done) < 10
    resumed = subprocess.run(_cli(f"storage={storage}", *args), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == str(dataset_dir)
    assert f"({10 - len(done)} of 10 shards to do)" in resumed.stderr or f"{10 - len(done)} of 10" in resumed.stderr
    whole = subprocess.run(_cli(f"storage={tmp_path / 'whole'}", *args), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    assert checksums(str(dataset_dir)) == checksums(whole.stdout.strip().splitlines()[-1])


def test_cli_bad_input_is_one_line(tmp_path):
    proc = subprocess.run(_cli(f"storage={tmp_path}", "data.delta=0"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: data.delta=0.0 is out of range; allowed: the open interval (0, 1)"
    assert not any(tmp_path.iterdir())
