"""A sweep's run directory as the report reads it, finished or in progress, local or ``s3://``:
the experiment (``experiment.json``) and, per Tune trial directory, its parameters
(``params.json``), every result it reported so far (``result.json``, one JSON object per line) and
whether it failed (``error.txt``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from raysweep.config import ConfigError
from raysweep.experiment import EXPERIMENT_FILE, Experiment
from raysweep.storage import is_s3, join, listdir, read_bytes



@dataclass
class TrialRecord:
    """One trial as stored by Tune (the shape ``trial_rows`` reads, like a Tune Result)."""

    path: str
    config: dict
    history: list[dict] = field(default_factory=list)  # every reported result, in order
    error: str | None = None

    @property
    def metrics(self) -> dict:
        return self.history[-1] if self.history else {}


@dataclass
class RunRecord:
    run_dir: str
    experiment: Experiment
    trials: list[TrialRecord]

    @property
    def storage(self) -> str:
        """The storage root the sweep used: the run directory is ``{storage}/sweeps/{name}``
        (derived from where the run is, so a copied or moved run directory still finds its datasets)."""
        return self.run_dir.rstrip("/").rsplit("/", 2)[0]


def _read_text(uri: str) -> str | None:
    try:
        return read_bytes(uri).decode()
    except (FileNotFoundError, NotADirectoryError):
        return None


def load_run(run_dir: str) -> RunRecord:
    """Read a run directory; a one-line ConfigError if it is not one."""
    run_dir = run_dir.rstrip("/") if is_s3(run_dir) else os.path.abspath(os.path.expanduser(run_dir))
    try:
        text = _read_text(join(run_dir, EXPERIMENT_FILE))
    except Exception as e:  # noqa: BLE001 - unreachable endpoint, bad credentials, unreadable directory: one line
        from raysweep.storage import _reason

        raise ConfigError(f"cannot read the run directory {run_dir}: {_reason(e)}") from None
    if text is None:
        where = "" if is_s3(run_dir) else " (a sweep's run directory is printed as the last line of python -m raysweep.tune)"
        raise ConfigError(f"{run_dir} is not a sweep's run directory: it has no {EXPERIMENT_FILE}{where}")
    experiment = Experiment.from_record(json.loads(text))
    trials = []
    for name in listdir(run_dir):
        params = _read_text(join(run_dir, name, "params.json"))
        if params is None:
            continue
        history = [json.loads(line) for line in (_read_text(join(run_dir, name, "result.json")) or "").splitlines() if line.strip()]
        trials.append(TrialRecord(path=join(run_dir, name), config=json.loads(params), history=history,
                                  error=_read_text(join(run_dir, name, "error.txt"))))
    return RunRecord(run_dir=run_dir, experiment=experiment, trials=trials)
