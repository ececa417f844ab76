"""Sweeps through the real CLI and a real local Ray: grid, resume after SIGKILL, Optuna, ASHA,
and bad configurations rejected before Ray starts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

TINY = """
name: {name}
storage: {storage}
data: {{L: 8, size: 32, pad: 2, iterations: 5000}}
model: {{img_size: 16, patch_size: 4, depth: 2, embed_dim: 32, num_heads: 2, drop_path: 0.0}}
pretrain: {{steps: 20, batch_size: 32, report_every: 10, checkpoint_every: 10}}
score: {{dataset: digits, epochs: 2, batch_size: 128, lr: 0.8, warmup_epochs: 0, eval_every: 1}}
sweep: {{probe_every: 10, probe_train: 200, probe_test: 100}}
"""


def experiment(tmp_path: Path, name: str, extra: dict | None = None) -> Path:
    doc = yaml.safe_load(TINY.format(name=name, storage=tmp_path / "runs"))
    for key, value in (extra or {}).items():
        node = doc
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def tune_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raysweep.tune", *map(str, args)], capture_output=True, text=True, timeout=timeout)


class Cli:
    """``python -m raysweep.tune`` in the background, its output going to files: a pipe that nobody
    reads while the test polls would fill up and block the command."""

    def __init__(self, tmp_path: Path, *args: str, env: dict | None = None):
        self.out, self.err = tmp_path / f"cli-{time.monotonic_ns()}.out", tmp_path / f"cli-{time.monotonic_ns()}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "raysweep.tune", *map(str, args)], stdout=out, stderr=err,
                                         text=True, env=env)

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout: int = 900) -> tuple[int, str, str]:
        self.proc.wait(timeout=timeout)
        return self.proc.returncode, self.out.read_text(), self.err.read_text()

    def stderr(self) -> str:
        return self.err.read_text()


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "results.csv") as f:
        return list(csv.DictReader(f))


def test_two_point_grid_produces_both_rows(ray_cluster, tmp_path):
    exp = experiment(tmp_path, "grid2", {"data.delta": {"grid": [0.05, 0.2]}})
    proc = tune_cli(exp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir == tmp_path / "runs" / "sweeps" / "grid2"
    table = rows(run_dir)
    assert sorted(float(r["data.delta"]) for r in table) == [0.05, 0.2]
    assert all(r["status"] == "done" and 0.0 <= float(r["top1"]) <= 100.0 for r in table)
    assert all(float(r["pretrain_loss"]) > 0 and r["probe_top1"] for r in table)
    md = (run_dir / "results.md").read_text()
    assert "| data.delta | downstream top-1 (%)" in md and md.count("\n| 0.") == 2
    best = yaml.safe_load((run_dir / "best.yaml").read_text())
    assert best["config"]["data"]["delta"] in (0.05, 0.2) and best["config"]["data"]["L"] == 8
    # best.yaml names the best trial's pre-trained model (what python -m raysweep.export takes)
    best_model = Path(best["checkpoint"])
    assert best_model.parent == tmp_path / "runs" / "pretrain" and (best_model / "state.json").exists()
    assert yaml.safe_load((best_model / "state.json").read_text())["config"]["data"]["delta"] == best["config"]["data"]["delta"]
    assert (run_dir / "plots" / "top1_vs_data_delta.png").read_bytes()[:4] == b"\x89PNG"
    assert list(run_dir.glob("run_trial_*/events.out.tfevents.*")), "TensorBoard logs as Tune writes them"
    for result in run_dir.glob("run_trial_*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        assert lines[-1].get("finished") and not any(r.get("done") for r in lines), \
            "a trial ends when its Train run returns, not on a result saying done=True (Tune then kills the run mid-shutdown)"


def test_a_trial_trainer_starts_no_dataset_actor_unless_given_datasets(ray_cluster, tmp_path):
    # Ray Train starts a DatasetManager actor at every worker-group start, datasets or not; trials
    # read their data themselves, so theirs leaves it out (one process less per trial)
    import ray.data
    import ray.train
    from ray.train.torch import TorchTrainer

    from raysweep.ray_private import lean_trainer_class

    TrialTrainer = lean_trainer_class()

    kwargs = {"scaling_config": ray.train.ScalingConfig(num_workers=1),
              "run_config": ray.train.RunConfig(name="callbacks", storage_path=str(tmp_path))}
    names = lambda trainer: {type(c).__name__ for c in trainer._create_default_callbacks()}  # noqa: E731
    assert "DatasetsCallback" in names(TorchTrainer(lambda c: None, **kwargs)), "Ray's default, which this works around"
    trial = names(TrialTrainer(lambda c: None, **kwargs))
    assert "DatasetsCallback" not in trial and {"PlacementGroupCleanerCallback", "BackendSetupCallback"} <= trial
    fed = TrialTrainer(lambda c: None, datasets={"train": ray.data.range(3)}, **kwargs)
    assert "DatasetsCallback" in names(fed), "a trainer given datasets keeps it"


def test_a_stopped_trials_worker_group_is_released(ray_cluster):
    import ray
    from ray.util.placement_group import placement_group, placement_group_table

    from raysweep.ray_private import release_placement_group

    group = placement_group([{"CPU": 1}])
    ray.get(group.ready(), timeout=60)
    assert release_placement_group(group.id.hex()) is True
    deadline = time.time() + 30
    while placement_group_table(group)["state"] != "REMOVED" and time.time() < deadline:
        time.sleep(0.2)
    assert placement_group_table(group)["state"] == "REMOVED"
    assert release_placement_group(group.id.hex()) is False, "a group already gone is left alone"


def _finished_trials(run_dir: Path) -> dict[str, list[dict]]:
    """Trial directory -> the results it has logged, for trials that reported their end."""
    done = {}
    for result in run_dir.glob("run_trial_*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if any(r.get("finished") for r in lines):
            done[result.parent.name] = lines
    return done


def test_killed_sweep_resumes_without_redoing_finished_trials(ray_cluster, tmp_path):
    exp = experiment(tmp_path, "resume", {"data.delta": {"grid": [0.05, 0.1, 0.2]}})
    run_dir = tmp_path / "runs" / "sweeps" / "resume"
    cli = Cli(tmp_path, exp)
    deadline = time.time() + 600
    while time.time() < deadline and cli.poll() is None and not _finished_trials(run_dir):
        time.sleep(0.5)
    finished = _finished_trials(run_dir)
    assert finished, f"no trial finished: {cli.stderr()[-3000:]}"
    os.kill(cli.proc.pid, signal.SIGKILL)
    cli.proc.wait()
    time.sleep(2)
    rerun = tune_cli(exp)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "resuming" in rerun.stderr
    after = _finished_trials(run_dir)
    for trial, before in finished.items():
        # no step of a finished trial runs again; the one thing a kill can cost is a repeat of its final
        # report (when the driver died after that report but before Tune recorded the trial as done)
        assert after[trial][: len(before)] == before, f"{trial}'s history changed"
        repeats = after[trial][len(before) :]
        assert all(r.get("finished") for r in repeats) and len(repeats) <= 1, f"{trial} was run again: {repeats}"
        assert all(r["top1"] == before[-1]["top1"] and r["epoch"] == before[-1]["epoch"] for r in repeats)
    table = rows(run_dir)
    assert len(table) == 3 and all(r["status"] == "done" for r in table)


def test_optuna_search_completes(ray_cluster, tmp_path):
    exp = experiment(tmp_path, "tpe", {"data.delta": {"uniform": [0.05, 0.3]}, "sweep.search": "optuna", "sweep.num_samples": 2})
    proc = tune_cli(exp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = rows(Path(proc.stdout.strip().splitlines()[-1]))
    assert len(table) == 2
    assert all(0.05 <= float(r["data.delta"]) <= 0.3 for r in table)
    assert all(r["status"] == "done" for r in table)
    # the values are Optuna's: TPE seeded with the experiment's seed draws exactly these (random
    # search, or any other sampler, would not)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0), direction="maximize")
    expected = []
    for _ in range(2):
        trial = study.ask({"data.delta": optuna.distributions.FloatDistribution(0.05, 0.3)})
        expected.append(trial.params["data.delta"])
        study.tell(trial, 0.0)
    assert sorted(float(r["data.delta"]) for r in table) == pytest.approx(sorted(expected), rel=1e-9)


def test_asha_schedules_on_the_quick_probe(ray_cluster, tmp_path):
    # three trials, one at a time, the first with the widest features: at the first rung (step 10)
    # ASHA keeps the better half, so the two later, narrower ones (a 4- and a 2-dimensional quick
    # probe: ~20 % against ~35 % top-1 on digits) are stopped there; FIFO would run them to the end
    exp = experiment(tmp_path, "asha", {"variants": [{"label": "wide"},
                                                     {"label": "narrow", "model.embed_dim": 4, "model.num_heads": 1},
                                                     {"label": "narrowest", "model.embed_dim": 2, "model.num_heads": 1}],
                                        "sweep.scheduler": "asha", "sweep.grace_period": 10, "pretrain.steps": 30})
    proc = tune_cli(exp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = rows(Path(proc.stdout.strip().splitlines()[-1]))
    assert len(table) == 3
    assert all(r["status"] in ("done", "stopped") for r in table)
    assert any(r["status"] == "done" for r in table)
    assert all(r["probe_top1"] for r in table), "every trial reported the probe ASHA decides on"
    status = {r["variant"]: r["status"] for r in table}
    assert status == {"wide": "done", "narrow": "stopped", "narrowest": "stopped"}, status
    probes = {r["variant"]: float(r["probe_top1"]) for r in table}
    assert probes["narrowest"] < probes["wide"] and probes["narrow"] < probes["wide"], probes


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra,message",
    [
        ({"data.delta": {"grid": [0.1, 1.5]}}, "data.delta=1.5 is out of range; allowed: the open interval (0, 1)"),
        ({"data.detla": 0.1}, "unknown config key 'data.detla'; did you mean 'data.delta'?"),
        ({"data.sigma": {"uniform": [1.0, 7.0]}}, "data.sigma=7.0 is out of range"),
        ({"sweep.search": "bayes"}, "sweep.search='bayes' is not allowed; choose one of: grid, random, optuna"),
        ({"sweep.scheduler": "asha", "sweep.probe_every": 0}, "sweep.scheduler=asha needs sweep.probe_every > 0"),
        ({"variants": [{"label": "x", "pretrain.stepz": 0}]}, "unknown config key 'pretrain.stepz'"),
        # was accepted, then crashed inside Tune ("empty head and zero worker bundles")
        ({"sweep.trial_cpus": 0}, "sweep.trial_cpus=0.0 is out of range; allowed: > 0"),
        ({"score.extra_probes": [3, 0]}, "score.extra_probes[]=0 is out of range; allowed: >= 1"),
        ({"study": "table5"}, "study='table5' is not allowed; choose one of: baselines, delta, sigma, L, real_image, linear_probe"),
        ({"render_resource": "CPU"}, "render_resource='CPU' is not allowed; give a custom resource name"),
        ({"score.dataset": "cifar10", "score.data_root": "/nonexistent/cifar"}, "score.data_root='/nonexistent/cifar' does not exist"),
    ],
)
def test_bad_configs_are_rejected_before_ray_starts(tmp_path, extra, message):
    proc = tune_cli(experiment(tmp_path, "bad", extra), timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_bad_command_lines(tmp_path):
    exp = experiment(tmp_path, "cli", {})
    for args, message in [
        ((tmp_path / "missing.yaml",), "does not exist"),
        ((exp, "budget=paper"), "budget='paper' is not defined in the experiment"),
        ((exp, "data.L=1"), "data.L=1 is out of range; allowed: >= 2"),
        (("data.L=3",), "give an experiment file first"),
    ]:
        proc = tune_cli(*args, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr[-1500:])


def test_variants_with_labels_and_a_failing_sweep_exits_non_zero(ray_cluster, tmp_path):
    """Regression: a variant's `label` reached the schema (every labelled trial failed), and a
    sweep whose trials failed still exited 0."""
    # a variant whose downstream data does not exist is refused before Ray starts (one line, exit 2) ...
    missing = experiment(tmp_path, "missing", {"variants": [{"label": "scratch", "pretrain.steps": 0},
                                                            {"label": "broken", "pretrain.steps": 0, "score.dataset": "imagefolder",
                                                             "score.data_root": str(tmp_path / "no-such-folder")}]})
    refused = tune_cli(missing)
    assert refused.returncode == 2 and str(tmp_path / "no-such-folder") in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()
    # ... and so is a probe deeper than the 2-block model (score.probe_blocks=9: allowed 1..2) ...
    deep = experiment(tmp_path, "deep", {"variants": [{"label": "scratch", "pretrain.steps": 0},
                                                      {"label": "deep", "pretrain.steps": 0, "score.mode": "linear_probe",
                                                       "score.probe_blocks": 9}]})
    refused = tune_cli(deep)
    assert refused.returncode == 2 and "score.probe_blocks=9 is out of range" in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "runs").exists()
    # ... so the failing trial here fails at run time: CIFAR batches whose metadata is fine (what the
    # driver checks) but whose data is corrupt (what only loading them finds)
    cifar = tmp_path / "cifar-10-batches-py"
    cifar.mkdir()
    import pickle

    (cifar / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (cifar / name).write_bytes(b"not a pickle")
    exp = experiment(tmp_path, "labels", {"variants": [{"label": "scratch", "pretrain.steps": 0},
                                                       {"label": "broken", "pretrain.steps": 0, "score.dataset": "cifar10",
                                                        "score.data_root": str(cifar)}],
                                          "score.epochs": 1})
    proc = tune_cli(exp)
    run_dir = tmp_path / "runs" / "sweeps" / "labels"
    by_variant = {r["variant"]: r for r in rows(run_dir)}
    assert by_variant["scratch"]["status"] == "done", proc.stderr[-3000:]
    assert by_variant["broken"]["status"] == "error"  # the corrupt batches fail inside the trial
    assert proc.returncode == 1
    assert "error: 1 of 2 trials failed" in proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(run_dir)


def test_the_quickstart_compares_1p_frac_with_scratch_offline_and_its_paper_budget_is_the_release():
    """The README's main command: 1p-frac against scratch over >= 2 seeds, on digits (bundled: no
    ../shared, no download), a CNN that learns the task on a CPU; budget=paper the release's recipe."""
    from raysweep.config import load_config, to_dict
    from raysweep.experiment import load_experiment
    from raysweep.report.stats import baseline_of

    path = str(Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml")
    small = load_experiment(path, [])
    assert len(small.cfg.sweep.seeds) >= 2 and small.swept_keys() == ["variant", "seed"]
    baseline = baseline_of(small)
    assert (baseline.key, baseline.value) == ("variant", "scratch")
    scratch, onepfrac = (small.config_for({"variant": v, "seed": 0}) for v in (0, 1))
    assert scratch.pretrain.steps == 0 and onepfrac.pretrain.steps > 0 and onepfrac.data.source == "1p-frac"
    for cfg in (scratch, onepfrac):
        assert (cfg.score.dataset, cfg.score.data_root, cfg.score.checkpoint) == ("digits", None, None)
        assert cfg.model.name.startswith("resnet") and cfg.model.img_size == 32
    paper = load_experiment(path, ["budget=paper"])
    release, defaults = to_dict(paper.config_for({"variant": 1, "seed": 0})), to_dict(load_config([]))
    assert release["model"] == defaults["model"] == {**release["model"], "name": "vit_tiny_patch16_224", "img_size": 224}
    resources = ("use_gpu", "cpus_per_worker", "report_every", "checkpoint_every")
    assert {k: v for k, v in release["pretrain"].items() if k not in resources} == \
        {k: v for k, v in defaults["pretrain"].items() if k not in resources}, "the release's pre-training recipe"
    assert {k: v for k, v in release["score"].items() if k not in ("eval_every", "probe_blocks")} == \
        {**{k: v for k, v in defaults["score"].items() if k not in ("eval_every", "probe_blocks")}, "dataset": "cifar100"}
    assert {k: release["data"][k] for k in ("L", "size", "iterations", "instances", "framing", "sigma_jitter")} == \
        {"L": 1000, "size": 512, "iterations": 100_000, "instances": 1, "framing": "release", "sigma_jitter": 0.1}
    assert paper.config_for({"variant": 0, "seed": 0}).pretrain.steps == 0, "still against scratch"
