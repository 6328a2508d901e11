"""The measurement setup's client preset (params.ClientPreset) fitted through the platform model's own
equations (`fit_client`, see `ClientFit`): an RTT and a connection set-up time per session, the TLS round
trips, the load generator's inflation in the form the base preset names, the RTT jitter, then the upload
bandwidth against the model's slow-start upload (`upload_ms`; `body_bytes` is the simulator's request
size).

The set-up time is the client's own time before a new connection's first packet (name resolution: the
generator resolves per connection; the generator's scheduling), paid once per request by both platforms
alike, while the RTT is paid once per round trip: Lambda's handshakes take one round trip more than
the ECS ones (TLS), so a session with both platforms' lightweight requests identifies both. An RTT read
without the set-up time would carry it into every round trip, the slow-start rounds of the uploads
included."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import lsq_linear, minimize_scalar

from hybridopt.calibration.context import warm_rows
from hybridopt.calibration.options import FitOptions
from hybridopt.data.contract import PLATFORMS
from hybridopt.emulation.simulate import ENVELOPE_BYTES
from hybridopt.errors import InputError
from hybridopt.params import ClientPreset, TestbedParams
from hybridopt.platforms.draws import Draws
from hybridopt.platforms.network import ClientNetwork

UPLOAD_GRID_MBPS: Final = (0.5, 5000.0)    # search range of the client's upload bandwidth
INFLATION_FORMS: Final = ("additive", "round_trip", "multiplicative")
MULTIPLICATIVE_GRID: Final = np.linspace(0.0, 200.0, 401)   # ms per second of client-side time per req/s


@dataclass(frozen=True)
class ClientFit:
    """The client preset of the measurement setup, in the units of params.ClientPreset.

    Model (hybridopt.platforms, new connection per request): Lambda overhead = set-up + RTT x (TCP +
    TLS + 1) + upload + API Gateway + runtime; ECS overhead = set-up + RTT x (TCP + 1) + ALB + cpu sample
    (the upload is inside ECS's timed region); with x = max(0, rate - threshold), the inflation adds
    inflation_ms_per_rps x x once (additive), to every round trip (round_trip), or per second of the
    client-side time (multiplicative)."""
    rtt_ms: float                          # the typical session: geometric mean of the sessions' RTTs
    rtt_ms_by_session: dict[str, float]
    rtt_se_ms: float
    tls_handshake_rtts: int
    tls_rtts_estimate: float
    upload_mbps: float
    upload_mbps_interval: tuple[float, float]   # bandwidths whose error is within 10 % of the best
    rtt_jitter_sigma: float
    inflation_form: str                    # params.ClientInflation.form the fit used
    inflation_ms_per_rps: float            # additive: per request; round_trip: per round trip;
                                           # multiplicative: per second of client-side time
    inflation_se_ms_per_rps: float
    inflation_threshold_rps: float
    n_bins: int
    bins: list[dict[str, str | float]]       # session, platform, rate_rps, overhead_ms, n
    setup_ms: float = 0.0                    # the typical session: mean of the sessions' set-up times
    setup_ms_by_session: dict[str, float] = field(default_factory=dict)   # 0 where not identified (one platform)


def _constants(testbed: TestbedParams) -> dict[str, float]:
    """The published constants of the model's overhead equations (see ClientFit)."""
    c = testbed.clients[testbed.client_preset]
    return {"tcp": float(c.tcp_handshake_rtts.value), "gw_ms": float(testbed.lambda_.api_gateway_overhead_ms.value),
            "runtime_ms": float(testbed.lambda_.runtime_overhead_ms.value),
            "alb_ms": float(testbed.fargate.alb_overhead_ms.value), "sample_ms": float(testbed.fargate.cpu_sample_ms.value)}


def upload_ms(preset: ClientPreset, request_bytes: np.ndarray, rtt_ms: np.ndarray, upload_mbps: float) -> np.ndarray:
    """The platform model's own upload time in ms (ClientNetwork.upload_s: slow start, then bandwidth)
    of each request size at its round trip, with the preset's bandwidth replaced by `upload_mbps`."""
    p = preset.model_copy(update={"upload_mbps": preset.upload_mbps.model_copy(update={"value": float(upload_mbps)})})
    net = ClientNetwork(p, Draws(np.random.default_rng(0)))
    return np.array([net.upload_s(int(b), r / 1000.0) * 1000.0 for b, r in zip(request_bytes, rtt_ms)])


def body_bytes(payload_kb: npt.ArrayLike) -> np.ndarray:
    """Bytes the load generator sends for a payload size (the simulator's convention)."""
    return np.rint(np.asarray(payload_kb, dtype=np.float64) * 1024.0).astype(np.int64) + ENVELOPE_BYTES


def round_trip_ms(form: str, m: float, x: npt.ArrayLike, rtt_ms: np.ndarray) -> np.ndarray:
    """Duration of one of a request's round trips under the inflation form (params.ClientInflation):
    round_trip adds m * x ms to each; multiplicative stretches the client-side time by m * x ms per second;
    additive leaves it alone (its m * x ms come once, see extra_ms)."""
    x = np.asarray(x, dtype=np.float64)
    if form == "round_trip":
        return rtt_ms + m * x
    if form == "multiplicative":
        return rtt_ms * (1.0 + m * x / 1000.0)
    return rtt_ms + 0.0 * x


def extra_ms(form: str, m: float, x: npt.ArrayLike) -> np.ndarray:
    """The once-per-request part of the inflation (additive form only)."""
    return m * np.asarray(x, dtype=np.float64) if form == "additive" else 0.0 * np.asarray(x, dtype=np.float64)


LIGHT_WORKLOAD: Final = "lightweight_api"   # bodies within the initial congestion window: no meaningful upload


def light_bins(warm: pd.DataFrame, opts: FitOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lightweight rows (with their rate bin) and their median overhead per (session, platform,
    rate bin) with at least `min_rows` rows: what the client's round trip is read from."""
    light = warm[warm["workload_type"].astype(str) == LIGHT_WORKLOAD]
    light = light.assign(rate_bin=np.floor(light["offered_rate_rps"] / opts.rate_bin_rps))
    bins = (light.groupby(["session", "platform", "rate_bin"], observed=True)
            .agg(rate=("offered_rate_rps", "mean"), overhead=("overhead_ms", "median"), n=("overhead_ms", "size"))
            .reset_index())
    return light, bins[bins["n"] >= opts.min_rows].reset_index(drop=True)


def rtt_jitter(light: pd.DataFrame, k: dict[str, float], tls: float, form: str, m: float, reference_rate_rps: float,
               opts: FitOptions, default: float, setup_ms: dict[str, float] | None = None) -> float:
    """RTT jitter: the spread of lightweight overheads inside each (session, platform, rate bin), after
    removing the inflation and the session's set-up time (the model jitters the RTT alone, before the
    inflation is applied); `default` when no bin has `min_rows` rows."""
    spreads = []
    for (sess, pl, _), g in light.groupby(["session", "platform", "rate_bin"], observed=True):
        if len(g) < opts.min_rows:
            continue
        const = k["gw_ms"] + k["runtime_ms"] if pl == "lambda" else k["alb_ms"] + k["sample_ms"]
        const += (setup_ms or {}).get(str(sess), 0.0)
        c_rt = k["tcp"] + tls + 1.0 if pl == "lambda" else k["tcp"] + 1.0
        xg = np.maximum(0.0, g["offered_rate_rps"].to_numpy() - reference_rate_rps)
        v = g["overhead_ms"].to_numpy() - const - extra_ms(form, m, xg)
        if form == "round_trip":
            v = v - c_rt * m * xg
        elif form == "multiplicative":
            v = v / (1.0 + m * xg / 1000.0)
        v = v[v > 0]
        if len(v) >= opts.min_rows:
            lv = np.log(v)
            spreads.append((np.quantile(lv, 0.95) - np.median(lv)) / 1.6448536269514722)
    return float(np.median(spreads)) if spreads else default


@dataclass(frozen=True)
class SessionNetwork:
    """One session's client network read from its lightweight requests alone (`probe_network`): the
    round trip and its jitter, with the TLS round trips and the generator's inflation held at a fit
    made elsewhere. The uplink is not identified by bodies that fit the initial congestion window."""
    session: str
    rtt_ms: float
    rtt_se_ms: float
    rtt_jitter_sigma: float
    n_rows: int
    n_bins: int
    source: str                            # which rows: the session's probe phase or its lightweight cells
    setup_ms: float = 0.0                  # the client's set-up time per connection (the fit's typical one
    setup_from_probe: bool = False         # when the probe has one platform only: then False)


def probe_network(rows: pd.DataFrame, fit: ClientFit, testbed: TestbedParams, opts: FitOptions,
                  session: str, source: str) -> SessionNetwork | None:
    """The per-session round trip of `fit_client` for one session, from `rows` (that session's
    lightweight requests with context, `add_context`): the same bins and equations (overhead minus
    the fronts' constants = set-up + round trips x (RTT + inflation)), with the TLS round trips, the
    inflation form and its size taken from `fit`; weighted least squares of the RTT and, when the probe
    has both platforms, the set-up time (>= 0; else the fit's typical one). None when no (platform,
    rate bin) has `min_rows` warm rows."""
    k = _constants(testbed)
    light, bins = light_bins(warm_rows(rows), opts)
    if bins.empty:
        return None
    form, m, tls = fit.inflation_form, fit.inflation_ms_per_rps, float(fit.tls_handshake_rtts)
    x = np.maximum(0.0, bins["rate"].to_numpy() - fit.inflation_threshold_rps)
    is_l = (bins["platform"].astype(str) == "lambda").to_numpy()
    c = np.where(is_l, k["tcp"] + tls + 1.0, k["tcp"] + 1.0)
    y = bins["overhead"].to_numpy() - np.where(is_l, k["gw_ms"] + k["runtime_ms"], k["alb_ms"] + k["sample_ms"])
    if form == "round_trip":
        a, y = c, y - c * m * x
    elif form == "multiplicative":
        a = c * (1.0 + m * x / 1000.0)
    else:
        a, y = c, y - m * x
    w2 = bins["n"].to_numpy().astype(np.float64)
    both = set(bins["platform"].astype(str)) >= set(PLATFORMS)
    if both:
        sw = np.sqrt(w2)
        design = np.column_stack([a, np.ones_like(a)]) * sw[:, None]
        theta = lsq_linear(design, y * sw, bounds=([-np.inf, 0.0], [np.inf, np.inf]), method="bvls").x
        rtt, setup = float(theta[0]), float(theta[1])
        cov = np.linalg.pinv(design.T @ design)
        resid = y - a * rtt - setup
        dof = max(1, len(bins) - 2)
        se = float(math.sqrt(max(0.0, float((w2 * resid ** 2).sum()) / dof * float(cov[0, 0]))))
    else:
        setup = fit.setup_ms
        y = y - setup
        rtt = float((w2 * a * y).sum() / (w2 * a * a).sum())
        resid = y - a * rtt
        dof = max(1, len(bins) - 1)
        se = float(math.sqrt(max(0.0, float((w2 * resid ** 2).sum()) / dof / float((w2 * a * a).sum()))))
    jitter = rtt_jitter(light, k, tls, form, m, fit.inflation_threshold_rps, opts, fit.rtt_jitter_sigma,
                        {session: setup})
    return SessionNetwork(session=session, rtt_ms=rtt, rtt_se_ms=se, rtt_jitter_sigma=jitter,
                          n_rows=int(bins["n"].sum()), n_bins=int(len(bins)), source=source,
                          setup_ms=setup, setup_from_probe=both)


def fit_client(rows: pd.DataFrame, testbed: TestbedParams, reference_rate_rps: float, opts: FitOptions,
               upload_rows: pd.DataFrame | None = None) -> ClientFit:
    """RTT per session, TLS round trips and inflation from the lightweight requests (no upload
    beyond the initial congestion window), then the upload bandwidth from Lambda's growth with
    payload size in the reference band (an unloaded client; a (session, workload) without clean rows
    there is read from its logged successes in `upload_rows`, when given: the survivors of a cell that
    lost requests), all through the platform model's equations (see ClientFit), with the inflation
    form of the base client preset (params.ClientInflation.form)."""
    k = _constants(testbed)
    preset = testbed.clients[testbed.client_preset]
    form = preset.inflation.form.value
    warm = warm_rows(rows)
    light, bins = light_bins(warm, opts)
    if bins.empty or set(bins["platform"].astype(str)) != set(PLATFORMS):
        raise InputError("client fit needs lightweight_api rows on both platforms "
                         f"(at least {opts.min_rows} per session and rate bin)")
    sess = sorted(bins["session"].astype(str).unique())
    sess_of = bins["session"].astype(str).to_numpy()
    x = np.maximum(0.0, bins["rate"].to_numpy() - reference_rate_rps)
    is_l = (bins["platform"].astype(str) == "lambda").to_numpy()
    y = bins["overhead"].to_numpy() - np.where(is_l, k["gw_ms"] + k["runtime_ms"], k["alb_ms"] + k["sample_ms"])
    w = np.sqrt(bins["n"].to_numpy().astype(np.float64))
    identified = any(np.ptp(x[sess_of == s]) > 0 for s in sess)
    # a set-up time for every session with both platforms' lightweight bins (one platform: 0)
    both = [s for s in sess if set(bins.loc[sess_of == s, "platform"].astype(str)) >= set(PLATFORMS)]

    def design(tls: float, f: float, setup: bool = True) -> np.ndarray:
        """Columns: one RTT per session (times the round trips, stretched for multiplicative), one set-up
        time per session of `both` (with `setup`), then the inflation's own column (additive: x;
        round_trip: round trips x x) when identified."""
        c = np.where(is_l, k["tcp"] + tls + 1.0, k["tcp"] + 1.0)
        stretch = 1.0 + f * x / 1000.0 if form == "multiplicative" else 1.0
        cols = [c * stretch * (sess_of == s) for s in sess]
        if setup:
            cols += [(sess_of == s).astype(np.float64) for s in both]
        if identified and form != "multiplicative":
            cols.append(x if form == "additive" else c * x)
        return np.column_stack(cols)

    def solve(tls: float, mask: np.ndarray | None = None, setup: bool = True) -> tuple[np.ndarray, float, float]:
        """Least squares (bins weighted by sqrt(rows); set-up times >= 0); multiplicative: its factor by
        a grid search."""
        m_ = np.ones(len(bins), dtype=bool) if mask is None else mask
        best: tuple[np.ndarray, float, float] | None = None
        grid = MULTIPLICATIVE_GRID if (form == "multiplicative" and identified) else (0.0,)
        for f in grid:
            a = design(tls, float(f), setup)[m_] * w[m_, None]
            lb = np.full(a.shape[1], -np.inf)
            if setup:
                lb[len(sess):len(sess) + len(both)] = 0.0
            theta = lsq_linear(a, y[m_] * w[m_], bounds=(lb, np.full(a.shape[1], np.inf)), method="bvls").x
            resid = a @ theta - y[m_] * w[m_]
            sse = float(resid @ resid)
            if best is None or sse < best[1]:
                best = (theta, sse, float(f))
        assert best is not None
        return best

    def inflation_of(theta: np.ndarray, f: float) -> float:
        if not identified:
            return 0.0
        return f if form == "multiplicative" else float(theta[-1])

    # TLS round trips: the ECS rows alone fix RTT and inflation (no TLS on the student's ALB);
    # Lambda's extra time over them says how many round trips its handshake took
    th_e, _, f_e = solve(2.0, ~is_l, setup=False)
    m_e = inflation_of(th_e, f_e)
    rtt_e = np.array([th_e[sess.index(s_)] for s_ in sess_of])
    tau_e = round_trip_ms(form, m_e, x, rtt_e)
    est = ((y - extra_ms(form, m_e, x)) / tau_e - k["tcp"] - 1.0)[is_l]
    tls_est = float(np.median(est))
    # TLS round trips: with a set-up time per session, the lightweight overheads fix the RTT only given the
    # handshake's round trips; Lambda's upload growth with payload size counts slow-start round trips and so
    # fixes the RTT's scale: the TLS round trips whose fit reproduces it best
    def fit_at(tls: int) -> tuple[float, ClientFit]:
        theta, sse, f_best = solve(float(tls))
        a = design(float(tls), f_best)
        dof = max(1, len(bins) - a.shape[1] - (1 if form == "multiplicative" and identified else 0))
        cov = np.linalg.pinv((a * w[:, None]).T @ (a * w[:, None])) * sse / dof
        rtt_by = {s: float(theta[i]) for i, s in enumerate(sess)}
        setup_by = {s: 0.0 for s in sess} | {s: float(theta[len(sess) + j]) for j, s in enumerate(both)}
        m = inflation_of(theta, f_best)
        if not identified:
            m_se = float("nan")
        elif form == "multiplicative":
            # profile: the factors whose error is within one residual variance of the best
            s2 = sse / dof
            near = [float(f) for f in MULTIPLICATIVE_GRID
                    if _sse_at(design(float(tls), float(f)), y, w) <= sse + s2]
            m_se = (max(near) - min(near)) / 2.0 if near else float("nan")
        else:
            m_se = float(math.sqrt(max(0.0, cov[-1, -1])))
        rtt_typ = math.exp(float(np.mean(np.log(list(rtt_by.values())))))
        rtt_se = float(math.sqrt(max(0.0, float(np.mean(np.diag(cov)[:len(sess)])))))
        jitter = rtt_jitter(light, k, tls, form, m, reference_rate_rps, opts, float(preset.rtt_jitter_sigma.value),
                            setup_by)
        # upload bandwidth: Lambda's overhead beyond the handshakes, against the model's slow-start upload
        # (with each group's round trip as the inflation form makes it)
        # (an unloaded client: the reference band, where no shared uplink stretches an upload yet)
        band = reference_rate_rps + opts.reference_band_rps
        lam = warm[(warm["platform"] == "lambda") & (warm["offered_rate_rps"] <= band)]
        if upload_rows is not None:
            # a (session, workload) with no clean rows in the band: its logged successes (survivors)
            extra = warm_rows(upload_rows)
            extra = extra[(extra["platform"] == "lambda") & (extra["offered_rate_rps"] <= band)]
            have = set(zip(lam["session"].astype(str), lam["workload_type"].astype(str)))
            missing = [(s_, w_) not in have for s_, w_ in zip(extra["session"].astype(str),
                                                              extra["workload_type"].astype(str))]
            lam = pd.concat([lam, extra[np.asarray(missing, dtype=bool)]])
        lam = lam.assign(rtt=lam["session"].astype(str).map(rtt_by))
        lam = lam[lam["rtt"].notna()]
        xl = np.maximum(0.0, lam["offered_rate_rps"].to_numpy() - reference_rate_rps)
        c_l = k["tcp"] + tls + 1.0
        net = (lam["overhead_ms"].to_numpy() - k["gw_ms"] - k["runtime_ms"] - extra_ms(form, m, xl)
               - lam["session"].astype(str).map(setup_by).to_numpy(dtype=np.float64))
        if form == "multiplicative":
            net = net / (1.0 + m * xl / 1000.0)
            tau = lam["rtt"].to_numpy()
        else:
            tau = round_trip_ms(form, m, xl, lam["rtt"].to_numpy())
        lam = lam.assign(y=net - c_l * tau, tau=tau, rate_bin=np.floor(lam["offered_rate_rps"] / opts.rate_bin_rps))
        ub = (lam.groupby(["session", "target_payload_size_kb", "rate_bin"], observed=True)
              .agg(y=("y", "median"), rtt=("tau", "mean"), n=("y", "size")).reset_index())
        ub = ub[ub["n"] >= opts.min_rows]
        grid = np.exp(np.linspace(math.log(UPLOAD_GRID_MBPS[0]), math.log(UPLOAD_GRID_MBPS[1]), 241))
        nbytes = body_bytes(ub["target_payload_size_kb"].to_numpy())
        def err(bw: float) -> float:
            return float((ub["n"].to_numpy() * (upload_ms(preset, nbytes, ub["rtt"].to_numpy(), bw)
                                                - ub["y"].to_numpy()) ** 2).sum())

        errs = np.array([err(bw) for bw in grid])
        best = int(np.argmin(errs))
        # between the best grid point's neighbours: the minimum itself (the grid steps by 4 %)
        lo_bw, hi_bw = grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)]
        res = minimize_scalar(lambda lb: err(math.exp(lb)), bounds=(math.log(lo_bw), math.log(hi_bw)),
                              method="bounded", options={"xatol": 1e-4})
        bw_best = float(math.exp(res.x)) if res.fun < errs[best] else float(grid[best])
        err_best = min(float(res.fun), float(errs[best]))
        # the interval: the grid's bandwidths within 10 % of the best error, and the best itself
        within = np.append(grid[errs <= err_best * 1.1], bw_best)
        fit = ClientFit(rtt_ms=rtt_typ, rtt_ms_by_session=rtt_by, rtt_se_ms=rtt_se, tls_handshake_rtts=tls,
                         tls_rtts_estimate=tls_est, upload_mbps=bw_best,
                         upload_mbps_interval=(float(within.min()), float(within.max())), rtt_jitter_sigma=jitter,
                         inflation_form=form, inflation_ms_per_rps=m, inflation_se_ms_per_rps=m_se,
                         inflation_threshold_rps=reference_rate_rps, n_bins=int(len(bins)),
                         setup_ms=float(np.mean(list(setup_by.values()))), setup_ms_by_session=setup_by,
                         bins=[{"session": str(r.session), "platform": str(r.platform), "rate_rps": float(r.rate),
                                "overhead_ms": float(r.overhead), "n": int(r.n)} for r in bins.itertuples()])
        return err_best, fit

    return min((fit_at(t) for t in (1, 2)), key=lambda r: r[0])[1]


def _sse_at(a: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    aw = a * w[:, None]
    theta, *_ = np.linalg.lstsq(aw, y * w, rcond=None)
    r = aw @ theta - y * w
    return float(r @ r)
