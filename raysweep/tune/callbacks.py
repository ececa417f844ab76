"""Tune callbacks of the sweep's driver (module level: Tune pickles them with the experiment, so a
restored sweep keeps them)."""

from __future__ import annotations

from ray.tune import Callback

from raysweep.metrics import record_trial_finished, record_trial_result
from raysweep.worker import TRAIN_PLACEMENT_GROUP
from raysweep.ray_private import release_placement_group


class SweepMetrics(Callback):
    """Feeds raysweep's Ray metrics (see raysweep.metrics) from every trial result."""

    def __init__(self, experiment: str):
        self.experiment = experiment

    def on_trial_result(self, iteration, trials, trial, result, **info):
        record_trial_result(self.experiment, trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        record_trial_finished(self.experiment, trial.trial_id, trial.last_result or {})


class ReleaseTrainResources(Callback):
    """Frees the worker-group placement group of a trial that Tune stopped mid-run.

    Tune stops a trial (an ASHA decision, say) by ending its trainable, which takes the trial's
    Train controller with it. The worker group's placement group belongs to the sweep's job, not
    to the controller: Ray Train relies on a cleaner actor to remove it, and on this machine a
    group now and then outlived its run that way, holding its CPU while the next trial's workers
    waited for it forever. Each trial reports its group's id; when a trial ends, a group still
    standing is removed. (A trial that finished normally has removed its own already.)"""

    def __init__(self):
        self._groups: dict[str, str] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(TRAIN_PLACEMENT_GROUP):
            self._groups[trial.trial_id] = result[TRAIN_PLACEMENT_GROUP]

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._release(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._release(trial.trial_id)

    def _release(self, trial_id: str) -> None:
        group = self._groups.pop(trial_id, None)
        if group:
            release_placement_group(group)

