"""Run a sweep with Ray Tune: grid, random or Optuna (TPE) search; FIFO or ASHA scheduling;
repeats over seeds; resumed by rerunning the same command (Tuner.restore)."""

from __future__ import annotations

import json

from raysweep.config import ConfigError
from raysweep.storage import is_s3, join, read_bytes, atomic_write
from raysweep.experiment import EXPERIMENT_FILE, Experiment
from raysweep.tune.space import param_space



def run_dir(exp: Experiment) -> str:
    return join(exp.cfg.storage, "sweeps", exp.cfg.name)


def _searcher(exp: Experiment):
    from ray.tune.search import ConcurrencyLimiter, Repeater

    sweep = exp.cfg.sweep
    if sweep.search != "optuna":
        return None
    searcher = _downstream_optuna()(metric=sweep.metric, mode="max", seed=exp.cfg.seed)
    if len(sweep.seeds) > 1:
        searcher = Repeater(searcher, repeat=len(sweep.seeds), set_index=True)
    return ConcurrencyLimiter(searcher, max_concurrent=sweep.max_concurrent_trials * max(1, len(sweep.seeds)))


def _downstream_optuna():
    from ray.tune.search.optuna import OptunaSearch

    class DownstreamOptuna(OptunaSearch):
        """TPE on the final downstream metric: pre-training's intermediate reports (loss, quick
        probe) do not carry it and are not Optuna's business."""

        def on_trial_result(self, trial_id, result):
            if self.metric in result:
                super().on_trial_result(trial_id, result)

    return DownstreamOptuna


def _scheduler(exp: Experiment):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    sweep = exp.cfg.sweep
    if sweep.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        # max_t past the last step: ASHA stops a trial that reaches max_t, and a trial at its last
        # pre-training step still has its scoring to do (its results keep step = steps)
        metric="probe_top1", mode="max", time_attr="step", max_t=max(1, exp.cfg.pretrain.steps) + 1,
        grace_period=sweep.grace_period or 2 * sweep.probe_every, reduction_factor=sweep.reduction_factor,
    )


def _num_samples(exp: Experiment) -> int:
    sweep = exp.cfg.sweep
    if sweep.search == "grid":
        return 1
    return sweep.num_samples * (len(sweep.seeds) if sweep.search == "optuna" else 1)


def _check_resume(exp: Experiment, path: str) -> bool:
    """True when this sweep already exists (and is the same sweep: same fingerprint)."""
    try:
        stored = json.loads(read_bytes(join(path, EXPERIMENT_FILE)))
    except FileNotFoundError:
        return False
    if stored.get("fingerprint") != exp.fingerprint:
        raise ConfigError(
            f"a different sweep named {exp.cfg.name!r} already exists at {path}; choose another name=... (or delete it)"
        )
    return True


def run_sweep(exp: Experiment, log=print) -> str:
    """Run (or resume) the sweep; write its results; return its run directory."""
    from ray import tune

    from raysweep import ray_private
    from raysweep.cluster import device_override
    from raysweep.launch import storage_args
    from raysweep.preflight import preflight
    from raysweep.report.results import trial_rows, write_outputs
    from raysweep.runtime import ensure_ray
    from raysweep.tune.trial import run_trial

    ray_private.set_env_defaults()
    sweep = exp.cfg.sweep
    capacity = preflight(exp.configs_to_check(), pretrain=True, score=True, sweep=sweep)
    path = run_dir(exp)
    resuming = _check_resume(exp, path)
    ensure_ray()
    ray_private.pin_autoscaling_coordinator()
    trainable = tune.with_resources(tune.with_parameters(run_trial, experiment=exp, capacity=capacity, device=device_override()),
                                    {"cpu": sweep.trial_cpus})
    storage = storage_args(join(exp.cfg.storage, "sweeps"))
    restore_path = f"s3://{storage['storage_path']}/{exp.cfg.name}" if is_s3(exp.cfg.storage) else path
    if resuming and tune.Tuner.can_restore(restore_path, storage_filesystem=storage.get("storage_filesystem")):
        log(f"resuming {path}")
        tuner = tune.Tuner.restore(restore_path, trainable=trainable, resume_errored=True,
                                   storage_filesystem=storage.get("storage_filesystem"))
    else:
        atomic_write(join(path, EXPERIMENT_FILE), json.dumps(exp.record(), default=str, indent=1).encode())
        from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

        from raysweep.tune.callbacks import ReleaseTrainResources, SweepMetrics

        loggers = [CSVLoggerCallback(), JsonLoggerCallback()]  # always: the results and the report read them
        if "tensorboard" in sweep.loggers:
            loggers.append(TBXLoggerCallback())
        if {"mlflow", "wandb"} & set(sweep.loggers):
            from raysweep.tune.trackers import callbacks as tracker_callbacks

            loggers += tracker_callbacks(exp)

        tuner = tune.Tuner(
            trainable,
            param_space=param_space(exp),
            tune_config=tune.TuneConfig(
                search_alg=_searcher(exp), scheduler=_scheduler(exp), num_samples=_num_samples(exp),
                max_concurrent_trials=sweep.max_concurrent_trials,
            ),
            run_config=tune.RunConfig(
                name=exp.cfg.name,
                failure_config=tune.FailureConfig(max_failures=1),
                callbacks=[*loggers, SweepMetrics(exp.cfg.name), ReleaseTrainResources()],
                **storage,
            ),
        )
    results = tuner.fit()
    rows = trial_rows(results, exp)
    write_outputs(path, rows, exp)
    from raysweep.report.page import write_report
    from raysweep.report.results import comparison_lines

    log(f"report: {write_report(path)}")
    for line in comparison_lines(rows, exp):  # the sweep's answer, with its 95 % intervals, last
        log(line)
    failed = [r for r in results if r.error]
    if failed:
        first = " ".join(str(failed[0].error).split())[:300]
        raise SweepFailed(path, f"{len(failed)} of {len(rows)} trials failed (results so far in {path}); first error: {first}")
    return path


class SweepFailed(RuntimeError):
    """Some trials errored: the results of the others are written, the command exits non-zero."""

    def __init__(self, run_dir: str, message: str):
        super().__init__(message)
        self.run_dir = run_dir
