"""The stack's S3-compatible object store: moto's S3 server (`moto_server`), on 127.0.0.1, with
one bucket: the MLflow server's artifacts under `mlflow/`, the DVC remote under `dvc/`.

Why an emulator: no S3 server installs here from a package registry (MinIO's server is not on
PyPI nor in Debian 12; Ceph's radosgw needs a Ceph cluster), and moto's is a well-kept one that
pip installs. It speaks the S3 API that boto3, s3fs (DVC) and MLflow use, accepts any access key,
and keeps objects in memory only: they are gone when it stops. A team's real store (AWS S3,
MinIO, ...) is reached with the same settings: an endpoint URL, a key id and a secret.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from rnnlm.team import processes

BUCKET = "rnnlm-team"
REGION = "us-east-1"


@dataclass(frozen=True)
class ObjectStore:
    port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        return f"http://{processes.LOOPBACK}:{self.port}"

    def start(self, log: Path) -> int:
        """Start the server; its pid (`wait` until it answers)."""
        moto = Path(sys.executable).parent / "moto_server"
        return processes.start([str(moto), "-H", processes.LOOPBACK, "-p", str(self.port)], log)

    def wait(self, pid: int, log: Path) -> None:
        processes.wait_until(lambda: processes.answers(f"{self.endpoint}/moto-api/"),
                             "the S3 emulator (moto_server)", pid, log, timeout=60)

    def client_settings(self) -> dict[str, str]:
        """What an S3 client (boto3, s3fs, MLflow's artifact repository) reads from its
        environment to reach the bucket."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": REGION}

    def create_bucket(self) -> None:
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                          aws_secret_access_key=self.secret_key, region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
