"""One shard: the images of a contiguous range of classes as one Parquet file.

Columns: ``image`` (PNG bytes), ``label``, ``instance``, ``params`` (the class's parameters),
``fill`` and ``redraws``. A shard's bytes depend only on the spec and its index, so a shard
rendered again (after a crash, on another machine) has the same checksum.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from raysweep.dataset.png import encode_png
from raysweep.render.sources import ClassSource
from raysweep.render.spec import DatasetSpec
from raysweep.storage import atomic_write, join, sha256

SCHEMA = pa.schema(
    [
        ("image", pa.binary()),
        ("label", pa.int32()),
        ("instance", pa.int32()),
        ("params", pa.list_(pa.list_(pa.float64()))),
        ("fill", pa.float32()),
        ("redraws", pa.int32()),
    ]
)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def render_shard(source: ClassSource, spec: DatasetSpec, index: int) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    for label in spec.shard_classes(index):
        for item in source.render_class(label):
            columns["image"].append(encode_png(item.image))
            columns["label"].append(item.label)
            columns["instance"].append(item.instance)
            columns["params"].append(item.params)
            columns["fill"].append(item.fill)
            columns["redraws"].append(item.redraws)
    return pa.table(columns, schema=SCHEMA)


def table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    # no statistics and one row group: small, and the bytes depend on the data alone
    pq.write_table(table, sink, compression="none", write_statistics=False, row_group_size=max(1, len(table)))
    return sink.getvalue()


def write_shard(source: ClassSource, spec: DatasetSpec, index: int, dataset_uri: str) -> dict:
    """Render shard ``index`` and write it atomically; return its manifest entry."""
    data = table_bytes(render_shard(source, spec, index))
    name = shard_name(index)
    atomic_write(join(dataset_uri, name), data)
    return {"index": index, "file": name, "sha256": sha256(data), "bytes": len(data), "rows": spec.shard_classes(index).__len__() * spec.data["instances"]}
