"""The cluster path on Ray's own fake multi-node autoscaler: a CPU head, a ``render`` node type and
a ``gpu`` node type, both at ``min_workers: 0``, as in cluster/cluster.yaml. The README's cluster
command launches a render node for rendering and a GPU node whose Train worker holds a GPU; requests
no node type can satisfy, and a local storage, are refused before any work.

The autoscaler is started here as a user would (``RAY_FAKE_CLUSTER=1 ray start --head
--autoscaling-config=...``; Ray's AutoscalingCluster helper would run ``ray stop --force``), with its
own temp dir and ports, and only the processes it started are ended (its process group)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from raysweep.ray_private import free_loopback_port, state_api_env

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# the shapes of cluster/cluster.yaml's node types, scaled down: a g6e.xlarge GPU node (4 vCPUs,
# 1 GPU, simulated: no CUDA here) and a render node advertising the render resource
NODE_TYPES = {
    "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
    "render": {"resources": {"CPU": 2, "render": 2}, "node_config": {}, "min_workers": 0, "max_workers": 1},
    "gpu": {"resources": {"CPU": 4, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 1},
}
# budget=paper as it is, made small where only the amount of work changes (not what is asked for)
SMALL = ["data.sigma=3.5", "sweep.seeds=[0]", "data.L=8", "data.size=32", "data.pad=4", "data.iterations=5000",
         "model.img_size=16", "model.patch_size=4", "model.depth=2", "model.embed_dim=32", "model.num_heads=2",
         "pretrain.steps=10", "pretrain.batch_size=16", "pretrain.report_every=5", "pretrain.checkpoint_every=10",
         "score.dataset=digits", "score.epochs=1", "score.batch_size=64", "score.eval_every=1",
         "sweep.probe_every=5", "sweep.probe_train=100", "sweep.probe_test=50"]


def _config(gcs_port: int) -> dict:
    return {
        "cluster_name": "raysweep-fake", "max_workers": 2, "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
        "provider": {"type": "fake_multinode", "gcs_address": f"127.0.0.1:{gcs_port}", "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": NODE_TYPES,
        "head_node_type": "ray.head.default",
        **{k: [] for k in ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                           "head_start_ray_commands", "worker_start_ray_commands", "cluster_synced_files", "rsync_exclude",
                           "rsync_filter")},
        "file_mounts": {}, "file_mounts_sync_continuously": False,
    }


@pytest.fixture(scope="module")
def fake_cluster(s3_endpoint):
    home = Path(tempfile.mkdtemp(prefix="rsfake", dir="/tmp"))  # short: Ray's unix socket paths
    gcs, dashboard = free_loopback_port(), free_loopback_port()
    config = home / "autoscaler.yaml"
    config.write_text(yaml.safe_dump(_config(gcs)))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1", RAY_TMPDIR=str(home),
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token", **state_api_env(dashboard))
    log = open(home / "ray-start.log", "w")
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={gcs}", "--num-cpus=1", f"--autoscaling-config={config}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{gcs}"
    client = {**env, "RAY_ADDRESS": address}
    client.pop("RAY_FAKE_CLUSTER")
    try:
        publish, deadline = None, time.time() + 120
        while time.time() < deadline:  # the published node types are what every command reads
            publish = subprocess.run([sys.executable, "-m", "raysweep.cluster", "publish", str(config)], env=client,
                                     capture_output=True, text=True, timeout=120)
            if publish.returncode == 0:
                break
            assert head.poll() is None, (home / "ray-start.log").read_text()[-3000:]
            time.sleep(2)
        assert publish.returncode == 0, publish.stderr[-3000:]
        assert "gpu (up to 1 x {CPU: 4, GPU: 1})" in publish.stdout and "render (up to 1 x {CPU: 2, render: 2})" in publish.stdout
        yield {"address": address, "env": client, "home": home}
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):  # the group ray start began, nothing else
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _tune(fake_cluster, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**fake_cluster["env"], "RAYSWEEP_DEVICE": "cpu"}  # no CUDA here: workers hold their GPU but compute on the CPU
    return subprocess.run([sys.executable, "-m", "raysweep.tune", str(ROOT / "experiments" / "sigma.yaml"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=fake_cluster["home"])


def _nodes(fake_cluster) -> dict[str, dict]:
    code = ("import json, ray; ray.init(logging_level='error'); "
            "print(json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))")
    proc = subprocess.run([sys.executable, "-c", code], env=fake_cluster["env"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_readme_cluster_command_launches_render_and_gpu_nodes(fake_cluster, s3_bucket):
    import s3fs

    storage = f"{s3_bucket}/raysweep"
    before = _nodes(fake_cluster)
    assert len(before) == 1, "the cluster starts from zero worker nodes"
    proc = _tune(fake_cluster, "budget=paper", "render_resource=render", f"storage={storage}", *SMALL)
    assert proc.returncode == 0, proc.stderr[-4000:]
    nodes = _nodes(fake_cluster)
    render_nodes = {i for i, r in nodes.items() if r.get("render")}
    gpu_nodes = {i for i, r in nodes.items() if r.get("GPU")}
    assert render_nodes and gpu_nodes, f"the autoscaler launched a render node and a GPU node: {nodes}"
    fs = s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    (manifest,) = fs.glob(f"{storage[5:]}/datasets/*/manifest.json")
    shards = json.loads(fs.cat(manifest))["shards"]
    assert {s["node"] for s in shards} <= render_nodes, "every shard was rendered on a render node"
    (results,) = fs.glob(f"{storage[5:]}/sweeps/sigma/run_trial_*/result.json")
    final = [json.loads(line) for line in fs.cat(results).decode().splitlines() if line.strip()][-1]
    assert final["finished"] and final["node_id"] in gpu_nodes, "the trial's Train worker ran on the GPU node"
    assert final["worker_gpus"], "the Train worker was given a GPU (the request asked for one)"
    rows = list(csv.DictReader(io.StringIO(fs.cat(f"{storage[5:]}/sweeps/sigma/results.csv").decode())))
    assert len(rows) == 1 and rows[0]["status"] == "done"


@pytest.mark.parametrize("args,message", [
    (["render_resource=tpu"], "each render actor (render_resource='tpu') asks for {CPU: 1, tpu: 1}, which no node of the Ray cluster"),
    (["pretrain.workers=2", "pretrain.batch_size=16"], "asks for 2 x {CPU: 4, GPU: 1} = 8 CPU in all"),
    (["pretrain.cpus_per_worker=8"], "asks for {CPU: 8, GPU: 1}, which no node"),
])
def test_requests_no_node_type_can_provide_are_refused_before_work(fake_cluster, s3_bucket, args, message):
    proc = _tune(fake_cluster, "budget=paper", f"storage={s3_bucket}/raysweep", *SMALL, *args, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "node types the autoscaler may launch: gpu" in lines[0], "the error names what the cluster can provide"


def test_local_storage_on_a_cluster_that_adds_machines_is_refused(fake_cluster, tmp_path):
    proc = _tune(fake_cluster, "budget=paper", f"storage={tmp_path / 'runs'}", *SMALL, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a local directory, but its autoscaler may add nodes on other machines" in lines[0], lines
    assert "storage=s3://" in lines[0]
    assert not (tmp_path / "runs").exists()
