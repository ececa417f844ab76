"""One trial of a sweep: the Tune function trainable. It resolves the trial's configuration and
calls the one driver (:func:`raysweep.launch.run`) with Tune's report callback: the dataset is
rendered or reused, the pre-trained model is reused from the store or pre-trained (once, also when
other trials need the same model at the same time), then scored, all in ONE Ray Train run (the
Train V2 pattern). Every Train report reaches Tune: during pre-training the loss and the quick
downstream probe (``probe_top1``, ASHA's signal), at the end the downstream ``top1``.
"""

from __future__ import annotations


def run_trial(params: dict, experiment, capacity, device: str | None = None) -> None:
    from ray.tune.integration.ray_train import TuneReportCallback

    from raysweep.launch import run

    cfg = experiment.config_for(experiment.with_seed(params))
    sweep = experiment.cfg.sweep
    run(cfg, capacity, pretrain=True, score=True, probe_every=cfg.sweep.probe_every, callbacks=[TuneReportCallback()],
        drivers_cpus=sweep.trial_cpus * sweep.max_concurrent_trials, log=lambda m: None, render_progress=False, device=device)
