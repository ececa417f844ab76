"""Tune callbacks of the sweep's driver (module level: Tune pickles them with the experiment, so a
restored sweep keeps them)."""

from __future__ import annotations

from ray.tune import Callback

from raysweep.metrics import record_trial_finished, record_trial_result


class SweepMetrics(Callback):
    """Feeds raysweep's Ray metrics (see raysweep.metrics) from every trial result."""

    def __init__(self, experiment: str):
        self.experiment = experiment

    def on_trial_result(self, iteration, trials, trial, result, **info):
        record_trial_result(self.experiment, trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        record_trial_finished(self.experiment)
