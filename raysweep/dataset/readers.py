"""Read a rendered dataset: as a Ray Dataset (training ingest) or as numpy arrays (small data)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq

from raysweep.config import ConfigError
from raysweep.dataset.pipeline import read_manifest
from raysweep.dataset.png import decode_png
from raysweep.storage import filesystem, is_s3, join, read_bytes


def manifest_of(dataset_uri: str) -> dict:
    """The manifest, or a one-line error when the URI holds no complete dataset."""
    try:
        manifest = read_manifest(dataset_uri)
    except Exception as e:  # noqa: BLE001 - unreachable storage, corrupt JSON, ...
        raise ConfigError(f"cannot read the dataset at {dataset_uri!r}: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    if manifest is None:
        raise ConfigError(
            f"no complete dataset at {dataset_uri!r} (no manifest.json); render it with: python -m raysweep.render dataset ..."
        )
    return manifest


def shard_uris(dataset_uri: str) -> list[str]:
    return [join(dataset_uri, entry["file"]) for entry in manifest_of(dataset_uri)["shards"]]


def ray_dataset(dataset_uri: str, in_process: bool = False):
    """A Ray Dataset with the columns of the shards (``image`` PNG bytes, ``label``, ...).

    ``in_process`` reads the shards here and hands them to Ray as Arrow blocks: no read tasks,
    so nothing waits for a free CPU (what a training run wants for its small rendered datasets);
    otherwise Ray Data reads them lazily with its own tasks."""
    import ray.data
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    uris = shard_uris(dataset_uri)
    if in_process:
        return ray.data.from_arrow([pq.read_table(io.BytesIO(read_bytes(u))) for u in uris])
    if is_s3(dataset_uri):
        fs, _ = filesystem(dataset_uri)
        return ray.data.read_parquet([u[len("s3://"):] for u in uris], filesystem=PyFileSystem(FSSpecHandler(fs)))
    return ray.data.read_parquet([filesystem(u)[1] for u in uris])


def load_arrays(dataset_uri: str) -> tuple[np.ndarray, np.ndarray]:
    """All images (N, H, W) or (N, H, W, 3) uint8 and labels (N,) int64, in shard order."""
    images, labels = [], []
    for uri in shard_uris(dataset_uri):
        table = pq.read_table(io.BytesIO(read_bytes(uri)), columns=["image", "label"])
        images.extend(decode_png(b) for b in table.column("image").to_pylist())
        labels.extend(table.column("label").to_pylist())
    return np.stack(images), np.asarray(labels, dtype=np.int64)
