"""A real S3-compatible server on loopback for the location tests: moto in server mode.

``s3_server`` (session) starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port,
creates :data:`BUCKET` and defines the Airflow connection :data:`CONN_ID` (conn type ``aws``, dummy
keys, ``endpoint_url`` on the server), so ``s3://aws_s3test@openai-files-test/key`` works through
the Amazon provider and s3fs exactly as against AWS. ``s3`` (per test) gives a fresh key prefix and
a boto3 client, and deletes what the test left. Registered in ``tests/conftest.py``
(``pytest_plugins``); moto is imported only when a test asks for the fixture.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.connections import conn_env_var, connection_value

CONN_ID = "aws_s3test"
BUCKET = "openai-files-test"
REGION = "us-east-1"
#: Dummy credentials: moto accepts any; real ones from the environment must never be used.
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class S3Server:
    endpoint_url: str
    client: Any  # a boto3 S3 client on the server

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in :data:`BUCKET`, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)


@dataclass
class S3Prefix:
    """One test's corner of the bucket: ``url(name)`` for Airflow, ``key(name)`` for boto3."""

    server: S3Server
    prefix: str

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def url(self, name: str) -> str:
        return f"s3://{CONN_ID}@{BUCKET}/{self.key(name)}"

    def keys(self) -> list[str]:
        """The object names under this prefix (relative), sorted."""
        return [key[len(self.prefix) + 1 :] for key in self.server.keys(self.prefix + "/")]

    def put(self, name: str, data: bytes) -> None:
        self.server.put(self.key(name), data)

    def get(self, name: str) -> bytes:
        return self.server.get(self.key(name))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    saved = {name: os.environ.get(name) for name in [*_AWS_ENV, conn_env_var(CONN_ID)]}
    os.environ.update(_AWS_ENV)
    os.environ[conn_env_var(CONN_ID)] = connection_value(
        conn_type="aws",
        login=_AWS_ENV["AWS_ACCESS_KEY_ID"],
        password=_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        extra={"endpoint_url": endpoint_url, "region_name": REGION},
    )
    client = boto3.client("s3", endpoint_url=endpoint_url, region_name=REGION)
    try:
        client.create_bucket(Bucket=BUCKET)
        yield S3Server(endpoint_url, client)
    finally:
        client.close()
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Prefix]:
    corner = S3Prefix(s3_server, f"t-{uuid.uuid4().hex[:12]}")
    yield corner
    for key in s3_server.keys(corner.prefix + "/"):
        s3_server.client.delete_object(Bucket=BUCKET, Key=key)
