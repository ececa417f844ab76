"""``pretrain(cfg)``: one LPCE pre-training through the one driver (:func:`raysweep.launch.run`).

The pre-trained model is content-addressed: ``{storage}/pretrain/{key}``, the hash of exactly what
determines its weights. A complete one is reused (the command then starts no Ray at all); an
interrupted one is resumed by Ray Train from its latest checkpoint when the same command runs again.
"""

from __future__ import annotations

from raysweep.core import checkpoint
from raysweep.config import Config, ConfigError


def pretrain(cfg: Config, log=print) -> str:
    """Pre-train (or reuse) the model of ``cfg``; return the pre-trained model's URI."""
    from raysweep.launch import device_override, run
    from raysweep.preflight import preflight

    if cfg.pretrain.steps < 1:
        raise ConfigError("pretrain.steps=0: nothing to pre-train; allowed: >= 1 (use score.checkpoint=none for scratch)")
    capacity = preflight([cfg], pretrain=True, score=False)
    outcome = run(cfg, capacity, pretrain=True, score=False, log=log, device=device_override())
    log(f"pre-trained model {outcome.model_uri}")
    return outcome.model_uri


def read_checkpoint_state(uri: str) -> dict:
    return checkpoint.read_state(uri)
