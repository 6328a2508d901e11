"""What ships to AWS: the Lambda zip of the workloads, and the tag of their container image.

Both carry the same code (`SHIPPED_FILES`: `hybridopt.workloads` and its entry points); the zip adds
the workloads' dependencies (`workload-requirements.txt`) as manylinux wheels for the Lambda runtime
(pip `--platform`, no Docker needed), the image installs the same pins (Dockerfile).

The zip is deterministic (sorted entries, fixed timestamps): the same inputs give the same bytes, so
its S3 key (`lambda/<sha256>.zip`) names the build. The image tag is a hash of every file the
Dockerfile copies, so a deploy can tell whether the image in ECR holds the current code.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from hybridopt.errors import InputError
from hybridopt import paths

INFRA_DIR = Path(__file__).resolve().parent
DOCKERFILE = INFRA_DIR / "Dockerfile"
WORKLOAD_REQUIREMENTS = INFRA_DIR / "workload-requirements.txt"
GUNICORN_CONF = INFRA_DIR / "gunicorn_conf.py"

#: repository path -> path inside the zip and under /app in the image: the workloads and their entry.
SHIPPED_FILES: dict[str, str] = {
    "lib/hybridopt/__init__.py": "hybridopt/__init__.py",
    "lib/hybridopt/workloads.py": "hybridopt/workloads.py",
    "lib/hybridopt/infra/__init__.py": "hybridopt/infra/__init__.py",
    "lib/hybridopt/infra/entry.py": "hybridopt/infra/entry.py",
}
#: Files only the image needs (repository path -> path under /app).
IMAGE_ONLY_FILES: dict[str, str] = {
    "lib/hybridopt/infra/workload-requirements.txt": "workload-requirements.txt",
    "lib/hybridopt/infra/gunicorn_conf.py": "gunicorn_conf.py",
}
LAMBDA_HANDLER = "hybridopt.infra.entry.lambda_handler"
ZIP_NAME = "workloads-lambda.zip"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
#: pip platform tags the Lambda runtime's Amazon Linux 2023 (glibc 2.34) runs: pip takes a wheel
#: tagged with any of them (it does not widen a given tag to older glibc versions by itself).
_PIP_PLATFORMS = {arch: (f"manylinux_2_28_{m}", f"manylinux_2_17_{m}", f"manylinux2014_{m}")
                  for arch, m in (("x86_64", "x86_64"), ("arm64", "aarch64"))}


class BundleError(InputError):
    """The Lambda zip cannot be built (a dependency has no wheel for the runtime, pip failed...)."""


@dataclass(frozen=True)
class ZipReport:
    path: str
    zip_bytes: int
    unzipped_bytes: int
    n_files: int
    sha256: str
    with_dependencies: bool
    handler: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def requirement_pins(path: Path = WORKLOAD_REQUIREMENTS) -> dict[str, str]:
    """name -> version of every `name==version` line."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" not in line:
            raise BundleError(f"{path}: {line!r} is not pinned as name==version")
        name, version = line.split("==", 1)
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def zip_path(synth_dir: Path) -> Path:
    return synth_dir / ZIP_NAME


def install_dependencies(target: Path, python_version: str, architecture: Literal["x86_64", "arm64"]) -> None:
    """pip-install the pinned workload requirements as binary wheels for the Lambda runtime."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(target), *[a for tag in _PIP_PLATFORMS[architecture] for a in ("--platform", tag)],
           "--implementation", "cp",
           "--python-version", python_version, "--only-binary=:all:", "-r", str(WORKLOAD_REQUIREMENTS)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise BundleError(f"pip could not install {WORKLOAD_REQUIREMENTS.name} for python {python_version} "
                          f"{architecture}:\n{out.stderr.strip()[-2000:]}")
    for junk in ("bin",):
        shutil.rmtree(target / junk, ignore_errors=True)


def build_lambda_zip(out: Path, *, with_dependencies: bool, python_version: str = "3.12",
                     architecture: Literal["x86_64", "arm64"] = "x86_64") -> ZipReport:
    """Write the Lambda zip to `out`: SHIPPED_FILES, plus the dependencies when asked (the
    deployable zip; without them the zip serves template synthesis and tests only)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Path] = {arc: paths.PROJECT_ROOT / src for src, arc in SHIPPED_FILES.items()}
    with tempfile.TemporaryDirectory(prefix="hybridopt-lambda-") as tmp:
        if with_dependencies:
            deps = Path(tmp) / "deps"
            install_dependencies(deps, python_version, architecture)
            for f in deps.rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    arc = f.relative_to(deps).as_posix()
                    if arc in entries:
                        raise BundleError(f"dependency file {arc} would overwrite a shipped file")
                    entries[arc] = f
        partial = out.with_suffix(".partial")
        unzipped = 0
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for arc in sorted(entries):
                data = entries[arc].read_bytes()
                unzipped += len(data)
                info = zipfile.ZipInfo(arc, date_time=_FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        partial.replace(out)
    blob = out.read_bytes()
    return ZipReport(path=str(out), zip_bytes=len(blob), unzipped_bytes=unzipped, n_files=len(entries),
                     sha256=hashlib.sha256(blob).hexdigest(), with_dependencies=with_dependencies,
                     handler=LAMBDA_HANDLER)


def image_files() -> dict[str, str]:
    """Every repository file the image is built from (the Dockerfile included) -> where it goes."""
    return {**SHIPPED_FILES, **IMAGE_ONLY_FILES, "lib/hybridopt/infra/Dockerfile": "(Dockerfile)"}


def image_tag() -> str:
    """`w-` + 16 hex digits of SHA-256 over the image's input files (path and bytes, sorted)."""
    h = hashlib.sha256()
    for rel in sorted(image_files()):
        h.update(rel.encode() + b"\0" + (paths.PROJECT_ROOT / rel).read_bytes() + b"\0")
    return "w-" + h.hexdigest()[:16]
