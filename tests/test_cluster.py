"""The cluster: cluster/cluster.yaml against Ray's own autoscaler validation; a multi-node Ray on
this machine (ray.cluster_utils.Cluster: a head plus worker nodes with CPU and custom resources)
running sweeps through the real CLI; a worker node killed mid-trial; raysweep's metrics on Ray's
Prometheus endpoint; and the security of local runs (loopback binding, token authentication, no
credential written anywhere)."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from test_tune import Cli, experiment

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("ray_raysweep_render_images_per_second", "ray_raysweep_train_images_per_second", "ray_raysweep_trial_top1",
           "ray_raysweep_trials_finished")


# ------------------------------------------------------------------------------------ cluster.yaml


def test_cluster_yaml_passes_rays_autoscaler_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = (ROOT / "cluster" / "cluster.yaml").read_text()
    config = yaml.safe_load(raw)
    validate_config(prepare_config(config))  # what `ray up` runs before it touches AWS
    nodes = config["available_node_types"]
    assert config["provider"]["type"] == "aws" and config["head_node_type"] == "head"
    assert nodes["render"]["resources"].get("render", 0) > 0, "render nodes advertise the render resource"
    assert "g" in nodes["gpu"]["node_config"]["InstanceType"][:2] or "p" in nodes["gpu"]["node_config"]["InstanceType"][:1]
    assert all(n["node_config"].get("IamInstanceProfile") for n in nodes.values()), "S3 through an instance profile"
    assert nodes["gpu"]["max_workers"] >= 1 and nodes["render"]["max_workers"] >= 1
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head, "the dashboard is reached through `ray dashboard` (SSH), never a public port"
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])
    assert "python -m raysweep.cluster publish ~/ray_bootstrap_config.yaml" in head, "the head publishes the node types"
    assert "pip install" in " ".join(config["setup_commands"]) and "raysweep" in " ".join(config["setup_commands"])
    for secret in ("aws_access_key_id", "aws_secret_access_key", "AKIA", "AWS_SECRET"):
        assert secret.lower() not in raw.lower(), f"no keys in the cluster file ({secret})"


# ------------------------------------------------------------------------------- multi-node Ray


def _cluster(monkeypatch, head_cpus: int, *nodes: dict):
    from ray.cluster_utils import Cluster

    import socket

    # The nodes' processes inherit this environment. With the session Ray's RAY_ADDRESS in it, Ray's
    # own State API clients on these nodes (Train's PlacementGroupCleaner among them) would query the
    # session Ray instead of this cluster, and the cleaner would exit, taking a dead node's placement
    # group for orphaned. Nodes added later by the test start without it as well.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    with socket.socket() as s:  # the session's Ray has the default dashboard port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "include_dashboard": True,
                                                            "dashboard_host": "127.0.0.1", "dashboard_port": port})
    added = [cluster.add_node(**n) for n in nodes]
    cluster.wait_for_nodes()
    return cluster, added


def _results(run_dir: Path) -> list[dict]:
    out = []
    for path in run_dir.glob("run_trial_*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out.append(lines[-1] if lines else {})
    return out


def test_multi_node_sweep_renders_on_render_nodes(ray_cluster, tmp_path, monkeypatch):
    cluster, (render_node, plain_node) = _cluster(monkeypatch, 1, {"num_cpus": 2, "resources": {"render": 2}}, {"num_cpus": 2})
    try:
        exp = experiment(tmp_path, "multinode", {"data.delta": {"grid": [0.05, 0.2]}, "render_resource": "render",
                                                 "sweep.max_concurrent_trials": 2, "sweep.trial_cpus": 0.1})
        env = {**os.environ, "RAY_ADDRESS": cluster.address}
        proc = subprocess.run([sys.executable, "-m", "raysweep.tune", str(exp)], capture_output=True, text=True, timeout=900, env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
        run_dir = Path(proc.stdout.strip().splitlines()[-1])
        manifests = glob.glob(str(tmp_path / "runs" / "datasets" / "*" / "manifest.json"))
        assert len(manifests) == 2
        render_nodes = {s["node"] for m in manifests for s in json.loads(Path(m).read_text())["shards"]}
        assert render_nodes == {render_node.node_id}, "every shard was rendered on the render node"
        results = _results(run_dir)
        assert len(results) == 2 and all(r.get("finished") for r in results)
        train_nodes = {r["node_id"] for r in results}
        assert len(train_nodes | render_nodes) >= 2, "the sweep ran on more than one node"
        assert train_nodes <= {cluster.head_node.node_id, render_node.node_id, plain_node.node_id}
    finally:
        cluster.shutdown()


def test_on_the_fly_fractaldb_pretrains_on_two_workers_fed_by_render_actors(ray_cluster, tmp_path, monkeypatch):
    """The pre-training command with FractalDB never written to storage: 2 Train workers on the head,
    each fed by a render actor on the render node; the loss falls."""
    cluster, (render_node,) = _cluster(monkeypatch, 1, {"num_cpus": 2, "resources": {"render": 2}})
    try:
        storage = tmp_path / "runs"
        args = ["data.source=fractaldb", "data.L=4", "data.instances=2", "data.size=32", "data.pad=2",
                "data.iterations=4000", "data.materialize=false", "render_resource=render", "pretrain.workers=2",
                "pretrain.cpus_per_worker=0.5", "pretrain.batch_size=32", "pretrain.steps=60", "pretrain.report_every=20",
                "pretrain.checkpoint_every=20", "model.name=resnet10t", "model.img_size=32", "model.drop_path=0",
                "pretrain.randaugment=", "pretrain.reprob=0", "pretrain.mixup=0", "pretrain.cutmix=0",
                "pretrain.crop_scale_min=1.0", "pretrain.vflip=0", "pretrain.lr=0.004", "pretrain.warmup_epochs=0",
                f"storage={storage}", "name=otf"]
        env = {**os.environ, "RAY_ADDRESS": cluster.address}
        proc = subprocess.run([sys.executable, "-m", "raysweep.pretrain", *args], capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
        states = [json.loads(Path(p).read_text()) for p in glob.glob(str(storage / "train" / "pretrain-*" / "checkpoint_*" / "state.json"))]
        losses = [s["metrics"]["loss"] for s in sorted(states, key=lambda s: s["step"])]
        assert len(losses) >= 2 and losses[-1] < 0.8 * losses[0], losses
        assert not (storage / "datasets").exists(), "an on-the-fly dataset is never written"
    finally:
        cluster.shutdown()


def _registered_checkpoints(trials: Path) -> list[str]:
    names = []
    for path in glob.glob(str(trials / "*" / "checkpoint_manager_snapshot.json")):
        try:
            names += [c["checkpoint_dir_name"] for c in json.loads(Path(path).read_text())["checkpoint_results"]]
        except (ValueError, KeyError, OSError):  # being written
            pass
    return names


def test_a_worker_node_killed_mid_trial_resumes_from_its_checkpoint(ray_cluster, tmp_path, monkeypatch):
    # the head has no CPU: the trial's driver and its Train worker both run on the worker node
    cluster, (worker,) = _cluster(monkeypatch, 0, {"num_cpus": 2})
    try:
        exp = experiment(tmp_path, "nodekill", {"pretrain.steps": 400, "pretrain.checkpoint_every": 20, "pretrain.report_every": 20,
                                                "sweep.probe_every": 0, "pretrain.max_failures": 3})
        env = {**os.environ, "RAY_ADDRESS": cluster.address}
        cli = Cli(tmp_path, exp, env=env)
        trials = tmp_path / "runs" / "train"
        deadline = time.time() + 600
        # a checkpoint counts once Ray Train's controller has registered it in the run's snapshot
        # (its folder is written a moment before): only then can a new attempt resume from it
        while time.time() < deadline and cli.poll() is None and not _registered_checkpoints(trials):
            time.sleep(0.5)
        assert cli.poll() is None, f"the sweep ended before a checkpoint: {cli.stderr()[-3000:]}"
        cluster.remove_node(worker, allow_graceful=False)  # a crash, not a shutdown
        cluster.add_node(num_cpus=2)  # the autoscaler's replacement
        rc, out, err = cli.wait(timeout=480)
        assert rc == 0, err[-4000:]
        results = _results(Path(out.strip().splitlines()[-1]))
        assert len(results) == 1 and results[0].get("finished") and results[0]["step"] == 400
        (model,) = glob.glob(str(tmp_path / "runs" / "pretrain" / "*" / "state.json"))  # the published pre-trained model
        last = json.loads(Path(model).read_text())
        assert last["step"] == 400 and last["resumed_from"] > 0, "resumed from a checkpoint, not from step 0"
        # Ray's shared AutoscalingCoordinator was created on the sweep driver's node (the head), so it
        # did not die with the worker node
        probe = subprocess.run([sys.executable, "-c", COORDINATOR], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "RAY_ADDRESS": cluster.address})
        assert probe.returncode == 0, probe.stderr[-2000:]
        state, node = json.loads(probe.stdout.strip().splitlines()[-1])
        assert state == "ALIVE" and node == cluster.head_node.node_id, (state, node)
    finally:
        cluster.shutdown()


COORDINATOR = r"""
import json, ray
from ray.util.state import list_actors
ray.init(logging_level="error")
[actor] = list_actors(filters=[("class_name", "=", "_AutoscalingCoordinatorActor")], detail=True)
print(json.dumps([actor.state, actor.node_id]))
"""


# ------------------------------------------------------------------------------------- monitoring


def _scrape(ports: list[int]) -> str:
    text = []
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text.append(r.read().decode())
        except OSError:
            pass
    return "\n".join(text)


def test_custom_metrics_on_rays_prometheus_endpoint(ray_cluster, tmp_path, no_proxy):
    import ray

    ports = [n["MetricsExportPort"] for n in ray.nodes() if n["Alive"]]
    exp = experiment(tmp_path, "metrics", {"data.delta": {"grid": [0.05, 0.2]}})
    cli = Cli(tmp_path, exp)
    seen: dict[str, str] = {}
    deadline = time.time() + 900
    ended = None
    while time.time() < deadline:
        for line in _scrape(ports).splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name.startswith("ray_raysweep_") and not line.startswith("#"):
                seen[name] = line
        if all(any(s.startswith(m) for s in seen) for m in METRICS):
            break
        if cli.poll() is not None:
            ended = ended or time.time()
            if time.time() - ended > 30:
                break
        time.sleep(1)
    rc, out, err = cli.wait()
    assert rc == 0, err[-4000:]
    for metric in METRICS:
        assert any(s.startswith(metric) for s in seen), f"{metric} not on the endpoint; seen: {sorted(seen)}"
    trial_top1 = next(v for k, v in seen.items() if k.startswith("ray_raysweep_trial_top1"))
    assert 'experiment="metrics"' in trial_top1 and 0.0 <= float(trial_top1.rsplit(" ", 1)[-1]) <= 100.0


# --------------------------------------------------------------------------------------- security

PROBE = r"""
import json, os, re, subprocess, urllib.request, urllib.error
from raysweep.runtime import ensure_ray
import ray
ensure_ray(num_cpus=1)
ctx = ray.get_runtime_context()
info = ray._private.worker._global_node.address_info
session = os.path.basename(info["session_dir"])
mine = set(subprocess.run(["pgrep", "-f", session], capture_output=True, text=True).stdout.split()) | {str(os.getpid())}
listening = []
for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
    pid = re.search(r"pid=(\d+)", line)
    if pid and pid.group(1) in mine:
        listening.append(line.split()[3])
from ray._raylet import AuthenticationMode, get_authentication_mode
status = None
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    opener.open("http://" + info["webui_url"] + "/api/version", timeout=10)
    status = 200
except urllib.error.HTTPError as e:
    status = e.code
print(json.dumps({"listening": listening, "token": get_authentication_mode() == AuthenticationMode.TOKEN,
                  "dashboard": info["webui_url"], "unauthenticated": status, "node_ip": info["node_ip_address"]}))
ray.shutdown()
"""


@pytest.mark.slow
def test_local_ray_binds_loopback_and_keeps_token_auth(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["node_ip"] == "127.0.0.1"
    assert report["listening"], "found the local Ray's servers"
    loopback = re.compile(r"^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):\d+$")
    exposed = [a for a in report["listening"] if not loopback.match(a)]
    assert exposed == [], f"listening beyond loopback: {exposed}"
    assert report["dashboard"].startswith("127.0.0.1:")
    assert report["token"], "Ray's token authentication is on"
    assert report["unauthenticated"] in (401, 403), "the dashboard refuses a request without the token"


@pytest.mark.slow
def test_no_credential_is_written_anywhere(s3_endpoint, s3_bucket, tmp_path):
    """A whole local run (its own embedded Ray) on S3 storage with fake, unique credentials: no
    byte of the run's storage (run directory, datasets, checkpoints, results, report, logs) holds them."""
    key_id = "AKIA" + uuid.uuid4().hex[:16].upper()
    secret = "raysweep-fake-secret-" + uuid.uuid4().hex
    exp = experiment(tmp_path, "secrets", {"storage": f"{s3_bucket}/runs", "pretrain.steps": 10, "score.epochs": 1})
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_ENDPOINT_URL=s3_endpoint,
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, "-m", "raysweep.tune", str(exp)], capture_output=True, text=True, timeout=900,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret)
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket[5:]) for o in page.get("Contents", [])]
    assert any(k.endswith("report.html") for k in keys) and any("checkpoint" in k for k in keys) and any(k.endswith("manifest.json") for k in keys)
    for key in keys:
        body = s3.get_object(Bucket=s3_bucket[5:], Key=key)["Body"].read()
        assert secret.encode() not in body and key_id.encode() not in body, f"credential written to {key}"
    for path in tmp_path.rglob("*"):  # and nothing local (the experiment file's directory, Ray's working files)
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and key_id.encode() not in data, f"credential written to {path}"
