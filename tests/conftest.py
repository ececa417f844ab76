"""Shared real components: one S3 API server (moto's server mode on loopback) and one local Ray
for the whole session. The S3 settings are exported before Ray starts so Ray's workers inherit
them; RAY_ADDRESS is exported so commands run as subprocesses join the same Ray instead of
starting their own (Ray start-up costs ~20 s here)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    yield endpoint
    server.stop()


@pytest.fixture()
def aws_env(s3_endpoint, monkeypatch, tmp_path):
    """This test's AWS settings: the loopback server, test keys, and nothing from the machine's own
    AWS configuration (no profiles, credential files or instance metadata)."""
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(var, value)
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    return s3_endpoint


@pytest.fixture()
def s3_bucket(s3_endpoint):
    """A fresh bucket on the loopback S3 server; yields its s3:// URI."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def ray_cluster(s3_endpoint):
    import ray

    if not ray.is_initialized():  # a test that did not ask for this fixture may have started one
        from raysweep.runtime import ensure_ray

        os.environ.pop("RAY_ADDRESS", None)
        ensure_ray(num_cpus=2)  # as every local run: loopback only, the dashboard's State API for Train's cleaner
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    yield ray
    ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture()
def no_proxy(monkeypatch):
    """Loopback requests must not go through a proxy configured on the machine."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture()
def http_root(tmp_path, no_proxy):
    """A real http.server on 127.0.0.1 serving a fresh folder; yields (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", www
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


@pytest.fixture(scope="session")
def cifar_imagefolder(tmp_path_factory) -> Path:
    """The CIFAR-10 subset in ../shared written out as an ImageFolder of JPEGs (ImageNet layout:
    train/<class>/*.jpg, val/<class>/*.jpg): 5,085 train and 1,017 val images. Skips without ../shared."""
    from shared_material import skip_unless_shared

    skip_unless_shared(SHARED_CIFAR, "the CIFAR-10 subset")
    from raysweep.score.datasets import load_downstream, write_imagefolder

    return Path(write_imagefolder(load_downstream("cifar10", str(SHARED_CIFAR)), tmp_path_factory.mktemp("if") / "cifar"))


def pytest_collection_modifyitems(config, items):
    """Tests that need the session's Ray are integration tests: marked ``slow``, so that
    ``pytest -m "not slow"`` is the fast loop (unit tests of the math, the config, the parts)."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
