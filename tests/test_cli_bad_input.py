"""Every CLI command, run as a user would (`python -m hybridopt ...` in a subprocess), answers a
missing, empty, unreadable or garbage input with one line on stderr that names the input, exit code
2 and no traceback; the commands that audit still write their audit, every line accounted for.

The runs are independent: the selected ones are started together (as many at once as there are
CPUs) and each test checks one. The fast set gives every command and every kind of bad input at
least once (audit: all of them); the rest of the matrix is marked slow."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hybridopt import paths

from tests.conftest import contract_line, write_jsonl

pytestmark = pytest.mark.timeout(900)

PROFILE = "smoke"
ENV = {**os.environ, "PYTHONPATH": str(paths.PROJECT_ROOT / "lib")}
DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@dataclass
class Case:
    argv: list[str]
    names: Path | str                 # what the error line must name
    unreadable: bool = False          # needs a file the process may not read (root: capabilities dropped)
    audit: Path | None = None         # audit.json the command must still write (every line accounted for)
    quarantine: Path | None = None    # quarantine.jsonl the command must still write
    writes_nothing: Path | None = None  # an output folder that must not appear (nothing was read)
    env: dict[str, str] = field(default_factory=dict)
    other_stderr: str | None = None   # a prefix of status lines a child process may print besides the error


def _garbage(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _line() -> str:
    return json.dumps(contract_line())


def _lock(path: Path) -> Path:
    path.chmod(0)
    return path


def _inputs(root: Path) -> dict[str, Path]:
    """The bad inputs: data folders, model folders, zips, a parameter dump."""
    from hybridopt.data.features import FeatureSpec
    from hybridopt.params import load_params
    from hybridopt.testing import write_synthetic_model_dir

    p: dict[str, Path] = {"missing": root / "missing", "empty": root / "empty"}
    p["empty"].mkdir()
    write_jsonl(root / "empty-logs" / "run-a.jsonl", [])
    p["empty-logs"] = root / "empty-logs"
    (root / "garbage").mkdir()
    (root / "garbage" / "logs.jsonl").write_bytes(_garbage(6000, 1))
    p["garbage"] = root / "garbage"
    (root / "truncated").mkdir()
    (root / "truncated" / "run-a.jsonl").write_text(_line()[:60])
    p["truncated"] = root / "truncated"
    write_jsonl(root / "unreadable" / "run-a.jsonl", [_line()])
    p["unreadable-file"] = _lock(root / "unreadable" / "run-a.jsonl")
    p["unreadable"] = root / "unreadable"
    p["locked"] = root / "locked"
    p["locked"].mkdir()
    _lock(p["locked"])

    ok = write_synthetic_model_dir(FeatureSpec.from_params(load_params(PROFILE)), root / "model", "lightgbm",
                                   n_rows=300, n_trees=5, seed=1)
    p["model"] = ok
    (root / "model-empty").mkdir()
    p["model-empty"] = root / "model-empty"
    for name, damage in (("model-garbage", lambda d: (d / "model.txt").write_bytes(_garbage(3000, 2))),
                         ("model-truncated", lambda d: (d / "model_metadata.json").write_text(
                             (d / "model_metadata.json").read_text()[:50])),
                         ("model-unreadable", lambda d: _lock(d / "model_metadata.json"))):
        shutil.copytree(ok, root / name)
        damage(root / name)
        p[name] = root / name

    good_zip = root / "router.zip"
    with zipfile.ZipFile(good_zip, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hybridopt/router/handler.py", "# handler\n" * 2000)
        zf.writestr("model/model_metadata.json", "{}")
    p["zip-empty"] = root / "empty.zip"
    p["zip-empty"].write_bytes(b"")
    p["zip-garbage"] = root / "garbage.zip"
    p["zip-garbage"].write_bytes(_garbage(5000, 3))
    p["zip-truncated"] = root / "truncated.zip"
    p["zip-truncated"].write_bytes(good_zip.read_bytes()[: good_zip.stat().st_size // 2])
    p["zip-unreadable"] = _lock(Path(shutil.copy(good_zip, root / "unreadable.zip")))

    dump = load_params(PROFILE).model_dump_json()
    for name, content in (("params-empty", b""), ("params-garbage", _garbage(2000, 4)),
                          ("params-truncated", dump[: len(dump) // 2].encode()),
                          ("params-unreadable", dump.encode())):
        p[name] = root / f"{name}.json"
        p[name].write_bytes(content)
    _lock(p["params-unreadable"])
    p["readonly"] = root / "readonly"
    p["readonly"].mkdir()
    p["readonly"].chmod(0o555)
    return p


def _cases(p: dict[str, Path], out: Path, busy_port: int) -> dict[str, Case]:
    c: dict[str, Case] = {}
    data_inputs = {"missing": p["missing"], "empty": p["empty"], "empty-logs": p["empty-logs"],
                   "garbage": p["garbage"], "truncated": p["truncated"], "unreadable": p["unreadable-file"]}
    for cmd in ("ingest", "audit", "preprocess"):
        for what, named in data_inputs.items():
            folder = p["unreadable"] if what == "unreadable" else named
            o = out / f"{cmd}-{what}"
            case = Case([cmd, "--profile", PROFILE, "--data", str(folder), "--out", str(o)], named,
                        unreadable=what == "unreadable")
            if what == "missing":
                case.writes_nothing = o
            else:
                case.quarantine = o / "quarantine.jsonl"
                case.audit = o / "audit.json" if cmd != "ingest" else None
            c[f"{cmd}-{what}"] = case
    for cmd in ("calibrate", "validate-testbed"):
        extra = ["--out", str(out / cmd)] if cmd == "validate-testbed" else []
        for what in ("missing", "empty", "garbage", "truncated"):
            c[f"{cmd}-{what}"] = Case([cmd, "--profile", PROFILE, "--data", str(p[what]), *extra], p[what])
        c[f"{cmd}-locked"] = Case([cmd, "--profile", PROFILE, "--data", str(p["locked"]), *extra], p["locked"],
                                  unreadable=True)
    ev = ["evaluate", "--profile", PROFILE, "--out", str(out / "evaluate")]
    for what in ("missing", "empty", "garbage", "truncated", "unreadable"):
        model = p["missing"] if what == "missing" else p[f"model-{what}"]
        named = model / "model_metadata.json" if what in ("truncated", "unreadable") else model
        named = model / "model.txt" if what == "garbage" else named
        c[f"evaluate-model-{what}"] = Case([*ev, "--model", str(model), "--data", str(p["empty-logs"])], named,
                                           unreadable=what == "unreadable")
        c[f"package-{what}"] = Case(["package", "--profile", PROFILE, "--model-dir", str(model),
                                     "--out", str(out / "package" / "router.zip")], named,
                                    unreadable=what == "unreadable")
        c[f"ab-simulate-{what}"] = Case(["ab", "--profile", PROFILE, "--simulate", "--requests", "50",
                                         "--model-dir", str(model)], named, unreadable=what == "unreadable")
        zp = out / "missing.zip" if what == "missing" else p[f"zip-{what}"]
        c[f"deploy-{what}"] = Case(["deploy", "--profile", PROFILE, "--zip", str(zp), "--dry-run"], zp,
                                   unreadable=what == "unreadable")
        pj = out / "missing.json" if what == "missing" else p[f"params-{what}"]
        c[f"testbed-{what}"] = Case(["testbed", "--params-json", str(pj)], pj, unreadable=what == "unreadable")
    for what in ("missing", "garbage", "truncated"):
        c[f"evaluate-data-{what}"] = Case([*ev, "--model", str(p["model"]), "--data", str(p[what])], p[what])
    c["ab-testbed-missing-model"] = Case(["ab", "--profile", PROFILE, "--model-dir", str(p["missing"])],
                                         p["missing"])
    c["testbed-port-in-use"] = Case(["testbed", "--profile", PROFILE, "--port", str(busy_port)], str(busy_port))
    c["simulate-start-date"] = Case(["simulate", "--profile", PROFILE, "--start-date", "2025-13-45",
                                     "--out", str(out / "sim")], "2025-13-45")
    c["simulate-out-is-a-file"] = Case(["simulate", "--profile", PROFILE, "--out",
                                        str(p["garbage"] / "logs.jsonl")], p["garbage"] / "logs.jsonl")
    c["simulate-out-read-only"] = Case(["simulate", "--profile", PROFILE, "--out", str(p["readonly"] / "sim")],
                                       p["readonly"] / "sim", unreadable=True)
    c["collect-unknown-window"] = Case(["collect", "--profile", "quick", "--window", "noon"], "noon")
    # no Node.js: the window is refused before anything is moved or written (the testbed it started
    # for the window prints its own status lines on stderr)
    c["collect-no-node"] = Case(["collect", "--profile", "quick", "--window", "midday", "--force"],
                                str(p["missing"] / "node"), env={"HYBRIDOPT_NODE": str(p["missing"] / "node")},
                                other_stderr="testbed: ")
    return c


def _can_drop_dac(root: Path) -> bool:
    """As root, whether a child without CAP_DAC_OVERRIDE is refused a mode-000 file."""
    probe = root / "probe"
    probe.write_text("x")
    probe.chmod(0)
    if shutil.which(DROP_DAC[0]) is None:
        return False
    r = subprocess.run([*DROP_DAC, sys.executable, "-c", f"open({str(probe)!r}).read()"], capture_output=True)
    return r.returncode != 0 and b"PermissionError" in r.stderr


@dataclass
class Run:
    case: Case
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    skip: str | None = None


#: The fast set: every command, every kind of bad input, audit on all of them.
FAST = frozenset({
    "audit-missing", "audit-empty", "audit-empty-logs", "audit-garbage", "audit-truncated", "audit-unreadable",
    "preprocess-garbage", "ingest-truncated", "calibrate-garbage", "validate-testbed-locked",
    "evaluate-model-missing", "package-truncated", "deploy-garbage", "ab-simulate-empty", "testbed-garbage",
    "simulate-start-date", "collect-unknown-window",
})


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> dict[str, Run]:
    """Every case this session selected, run at once (as many processes as CPUs)."""
    selected = sorted({item.callspec.params["name"] for item in request.session.items
                       if item.module is request.module and hasattr(item, "callspec")})
    root = tmp_path_factory.mktemp("bad-input")
    inputs = _inputs(root)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    cases = _cases(inputs, root / "out", sock.getsockname()[1])
    as_root = os.geteuid() == 0
    can_lock = not as_root or _can_drop_dac(root)

    def run(name: str) -> tuple[str, Run]:
        case = cases[name]
        r = Run(case)
        if case.unreadable and not can_lock:
            r.skip = "running as root where capabilities cannot be dropped: a mode-000 file stays readable"
            return name, r
        prefix = DROP_DAC if case.unreadable and as_root else []
        proc = subprocess.run([*prefix, sys.executable, "-m", "hybridopt", *case.argv], capture_output=True,
                              text=True, timeout=300, env={**ENV, **case.env}, cwd=paths.PROJECT_ROOT)
        r.returncode, r.stdout, r.stderr = proc.returncode, proc.stdout, proc.stderr
        return name, r

    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            return dict(pool.map(run, selected))
    finally:
        sock.close()
        for path in root.rglob("*"):  # give the locked inputs back their modes: pytest can remove them
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else 0o600)


def _case_names() -> list[str]:
    root = Path("/nonexistent")
    return sorted(_cases({k: root / k for k in _INPUT_NAMES}, root / "out", 1))


def _params(names: list[str]) -> list:
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


_INPUT_NAMES = ("missing", "empty", "empty-logs", "garbage", "truncated", "unreadable", "unreadable-file", "locked",
                "model", "model-empty", "model-garbage", "model-truncated", "model-unreadable", "zip-empty",
                "zip-garbage", "zip-truncated", "zip-unreadable", "params-empty", "params-garbage",
                "params-truncated", "params-unreadable", "readonly")


def test_the_fast_set_names_real_cases() -> None:
    assert FAST <= set(_case_names())


@pytest.mark.parametrize("name", _params(_case_names()))
def test_bad_input_is_one_line_naming_it_exit_2(runs, name) -> None:
    r = runs[name]
    if r.skip:
        pytest.skip(r.skip)
    case = r.case
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    context = f"argv {case.argv}\nstderr:\n{r.stderr[-3000:]}\nstdout:\n{r.stdout[-1500:]}"
    assert "Traceback" not in r.stderr, context
    assert r.returncode == 2, context
    if case.other_stderr is not None:
        lines = [ln for ln in lines if not ln.startswith(case.other_stderr)]
    assert len(lines) == 1 and lines[0].startswith("error: "), context
    assert str(case.names) in lines[0], context


@pytest.mark.parametrize("name", _params([n for n in _case_names() if n.startswith(("ingest-", "audit-", "preprocess-"))]))
def test_what_was_read_is_written_and_accounted_for(runs, name) -> None:
    r = runs[name]
    if r.skip:
        pytest.skip(r.skip)
    case = r.case
    if case.writes_nothing is not None:                  # a folder that does not exist: nothing to account for
        assert not case.writes_nothing.exists()
        return
    assert case.quarantine is not None and case.quarantine.is_file(), r.stderr
    quarantined = [json.loads(ln) for ln in case.quarantine.read_text().splitlines()]
    assert all(q["reason"] and "raw" in q and q["line"] >= 1 for q in quarantined)
    if case.audit is None:
        return
    lines = json.loads(case.audit.read_text())["lines"]
    assert lines["kept"] + lines["repaired"] + lines["quarantined"] == lines["lines_total"]
    assert lines["kept"] + lines["repaired"] == 0 and lines["quarantined"] == len(quarantined)
    assert sum(lines["quarantine_reasons"].values()) == lines["quarantined"]
    if name.endswith(("-garbage", "-truncated")):
        assert lines["quarantined"] > 0
    if name.endswith("-truncated"):
        assert lines["quarantine_reasons"] == {"truncated_last_line": 1}
    if name.endswith("-unreadable"):
        assert lines["unreadable"] == [{"file": "run-a.jsonl", "error": "Permission denied"}]
