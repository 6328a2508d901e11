"""Labels on each pair (1 = Lambda is the better platform).

- latency_optimal:  Lambda's client-observed end-to-end latency is lower.
- cost_optimal:     Lambda's cost is lower.
- balanced_optimal: Lambda is both faster AND cheaper, each by a margin (params.labels, 10 % by
                    default): lambda_latency <= (1 - m_lat) x ecs_latency and
                    lambda_cost <= (1 - m_cost) x ecs_cost (the thesis plan's definition).
A failed attempt loses to a successful one (all three labels). When both failed there is nothing
to learn from: the labels are missing and the pair stays out of the training table (counted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridopt.data.table import LABEL_COLUMNS
from hybridopt.params import Params


def add_labels(pairs: pd.DataFrame, params: Params) -> pd.DataFrame:
    out = pairs.copy()
    lam_ok = out["lambda_ok"].to_numpy(dtype=bool)
    ecs_ok = out["ecs_ok"].to_numpy(dtype=bool)
    ll = out["lambda_latency_ms"].to_numpy(dtype=np.float64)
    el = out["ecs_latency_ms"].to_numpy(dtype=np.float64)
    lc = out["lambda_cost_usd"].to_numpy(dtype=np.float64)
    ec = out["ecs_cost_usd"].to_numpy(dtype=np.float64)
    m_lat, m_cost = params.labels.latency_margin, params.labels.cost_margin
    both = lam_ok & ecs_ok
    with np.errstate(invalid="ignore"):
        rules = {
            "latency_optimal": ll < el,
            "cost_optimal": lc < ec,
            "balanced_optimal": (ll <= (1 - m_lat) * el) & (lc <= (1 - m_cost) * ec),
        }
    for name in LABEL_COLUMNS:
        v = np.where(both, rules[name], lam_ok & ~ecs_ok).astype("float64")
        v[~lam_ok & ~ecs_ok] = np.nan
        out[name] = pd.Series(v, index=out.index).astype("Int8")
    return out
