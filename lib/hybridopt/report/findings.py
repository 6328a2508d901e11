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


def _ci(row: Mapping, key: str, fmt: str) -> str:
    v, lo, hi = _num(row.get(key)), _num(row.get(f"{key}_ci_low")), _num(row.get(f"{key}_ci_high"))
    if math.isnan(v):
        return "n/a"
    out = format(v, fmt)
    if not (math.isnan(lo) or math.isnan(hi)):
        out += f" [{format(lo, fmt)}, {format(hi, fmt)}]"
    return out


def _kb(x: float) -> str:
    return f"{x / 1024:g} MB" if x >= 1024 else f"{x:g} KB"


def _sizes(sizes: Sequence[float]) -> str:
    return ", ".join(_kb(s) for s in sorted(set(sizes)))


# ------------------------------------------------------------------------------------------ wins
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
        lam = [c for c in cs if c.get("objective_prefers") == "lambda"]
        n_lam = sum(int(c.get("n_pairs", 0)) for c in lam)
        if not lam:
            sentence = f"{w}: ECS in every cell ({len(cs)} cells, {n:,} pairs)"
        elif len(lam) == len(cs):
            sentence = f"{w}: Lambda in every cell ({len(cs)} cells, {n:,} pairs)"
        else:
            loads = sorted({str(c["ecs_load"]) for c in lam}, key=lambda x: LOAD_ORDER.index(x) if x in LOAD_ORDER else 9)
            where = "; ".join(f"ECS {x}: {_sizes([float(c['payload_size_kb']) for c in lam if str(c['ecs_load']) == x])}"
                              for x in loads)
            sentence = (f"{w}: Lambda in {len(lam)} of {len(cs)} cells ({n_lam / max(n, 1):.0%} of {n:,} pairs) "
                        f"[{where}], ECS in the others")
        lines.append(sentence)
        grids.append(_grid(w, cs))
    text = (f"Under the objective ({objective}), judged on measured outcomes: " + "; ".join(lines) + ".")
    body = (f"<p>Under the objective (<code>{html.escape(str(objective))}</code>), the platform preferred in each "
            "cell of payload size x ECS load (its in-flight requests against its worker capacity), from the "
            "outcomes measured on both platforms (open loop):</p><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in lines) + "</ul>"
            + "<div style='display:flex;flex-wrap:wrap;gap:16px'>" + "".join(grids) + "</div>")
    return Finding("Where each platform wins", text, body, source)


def _grid(workload: str, cells: Sequence[Mapping]) -> str:
    sizes = sorted({float(c["payload_size_kb"]) for c in cells})
    loads = [x for x in LOAD_ORDER if any(str(c["ecs_load"]) == x for c in cells)]
    loads += sorted({str(c["ecs_load"]) for c in cells} - set(loads))
    at = {(float(c["payload_size_kb"]), str(c["ecs_load"])): c for c in cells}
    head = "".join(f"<th style='font-weight:normal;font-size:80%'>{html.escape(x)}</th>" for x in loads)
    rows = []
    for s in sizes:
        tds = []
        for x in loads:
            c = at.get((s, x))
            if c is None:
                tds.append("<td></td>")
                continue
            p = str(c.get("objective_prefers"))
            tds.append(f"<td style='background:{PLATFORM_COLOURS.get(p, '#eee')};text-align:center' "
                       f"title='{int(c.get('n_pairs', 0)):,} pairs'>{'λ' if p == 'lambda' else 'ECS'}</td>")
        rows.append(f"<tr><td style='font-size:80%'>{_kb(s)}</td>{''.join(tds)}</tr>")
    return (f"<table style='font-size:90%'><caption><b>{html.escape(workload)}</b></caption>"
            f"<tr><th></th>{head}</tr>{''.join(rows)}</table>")


# ------------------------------------------------------------------------------ best vs static
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
        return (f"{name}: bill ${_ci(r, 'bill_avg_usd_per_1k_requests', '.4f')} per 1,000 requests, "
                f"p95 {_ci(r, 'latency_p95_ms', ',.0f')} ms, failures {_ci(r, 'failure_rate', '.3f')}, "
                f"regret against the oracle ${_ci(r, 'regret_usd_per_1k_requests', '+.5f')} per 1,000 and "
                f"{_ci(r, 'regret_ms_per_request', '+,.0f')} ms per request")

    better = summary.get("objective_scores_better_than_best_static")
    verdict = ("scores better than" if better else "does not score better than") + \
        f" the best static policy ({best_static}) by the objective's own score"
    deployable = [r for r in rows.values() if r.get("kind") != "oracle"]
    cheapest = min(deployable, key=lambda r: _num(r.get("bill_avg_usd_per_1k_requests")))
    fastest = min(deployable, key=lambda r: _num(r.get("latency_p95_ms")))
    extra = (f"Of the deployable policies (oracles aside), the lowest bill: {cheapest['policy']} "
             f"(${_num(cheapest.get('bill_avg_usd_per_1k_requests')):.4f} per 1,000); the lowest p95: "
             f"{fastest['policy']} ({_num(fastest.get('latency_p95_ms')):,.0f} ms).")
    text = f"The objective policy {verdict}. {line(objective)}. {line(best_static)}. {extra} OPEN LOOP."
    body = (f"<p>The objective policy <b>{html.escape(verdict)}</b> "
            f"(held-out sessions, 95 % CIs by bootstrap over minute blocks).</p><ul>"
            f"<li>{html.escape(line(objective))}</li><li>{html.escape(line(best_static))}</li></ul>"
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
    mpath = layout.metadata_path(params.path("models_dir"))
    meta = _read(mpath)
    if meta is None:
        missing = f"not computed yet: stage 04 (04_train) writes {mpath}"
        out.append(Finding("The plan's verdicts", missing, f"<p>{html.escape(missing)}</p>", str(mpath)))
    else:
        out.append(verdicts_finding(meta, str(mpath)))
    return out


def panel_html(items: Sequence[Finding]) -> str:
    """The findings as the index's first section."""
    blocks = "".join(f"<h3>{html.escape(f.title)}</h3>{f.html}<p style='color:#777;font-size:80%'>from "
                     f"<code>{html.escape(f.source)}</code></p>" for f in items)
    return (f"<div style='border:2px solid #2a6;padding:8px 16px;margin-bottom:16px'><h2>Findings</h2>"
            f"<p style='color:#555'>Generated from this run's outputs; every number links back to its "
            f"source file.</p>{blocks}</div>")
