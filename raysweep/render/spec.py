"""Dataset specs: the resolved, hashable description of a rendered dataset.

A spec holds exactly what determines the dataset's bytes: the data settings its source uses, the
content of a real image (not just its path), the engine version and the shard layout. Its hash
names the dataset's directory, so the same spec always resolves to the same location (a cache)
and any change of what the pixels depend on resolves to a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from raysweep.config import DataConfig
from raysweep.storage import join

#: Bump when rendering semantics change: every dataset then gets a new address.
ENGINE_VERSION = 1
#: Images per Parquet shard (classes are never split across shards).
IMAGES_PER_SHARD = 256

#: Settings added after their engine version's datasets existed, with the value those datasets were
#: rendered with: at that value a setting is left out of the spec, so those datasets keep their
#: address; any other value is in the spec and gives a new one.
_LEFT_OUT_AT = {"framing": "bbox"}


@dataclass(frozen=True)
class DatasetSpec:
    data: dict[str, Any]  # the data settings that determine the pixels
    classes_per_shard: int
    image_sha256: str | None = None  # source=real: the decoded image's content
    engine_version: int = ENGINE_VERSION

    @property
    def source(self) -> str:
        return self.data["source"]

    @property
    def num_classes(self) -> int:
        return self.data["L"]

    @property
    def num_images(self) -> int:
        return self.data["L"] * self.data["instances"]

    @property
    def num_shards(self) -> int:
        return -(-self.num_classes // self.classes_per_shard)

    def shard_classes(self, shard: int) -> range:
        start = shard * self.classes_per_shard
        return range(start, min(start + self.classes_per_shard, self.num_classes))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def uri(self, storage: str) -> str:
        """``{storage}/datasets/{source}-{hash[:16]}``: where this dataset lives."""
        return join(storage, "datasets", f"{self.source}-{self.hash[:16]}")


def resolve_spec(cfg: DataConfig) -> DatasetSpec:
    """The spec of a validated data config: its source's fields, and what else its bytes depend on
    (for a real image: its decoded pixels, so the image is fetched and hashed here: call it once and
    pass the spec on; ``materialize`` returns it)."""
    from raysweep.render.sources import source

    entry = source(cfg.source)
    values = dataclasses.asdict(cfg)
    data = {k: values[k] for k in entry.fields if k not in _LEFT_OUT_AT or values[k] != _LEFT_OUT_AT[k]}
    return DatasetSpec(data=data, classes_per_shard=max(1, IMAGES_PER_SHARD // cfg.instances), image_sha256=entry.identity(cfg))


def data_config(spec: DatasetSpec) -> DataConfig:
    """The DataConfig that renders ``spec`` (defaults for settings its source does not use)."""
    return DataConfig(**spec.data)
