"""The one checkpoint format, and the store of pre-trained models built on it.

A checkpoint is a directory (local, or ``s3://``) holding:

- ``model.pt``: the bare model's ``state_dict`` (never a DDP wrapper's);
- ``optimizer.pt``: the optimizer's state, in checkpoints a run resumes from (not in the store);
- ``state.json``: what the weights are: ``phase`` (``pretrain`` or ``score``), ``step`` or
  ``epoch``, the last ``metrics``, the resolved ``config``, ``num_classes``, the ``dataset`` URI,
  the ``model`` name, ``resumed_from`` and the optimizer's ``param_groups`` (parameter names and
  weight decay of each group).

Ray Train's checkpoints of a run are in this format, and so is every pre-trained model of the
store: ``{storage}/pretrain/{key}``, one directory per :func:`pretrain_key`, the hash of exactly
what determines the weights. ``state.json`` is written last, so a directory with one is complete;
a local store entry is built in a temporary directory and renamed into place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raysweep.config import ConfigError
from raysweep.storage import atomic_write, exists, filesystem, is_s3, join, read_bytes

if TYPE_CHECKING:
    import torch

    from raysweep.config import Config

MODEL, OPTIMIZER, STATE = "model.pt", "optimizer.pt", "state.json"
FORMAT = 1

#: pretrain.* keys that do not change the weights (bookkeeping and resources)
BOOKKEEPING = ("report_every", "checkpoint_every", "keep_checkpoints", "max_failures", "cpus_per_worker", "use_gpu",
               "in_memory_gb")


def pretrain_key(cfg: "Config", dataset_hash: str, accelerator: str, source: str = "memory") -> str:
    """The content address of a pre-trained model: the dataset's spec hash, the model, the
    pre-training recipe (everything but bookkeeping), the seed, the accelerator kind (``cpu``/
    ``gpu``: random streams and precision differ between them) and where its images come from
    (``memory``: sampled on the device; ``shards``/``render``: streamed in a seeded order, the
    latter with fresh instances or not)."""
    recipe = {k: v for k, v in dataclasses.asdict(cfg.pretrain).items() if k not in BOOKKEEPING}
    key = {"dataset": dataset_hash, "model": dataclasses.asdict(cfg.model), "pretrain": recipe, "seed": cfg.seed,
           "accelerator": accelerator}
    if source != "memory":
        key["input"] = source + ("+fresh" if source == "render" and cfg.data.fresh_instances else "")
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def store_uri(storage: str, key: str) -> str:
    return join(storage, "pretrain", key)


# --------------------------------------------------------------------------------------- writing


def bare(model: "torch.nn.Module") -> "torch.nn.Module":
    """The model inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def param_groups(model: "torch.nn.Module", optimizer) -> list[dict]:
    """Each optimizer group's weight decay and parameter names (of the bare model)."""
    names = {id(p): n for n, p in bare(model).named_parameters()}
    return [{"weight_decay": g.get("weight_decay", 0.0), "params": sorted(names.get(id(p), "?") for p in g["params"])}
            for g in optimizer.param_groups]


def save(directory: str, model: "torch.nn.Module", state: dict[str, Any], optimizer=None) -> str:
    """Write a checkpoint into the local ``directory`` (state.json last); return it."""
    import torch

    os.makedirs(directory, exist_ok=True)
    torch.save(bare(model).state_dict(), os.path.join(directory, MODEL))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), os.path.join(directory, OPTIMIZER))
    with open(os.path.join(directory, STATE), "w") as f:
        json.dump({"format": FORMAT, **state}, f, indent=1, default=str)
    return directory


def publish(directory: str, uri: str) -> None:
    """Copy the local checkpoint ``directory`` (without its optimizer state) to ``uri`` so that a
    reader sees a whole checkpoint or none. A complete entry already there is left alone: whoever
    published first wins, and equal keys mean equal weights."""
    if is_complete(uri):
        return
    if is_s3(uri):
        atomic_write(join(uri, MODEL), Path(directory, MODEL).read_bytes())
        atomic_write(join(uri, STATE), Path(directory, STATE).read_bytes())  # last: marks it complete
        return
    target = Path(filesystem(uri)[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        for name in (MODEL, STATE):
            shutil.copyfile(os.path.join(directory, name), tmp / name)
        try:
            os.rename(tmp, target)
        except OSError:  # published meanwhile by another run (rename onto a non-empty directory)
            if not is_complete(uri):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------- reading


def is_complete(uri: str) -> bool:
    try:
        return exists(join(uri, STATE))
    except Exception:  # noqa: BLE001 - unreachable storage reads as absent here; readers say why
        return False


def read_state(uri: str, key: str = "score.checkpoint") -> dict:
    """``state.json`` of a checkpoint (local or s3://), or a one-line error naming ``key``."""
    try:
        return json.loads(read_bytes(join(uri, STATE)))
    except FileNotFoundError:
        raise ConfigError(f"{key}={uri!r} is not a raysweep checkpoint (needs {STATE} and {MODEL})") from None
    except Exception as e:  # noqa: BLE001 - unreachable storage, corrupt JSON
        raise ConfigError(f"{key}={uri!r} cannot be read: {type(e).__name__}: {' '.join(str(e).split())[:160]}") from None


def read_weights(uri: str, key: str = "score.checkpoint") -> dict:
    """The model's ``state_dict`` (on the CPU) of a checkpoint (local or s3://)."""
    import torch

    try:
        return torch.load(io.BytesIO(read_bytes(join(uri, MODEL))), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{key}={uri!r} is not a raysweep checkpoint (needs {STATE} and {MODEL})") from None
    except Exception as e:  # noqa: BLE001 - unreachable storage, corrupt files
        raise ConfigError(f"{key}={uri!r} cannot be read: {type(e).__name__}: {' '.join(str(e).split())[:160]}") from None


def resume(directory: str, model: "torch.nn.Module", optimizer, device) -> dict:
    """Load a local checkpoint ``directory`` into ``model`` (bare or wrapped) and ``optimizer``;
    return its state."""
    import torch

    state = json.loads(Path(directory, STATE).read_text())
    bare(model).load_state_dict(torch.load(os.path.join(directory, MODEL), map_location=device, weights_only=True))
    if optimizer is not None and os.path.exists(os.path.join(directory, OPTIMIZER)):
        optimizer.load_state_dict(torch.load(os.path.join(directory, OPTIMIZER), map_location=device, weights_only=True))
    return state
