"""Dataset stage: render a spec through Ray Data into Parquet shards and read them back."""

from raysweep.dataset.pipeline import MANIFEST, is_complete, materialize, read_manifest
from raysweep.dataset.png import decode_png, encode_png
from raysweep.dataset.readers import load_arrays, manifest_of, ray_dataset, shard_uris

__all__ = [
    "MANIFEST",
    "decode_png",
    "encode_png",
    "is_complete",
    "load_arrays",
    "manifest_of",
    "materialize",
    "ray_dataset",
    "read_manifest",
    "shard_uris",
]
