"""How the calibration selects and weighs rows (`FitOptions`), and the unit constant its fits share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KB_PER_MB: Final = 1024.0


@dataclass(frozen=True)
class FitOptions:
    """How the fits select rows (the package docstring, `hybridopt.calibration`, explains why)."""
    reference_band_rps: float = 2.5        # service/network fits use rates <= lowest offered + this
    min_logged_share: float = 0.9          # a cell (run, platform, workload, time bin) must have logged this share
    logged_share_bin_s: float = 300.0      # time bins for the logged share
    session_gap_s: float = 300.0           # runs closer than this with the same load pattern are one session
    cells_total: int | None = None         # equal-weight scenarios per arrival (legacy: platforms x workloads)
    max_queue_utilisation: float = 0.5     # queueing platforms: network fit only on workloads below this
    ecs_worker_slots: int = 2              # gunicorn --workers 2 in the student's ECS image (ecs-app/Dockerfile)
    ecs_hold_after_ms: float = 100.0       # psutil cpu_percent(interval=0.1) after the timer stopped (ecs-app/app.py)
    rate_bin_rps: float = 2.5              # inflation fit: median ratio per (session, platform, rate bin)
    min_rows: int = 20                     # fewer rows: no fit (reported, not guessed)
    min_probe_rows: int = 8                # a probe phase (a few pairs per window): rows per platform it needs
    network_passes: int = 4                # alternating network-line / session-factor passes
    bootstrap_resamples: int = 2000
    seed: int = 42
    queued_wait_min_ms: float = 3000.0     # queued-body fit: ECS requests that waited at least this long
    queued_min_logged_share: float = 0.5   # ... in cells that logged at least this share (less survivor bias)
    fit_uplink: bool = True                # fit the shared uplink's capacity (replays every training session)
    uplink_grid_mbps: tuple[float, ...] = (10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
    uplink_min_gain: float = 0.1           # the capacity must cut the loss of no sharing by this share
