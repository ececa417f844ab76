"""``run_score(cfg)``: fine-tune or probe a checkpoint (or scratch) through the one driver
(:func:`raysweep.launch.run`)."""

from __future__ import annotations

from raysweep.config import Config, ConfigError

RESULT_KEYS = ("epoch", "top1", "top5", "best_top1", "train_loss")


def run_score(cfg: Config, log=print) -> dict:
    """Fine-tune or probe on Ray Train; return the final metrics (``top1``, ``top5``, ``best_top1``)."""
    from raysweep.launch import device_override, run
    from raysweep.preflight import preflight

    capacity = preflight([cfg], pretrain=False, score=True)
    outcome = run(cfg, capacity, pretrain=False, score=True, log=log, device=device_override())
    metrics = {k: v for k, v in outcome.metrics.items() if k in RESULT_KEYS}
    if "top1" not in metrics:
        raise ConfigError(f"scoring reported no evaluation (score.epochs={cfg.score.epochs})")
    s = cfg.score
    return {**metrics, "dataset": s.dataset, "mode": s.mode, "probe_blocks": s.probe_blocks if s.mode == "linear_probe" else None,
            "checkpoint": s.checkpoint, "model": cfg.model.name}
