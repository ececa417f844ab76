"""Experiment trackers (``sweep.loggers``): a real sweep logs one MLflow run and one W&B run per
trial, read back offline with the trackers' own client and record format; no credential reaches
any file; a tracker that cannot take the runs is refused in one line before Ray starts."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from test_tune import experiment, rows

TRACKER_ENV_PREFIXES = ("MLFLOW_", "WANDB_")


def _env(**extra: str) -> dict[str, str]:
    """This machine's environment without any MLflow/W&B settings of its own, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(TRACKER_ENV_PREFIXES)}
    env.update(extra)
    return env


def _tune(*args, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raysweep.tune", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _wandb_records(path: Path) -> list:
    """The records of a W&B run file (``run-ID.wandb``): W&B's LevelDB-style log of its own
    protobuf ``Record`` messages (a 7-byte header, then 32 KiB blocks of checksummed chunks).
    wandb 0.31 writes no ``wandb-summary.json`` for offline runs: this file is the run."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0), data[:7]
    records, pos, chunk = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or LAST of FIRST/MIDDLE.../LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def _items(items) -> dict:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


def test_mlflow_and_wandb_log_one_run_per_trial_with_its_config_and_metrics(ray_cluster, tmp_path, monkeypatch):
    store, wandb_dir = tmp_path / "mlruns", tmp_path / "wandb"
    secrets = {"WANDB_API_KEY": f"wandb-secret-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}",  # W&B wants >= 40 characters
               "MLFLOW_TRACKING_TOKEN": f"mlflow-token-{uuid.uuid4().hex}",
               "MLFLOW_TRACKING_USERNAME": f"mlflow-user-{uuid.uuid4().hex}",
               "MLFLOW_TRACKING_PASSWORD": f"mlflow-password-{uuid.uuid4().hex}"}
    env = _env(MLFLOW_TRACKING_URI=store.as_uri(), MLFLOW_ALLOW_FILE_STORE="true", WANDB_MODE="offline", WANDB_DIR=str(wandb_dir),
               WANDB_SILENT="true", **secrets)
    exp = experiment(tmp_path, "trackers", {"data.delta": {"grid": [0.05, 0.2]},
                                            "sweep.loggers": ["tensorboard", "mlflow", "wandb"],
                                            "sweep.wandb_project": "raysweep-tests"})
    proc = _tune(exp, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    top1 = {float(r["data.delta"]): float(r["top1"]) for r in rows(run_dir)}
    assert sorted(top1) == [0.05, 0.2]
    assert list(run_dir.glob("run_trial_*/events.out.tfevents.*")), "tensorboard stays on beside the trackers"

    # MLflow: its file store, read with MLflow's own client; the experiment is named after the sweep
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=store.as_uri())
    runs = client.search_runs([client.get_experiment_by_name("trackers").experiment_id])
    assert len(runs) == 2, "one run per trial"
    by_delta = {float(run.data.params["data.delta"]): run for run in runs}
    assert sorted(by_delta) == [0.05, 0.2]
    for delta, run in by_delta.items():
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert params["model.embed_dim"] == "32" and params["data.L"] == "8" and params["pretrain.steps"] == "20", \
            "the trial's whole resolved configuration, not only the swept value"
        losses = client.get_metric_history(run.info.run_id, "loss")
        assert len({m.step for m in losses}) >= 2 and all(m.value > 0 for m in losses), "the pre-training loss as a history"
        assert {"train_top1", "lr", "probe_top1", "top5"} <= set(run.data.metrics)
        assert run.data.metrics["top1"] == pytest.approx(top1[delta]), "the final top-1, as results.csv has it"

    # W&B: one offline run per trial, in WANDB_DIR (the logging actors got the driver's WANDB_* settings)
    files = sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2, sorted(p.name for p in wandb_dir.rglob("*"))[:20]
    seen = set()
    for path in files:
        records = _wandb_records(path)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert run.project == "raysweep-tests" and run.run_group == "trackers"
        config = _items(run.config.update)
        assert config["model.embed_dim"] == 32 and config["data.L"] == 8
        history = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
        assert len([h for h in history if "loss" in h]) >= 2, "every pre-training report"
        assert history[-1]["top1"] == pytest.approx(top1[config["data.delta"]]) and history[-1]["finished"] is True
        assert [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"] == [0]
        seen.add(config["data.delta"])
    assert seen == {0.05, 0.2}

    # no credential in any file the sweep wrote: run directory (Tune's pickled callbacks included),
    # datasets, checkpoints, results, report, MLflow store, W&B runs
    written = [p for root in (tmp_path / "runs", store, wandb_dir) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(written) > 50
    for path in written:
        data = path.read_bytes()
        for name, secret in secrets.items():
            assert secret.encode() not in data, f"{name} written to {path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra,env,message",
    [
        ({"sweep.loggers": ["neptune"]}, {},
         "sweep.loggers=['neptune']: 'neptune' is not allowed; choose from: tensorboard, mlflow, wandb"),
        ({"sweep.loggers": ["mlflow"], "sweep.mlflow_tracking_uri": "http://127.0.0.1:{port}"}, {},
         "sweep.mlflow_tracking_uri 'http://127.0.0.1:{port}': not reachable (Connection refused)"),
        ({"sweep.loggers": ["mlflow"]}, {"MLFLOW_TRACKING_URI": "file://{tmp}/a-file/mlruns", "MLFLOW_ALLOW_FILE_STORE": "true"},
         "MLFLOW_TRACKING_URI 'file://{tmp}/a-file/mlruns' is not writable: {tmp}/a-file is a file, not a directory"),
        ({"sweep.loggers": ["mlflow"], "sweep.mlflow_tracking_uri": "foo://bar"}, {},
         "sweep.mlflow_tracking_uri 'foo://bar' has a scheme MLflow does not know ('foo'); MLflow takes: file,"),
        ({"sweep.loggers": ["wandb"]}, {"NETRC": "{tmp}/no-netrc", "WANDB_CONFIG_DIR": "{tmp}/no-wandb-config"},
         "sweep.loggers=['wandb'] needs W&B credentials: set WANDB_API_KEY or run `wandb login`"),
    ],
)
def test_unusable_trackers_are_refused_before_ray_starts(tmp_path, no_proxy, extra, env, message):
    (tmp_path / "a-file").write_text("not a directory")
    port = _free_port()  # nothing listens there
    fill = lambda text: text.format(tmp=tmp_path, port=port)  # noqa: E731
    extra = {k: fill(v) if isinstance(v, str) else v for k, v in extra.items()}
    proc = _tune(experiment(tmp_path, "bad", extra), env=_env(**{k: fill(v) for k, v in env.items()}), timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fill(message) in lines[0], lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_tracker_package_that_is_not_installed_is_refused_before_ray_starts(tmp_path):
    # `python -m raysweep.tune` in an interpreter where `import wandb` fails as for a package not installed
    code = "import runpy, sys; sys.modules['wandb'] = None; runpy.run_module('raysweep.tune', run_name='__main__')"
    exp = experiment(tmp_path, "nowandb", {"sweep.loggers": ["wandb"]})
    proc = subprocess.run([sys.executable, "-c", code, str(exp)], capture_output=True, text=True, env=_env(WANDB_MODE="offline"),
                          timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: sweep.loggers=['wandb'] needs the wandb package: pip install wandb "
                     "(or pip install 'raysweep[trackers]')"]
    assert not (tmp_path / "runs").exists()


def test_tracker_keys_are_one_setting_for_the_whole_sweep(tmp_path):
    from raysweep.config import ConfigError
    from raysweep.experiment import load_experiment

    exp = experiment(tmp_path, "keys", {"variants": [{"label": "a", "sweep.wandb_project": "x"}]})
    with pytest.raises(ConfigError, match=r"^variants\[0\] sets sweep.wandb_project, but it is one setting for the whole sweep$"):
        load_experiment(str(exp), [])
    with pytest.raises(ConfigError, match=r"sweep.loggers is a search space, .* written sweep.loggers=\[mlflow,wandb\]"):
        load_experiment(str(experiment(tmp_path, "grid", {})), ["sweep.loggers=mlflow,wandb"])
    listed = load_experiment(str(experiment(tmp_path, "list", {})), ["sweep.loggers=[mlflow,wandb]"])
    assert listed.cfg.sweep.loggers == ["mlflow", "wandb"]
    assert load_experiment(str(experiment(tmp_path, "default", {})), []).cfg.sweep.loggers == ["tensorboard"]


def test_an_mlflow_uri_with_credentials_is_not_a_config_key():
    from raysweep.config import ConfigError
    from raysweep.config.schema import SweepConfig

    with pytest.raises(ConfigError) as e:
        SweepConfig(loggers=["mlflow"], mlflow_tracking_uri="https://alice:s3cret@mlflow.example.org")
    assert "holds credentials" in str(e.value) and "s3cret" not in str(e.value) and "\n" not in str(e.value)


@contextlib.contextmanager
def _server_refusing_credentials():
    """An HTTP server on loopback answering every request 401, as a tracking server behind authentication does."""
    class Refuse(http.server.BaseHTTPRequestHandler):
        def _refuse(self):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _refuse

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_mlflow_destinations_are_checked_without_creating_anything(tmp_path, monkeypatch, http_root):
    from raysweep.config import ConfigError
    from raysweep.config.schema import SweepConfig
    from raysweep.preflight import check_trackers

    for var in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(var)

    def check(uri=None):
        check_trackers(SweepConfig(loggers=["mlflow"], mlflow_tracking_uri=uri))

    check(f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ConfigError, match="is a file store, which MLflow .* refuses unless MLFLOW_ALLOW_FILE_STORE=true"):
        check((tmp_path / "store").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check((tmp_path / "store").as_uri())
    with pytest.raises(ConfigError, match=r"/missing/mlflow.db' is not writable: the folder .*/missing does not exist"):
        check(f"sqlite:///{tmp_path}/missing/mlflow.db")
    base, _ = http_root  # a web server, but not MLflow's
    with pytest.raises(ConfigError, match=r"it answered HTTP 501 to an MLflow request; is it an MLflow tracking server\?"):
        check(base)
    with _server_refusing_credentials() as guarded:
        with pytest.raises(ConfigError, match=r"it refused the credentials \(HTTP 401\); set MLFLOW_TRACKING_USERNAME"):
            check(guarded)
    port = _free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:hunter2@127.0.0.1:{port}")
    with pytest.raises(ConfigError) as e:
        check()
    assert str(e.value) == f"MLFLOW_TRACKING_URI 'http://***@127.0.0.1:{port}': not reachable (Connection refused)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["www"], "the checks created nothing"


def test_tracker_callbacks_survive_tunes_pickling_without_credentials(tmp_path, monkeypatch):
    # Tune pickles the run's callbacks into the run directory, and a resumed sweep unpickles them
    from ray import cloudpickle

    from raysweep.experiment import load_experiment
    from raysweep.ray_private import mlflow_logger_class, wandb_logger_class
    from raysweep.tune.trackers import callbacks

    MLflowTrialLogger, WandbTrialLogger = mlflow_logger_class(), wandb_logger_class()

    secret = f"tracker-secret-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    for var in ("WANDB_API_KEY", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(var, secret)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://carol:{secret}@mlflow.example.org")
    exp = load_experiment(str(experiment(tmp_path, "pickled", {"sweep.loggers": ["mlflow", "wandb"]})), [])
    blob = cloudpickle.dumps(callbacks(exp))
    assert secret.encode() not in blob
    mlflow_logger, wandb_logger = cloudpickle.loads(blob)
    assert isinstance(mlflow_logger, MLflowTrialLogger) and isinstance(wandb_logger, WandbTrialLogger)
    assert mlflow_logger.tracking_uri is None, "MLflow reads MLFLOW_TRACKING_URI itself, at run time"
    assert mlflow_logger.experiment_name == "pickled" and wandb_logger.project == "pickled", "named after the sweep"
    assert mlflow_logger.params_of.args[0].fingerprint == exp.fingerprint
