"""What the Ray cluster a command runs on can provide, read before any work starts.

- On the embedded default (no ``RAY_ADDRESS``): this machine, read without starting Ray (its CPUs
  and CUDA devices).
- On a cluster: its alive nodes, plus the node types its autoscaler may launch, read from the
  cluster's own autoscaler config as Ray's GCS holds it (KubeRay reports it; on a ``ray up``
  cluster, ``cluster/cluster.yaml`` publishes it on the head with ``python -m raysweep.cluster
  publish ~/ray_bootstrap_config.yaml``).

A resource request that some node or node type can satisfy is fine: Ray waits for it and the
autoscaler launches the node. One that nothing can ever satisfy is refused here, in one line,
before any work. So is a local ``storage`` on a cluster whose nodes are (or may be) on several
machines: each node would write its part of a run to its own disk.

``python -m raysweep.cluster publish CONFIG.yaml`` reads a ``ray up`` cluster file (or the
head's ``~/ray_bootstrap_config.yaml``) and reports its node types to the running cluster;
``python -m raysweep.cluster show`` prints what the cluster can provide.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import dataclass, field

from raysweep.config import Config, ConfigError
from raysweep.runtime import local_cpus
from raysweep.storage import is_s3

#: resources that never decide placement by themselves (present on every node)
_IMPLICIT = ("memory", "object_store_memory")


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict[str, float]
    max_count: int  # -1: unbounded
    min_count: int = 0


@dataclass
class Capacity:
    """The nodes a cluster has and the node types it may add."""

    where: str  # "this machine" or "the Ray cluster at ADDRESS"
    nodes: list[dict[str, float]]  # total resources of each alive node
    hosts: set[str]  # the machines those nodes run on
    node_types: list[NodeType] = field(default_factory=list)  # what the autoscaler may launch (none: a fixed cluster)
    local: bool = False  # the embedded default: one machine, started in-process

    def can_grow(self) -> bool:
        """Whether nodes may be added (on other machines)."""
        return any(t.max_count < 0 or t.max_count > t.min_count for t in self.node_types)

    def fits(self, bundle: dict[str, float]) -> bool:
        """Some node, now or launchable, has at least ``bundle``."""
        need = {k: v for k, v in bundle.items() if v > 0 and k not in _IMPLICIT}
        candidates = [*self.nodes, *(t.resources for t in self.node_types if t.max_count != 0)]
        return any(all(r.get(k, 0) >= v for k, v in need.items()) for r in candidates)

    def most(self, resource: str) -> float:
        """The most of ``resource`` the cluster can ever hold at once (inf when unbounded): what its
        node types add up to at their maximum counts (the nodes up now are some of those), or what
        its nodes have when it has no node types (a fixed cluster)."""
        alive = sum(n.get(resource, 0) for n in self.nodes)
        if not self.node_types:
            return alive
        if any(t.max_count < 0 and t.resources.get(resource, 0) > 0 for t in self.node_types):
            return float("inf")
        return max(alive, sum(t.max_count * t.resources.get(resource, 0) for t in self.node_types))

    def describe(self) -> str:
        """One line: the nodes and node types, e.g. ``nodes: {CPU: 8}; node types: gpu (0-8 x {CPU: 4, GPU: 1})``."""
        nodes = ", ".join(_fmt(n) for n in self.nodes) or "none"
        text = f"{self.where}: nodes {nodes}"
        if self.node_types:
            types = ", ".join(f"{t.name} ({'unbounded' if t.max_count < 0 else f'up to {t.max_count}'} x {_fmt(t.resources)})"
                              for t in self.node_types if t.max_count < 0 or t.max_count > t.min_count)
            text += f"; node types the autoscaler may launch: {types or 'none'}"
        elif not self.local:
            text += "; no node types published (an autoscaling cluster publishes them with: python -m raysweep.cluster publish CLUSTER.yaml)"
        return text


def _fmt(resources: dict[str, float]) -> str:
    shown = {k: v for k, v in sorted(resources.items()) if k not in _IMPLICIT and not k.startswith("node:") and v}
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in shown.items()) + "}"


def on_cluster() -> bool:
    """Whether commands join an existing Ray cluster (``RAY_ADDRESS`` set, as ``ray job submit``
    does) rather than start the embedded local default."""
    return bool(os.environ.get("RAY_ADDRESS"))


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_capacity() -> Capacity:
    """This machine, as the embedded local Ray will see it (without starting Ray)."""
    node = {"CPU": float(local_cpus())}
    gpus = local_gpus()
    if gpus:
        node["GPU"] = float(gpus)
    return Capacity(where="this machine", nodes=[node], hosts={"localhost"}, local=True)


def cluster_capacity() -> Capacity:
    """The connected Ray cluster: alive nodes, and the autoscaler's node types if it has any."""
    import ray

    from raysweep import ray_private

    alive = [n for n in ray.nodes() if n.get("Alive")]
    nodes = [{k: float(v) for k, v in n["Resources"].items() if not k.startswith("node:")} for n in alive]
    hosts = {n.get("NodeManagerAddress") or n.get("NodeManagerHostname") for n in alive}
    types = ray_private.cluster_node_types() or []
    node_types = [NodeType(t["name"], {k: float(v) for k, v in t["resources"].items()}, t["max_count"], t.get("min_count", 0))
                  for t in types]
    address = ray.get_runtime_context().gcs_address
    return Capacity(where=f"the Ray cluster at {address}", nodes=nodes, hosts=hosts, node_types=node_types)


@functools.lru_cache(maxsize=1)
def _cached_local() -> Capacity:
    return local_capacity()


def current() -> Capacity:
    """What the cluster commands run on can provide: this machine (the embedded default, read
    without starting Ray), or the cluster named by ``RAY_ADDRESS`` (connected to, if need be)."""
    if not on_cluster():  # the embedded default (started in this process, or about to be)
        return _cached_local()
    from raysweep.runtime import ensure_ray

    ensure_ray()
    return cluster_capacity()


#: Train workers run on the CPU even when they hold GPUs (e.g. ``RAYSWEEP_DEVICE=cpu`` on a test
#: cluster whose GPU nodes are simulated); the resource request stays what the config asks for
DEVICE_ENV = "RAYSWEEP_DEVICE"


@dataclass(frozen=True)
class Resources:
    """What each Train worker of a run asks for, and how it runs."""

    workers: int
    use_gpu: bool
    cpus_per_worker: float
    device: str | None = None  # an override of the worker's device (DEVICE_ENV)

    @property
    def bundle(self) -> dict[str, float]:
        return {"CPU": self.cpus_per_worker, **({"GPU": 1.0} if self.use_gpu else {})}

    @property
    def threads(self) -> int:
        """Torch threads of a worker: the CPUs it was given."""
        return max(1, int(self.cpus_per_worker))

    @property
    def accelerator(self) -> str:
        """Where the weights are computed (part of a pre-trained model's identity)."""
        return "gpu" if self.use_gpu and self.device in (None, "cuda") else "cpu"

    def describe(self) -> str:
        return f"{self.workers} x {self.bundle}" + (f" (running on {self.device})" if self.device else "")


def device_override() -> str | None:
    """``RAYSWEEP_DEVICE`` of the command's process (read where the command starts: the processes
    Ray runs trials in do not have the command's environment)."""
    return os.environ.get(DEVICE_ENV) or None


def resources_for(cfg: Config, workers: int, capacity: Capacity, drivers_cpus: float = 0.0,
                  device: str | None = None, stream_cpus: float = 0.0) -> Resources:
    """The Train workers' resources: ``pretrain.use_gpu`` and ``pretrain.cpus_per_worker`` from the
    config; unset, GPUs when the cluster can provide any, and CPUs as an even share of this machine
    (after ``drivers_cpus``, the sweep's trial drivers) on the embedded default, 1 on a cluster.
    ``device``: where the workers compute (see :data:`DEVICE_ENV`); None: their GPU, else the CPU.
    ``stream_cpus``: CPUs the run's Ray Data streams take beside the workers (left out of the share)."""
    p = cfg.pretrain
    use_gpu = p.use_gpu if p.use_gpu is not None else capacity.most("GPU") >= 1
    cpus = p.cpus_per_worker
    if cpus is None:
        if capacity.local:
            share = (capacity.most("CPU") - drivers_cpus - stream_cpus) / workers
            cpus = float(math.floor(share)) if share >= 1 else max(0.1, round(share, 2))
        else:
            cpus = 1.0
    return Resources(workers=workers, use_gpu=bool(use_gpu), cpus_per_worker=float(cpus), device=device)


# ---------------------------------------------------------------------------------------- checks


def check_fits(capacity: Capacity, what: str, bundle: dict[str, float], count: int = 1) -> None:
    """A one-line error unless ``count`` bundles of ``bundle`` can be placed, now or once the
    autoscaler has launched nodes."""
    if not capacity.fits(bundle):
        raise ConfigError(f"{what} asks for {_fmt(bundle)}, which no node of {capacity.describe()} can provide; "
                          f"allowed: a request some node (or node type) offers")
    for resource, amount in bundle.items():
        if amount > 0 and resource not in _IMPLICIT and count * amount > capacity.most(resource):
            raise ConfigError(f"{what} asks for {count} x {_fmt(bundle)} = {count * amount:g} {resource} in all, but "
                              f"{capacity.describe()} can hold at most {capacity.most(resource):g}")


def check_storage(capacity: Capacity, storage: str) -> None:
    """A local ``storage`` on a cluster whose nodes are, or may be, on several machines is refused:
    each node would write its part of a run (checkpoints, results, shards) to its own disk."""
    if is_s3(storage) or capacity.local:
        return
    several = len(capacity.hosts) > 1
    if several or capacity.can_grow():
        why = (f"its nodes run on {len(capacity.hosts)} machines" if several
               else "its autoscaler may add nodes on other machines")
        raise ConfigError(f"storage={storage!r} is a local directory, but {why} ({capacity.describe()}); "
                          f"give storage every node reaches, e.g. storage=s3://BUCKET/raysweep")


# ------------------------------------------------------------------------------------ publishing


def node_types_of(cluster_yaml: dict) -> list[dict]:
    """The node types of a ``ray up`` cluster file: name, resources (CPU/GPU read from the instance
    type where the file leaves them to the provider), min and max count."""
    types = cluster_yaml.get("available_node_types") or {}
    if not isinstance(types, dict) or not types:
        raise ConfigError("the cluster file has no available_node_types; give a ray up cluster file (e.g. cluster/cluster.yaml)")
    head = cluster_yaml.get("head_node_type")
    out = []
    for name, spec in types.items():
        resources = dict((spec or {}).get("resources") or {})
        instance = ((spec or {}).get("node_config") or {}).get("InstanceType")
        for key, value in INSTANCE_RESOURCES.get(instance, {}).items():
            resources.setdefault(key, value)
        is_head = name == head  # exactly one
        out.append({"name": name, "resources": {k: float(v) for k, v in resources.items()},
                    "min_count": 1 if is_head else int(spec.get("min_workers", 0)),
                    "max_count": 1 if is_head else int(spec.get("max_workers", cluster_yaml.get("max_workers", 0)))})
    return out


#: CPUs and GPUs of the instance types cluster/cluster.yaml names (Ray's AWS provider fills these
#: in itself when it launches a node; the file leaves them out)
INSTANCE_RESOURCES = {
    "m6i.2xlarge": {"CPU": 8},
    "g6e.xlarge": {"CPU": 4, "GPU": 1},
    "g6e.12xlarge": {"CPU": 48, "GPU": 4},
    "p5.48xlarge": {"CPU": 192, "GPU": 8},
    "c7i.8xlarge": {"CPU": 32},
}


def main(argv: list[str] | None = None) -> int:
    from raysweep.cli import main_guard

    return main_guard(_main)(argv)


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "publish":
        if len(rest) != 1:
            raise ConfigError("publish takes one argument: the cluster file, e.g. ~/ray_bootstrap_config.yaml")
        import yaml

        path = os.path.expanduser(rest[0])
        try:
            with open(path) as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read the cluster file {rest[0]!r}: {' '.join(str(e).split())[:200]}") from None
        node_types = node_types_of(doc if isinstance(doc, dict) else {})
        from raysweep import ray_private
        from raysweep.runtime import ensure_ray

        if not on_cluster():  # on the head node: the cluster `ray start` recorded there
            os.environ["RAY_ADDRESS"] = "auto"
        ensure_ray()
        ray_private.publish_cluster_config(node_types)
        print(cluster_capacity().describe())
        return 0
    if command == "show":
        print(current().describe())
        return 0
    raise ConfigError(f"unknown command {command!r}; choose one of: publish, show")


if __name__ == "__main__":
    sys.exit(main())
