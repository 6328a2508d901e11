"""python -m hybridopt calibrate --data DIR [--write]: fit the platform model to real request logs.

Prints what the logs tell per workload and platform (service time, network, cold start, the load
generator's inflation) and the platform model's fitted client and service presets (the client with its
shared uplink when the logs identify its capacity); `--write` puts
those presets into params/testbed.yaml as `clients.fitted` and `service_presets.fitted` (between
marker comments, every value with basis `fitted` and the data it came from). `--json` writes the full
fit. Selecting the presets is a profile's choice (`testbed: {client_preset: fitted, service_preset:
fitted}`)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from hybridopt import calibration as cal
from hybridopt import paths
from hybridopt.commands._common import table
from hybridopt.data.ingest import IngestResult, ingest, require_usable
from hybridopt.errors import InputError
from hybridopt.params import load_params
from hybridopt.report.calibration import summary_table

DEFAULT_PROFILE = "thesis-2025-11"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of real logs (legacy or contract layout; default: the profile's)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"params profile for workloads, load patterns and the base presets (default {DEFAULT_PROFILE})")
    parser.add_argument("--write", action="store_true",
                        help="write clients.fitted and service_presets.fitted into params/testbed.yaml")
    parser.add_argument("--json", type=Path, default=None, help="also write the whole fit as JSON here")


def provenance(result: IngestResult, runs: list[str] | None = None) -> str:
    """Where fitted numbers came from: data folder ({shared} for ../shared), files, lines, hash, date."""
    where = str(result.data_dir)
    shared = str(paths.shared_dir())
    if where.startswith(shared):
        where = "{shared}" + where[len(shared):]
    s = (f"calibrate {date.today().isoformat()} on {where}: {len(result.files)} files, "
         f"{result.ledger.lines_total:,} lines, sha256 {result.input_hash[:16]}")
    return s + (f", runs {', '.join(runs)}" if runs else "")


def write_presets(overrides: dict, path: Path, profile: str) -> None:
    """Replace (or add) the fitted presets in testbed.yaml; the new file must load, else nothing is written."""
    tb = overrides["testbed"]
    text = path.read_text()
    new = cal.replace_block(text, "clients", cal.PRESET_NAME, cal.preset_yaml(cal.PRESET_NAME, tb["clients"][cal.PRESET_NAME]))
    new = cal.replace_block(new, "service_presets", cal.PRESET_NAME,
                            cal.preset_yaml(cal.PRESET_NAME, tb["service_presets"][cal.PRESET_NAME]))
    if "fargate" in tb:  # the queued-body size fitted from the same logs
        new = cal.replace_block(new, "fargate", "queued_receive_bytes",
                                cal.preset_yaml("queued_receive_bytes", tb["fargate"]["queued_receive_bytes"]))
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(new)
    try:
        import shutil
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            for f in path.parent.glob("*.yaml"):
                shutil.copy(f, Path(d) / f.name)
            shutil.copy(tmp, Path(d) / path.name)
            p = load_params(profile, params_dir=Path(d), overrides={"testbed": {"client_preset": cal.PRESET_NAME,
                                                                                   "service_preset": cal.PRESET_NAME}})
            assert p.testbed.client_preset == cal.PRESET_NAME
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    t0 = time.perf_counter()
    result = ingest(params, args.data)
    require_usable(result)
    try:
        fit = cal.calibrate(result.requests, params.load_patterns, testbed=params.testbed, workloads=params.workloads)
    except InputError as exc:
        raise InputError(f"data folder {result.data_dir} cannot be calibrated: {exc}: point --data at real "
                         "request logs with platform metrics") from None
    prov = provenance(result)
    print(f"calibrate {params.profile}: {result.data_dir}")
    print(table([("lines", f"{result.ledger.lines_total:,}"), ("input sha256", result.input_hash[:16]),
                 ("rows used", ", ".join(f"{k} {v:,}" for k, v in fit.rows_used.items())),
                 ("sessions", ", ".join(sorted(set(fit.sessions.values())))),
                 ("reference rate", f"{fit.reference_rate_rps:g} requests/s")]))
    print("\nwhat the logs tell (median lines; ± bootstrap se):")
    print(summary_table(fit).to_string(index=False))
    if fit.cold_start:
        c = fit.cold_start
        print(f"\ncold start: {c.n_cold} cold rows ({c.cold_rate:.2%} of Lambda rows), penalty median "
              f"{c.penalty_median_ms:.0f} ms (95 % CI {c.penalty_ci95_ms[0]:.0f}-{c.penalty_ci95_ms[1]:.0f}), "
              f"p90 {c.penalty_p90_ms:.0f} ms")
    for pl, f in fit.inflation.items():
        print(f"inflation {pl}: network x (1 + {f.k_per_rps:.4f} ± {f.k_se_per_rps:.4f} per req/s above "
              f"{f.reference_rate_rps:g}); session factors "
              + ", ".join(f"{s} {v:.2f}" for s, v in sorted(f.session_factors.items())))
    m = fit.model
    if m is not None:
        cl = m.client
        print("\nplatform model (params.testbed presets 'fitted'):")
        print(table([
            ("rtt_ms", f"{cl.rtt_ms:.0f} (sessions: " + ", ".join(f"{s} {v:.0f}" for s, v in sorted(cl.rtt_ms_by_session.items())) + ")"),
            ("tls_handshake_rtts", f"{cl.tls_handshake_rtts} (estimate {cl.tls_rtts_estimate:.2f})"),
            ("upload_mbps", f"{cl.upload_mbps:.1f} (within 10 %: {cl.upload_mbps_interval[0]:.0f}-{cl.upload_mbps_interval[1]:.0f})"),
            ("rtt_jitter_sigma", f"{cl.rtt_jitter_sigma:.3f}"),
            ("inflation", f"{cl.inflation_form} form: {cl.inflation_ms_per_rps:.2f} ± {cl.inflation_se_ms_per_rps:.2f} "
                          f"ms {'per round trip ' if cl.inflation_form == 'round_trip' else ''}per req/s above "
                          f"{cl.inflation_threshold_rps:g} req/s"),
            ("shared uplink", m.uplink.note if m.uplink is not None else "not fitted"),
        ]))
        if m.uplink is not None and m.uplink.grid:
            print("  uplink loss by capacity (Mbit/s; none = no sharing): " + ", ".join(
                f"{'none' if g['capacity_mbps'] is None else format(g['capacity_mbps'], '.0f')} {g['loss']:.3f}"
                for g in m.uplink.grid))
        for w, by_p in sorted(m.service.items()):
            for p, e in sorted(by_p.items()):
                print(f"  service {w}/{p}: sleep {e.sleep_low_ms:.0f}-{e.sleep_high_ms:.0f} ms, "
                      f"{e.cpu_ms_per_mb:.2f} ms/MiB at 1 vCPU ({e.n} rows{'; ' + e.selection if 'survivors' in e.selection else ''})")
        for n in m.notes:
            print(f"  note: {n}")
    for s in fit.skipped:
        print(f"  skipped: {s}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"provenance": prov, **fit.as_dict()}, indent=1))
        print(f"wrote {args.json}")
    if args.write:
        if m is None:
            raise InputError(f"data folder {result.data_dir}: no platform-model fit to write (see the notes "
                             "above): point --data at logs of every workload on both platforms")
        path = paths.PARAMS_DIR / "testbed.yaml"
        write_presets(cal.testbed_overrides(m, params.testbed, prov, select=False), path, params.profile)
        print(f"wrote clients.{cal.PRESET_NAME}, service_presets.{cal.PRESET_NAME} and fargate.queued_receive_bytes "
              f"into {path}")
    print(f"seconds {time.perf_counter() - t0:.1f}")
    return 0
