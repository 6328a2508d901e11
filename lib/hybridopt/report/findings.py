"""What a supervisor reads first: the findings panel at the top of reports/<profile>/index.html.

Every sentence is built from the run's own outputs (decisions.json of stage 06, the closed-loop
results when they exist, model_metadata.json of stage 04), never written by hand for a particular
result; a missing output says which stage writes it.

- where each platform wins: per workload, the platform the objective prefers in each cell of
  payload size x ECS load (the decide stage's `wins` table), as one line and a small grid;
- the best policy against the best static policy: bill per 1,000 requests and p95 with their CIs,
  open loop;
- closed loop against open loop (stage 09's closed_loop.json): the best policies when each policy's
  own routing makes the load, and where that overturns the open-loop judgement;
- the plan's verdicts in one line.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hybridopt import model_dir as layout
from hybridopt.params import Params

PLATFORM_COLOURS = {"lambda": "#f6c28b", "ecs": "#a9c8ea"}
LOAD_ORDER = ("below capacity", "at capacity", "1-2x capacity", "over 2x capacity")


@dataclass(frozen=True)
class Finding:
    title: str
    text: str          # one or a few sentences (plain text)
    html: str          # the same, with any grid or table
    source: str        # the file it was read from


def _read(path: Path) -> Mapping | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _num(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f


def _ci(row: Mapping, key: str, fmt: str, money: bool = False) -> str:
    """The value with its 95 % CI, or with why there is none (`<key>_ci_na`, or a zero-width interval)."""
    v, lo, hi = _num(row.get(key)), _num(row.get(f"{key}_ci_low")), _num(row.get(f"{key}_ci_high"))
    if math.isnan(v):
        return "n/a"

    def f(x: float) -> str:
        return _usd(x, fmt) if money else format(x, fmt)

    why = str(row.get(f"{key}_ci_na") or "")
    if not why and not (math.isnan(lo) or math.isnan(hi)) and hi <= lo:
        why = "n/a: zero-width interval"
    if not why and (math.isnan(lo) or math.isnan(hi)):
        return f(v)
    if why:
        return f"{f(v)} (CI {why})"
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def _usd(x: float, fmt: str = ".5f") -> str:
    """Dollars as $0.00114 (a minus sign before the $ when negative, no plus sign)."""
    return f"-${format(-x, fmt)}" if x < 0 else f"${format(x, fmt)}"


def _kb(x: float) -> str:
    return f"{x / 1024:g} MB" if x >= 1024 else f"{x:g} KB"


def _sizes(sizes: Sequence[float]) -> str:
    return ", ".join(_kb(s) for s in sorted(set(sizes)))


# ------------------------------------------------------------------------------------------ wins
NEITHER_COLOUR = "#d0d0d0"
LOW_PAIRS = 10
_HATCH = "background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.75) 0 3px,transparent 3px 7px);"


def _winner(c: Mapping) -> str:
    """The cell's winner: `winner` when decisions.json has it ("neither" when most pairs failed on
    both platforms), else the platform the objective prefers."""
    return str(c.get("winner") or c.get("objective_prefers"))


def _low(c: Mapping) -> bool:
    return bool(c.get("low_confidence", int(c.get("n_pairs", 0)) < LOW_PAIRS))


def _where(cells: Sequence[Mapping]) -> str:
    """The cells' payload sizes per ECS load: "ECS 1-2x capacity: 3 MB, 8 MB; ECS over 2x capacity: 3 MB"."""
    loads = sorted({str(c["ecs_load"]) for c in cells}, key=lambda x: LOAD_ORDER.index(x) if x in LOAD_ORDER else 9)
    return "; ".join(f"ECS {x}: {_sizes([float(c['payload_size_kb']) for c in cells if str(c['ecs_load']) == x])}"
                     for x in loads)


def wins_finding(decisions: Mapping, source: str) -> Finding:
    cells = list(decisions.get("wins") or [])
    objective = (decisions.get("summary") or {}).get("objective_kind", "the objective")
    if not cells:
        return Finding("Where each platform wins", "decisions.json holds no per-cell comparison.",
                       "<p>decisions.json holds no per-cell comparison.</p>", source)
    by_w: dict[str, list[Mapping]] = {}
    for c in cells:
        by_w.setdefault(str(c["workload_type"]), []).append(c)
    lines, grids = [], []
    for w in sorted(by_w):
        cs = by_w[w]
        n = sum(int(c.get("n_pairs", 0)) for c in cs)
        lam = [c for c in cs if _winner(c) == "lambda"]
        nei = [c for c in cs if _winner(c) == "neither"]
        ecs = [c for c in cs if _winner(c) == "ecs"]
        n_lam = sum(int(c.get("n_pairs", 0)) for c in lam)
        if len(ecs) == len(cs):
            sentence = f"{w}: ECS wins every cell ({len(cs)} cells, {n:,} pairs)"
        elif len(lam) == len(cs):
            sentence = f"{w}: Lambda wins every cell ({len(cs)} cells, {n:,} pairs)"
        else:
            parts = []
            if lam:
                parts.append(f"Lambda wins {len(lam)} of {len(cs)} cells ({n_lam / max(n, 1):.0%} of {n:,} pairs), "
                             f"Lambda's cells: {_where(lam)}")
            else:
                parts.append(f"Lambda wins no cell ({n:,} pairs)")
            if nei:
                parts.append(f"neither (most pairs fail on both platforms) in {len(nei)}: {_where(nei)}")
            parts.append(f"ECS wins {'the other ' + str(len(ecs)) if ecs else 'none'}")
            sentence = f"{w}: " + "; ".join(parts)
        low = [c for c in cs if _low(c)]
        if low:
            sentence += f" ({len(low)} cell(s) with fewer than {LOW_PAIRS} pairs: low confidence)"
        lines.append(sentence)
        grids.append(_grid(w, cs))
    text = (f"Under the objective ({objective}), judged on measured outcomes: " + "; ".join(lines) + ".")
    legend = (f"<p style='font-size:85%'><span style='background:{PLATFORM_COLOURS['lambda']};padding:0 6px'>λ</span> "
              f"Lambda wins &nbsp; <span style='background:{PLATFORM_COLOURS['ecs']};padding:0 6px'>ECS</span> ECS wins "
              f"&nbsp; <span style='background:{NEITHER_COLOUR};padding:0 6px'>✕</span> neither: most pairs fail on "
              f"both platforms &nbsp; <span style='background:#eee;{_HATCH}padding:0 6px'>n=6</span> hatched: fewer "
              f"than {LOW_PAIRS} pairs (low confidence)</p>")
    body = (f"<p>Under the objective (<code>{html.escape(str(objective))}</code>), the platform preferred in each "
            "cell of payload size x ECS load (its in-flight requests against its worker capacity), from the "
            "outcomes measured on both platforms (open loop); a cell where most pairs failed on both platforms "
            "is nobody's win:</p><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in lines) + "</ul>" + legend
            + "<div style='display:flex;flex-wrap:wrap;gap:16px'>" + "".join(grids) + "</div>")
    return Finding("Where each platform wins", text, body, source)


def _grid(workload: str, cells: Sequence[Mapping]) -> str:
    sizes = sorted({float(c["payload_size_kb"]) for c in cells})
    loads = [x for x in LOAD_ORDER if any(str(c["ecs_load"]) == x for c in cells)]
    loads += sorted({str(c["ecs_load"]) for c in cells} - set(loads))
    at = {(float(c["payload_size_kb"]), str(c["ecs_load"])): c for c in cells}
    head = "".join(f"<th style='font-weight:normal;font-size:80%'>{html.escape(x)}</th>" for x in loads)
    colours = {**PLATFORM_COLOURS, "neither": NEITHER_COLOUR}
    marks = {"lambda": "λ", "ecs": "ECS", "neither": "✕ both fail"}
    rows = []
    for s in sizes:
        tds = []
        for x in loads:
            c = at.get((s, x))
            if c is None:
                tds.append("<td style='text-align:center;color:#999;font-size:75%'>no pairs</td>")
                continue
            p, n = _winner(c), int(c.get("n_pairs", 0))
            low = _low(c)
            mark = marks.get(p, html.escape(p)) + (f" <small>n={n}</small>" if low else "")
            tip = f"{n:,} pairs" + (f", {float(c['both_fail_share']):.0%} failed on both" if "both_fail_share" in c else "")
            tds.append(f"<td style='background:{colours.get(p, '#eee')};{_HATCH if low else ''}text-align:center' "
                       f"title='{tip}'>{mark}</td>")
        rows.append(f"<tr><td style='font-size:80%'>{_kb(s)}</td>{''.join(tds)}</tr>")
    return (f"<table style='font-size:90%'><caption><b>{html.escape(workload)}</b></caption>"
            f"<tr><th></th>{head}</tr>{''.join(rows)}</table>")


# ------------------------------------------------------------------------------ best vs static
REGRET_MEANS = ("Regret is measured against the objective's oracle (per pair, the platform the objective "
                "prefers with hindsight): the extra marginal cost per request (USD per 1,000 requests) and the extra "
                "latency per request (ms; a missing response counts as the client's timeout). It is not the bill, "
                "which adds what each session paid regardless of routing (task-seconds, ALB hours).")


def _separated(a: Mapping, b: Mapping, key: str) -> bool | None:
    """Whether two policies' 95 % CIs of a metric do not overlap; None when either has no CI."""
    ia = (_num(a.get(f"{key}_ci_low")), _num(a.get(f"{key}_ci_high")))
    ib = (_num(b.get(f"{key}_ci_low")), _num(b.get(f"{key}_ci_high")))
    if any(math.isnan(x) for x in (*ia, *ib)) or a.get(f"{key}_ci_na") or b.get(f"{key}_ci_na") \
            or ia[1] <= ia[0] or ib[1] <= ib[0]:
        return None
    return ia[1] < ib[0] or ib[1] < ia[0]


def _lead(obj: Mapping, best: Mapping, best_name: str, n_pairs: int, better: bool) -> str:
    """In words: what separates the objective policy from the best static policy, and whether the CIs
    can tell them apart."""
    diffs = []
    for key, what in (("failure_rate", "failures"), ("slo_miss_share", "SLO misses")):
        d = _num(best.get(key)) - _num(obj.get(key))
        if not math.isnan(d) and n_pairs:
            k = round(d * n_pairs)
            if k:
                diffs.append(f"{abs(k):,} {'fewer' if k > 0 else 'more'} {what} of {n_pairs:,} requests")
    bo, bb = _num(obj.get("bill_avg_usd_per_1k_requests")), _num(best.get("bill_avg_usd_per_1k_requests"))
    bill = ""
    if not (math.isnan(bo) or math.isnan(bb)) and bo != bb:
        low_name = "the objective policy" if bo < bb else best_name
        bill = f"{low_name}'s bill is lower ({_usd(min(bo, bb))} against {_usd(max(bo, bb))} per 1,000 requests)"
    keys = ("failure_rate", "slo_miss_share", "regret_usd_per_1k_requests", "regret_ms_per_request")
    sep = [_separated(obj, best, k) for k in keys]
    if all(x is None for x in sep):
        why = next((str(r.get(f"{k}_ci_na")) for k in keys for r in (obj, best) if r.get(f"{k}_ci_na")),
                   "n/a: decisions.json gives no interval of non-zero width")
        ci = (f"{', but ' if better else ', and '}there is no CI to tell them apart "
              f"({why.removeprefix('n/a: ')})")
    elif not any(sep):
        ci = f", but it is no better than {best_name} within the CIs" if better else f", and is within the CIs of {best_name}"
    else:
        ci = ": the CIs separate them on " + ", ".join(k for k, x in zip(keys, sep) if x)
    what = ("the difference is " + " and ".join(diffs)) if diffs else "their failures and SLO misses are the same"
    return ci + ": " + "; ".join(x for x in (what, bill) if x) + "."


_LINE_KEYS = ("bill_avg_usd_per_1k_requests", "latency_p95_ms", "failure_rate", "regret_usd_per_1k_requests",
              "regret_ms_per_request")


def _has_ci(r: Mapping, key: str) -> bool:
    lo, hi = _num(r.get(f"{key}_ci_low")), _num(r.get(f"{key}_ci_high"))
    return not r.get(f"{key}_ci_na") and not math.isnan(lo) and not math.isnan(hi) and hi > lo


def policy_finding(decisions: Mapping, source: str) -> Finding:
    rows = {str(r["policy"]): r for r in decisions.get("policies") or []}
    summary = decisions.get("summary") or {}
    best_static = str(summary.get("best_static", ""))
    objective = "objective" if "objective" in rows else next((k for k in rows if k.startswith("objective")), "")
    if not rows or best_static not in rows or objective not in rows:
        return Finding("The best policy against the best static policy", "decisions.json lacks the policies.",
                       "<p>decisions.json lacks the policies.</p>", source)

    def line(name: str) -> str:
        r = rows[name]
        if not any(_has_ci(r, k) for k in _LINE_KEYS):   # no CI at all: said once, not after every number
            r = {k: v for k, v in r.items() if "_ci_" not in k}
        return (f"{name}: bill {_ci(r, 'bill_avg_usd_per_1k_requests', '.5f', money=True)} per 1,000 requests, "
                f"p95 {_ci(r, 'latency_p95_ms', ',.0f')} ms, failures {_ci(r, 'failure_rate', '.4f')}, "
                f"regret {_ci(r, 'regret_usd_per_1k_requests', '.5f', money=True)} per 1,000 requests and "
                f"{_ci(r, 'regret_ms_per_request', ',.0f')} ms per request")

    better = bool(summary.get("objective_scores_better_than_best_static"))
    verdict = ("scores better than" if better else "does not score better than") + \
        f" the best static policy ({best_static}) by the objective's own score"
    n = _num((decisions.get("data") or {}).get("pairs"))
    n = _num(rows[objective].get("n_pairs")) if math.isnan(n) else n
    n_pairs = 0 if math.isnan(n) else int(n)
    lead = _lead(rows[objective], rows[best_static], best_static, n_pairs, better)
    deployable = [r for r in rows.values() if r.get("kind") != "oracle"]
    cheapest = min(deployable, key=lambda r: _num(r.get("bill_avg_usd_per_1k_requests")))
    fastest = min(deployable, key=lambda r: _num(r.get("latency_p95_ms")))
    extra = (f"Of the deployable policies (oracles aside), the lowest bill: {cheapest['policy']} "
             f"({_usd(_num(cheapest.get('bill_avg_usd_per_1k_requests')))} per 1,000); the lowest p95: "
             f"{fastest['policy']} ({_num(fastest.get('latency_p95_ms')):,.0f} ms).")
    text = (f"The objective policy {verdict}{lead} {line(objective)}. {line(best_static)}. {REGRET_MEANS} "
            f"{extra} OPEN LOOP.")
    body = (f"<p>The objective policy <b>{html.escape(verdict)}</b>{html.escape(lead)}</p>"
            f"<p>Held-out sessions; 95 % CIs (where given) by bootstrap over minute blocks within sessions.</p><ul>"
            f"<li>{html.escape(line(objective))}</li><li>{html.escape(line(best_static))}</li></ul>"
            f"<p style='font-size:90%'>{html.escape(REGRET_MEANS)}</p>"
            f"<p>{html.escape(extra)}</p><p><i>{html.escape(str(decisions.get('open_loop', 'Open loop.')))}</i></p>")
    return Finding("The best policy against the best static policy", text, body, source)


# ------------------------------------------------------------------------------ closed vs open
CLOSED_TITLE = "Closed loop against open loop"


def closed_loop_finding(doc: Mapping, source: str) -> Finding:
    rows = list(doc.get("closed") or [])
    if not rows:
        return Finding(CLOSED_TITLE, "closed_loop.json holds no runs.", "<p>closed_loop.json holds no runs.</p>", source)
    opened = {str(r["policy"]): r for r in doc.get("open") or []}
    parts = []
    for key, okey, fmt, what in (("bill_usd_per_1k", "bill_avg_usd_per_1k_requests", ".4f", "lowest bill ($/1k)"),
                                 ("p95_ms", "latency_p95_ms", ",.0f", "lowest p95 (ms)"),
                                 ("failure_rate", "failure_rate", ".3f", "fewest failures")):
        best = min(rows, key=lambda r: _num(r.get(key)))
        s = f"{what}: {best['policy']} {_ci(best, key, fmt)}"
        if opened:
            ob = min(opened.values(), key=lambda r: _num(r.get(okey)) if r.get("kind") != "oracle" else math.inf)
            s += f" (open loop: {ob['policy']} {format(_num(ob.get(okey)), fmt)})"
        parts.append(s)
    cmp = list(doc.get("comparison") or [])
    apart = [c for c in cmp if c.get("disagree")]
    if cmp:
        pols = sorted({str(c["policy"]) for c in apart})
        dis = (f"The closed- and open-loop 95 % intervals are apart for {len(apart)} of {len(cmp)} policy x metric "
               f"pairs ({', '.join(pols) if pols else 'none'}).")
    else:
        dis = "No open-loop results on the same pairs to compare."
    head = (f"Closed loop in the simulator ({int(doc.get('arrivals', 0)):,} logged pairs, seeds "
            f"{doc.get('seeds')}; each policy's own routing makes the load): ")
    text = head + "; ".join(parts) + ". " + dis
    body = (f"<p>{html.escape(head)}</p><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in parts)
            + f"</ul><p>{html.escape(dis)}</p>")
    return Finding(CLOSED_TITLE, text, body, source)


# -------------------------------------------------------------------------------------- verdicts
def verdicts_finding(meta: Mapping, source: str) -> Finding:
    verdicts = meta.get("verdicts") or {}
    parts = []
    for model, v in verdicts.items():
        acc = next((c.get("value") for c in v.get("accept_criteria", []) if "accuracy" in str(c.get("criterion"))),
                   None)
        parts.append(f"{model} {v.get('outcome', '?')}" + (f" (test accuracy {float(acc):.3f})" if acc is not None else ""))
    served = (meta.get("serving") or {}).get("model", "?")
    label = (meta.get("serving") or {}).get("label", "?")
    text = f"The plan's verdicts on {label}: " + "; ".join(parts) + f". Served: {served}."
    return Finding("The plan's verdicts", text, f"<p>{html.escape(text)}</p>", source)


# ---------------------------------------------------------------------------------------- panel
def findings(params: Params) -> list[Finding]:
    """The panel's findings from the profile's outputs (each says where it comes from)."""
    from hybridopt.decision.artifacts import DECISIONS_FILE, default_out

    out: list[Finding] = []
    dpath = default_out(params) / DECISIONS_FILE
    decisions = _read(dpath)
    if decisions is None:
        missing = f"not computed yet: stage 06 (06_decide, `python -m hybridopt decide`) writes {dpath}"
        out.append(Finding("Where each platform wins", missing, f"<p>{html.escape(missing)}</p>", str(dpath)))
        out.append(Finding("The best policy against the best static policy", missing,
                           f"<p>{html.escape(missing)}</p>", str(dpath)))
    else:
        out.append(wins_finding(decisions, str(dpath)))
        out.append(policy_finding(decisions, str(dpath)))
    from hybridopt.closedloop.replay import FILE, out_dir

    cpath = out_dir(params) / FILE
    closed = _read(cpath)
    if closed is None:
        missing = f"not computed yet: stage 09 (09_closed_loop, `python -m hybridopt replay-policy`) writes {cpath}"
        out.append(Finding(CLOSED_TITLE, missing, f"<p>{html.escape(missing)}</p>", str(cpath)))
    else:
        out.append(closed_loop_finding(closed, str(cpath)))
    from hybridopt.report.crossover import crossover_finding

    out.append(crossover_finding(params))
    mpath = layout.metadata_path(params.path("models_dir"))
    meta = _read(mpath)
    if meta is None:
        missing = f"not computed yet: stage 04 (04_train) writes {mpath}"
        out.append(Finding("The plan's verdicts", missing, f"<p>{html.escape(missing)}</p>", str(mpath)))
    else:
        out.append(verdicts_finding(meta, str(mpath)))
    return out


def _link(source: str, base: Path | None) -> str:
    """The source file as a link relative to `base` (the index's folder), or as text without one."""
    if base is None:
        return f"<code>{html.escape(source)}</code>"
    href = os.path.relpath(source, base)
    return f"<a href='{html.escape(Path(href).as_posix(), quote=True)}'><code>{html.escape(href)}</code></a>"


def panel_html(items: Sequence[Finding], base: Path | None = None) -> str:
    """The findings as the index's first section; with `base` (the index's folder) every source is a
    link relative to it."""
    blocks = "".join(f"<h3>{html.escape(f.title)}</h3>{f.html}<p style='color:#777;font-size:80%'>from "
                     f"{_link(f.source, base)}</p>" for f in items)
    note = "each finding links to the file it was read from." if base is not None else \
        "each finding names the file it was read from."
    return (f"<div style='border:2px solid #2a6;padding:8px 16px;margin-bottom:16px'><h2>Findings</h2>"
            f"<p style='color:#555'>Generated from this run's outputs; {note}</p>{blocks}</div>")
