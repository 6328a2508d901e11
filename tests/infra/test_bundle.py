"""What ships: the Lambda zip and the container image carry the same workload code and pins."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from hybridopt import paths
from hybridopt.infra import bundle


def _dockerfile_copies() -> dict[str, str]:
    """COPY <src> <dst> lines of the Dockerfile: repository path -> path under /app."""
    out = {}
    for line in bundle.DOCKERFILE.read_text().splitlines():
        m = re.match(r"^COPY\s+(\S+)\s+(\S+)\s*$", line.strip())
        if m:
            assert m.group(2).startswith("/app/"), line
            out[m.group(1)] = m.group(2).removeprefix("/app/")
    return out


def test_dockerfile_copies_the_code_the_lambda_zip_ships():
    copies = _dockerfile_copies()
    shipped = {k: v for k, v in copies.items() if k.endswith(".py") and not k.endswith("gunicorn_conf.py")}
    assert shipped == bundle.SHIPPED_FILES
    assert copies == {**bundle.SHIPPED_FILES, **bundle.IMAGE_ONLY_FILES}


def test_dockerfile_installs_the_pinned_requirements_and_runs_gunicorn_conf():
    text = bundle.DOCKERFILE.read_text()
    assert re.search(r"^RUN pip install .*-r /app/workload-requirements\.txt", text, re.M)
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (paths.PROJECT_ROOT / "requirements.txt").read_text(), re.M))
    gunicorn = re.search(r"gunicorn==(\S+)", text).group(1)
    assert pins["gunicorn"] == gunicorn
    assert re.search(r'^CMD \["gunicorn", "--config", "/app/gunicorn_conf.py", "hybridopt\.infra\.entry:'
                     r'make_container_app\(\)"\]$', text, re.M)
    base = re.search(r"^FROM \S+python:(\d+\.\d+)-", text, re.M).group(1)
    from hybridopt.params import load_params

    assert load_params("aws").infra.lambda_runtime == f"python{base}"


def test_workload_pins_match_requirements_and_installed_versions():
    pins = bundle.requirement_pins()
    top = dict((k.lower(), v) for k, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)",
                                                     (paths.PROJECT_ROOT / "requirements.txt").read_text(), re.M))
    for name in ("numpy", "pillow", "jsonschema"):
        assert pins[name] == top[name]
    for name, version in pins.items():
        assert importlib.metadata.version(name) == version, name


def test_source_zip_holds_exactly_the_shipped_files_and_is_deterministic(tmp_path):
    a = bundle.build_lambda_zip(tmp_path / "a.zip", with_dependencies=False)
    b = bundle.build_lambda_zip(tmp_path / "b.zip", with_dependencies=False)
    assert a.sha256 == b.sha256
    with zipfile.ZipFile(a.path) as zf:
        assert sorted(zf.namelist()) == sorted(bundle.SHIPPED_FILES.values())
        for src, arc in bundle.SHIPPED_FILES.items():
            assert zf.read(arc) == (paths.PROJECT_ROOT / src).read_bytes()
    module, func = bundle.LAMBDA_HANDLER.rsplit(".", 1)
    assert module.replace(".", "/") + ".py" in bundle.SHIPPED_FILES.values()


def test_image_tag_follows_the_image_inputs(tmp_path, monkeypatch):
    tag = bundle.image_tag()
    assert re.fullmatch(r"w-[0-9a-f]{16}", tag)
    copy = tmp_path / "repo"
    for rel in bundle.image_files():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.PROJECT_ROOT / rel, copy / rel)
    monkeypatch.setattr(paths, "PROJECT_ROOT", copy)
    assert bundle.image_tag() == tag
    with open(copy / "lib/hybridopt/workloads.py", "a") as fh:
        fh.write("\n# changed\n")
    assert bundle.image_tag() != tag


def _python312() -> str | None:
    """A working Python 3.12 interpreter (a pyenv shim that is not set up does not count)."""
    candidates = [shutil.which("python3.12"), *map(str, sorted(Path("/root/.pyenv/versions").glob("3.12*/bin/python3.12")))]
    for c in filter(None, candidates):
        try:
            if subprocess.run([c, "--version"], capture_output=True, timeout=20).returncode == 0:
                return c
        except OSError:
            continue
    return None


@pytest.mark.slow
def test_deployable_zip_runs_the_handler_on_the_lambda_python(tmp_path):
    """The zip with its manylinux wheels (pip --platform, from PyPI) imports and serves an API
    Gateway event on Python 3.12, the runtime's version, outside this project's environment."""
    rep = bundle.build_lambda_zip(tmp_path / "w.zip", with_dependencies=True)
    assert rep.zip_bytes < 50_000_000 and rep.unzipped_bytes < 250_000_000   # Lambda's zip limits (S3 upload)
    with zipfile.ZipFile(rep.path) as zf:
        names = zf.namelist()
        assert any(n.startswith("numpy/") for n in names) and any(n.startswith("PIL/") for n in names)
        assert not any(".cpython-311" in n for n in names)
        zf.extractall(tmp_path / "x")
    py312 = _python312()
    if py312 is None:
        pytest.skip("no Python 3.12 interpreter here to import the zip with")
    code = (
        "import json, sys, types; sys.path.insert(0, sys.argv[1]);"
        "from hybridopt.infra import entry; from hybridopt import workloads;"
        "assert workloads.__file__.startswith(sys.argv[1]);"
        "body = workloads.make_body('thumbnail_processing', 100, seed=3).decode();"
        "ev = {'resource': '/thumbnail', 'path': '/thumbnail', 'httpMethod': 'POST',"
        "      'headers': {'X-Request-Id': 'req-42'}, 'body': body, 'isBase64Encoded': False};"
        "r = entry.lambda_handler(ev, types.SimpleNamespace(aws_request_id='aws-7', memory_limit_in_mb=256));"
        "out = json.loads(r['body']); print('STATUS', r['statusCode'], len(out['result']['thumbnails']))")
    run = subprocess.run([py312, "-I", "-c", code, str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == 'HYBRIDOPT_REQUEST {"aws_request_id":"aws-7","request_id":"req-42","pair_id":null,' \
                       '"resource":"/thumbnail"}'
    assert lines[1] == "STATUS 200 3"
