"""Downstream datasets (raysweep.score.datasets): CIFAR-10/100 python batches (local, s3://, the
official download against a local HTTP server), ImageFolder, digits, resize_batch, and one-line
ConfigErrors for every bad input. Nothing here touches the internet."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shared_material import skip_unless_shared

from raysweep.config import ConfigError
from raysweep.score import datasets as ds
from raysweep.core.inputs import resize_batch
from raysweep.score.datasets import Downstream, Split, download_cifar, load_downstream

SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
BATCHES = SUBSET / "cifar-10-batches-py"
PER_BATCH = 1017
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]

needs_subset = pytest.mark.skipif(not SUBSET.exists(), reason=f"the CIFAR-10 subset is not at {SUBSET}")


def one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg == msg.strip() and "Traceback" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def raw(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def fake_batch(rng: np.random.Generator, n: int, num_classes: int = 10, label_key: str = "labels") -> dict:
    return {
        "batch_label": "fake",
        label_key: rng.integers(0, num_classes, n).tolist(),
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
    }


def write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def fake_cifar10(folder: Path, n: int = 4, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    batches = {f: fake_batch(rng, n) for f in CIFAR10_FILES[:-1]}
    for f, b in batches.items():
        write_pickle(folder / f, b)
    write_pickle(folder / "batches.meta", {"label_names": CIFAR10_NAMES, "num_cases_per_batch": 10000, "num_vis": 3072})
    return batches


def copy_subset(dest: Path, skip: tuple[str, ...] = ()) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in CIFAR10_FILES:
        if f not in skip:
            shutil.copyfile(BATCHES / f, dest / f)  # copyfile: the copies stay writable
    return dest


@pytest.fixture(scope="module")
def subset() -> Downstream:
    skip_unless_shared(SUBSET, "the CIFAR-10 subset")
    return load_downstream("cifar10", str(SUBSET))  # the parent of cifar-10-batches-py


# ---------------------------------------------------------------------------------------------- CIFAR-10 subset


@needs_subset
def test_cifar10_subset_counts_shapes_and_names(subset):
    assert subset.name == "cifar10" and subset.num_classes == 10
    assert subset.class_names == CIFAR10_NAMES == raw(BATCHES / "batches.meta")["label_names"]
    for split, n in ((subset.train, 5 * PER_BATCH), (subset.test, PER_BATCH)):
        assert isinstance(split, Split) and len(split) == n
        assert split.images.shape == (n, 32, 32, 3) and split.images.dtype == np.uint8
        assert split.labels.shape == (n,) and split.labels.dtype == np.int64
        counts = np.bincount(split.labels, minlength=10)
        assert counts.size == 10 and counts.min() > 0.75 * n / 10 and counts.max() < 1.25 * n / 10
    assert subset.train.images.std() > 30  # real photographs, not zeros


@needs_subset
def test_cifar10_images_and_labels_match_the_raw_pickle(subset):
    batch3 = raw(BATCHES / "data_batch_3")
    test = raw(BATCHES / "test_batch")
    for k in (0, 517, PER_BATCH - 1):
        i = 2 * PER_BATCH + k
        assert subset.train.labels[i] == batch3["labels"][k]
        img = subset.train.images[i]
        for r, c, ch in ((0, 0, 0), (5, 17, 1), (31, 31, 2), (16, 3, 0), (31, 0, 1)):
            assert img[r, c, ch] == batch3["data"][k][ch * 1024 + r * 32 + c]
        np.testing.assert_array_equal(img.transpose(2, 0, 1).reshape(3072), batch3["data"][k])
    np.testing.assert_array_equal(subset.test.labels, np.asarray(test["labels"]))
    np.testing.assert_array_equal(subset.test.images[9].transpose(2, 0, 1).reshape(3072), test["data"][9])


@needs_subset
def test_cifar10_batches_directory_and_parent_agree(subset):
    direct = load_downstream("cifar10", str(BATCHES))
    np.testing.assert_array_equal(direct.train.images, subset.train.images)
    np.testing.assert_array_equal(direct.test.labels, subset.test.labels)


@needs_subset
def test_cifar10_bad_roots_are_one_line_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", str(missing))
    one_line(exc, str(missing), "does not exist", "cifar-10-batches-py")

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", str(afile))
    one_line(exc, str(afile), "not a directory")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", str(empty))
    one_line(exc, str(empty), "cifar-10-batches-py", "data_batch_1")

    partial = copy_subset(tmp_path / "partial" / "cifar-10-batches-py", skip=("data_batch_3",))
    for root in (partial, partial.parent):
        with pytest.raises(ConfigError) as exc:
            load_downstream("cifar10", str(root))
        msg = one_line(exc, str(root), "missing data_batch_3")
        assert "data_batch_2," not in msg.split("missing", 1)[1].split("(")[0]


@needs_subset
def test_cifar10_truncated_batch_is_named(tmp_path):
    folder = copy_subset(tmp_path / "cifar-10-batches-py", skip=("data_batch_2",))
    (folder / "data_batch_2").write_bytes((BATCHES / "data_batch_2").read_bytes()[:1000])
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", str(tmp_path))
    one_line(exc, str(folder / "data_batch_2"), "partial or corrupt")


@pytest.mark.parametrize(
    "mutate, what",
    [
        (lambda b: b.update(data=b["data"][:, :3000]), "3072"),
        (lambda b: b.update(labels=b["labels"][:-1]), "image rows but"),
        (lambda b: b.update(labels=[12] + b["labels"][1:]), "out of range 0..9"),
        (lambda b: b.pop("labels"), "'labels'"),
        (lambda b: b.update(extra=__import__("collections").OrderedDict()), "refused"),
    ],
    ids=["width", "rows-vs-labels", "label-range", "no-labels", "foreign-global"],
)
def test_cifar10_malformed_batches_are_rejected(tmp_path, mutate, what):
    folder = tmp_path / "cifar-10-batches-py"
    batches = fake_cifar10(folder)
    bad = batches["data_batch_4"]
    mutate(bad)
    write_pickle(folder / "data_batch_4", bad)
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", str(folder))
    one_line(exc, str(folder / "data_batch_4"), what)


def test_cifar100_layout(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train, test = fake_batch(rng, 7, 100, "fine_labels"), fake_batch(rng, 3, 100, "fine_labels")
    train["coarse_labels"] = [0] * 7
    write_pickle(folder / "train", train)
    write_pickle(folder / "test", test)
    names = [f"class{i:03d}" for i in range(100)]
    write_pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": ["x"] * 20})
    d = load_downstream("cifar100", str(tmp_path))
    assert (d.num_classes, d.class_names, len(d.train), len(d.test)) == (100, names, 7, 3)
    np.testing.assert_array_equal(d.train.labels, train["fine_labels"])
    np.testing.assert_array_equal(d.test.images[2].transpose(2, 0, 1).reshape(3072), test["data"][2])
    (folder / "test").unlink()
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar100", str(folder))
    one_line(exc, str(folder), "missing test")


def test_unknown_dataset_name_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as exc:
        load_downstream("imagenet21k", "/tmp")
    one_line(exc, "'imagenet21k'", "cifar10, cifar100, imagefolder, digits")


# ---------------------------------------------------------------------------------------------- s3://


@pytest.fixture
def s3(s3_endpoint, aws_env, no_proxy):
    """A fresh bucket on the loopback S3 server; yields (boto3 client, bucket name)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"score-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


@needs_subset
def test_cifar10_from_s3_equals_the_local_load(s3, subset):
    client, bucket = s3
    for f in CIFAR10_FILES:
        client.upload_file(str(BATCHES / f), bucket, f"cifar-10-batches-py/{f}")
    for root in (f"s3://{bucket}/cifar-10-batches-py", f"s3://{bucket}"):
        d = load_downstream("cifar10", root)
        assert (len(d.train), len(d.test)) == (len(subset.train), len(subset.test)) == (5085, 1017)
        assert d.class_names == subset.class_names
        np.testing.assert_array_equal(d.train.labels, subset.train.labels)
        np.testing.assert_array_equal(d.test.images, subset.test.images)

    client.delete_object(Bucket=bucket, Key="cifar-10-batches-py/data_batch_3")
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", f"s3://{bucket}/cifar-10-batches-py")
    one_line(exc, f"s3://{bucket}/cifar-10-batches-py", "missing data_batch_3")
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", f"s3://{bucket}/elsewhere")
    one_line(exc, f"s3://{bucket}/elsewhere", "does not exist")
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", f"s3://{bucket}-absent/cifar-10-batches-py")
    one_line(exc, f"s3://{bucket}-absent/cifar-10-batches-py", "does not exist")


def test_imagefolder_from_s3(s3, tmp_path):
    client, bucket = s3
    local = tmp_path / "tree"
    make_tree(local)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            client.upload_file(str(p), bucket, f"tree/{p.relative_to(local).as_posix()}")
    remote = load_downstream("imagefolder", f"s3://{bucket}/tree")
    here = load_downstream("imagefolder", str(local))
    assert remote.class_names == here.class_names
    np.testing.assert_array_equal(remote.train.images, here.train.images)
    np.testing.assert_array_equal(remote.test.labels, here.test.labels)


# ---------------------------------------------------------------------------------------------- imagefolder


def tile(seed: int, h: int = 12, w: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, arr: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


# class -> (train images, val images); created in an unsorted order, with mixed (lossless) extensions
TREE = {"zebra": (3, 1), "cat": (2, 2), "dog": (1, 1)}


def make_tree(root: Path, val: str = "val") -> dict[str, dict[str, list[np.ndarray]]]:
    made: dict[str, dict[str, list[np.ndarray]]] = {"train": {}, val: {}}
    seed = 0
    for cls, counts in TREE.items():
        for split, n in zip(("train", val), counts):
            made[split][cls] = []
            for i in range(n):
                seed += 1
                arr = tile(seed)
                name, fmt = [(f"{i}.png", "PNG"), (f"{i}.PNG", "PNG"), (f"{i}.bmp", "BMP")][i % 3]
                save(root / split / cls / name, arr, fmt)
                made[split][cls].append(arr)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "README").write_text("a file beside the class directories")
    return made


def test_imagefolder_labels_follow_sorted_class_names(tmp_path):
    made = make_tree(tmp_path)
    d = load_downstream("imagefolder", str(tmp_path))
    assert d.name == "imagefolder" and d.class_names == ["cat", "dog", "zebra"] and d.num_classes == 3
    assert d.train.images.shape == (6, 12, 12, 3) and d.train.images.dtype == np.uint8
    assert d.test.images.shape == (4, 12, 12, 3) and d.train.labels.dtype == np.int64
    for split, key in ((d.train, "train"), (d.test, "val")):
        expected = [(label, arr) for label, cls in enumerate(d.class_names) for arr in made[key][cls]]
        assert split.labels.tolist() == [label for label, _ in expected]
        for img, (_, arr) in zip(split.images, expected):
            np.testing.assert_array_equal(img, arr)  # same order (sorted file names), lossless


def test_imagefolder_test_dir_resizing_and_size_argument(tmp_path):
    make_tree(tmp_path, val="test")
    save(tmp_path / "test" / "dog" / "big.jpg", tile(99, 40, 20), "JPEG")  # another size -> resized
    d = load_downstream("imagefolder", str(tmp_path))
    assert d.test.images.shape == (5, 12, 12, 3) and d.test.labels.tolist() == [0, 0, 1, 1, 2]
    d16 = load_downstream("imagefolder", str(tmp_path), size=16)
    assert d16.train.images.shape == (6, 16, 16, 3) and d16.test.images.shape == (5, 16, 16, 3)


def test_imagefolder_errors_are_one_line_and_named(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_downstream("imagefolder", None)
    one_line(exc, "score.data_root", "train/")

    make_tree(tmp_path / "a")
    shutil.rmtree(tmp_path / "a" / "val")
    with pytest.raises(ConfigError) as exc:
        load_downstream("imagefolder", str(tmp_path / "a"))
    one_line(exc, str(tmp_path / "a"), "no val/ (or test/)")

    make_tree(tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "train")
    with pytest.raises(ConfigError) as exc:
        load_downstream("imagefolder", str(tmp_path / "b"))
    one_line(exc, str(tmp_path / "b"), "no train/")

    make_tree(tmp_path / "c")
    shutil.rmtree(tmp_path / "c" / "val" / "dog")
    save(tmp_path / "c" / "val" / "emu" / "0.png", tile(5))
    with pytest.raises(ConfigError) as exc:
        load_downstream("imagefolder", str(tmp_path / "c"))
    one_line(exc, "only in train/: dog", "only in val/: emu")

    make_tree(tmp_path / "d")
    for p in (tmp_path / "d" / "train" / "cat").iterdir():
        if p.suffix.lower() != ".txt":
            p.unlink()
    with pytest.raises(ConfigError) as exc:
        load_downstream("imagefolder", str(tmp_path / "d"))
    one_line(exc, str(tmp_path / "d" / "train" / "cat"), "no images")

    make_tree(tmp_path / "e")
    broken = tmp_path / "e" / "val" / "zebra" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ConfigError) as exc:
        load_downstream("imagefolder", str(tmp_path / "e"))
    one_line(exc, str(broken), "cannot decode")

    with pytest.raises(ConfigError) as exc:
        load_downstream("imagefolder", str(tmp_path / "missing"))
    one_line(exc, str(tmp_path / "missing"), "does not exist")


# ---------------------------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_and_stratified():
    d = load_downstream("digits", "/ignored/path")
    assert d.name == "digits" and d.num_classes == 10 and d.class_names == [str(i) for i in range(10)]
    assert d.train.images.shape == (1347, 8, 8, 3) and d.test.images.shape == (450, 8, 8, 3)
    assert d.train.images.dtype == np.uint8 and d.train.labels.dtype == np.int64
    assert d.train.images.max() == 255 and d.train.images.min() == 0
    assert (d.train.images[..., 0] == d.train.images[..., 2]).all()
    for split in (d.train, d.test):
        counts = np.bincount(split.labels, minlength=10)
        assert counts.size == 10 and counts.max() - counts.min() <= 0.1 * len(split)
    again = load_downstream("digits", None)
    np.testing.assert_array_equal(again.test.images, d.test.images)
    np.testing.assert_array_equal(again.train.labels, d.train.labels)


# ---------------------------------------------------------------------------------------------- download


def make_tarball(path: Path, src: Path, extra: tuple[tuple[str, bytes], ...] = ()) -> str:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_md5_extracts_and_caches(tmp_path, http_root, monkeypatch):
    base, www = http_root
    batches = fake_cifar10(tmp_path / "src")
    md5 = make_tarball(www / "cifar-10-python.tar.gz", tmp_path / "src")
    monkeypatch.setitem(ds.CIFAR_URLS, "cifar10", f"{base}/cifar-10-python.tar.gz")
    monkeypatch.setitem(ds.CIFAR_MD5, "cifar10", md5)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAYSWEEP_DATA_CACHE", str(cache))

    d = load_downstream("cifar10", None)
    assert (len(d.train), len(d.test), d.class_names) == (20, 4, CIFAR10_NAMES)
    np.testing.assert_array_equal(d.train.labels[4:8], batches["data_batch_2"]["labels"])
    np.testing.assert_array_equal(d.test.images[3].transpose(2, 0, 1).reshape(3072), batches["test_batch"]["data"][3])
    assert sorted(os.listdir(cache)) == ["cifar-10-batches-py"]  # no archive or temp dir left

    monkeypatch.setitem(ds.CIFAR_URLS, "cifar10", "http://127.0.0.1:9/unreachable.tar.gz")
    assert download_cifar("cifar10") == str(cache / "cifar-10-batches-py")  # cached: no download
    assert len(load_downstream("cifar10", "").train) == 20


def test_download_with_wrong_md5_leaves_nothing(tmp_path, http_root, monkeypatch):
    base, www = http_root
    fake_cifar10(tmp_path / "src")
    make_tarball(www / "cifar-10-python.tar.gz", tmp_path / "src")
    url = f"{base}/cifar-10-python.tar.gz"
    monkeypatch.setitem(ds.CIFAR_URLS, "cifar10", url)
    monkeypatch.setitem(ds.CIFAR_MD5, "cifar10", "0" * 32)
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAYSWEEP_DATA_CACHE", str(cache))
    with pytest.raises(ConfigError) as exc:
        load_downstream("cifar10", None)
    one_line(exc, url, "md5", "0" * 32)
    assert os.listdir(cache) == []


def test_download_refuses_unsafe_members(tmp_path, http_root, monkeypatch):
    base, www = http_root
    fake_cifar10(tmp_path / "src")
    md5 = make_tarball(www / "evil.tar.gz", tmp_path / "src", extra=(("../escaped", b"x"),))
    monkeypatch.setitem(ds.CIFAR_URLS, "cifar10", f"{base}/evil.tar.gz")
    monkeypatch.setitem(ds.CIFAR_MD5, "cifar10", md5)
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError) as exc:
        download_cifar("cifar10", cache)
    one_line(exc, "'../escaped'", "unsafe")
    assert os.listdir(cache) == [] and not (tmp_path / "escaped").exists()


def test_download_unreachable_is_one_line(tmp_path, no_proxy, monkeypatch):
    url = "http://127.0.0.1:9/cifar-10-python.tar.gz"  # nothing listens there
    monkeypatch.setitem(ds.CIFAR_URLS, "cifar10", url)
    with pytest.raises(ConfigError) as exc:
        download_cifar("cifar10", tmp_path / "cache")
    one_line(exc, url, "score.data_root")
    assert os.listdir(tmp_path / "cache") == []


# ---------------------------------------------------------------------------------------------- resize_batch


def test_resize_batch_shapes_range_and_dtype():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    for size in (8, 32, 56):
        x = resize_batch(imgs, size)
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
        assert tuple(x.shape) == (3, 3, size, size)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    same = resize_batch(imgs, 32)
    torch.testing.assert_close(same, torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)
    flat = np.full((2, 10, 10, 3), 200, np.uint8)
    torch.testing.assert_close(resize_batch(flat, 37), torch.full((2, 3, 37, 37), 200 / 255), atol=1e-5, rtol=0)
    assert tuple(resize_batch(imgs[:0], 16).shape) == (0, 3, 16, 16)
    with pytest.raises(ValueError):
        resize_batch(imgs.astype(np.float32), 16)


def test_write_imagefolder_round_trips_the_cifar_subset(cifar_imagefolder):
    """The ImageNet-layout fixture: every image of the subset, in its class folder, as a JPEG that
    decodes close to the original (JPEG at quality 95)."""
    from tests.conftest import SHARED_CIFAR

    cifar = load_downstream("cifar10", str(SHARED_CIFAR))
    tree = load_downstream("imagefolder", str(cifar_imagefolder))
    assert tree.class_names == cifar.class_names
    assert (len(tree.train), len(tree.test)) == (len(cifar.train), len(cifar.test)) == (5085, 1017)
    # the folder reads class by class: compare each class's images as sets of files in order
    for split_tree, split_cifar in ((tree.train, cifar.train), (tree.test, cifar.test)):
        order = np.argsort(split_cifar.labels, kind="stable")
        assert (split_tree.labels == split_cifar.labels[order]).all()
        err = np.abs(split_tree.images.astype(np.int16) - split_cifar.images[order].astype(np.int16))
        assert err.mean() < 4.0, err.mean()
