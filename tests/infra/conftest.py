"""One synthesis of the aws profile's stacks per test session (the AWS CDK through jsii and Node.js:
tens of seconds on a busy 2-core machine), shared by the tests that read the templates."""

from __future__ import annotations

import os

import pytest

from hybridopt.params import load_params


@pytest.fixture(scope="session")
def aws_params():
    return load_params("aws")


@pytest.fixture(scope="session")
def synthesized(aws_params, tmp_path_factory):
    from hybridopt.infra.synth import synth

    return synth(aws_params, tmp_path_factory.mktemp("cdk") / "out")


@pytest.fixture()
def moto_env(monkeypatch):
    """Fake credentials for moto; nothing reaches AWS."""
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
