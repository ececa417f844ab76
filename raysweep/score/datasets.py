"""Downstream datasets for scoring a pre-trained checkpoint (``score.dataset``).

:func:`load_downstream` returns a :class:`Downstream`: a train and a test :class:`Split` of uint8
``(N, H, W, 3)`` RGB images with int64 labels, held in memory, plus the class names.

- ``cifar10`` / ``cifar100``: the official python-pickle release, read from ``score.data_root``
  (a local directory or an ``s3://`` prefix; either ``cifar-10-batches-py`` / ``cifar-100-python``
  itself or its parent) or, with no ``data_root``, downloaded once from the official URL into a
  cache directory (:func:`download_cifar`; md5 verified before anything is extracted).
- ``imagefolder``: ``data_root/train/<class>/*.png|jpg|...`` and ``data_root/val/`` (or ``test/``),
  classes sorted by name; every image is decoded to RGB and resized to one common size.
- ``digits``: scikit-learn's bundled 8x8 digits (offline), a fixed stratified 75/25 split.

:func:`few_shot` cuts a training split to k images per class (``score.shots``).

Every bad input is a one-line :class:`~raysweep.config.ConfigError` naming the path or value and
what was expected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from raysweep import storage
from raysweep.config.errors import ConfigError, brief
from raysweep.config.schema import SCORE_DATASETS

# The official release (Krizhevsky, 2009). Module constants so that tests can point them elsewhere.
CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
CIFAR_MD5 = {
    "cifar10": "c58f30108f718f92721af3b95e74349a",
    "cifar100": "eb9058c3a382ffc7106e4002c42a8d85",
}
CACHE_ENV = "RAYSWEEP_DATA_CACHE"
DEFAULT_CACHE = "~/.cache/raysweep/datasets"
DOWNLOAD_TIMEOUT_S = 60.0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class Split:
    """One split: ``images`` uint8 ``(N, H, W, 3)`` RGB, ``labels`` int64 ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


    def take(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the rows ``idx``."""
        return self.images[idx], self.labels[idx]


@dataclass
class FileSplit:
    """A split too large to hold in memory (``score.in_memory_gb``): its images' URIs and labels,
    decoded when they are needed, by Ray Data tasks (:func:`raysweep.dataset.stream.file_stream`)
    or, for a few, in process (:meth:`take`). An image that does not decode is skipped: delivered
    as zeros with ``valid`` false, and counted."""

    uris: list[str]
    labels: np.ndarray
    hw: tuple[int, int]
    root: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, idx) -> tuple[np.ndarray, np.ndarray]:
        rows = decode_rows({"uri": np.asarray(self.uris, dtype=object)[idx], "label": self.labels[idx]}, self.hw, self.root)
        return rows["image"], rows["label"]


@dataclass
class Downstream:
    name: str
    train: Split | FileSplit
    test: Split | FileSplit
    num_classes: int
    class_names: list[str]

    @property
    def streamed(self) -> bool:
        return isinstance(self.train, FileSplit)



def few_shot(data: Downstream, shots: int, seed: int) -> Downstream:
    """``data`` with its training split cut to ``shots`` images per class, drawn at random by
    ``seed`` (the same draw on every worker and for every trial of that seed; a class with fewer
    keeps all of its images), in their original order; the test split whole. ``shots`` 0: ``data``."""
    if shots <= 0:
        return data
    rng = np.random.default_rng([seed, 0x5407])  # a stream of its own: other draws of the seed are not shifted
    labels = data.train.labels
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:shots] for c in range(data.num_classes)]))
    if isinstance(data.train, FileSplit):
        train = FileSplit([data.train.uris[i] for i in keep], labels[keep], data.train.hw, data.train.root)
    else:
        train = Split(data.train.images[keep], labels[keep])
    return dataclasses.replace(data, train=train)


def load_downstream(name: str, data_root: str | None = None, *, size: int | tuple[int, int] | None = None,
                    in_memory_gb: float | None = None) -> Downstream:
    """The downstream dataset ``name`` (one of ``SCORE_DATASETS``) from ``data_root``.

    ``data_root``: for cifar10/cifar100 a directory (local or ``s3://``), or ``None`` to download
    the official release into the cache; for imagefolder the directory with ``train/`` and
    ``val/``; ignored for digits. ``size`` (imagefolder only): the common image size, an int or
    ``(height, width)``; by default the size of the first training image.
    """
    if isinstance(data_root, str) and not data_root.strip():
        data_root = None
    if name in _CIFAR:
        return load_cifar(name, data_root if data_root is not None else download_cifar(name))
    if name == "imagefolder":
        return load_imagefolder(data_root, size=size, in_memory_gb=in_memory_gb)
    if name == "digits":
        return load_digits()
    raise ConfigError(f"score.dataset={name!r} is not allowed; choose one of: {', '.join(SCORE_DATASETS)}")


# ---------------------------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class _CifarLayout:
    title: str
    dirname: str
    archive: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    num_classes: int

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, *self.test, self.meta)


_CIFAR = {
    "cifar10": _CifarLayout(
        "CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta",
        "labels", "label_names", 10,
    ),
    "cifar100": _CifarLayout(
        "CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz",
        ("train",), ("test",), "meta", "fine_labels", "fine_label_names", 100,
    ),
}

# What the official batches (and numpy arrays pickled with protocols 2..5) reference; a CIFAR batch
# needs nothing else, so anything else is refused instead of executed.
_PICKLE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it references {module}.{name}, which no CIFAR batch does (refused)")
        return super().find_class(module, name)


def load_cifar(name: str, data_root: str) -> Downstream:
    """CIFAR-10/100 from the official python batches under ``data_root`` (local or ``s3://``)."""
    layout = _CIFAR[name]
    root = str(data_root)
    folder = _cifar_folder(layout, root)
    meta = _unpickle(storage.join(folder, layout.meta), root, layout)
    names = meta.get(layout.names_key) if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != layout.num_classes:
        raise _corrupt(root, storage.join(folder, layout.meta), layout, f"no list of {layout.num_classes} {layout.names_key!r}")
    class_names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    train = _concat([_read_batch(layout, storage.join(folder, f), root) for f in layout.train])
    test = _concat([_read_batch(layout, storage.join(folder, f), root) for f in layout.test])
    return Downstream(name, train, test, layout.num_classes, class_names)


def _cifar_folder(layout: _CifarLayout, root: str) -> str:
    expected = f"the {layout.title} python directory ({layout.dirname}/) or its parent"
    _require_dir(root, expected)
    names = set(_listdir(root, root))
    folder = root
    if not names & set(layout.files) and layout.dirname in names:
        sub = storage.join(root, layout.dirname)
        if _kind(sub, root) == "dir":
            folder, names = sub, set(_listdir(sub, root))
    missing = [f for f in layout.files if f not in names]
    if len(missing) == len(layout.files):
        raise ConfigError(
            f"score.data_root={root!r} holds no {layout.title} python batches; expected {layout.dirname}/ "
            f"or its files ({', '.join(layout.files)}) of the official {layout.archive}"
        )
    if missing:
        raise ConfigError(
            f"score.data_root={root!r}: {folder} is incomplete, missing {', '.join(missing)} "
            f"(expected {', '.join(layout.files)} of the official {layout.archive})"
        )
    return folder


def _unpickle(uri: str, root: str, layout: _CifarLayout):
    data = _read(uri, root)
    try:
        obj = _CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # UnpicklingError, EOFError (truncated), ValueError, ...
        raise _corrupt(root, uri, layout, f"cannot be unpickled ({type(exc).__name__}: {brief(exc)})") from None
    if isinstance(obj, dict):  # pickles re-written from encoding="bytes" loads have bytes keys
        obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    return obj


def _read_batch(layout: _CifarLayout, uri: str, root: str) -> Split:
    obj = _unpickle(uri, root, layout)
    if not isinstance(obj, dict) or "data" not in obj or layout.label_key not in obj:
        raise _corrupt(root, uri, layout, f"not a dict with 'data' and {layout.label_key!r}")
    data = obj["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = tuple(data.shape) if isinstance(data, np.ndarray) else type(data).__name__
        raise _corrupt(root, uri, layout, f"'data' is {shape}, expected rows of 3072 values (N, 3072)")
    try:
        labels = np.asarray(obj[layout.label_key])
    except Exception:  # ragged or exotic
        labels = np.asarray([], dtype=object)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise _corrupt(root, uri, layout, f"{layout.label_key!r} is not a list of integers")
    if data.shape[0] != labels.shape[0]:
        raise _corrupt(root, uri, layout, f"{data.shape[0]} image rows but {labels.shape[0]} labels")
    if data.shape[0] == 0:
        raise _corrupt(root, uri, layout, "it holds no images")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= layout.num_classes:
        raise _corrupt(root, uri, layout, f"labels {lo}..{hi} out of range 0..{layout.num_classes - 1}")
    if data.dtype != np.uint8:
        if not np.issubdtype(data.dtype, np.integer) or int(data.min()) < 0 or int(data.max()) > 255:
            raise _corrupt(root, uri, layout, f"'data' is {data.dtype}, expected uint8 pixels 0..255")
        data = data.astype(np.uint8)
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return Split(images, labels.astype(np.int64))


def _corrupt(root: str, uri: str, layout: _CifarLayout, why: str) -> ConfigError:
    return ConfigError(
        f"score.data_root={root!r}: {uri} is not a valid {layout.title} batch file: {why}; "
        f"it is partial or corrupt, replace it from the official {layout.archive}"
    )


def _concat(splits: list[Split]) -> Split:
    if len(splits) == 1:
        return splits[0]
    return Split(np.concatenate([s.images for s in splits]), np.concatenate([s.labels for s in splits]))


# ---------------------------------------------------------------------------------------------- download


def cache_dir() -> Path:
    """Where downloads go: ``$RAYSWEEP_DATA_CACHE``, else ``~/.cache/raysweep/datasets``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def download_cifar(name: str, root: str | os.PathLike | None = None) -> str:
    """The official ``name`` release (cifar10 | cifar100) extracted under ``root`` (default
    :func:`cache_dir`), downloaded from :data:`CIFAR_URLS` when not there yet; returns the path of
    its batches directory. The archive's md5 is checked before anything is extracted; extraction
    refuses absolute or ``..`` members and links, and happens in a temporary directory renamed
    into place, so the cache holds a whole dataset or none."""
    if name not in _CIFAR:
        raise ConfigError(f"download_cifar({name!r}): not a downloadable dataset; choose one of: {', '.join(_CIFAR)}")
    layout = _CIFAR[name]
    cache = Path(root).expanduser() if root is not None else cache_dir()
    target = cache / layout.dirname
    if _complete(target, layout):
        return str(target)
    url, md5 = CIFAR_URLS[name], CIFAR_MD5[name]
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, part = tempfile.mkstemp(prefix=f".{layout.archive}.", suffix=".part", dir=cache)
        os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the dataset cache {str(cache)!r} ({type(exc).__name__}: {brief(exc)}); "
            f"set {CACHE_ENV} to a writable directory or give score.data_root"
        ) from None
    try:
        got = _download(url, Path(part), name, layout)
        if got != md5:
            raise ConfigError(
                f"the {name} download from {url} has md5 {got}, expected {md5}; it was deleted and nothing was "
                f"extracted: retry, or fetch {layout.archive} by hand, extract it and set score.data_root"
            )
        _extract(Path(part), url, cache, layout)
    finally:
        Path(part).unlink(missing_ok=True)
    return str(target)


def _complete(folder: Path, layout: _CifarLayout) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in layout.files)


def _download(url: str, dest: Path, name: str, layout: _CifarLayout) -> str:
    """Streams ``url`` into ``dest``; returns the md5 (hex) of what was written."""
    from raysweep.storage import DownloadError, download

    digest = hashlib.md5(usedforsecurity=False)
    hint = f"fetch {layout.archive} by hand, extract it and set score.data_root to its {layout.dirname}/"

    def write(chunk: bytes) -> None:
        digest.update(chunk)
        out.write(chunk)

    try:
        with open(dest, "wb") as out:
            download(url, write, timeout=DOWNLOAD_TIMEOUT_S)
    except DownloadError as exc:
        raise ConfigError(f"cannot download {name} from {url}: {exc}; {hint}") from None
    except OSError as exc:  # the cache's disk
        raise ConfigError(f"cannot download {name} from {url}: {type(exc).__name__}: {brief(exc)}; {hint}") from None
    return digest.hexdigest()


def _extract(archive: Path, url: str, cache: Path, layout: _CifarLayout) -> None:
    target = cache / layout.dirname
    tmp = Path(tempfile.mkdtemp(prefix=f".{layout.dirname}.extract-", dir=cache))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for m in members:
                    parts = PurePosixPath(m.name).parts
                    if m.name.startswith(("/", "\\")) or PurePosixPath(m.name).is_absolute() or ".." in parts or ":" in m.name:
                        raise ConfigError(f"the archive from {url} has an unsafe member {m.name!r} (absolute path or '..'); refusing to extract it")
                    if not (m.isfile() or m.isdir()):
                        raise ConfigError(f"the archive from {url} has a link or special member {m.name!r}; refusing to extract it")
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kwargs)
        except ConfigError:
            raise
        except Exception as exc:  # tarfile.ReadError, EOFError, zlib errors, OSError
            raise ConfigError(f"the archive from {url} cannot be extracted ({type(exc).__name__}: {brief(exc)})") from None
        src = tmp / layout.dirname
        if not _complete(src, layout):
            missing = [f for f in layout.files if not (src / f).is_file()]
            raise ConfigError(f"the archive from {url} lacks {layout.dirname}/{', '.join(missing)}; it is not the official {layout.archive}")
        if target.exists() and not _complete(target, layout):
            os.rename(target, tmp / "stale")  # a damaged earlier copy: replace it
        try:
            os.rename(src, target)
        except OSError:
            if not _complete(target, layout):  # otherwise a concurrent download won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- imagefolder


def load_imagefolder(data_root: str | None, size: int | tuple[int, int] | None = None,
                     in_memory_gb: float | None = None) -> Downstream:
    """``data_root/train/<class>/<images>`` and ``data_root/val/`` (or ``test/``), local or ``s3://``.

    Classes are the subdirectory names, sorted; both splits must have the same ones. Images
    (png/jpg/jpeg/bmp/webp, any case, found recursively under each class; other files are not
    images of the dataset) are decoded to RGB and resized (bicubic) to ``size`` (int or
    ``(height, width)``), by default the first image's size. Decoded larger than ``in_memory_gb``
    (None: no limit), the splits are :class:`FileSplit` s, streamed; else decoded here, and an
    image that does not decode is a one-line error.
    """
    hw = _parse_size(size)
    root, classes, train_files, test_files = _imagefolder_layout(data_root)
    if hw is None:
        first = _decode_image(train_files[classes[0]][0], root)
        hw = (first.height, first.width)
    count = sum(len(f) for f in train_files.values()) + sum(len(f) for f in test_files.values())
    if in_memory_gb is not None and count * hw[0] * hw[1] * 3 > in_memory_gb * 2**30:
        train, test = (FileSplit(*_file_list(files, classes), hw, root) for files in (train_files, test_files))
        return Downstream("imagefolder", train, test, len(classes), classes)
    train = _decode_split(train_files, classes, hw, root)
    test = _decode_split(test_files, classes, hw, root)
    return Downstream("imagefolder", train, test, len(classes), classes)


def _imagefolder_layout(data_root: str | None) -> tuple[str, list[str], dict[str, list[str]], dict[str, list[str]]]:
    """(root, sorted classes, {class: train image URIs}, {class: test image URIs}), checked: both
    splits exist, have the same classes, and no class folder is empty."""
    layout_hint = "train/ and val/ (or test/), each with one subdirectory of images per class"
    if data_root is None or not str(data_root).strip():
        raise ConfigError(f"score.dataset=imagefolder needs score.data_root: a directory (local or s3://) with {layout_hint}")
    root = str(data_root)
    _require_dir(root, f"a directory with {layout_hint}")
    entries = set(_listdir(root, root))
    if "train" not in entries or _kind(storage.join(root, "train"), root) != "dir":
        raise ConfigError(f"score.data_root={root!r} has no train/ directory; expected {layout_hint}")
    test_dir = next((d for d in ("val", "test") if d in entries and _kind(storage.join(root, d), root) == "dir"), None)
    if test_dir is None:
        raise ConfigError(f"score.data_root={root!r} has no val/ (or test/) directory; expected {layout_hint}")
    train_files = _class_files(root, "train")
    test_files = _class_files(root, test_dir)
    if set(train_files) != set(test_files):
        only_train = sorted(set(train_files) - set(test_files))
        only_test = sorted(set(test_files) - set(train_files))
        diff = "; ".join(
            f"only in {d}/: {', '.join(names)}" for d, names in (("train", only_train), (test_dir, only_test)) if names
        )
        raise ConfigError(f"score.data_root={root!r}: train/ and {test_dir}/ have different classes ({diff}); both need the same class subdirectories")
    return root, sorted(train_files), train_files, test_files


#: images decoded by the pre-flight check of an ImageFolder (the first of that many classes per split)
CHECK_IMAGES = 4


def check_downstream(name: str, data_root: str | None = None) -> None:
    """The downstream dataset's metadata, without decoding it whole (what a driver checks before
    any cluster work): CIFAR's batch files are all there and its meta file reads; an ImageFolder's
    splits have the same, non-empty class folders and their first few images decode. A one-line
    error otherwise. CIFAR with no data_root is left to the download (users online)."""
    if isinstance(data_root, str) and not data_root.strip():
        data_root = None
    if name in _CIFAR:
        if data_root is None:
            return
        layout, root = _CIFAR[name], str(data_root)
        folder = _cifar_folder(layout, root)
        meta = _unpickle(storage.join(folder, layout.meta), root, layout)
        names = meta.get(layout.names_key) if isinstance(meta, dict) else None
        if not isinstance(names, (list, tuple)) or len(names) != layout.num_classes:
            raise _corrupt(root, storage.join(folder, layout.meta), layout, f"no list of {layout.num_classes} {layout.names_key!r}")
        return
    if name == "imagefolder":
        root, classes, train_files, test_files = _imagefolder_layout(data_root)
        for files in (train_files, test_files):
            for c in classes[:CHECK_IMAGES]:
                _decode_image(files[c][0], root)
        return
    if name == "digits":
        return
    raise ConfigError(f"score.dataset={name!r} is not allowed; choose one of: {', '.join(SCORE_DATASETS)}")


def _parse_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in hw):
        raise ConfigError(f"imagefolder size={size!r} is not allowed; give a positive int or (height, width)")
    return int(hw[0]), int(hw[1])


def _class_files(root: str, split: str) -> dict[str, list[str]]:
    """{class name: sorted image URIs} of ``root/split``."""
    split_uri = storage.join(root, split)
    fs, path = storage.filesystem(split_uri)
    try:
        if storage.is_s3(split_uri):
            fs.invalidate_cache(path)
        entries = fs.ls(path, detail=True)
        classes = {}
        for e in entries:
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            if e.get("type") == "directory" and not name.startswith("."):
                files = fs.find(e["name"].rstrip("/"))
                classes[name] = sorted(
                    _as_uri(split_uri, f) for f in files
                    if f.lower().endswith(IMAGE_SUFFIXES) and not f.rsplit("/", 1)[-1].startswith(".")
                )
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"score.data_root={root!r}: cannot list {split_uri} ({_why(exc)})") from None
    if not classes:
        raise ConfigError(f"score.data_root={root!r}: {split_uri} has no class subdirectories; expected one subdirectory of images per class")
    for name, files in sorted(classes.items()):
        if not files:
            raise ConfigError(
                f"score.data_root={root!r}: class directory {storage.join(split_uri, name)} has no images "
                f"(expected {', '.join(IMAGE_SUFFIXES)} files)"
            )
    return classes


def _as_uri(like: str, path: str) -> str:
    return f"s3://{path}" if storage.is_s3(like) else path


def _decode_image(uri: str, root: str):
    from PIL import Image

    data = _read(uri, root)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except Exception as exc:  # UnidentifiedImageError, truncated files, decompression bombs, ...
        raise ConfigError(f"score.data_root={root!r}: cannot decode image {uri} ({type(exc).__name__}: {brief(exc)}); remove or replace it") from None


def _file_list(files: dict[str, list[str]], classes: list[str]) -> tuple[list[str], np.ndarray]:
    """(URIs, labels) class by class, in the order the in-memory path decodes them."""
    uris = [uri for name in classes for uri in files[name]]
    labels = np.concatenate([np.full(len(files[name]), label, dtype=np.int64) for label, name in enumerate(classes)])
    return uris, labels


def decode_rows(batch: dict[str, np.ndarray], hw: tuple[int, int], root: str) -> dict[str, np.ndarray]:
    """Rows ``{"uri", "label"}`` -> ``{"image": uint8 (n, H, W, 3), "label", "valid"}``: each image
    read, decoded to RGB and resized (bicubic) to ``hw`` as the in-memory path does. One that does
    not decode (corrupt, truncated, not an image) is zeros with ``valid`` false; one that cannot
    be read (storage unreachable) is an error."""
    from PIL import Image

    n = len(batch["uri"])
    images = np.zeros((n, hw[0], hw[1], 3), dtype=np.uint8)
    valid = np.ones(n, dtype=bool)
    for i, uri in enumerate(batch["uri"]):
        try:
            im = _decode_image(str(uri), root)
        except ConfigError as exc:
            if "cannot decode" not in str(exc):
                raise
            valid[i] = False
            continue
        if (im.height, im.width) != hw:
            im = im.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
        images[i] = np.asarray(im, dtype=np.uint8)
    return {"image": images, "label": np.asarray(batch["label"], dtype=np.int64), "valid": valid}


def _decode_split(files: dict[str, list[str]], classes: list[str], hw: tuple[int, int], root: str) -> Split:
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(classes):
        for uri in files[name]:
            im = _decode_image(uri, root)
            if (im.height, im.width) != hw:
                im = im.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
            images.append(np.asarray(im, dtype=np.uint8))
            labels.append(label)
    return Split(np.stack(images), np.asarray(labels, dtype=np.int64))


def write_imagefolder(data: Downstream, out: str | os.PathLike, *, limit: int | None = None, quality: int = 95) -> str:
    """Write ``data`` as an ImageFolder of JPEGs (``out/train/<class>/<i>.jpg``, ``out/val/...``):
    the ImageNet layout, e.g. from the CIFAR-10 subset for tests, benchmarks and small defaults.
    ``limit``: at most that many training images (the first ones; val whole). Atomic: the tree is
    written beside ``out`` and renamed into place. Returns ``out``."""
    from PIL import Image

    out = Path(out)
    if out.exists():
        raise ConfigError(f"out={str(out)!r} exists; give a new directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for split, name, n in ((data.train, "train", limit), (data.test, "val", None)):
            for i in range(len(split) if n is None else min(n, len(split))):
                folder = tmp / name / data.class_names[int(split.labels[i])]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(split.images[i]).save(folder / f"{i:07d}.jpg", quality=quality)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


# ---------------------------------------------------------------------------------------------- digits


def load_digits() -> Downstream:
    """scikit-learn's 8x8 digits (gray 0..16 -> uint8 0..255, 3 equal channels), a fixed stratified
    split: 25 % test, ``random_state=0``."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    gray = np.clip(np.rint(np.asarray(digits.images, dtype=np.float64) * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))
    labels = np.asarray(digits.target, dtype=np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=0.25, random_state=0, stratify=labels)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return Downstream(
        "digits",
        Split(images[train_idx], labels[train_idx]),
        Split(images[test_idx], labels[test_idx]),
        10,
        [str(d) for d in range(10)],
    )


# ---------------------------------------------------------------------------------------------- storage helpers


def _kind(uri: str, root: str) -> str | None:
    """'dir', 'file' or None (absent) for a local path or an s3:// URI."""
    fs, path = storage.filesystem(uri)
    try:
        if storage.is_s3(uri):
            fs.invalidate_cache(path)
        if fs.isdir(path):
            return "dir"
        return "file" if fs.exists(path) else None
    except Exception as exc:
        raise ConfigError(f"score.data_root={root!r}: cannot access {uri} ({_why(exc)})") from None


def _require_dir(root: str, expected: str) -> None:
    kind = _kind(root, root)
    if kind is None:
        raise ConfigError(f"score.data_root={root!r} does not exist; expected {expected}")
    if kind != "dir":
        raise ConfigError(f"score.data_root={root!r} is a file, not a directory; expected {expected}")


def _listdir(uri: str, root: str) -> list[str]:
    try:
        return storage.listdir(uri)
    except Exception as exc:
        raise ConfigError(f"score.data_root={root!r}: cannot list {uri} ({_why(exc)})") from None


def _read(uri: str, root: str) -> bytes:
    try:
        return storage.read_bytes(uri)
    except Exception as exc:
        raise ConfigError(f"score.data_root={root!r}: cannot read {uri} ({_why(exc)})") from None


def _why(exc: BaseException) -> str:
    return storage._reason(exc)  # noqa: SLF001 - the project's one mapping of storage errors to words




if __name__ == "__main__":  # python -m raysweep.score.datasets imagefolder DATASET DATA_ROOT OUT [LIMIT]
    import sys

    args = sys.argv[1:]
    if len(args) not in (4, 5) or args[0] != "imagefolder":
        sys.exit("usage: python -m raysweep.score.datasets imagefolder DATASET DATA_ROOT OUT [LIMIT]  "
                 "(e.g. imagefolder cifar10 ../shared/data/cifar10-subset /tmp/cifar-if)")
    try:
        print(write_imagefolder(load_downstream(args[1], args[2]), args[3], limit=int(args[4]) if len(args) == 5 else None))
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
