"""Pure-Python evaluators for the two serving formats: LightGBM text models (binary classification,
and regression / quantile regression with identity output) and XGBoost JSON models (binary
classification). No numpy, no compiled code, no pickle: the Lambda package ships these ~300 lines
instead of numpy + scipy + lightgbm (> 100 MB unzipped).

Both reproduce the libraries' own arithmetic, so the prediction equals the library's to ~1e-15
(LightGBM: double precision, `<=` splits, missing-value rules of `Tree::NumericalDecision` /
`CategoricalDecision`; XGBoost: float32 features, thresholds, accumulation and sigmoid, `<` splits,
`default_left` for missing). tests/router/test_router_trees.py checks that on thousands of rows
against `lightgbm.Booster.predict` (also with `raw_score=True`) and `xgboost.Booster.predict`,
including NaN, zeros and categorical splits. Unsupported model features (linear trees, multiclass,
objectives whose output is not the identity or the sigmoid: poisson, gamma, tweedie, `sqrt`
regression, ...) raise `ModelFormatError` at load time, never a wrong number at predict time.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

_F32 = struct.Struct("<f")
_ZERO_THRESHOLD = 1e-35          # LightGBM kZeroThreshold
_XGB_SIGMOID_CLAMP = 88.7        # xgboost common::Sigmoid clamps -x at 88.7f


class ModelFormatError(ValueError):
    """A model file that is malformed or uses something the evaluator does not implement."""


def f32(x: float) -> float:
    """Round a Python float to the nearest float32 (as C's float conversion does)."""
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


# ------------------------------------------------------------------------------------------ LightGBM
@dataclass(frozen=True)
class _LgbTree:
    split_feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    default_left: tuple[bool, ...]
    missing_type: tuple[int, ...]        # 0 none, 1 zero, 2 nan
    categorical: tuple[bool, ...]
    cat_boundaries: tuple[int, ...]
    cat_threshold: tuple[int, ...]
    leaf_value: tuple[float, ...]
    simple: bool                         # only numerical splits with missing type none/nan


#: LightGBM objectives whose prediction is the raw score itself (RegressionL2loss and the losses
#: built on it, without the `sqrt` option: their ConvertOutput is the identity).
IDENTITY_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
KINDS = ("binary", "regression")


class LightGBMTextModel:
    """A LightGBM model from its text dump (`Booster.save_model` / `model_to_string`): binary
    (`predict` is P(positive), the sigmoid of the raw score) or regression with identity output
    (`predict` is the raw score: regression, regression_l1, huber, fair, quantile, mape)."""

    format = "lightgbm_text"

    def __init__(self, trees: list[_LgbTree], feature_names: list[str], sigmoid: float,
                 average_output: bool, kind: str = "binary", objective: str = "binary",
                 n_features: int | None = None, compiled: bool = True) -> None:
        if kind not in KINDS:
            raise ModelFormatError(f"model kind {kind!r} is not one of {KINDS}")
        self.trees = trees
        self.feature_names = feature_names
        self.sigmoid = sigmoid
        self.average_output = average_output
        self.kind = kind
        self.objective = objective
        used = max((max(t.split_feature) for t in trees if t.split_feature), default=-1) + 1
        self.n_features = max(used, n_features or len(feature_names) or 0)
        # hot-path view: per tree (split_feature, threshold, left, right, leaf_value), in tree order
        self._fast = [(t.split_feature, t.threshold, t.left, t.right, t.leaf_value) for t in trees]
        self._all_simple = all(t.simple for t in trees)
        self._compiled = _compile_lgb(trees, self.n_features, average_output) if compiled else None

    @classmethod
    def from_text(cls, text: str, source: str = "model.txt") -> "LightGBMTextModel":
        blocks = text.split("\nTree=")
        header = _kv(blocks[0].splitlines())
        if blocks[0].splitlines()[:1] != ["tree"]:
            raise ModelFormatError(f"{source}: not a LightGBM text model (first line is not 'tree')")
        objective = header.get("objective", "")
        parts = objective.split()
        sigmoid = 1.0
        if parts and parts[0] == "binary":
            kind = "binary"
            for p in parts[1:]:
                if p.startswith("sigmoid:"):
                    sigmoid = float(p.split(":", 1)[1])
        elif parts and parts[0] in IDENTITY_OBJECTIVES and len(parts) == 1:
            kind = "regression"
        else:
            raise ModelFormatError(f"{source}: objective {objective!r} is not supported (expected "
                                   f"'binary sigmoid:<k>' or one of {', '.join(IDENTITY_OBJECTIVES)} "
                                   "without 'sqrt')")
        if header.get("num_tree_per_iteration", "1") != "1" or header.get("num_class", "1") != "1":
            raise ModelFormatError(f"{source}: multiclass models are not supported")
        feature_names = header.get("feature_names", "").split()
        trees: list[_LgbTree] = []
        for i, block in enumerate(blocks[1:]):
            body = block.split("\nend of trees", 1)[0]
            kv = _kv(body.splitlines()[1:])
            try:
                trees.append(_parse_lgb_tree(kv))
            except (KeyError, ValueError) as exc:
                raise ModelFormatError(f"{source}: tree {i}: {exc}") from None
        if not trees:
            raise ModelFormatError(f"{source}: no trees found")
        n_features = int(header["max_feature_idx"]) + 1 if "max_feature_idx" in header else None
        average = "average_output" in blocks[0].splitlines()        # a bare flag line, no '='
        return cls(trees, feature_names, sigmoid, average, kind, objective, n_features)

    def raw_score(self, row: Sequence[float]) -> float:
        """The sum of the trees' leaf values (averaged for random-forest boosting), as
        `lightgbm.Booster.predict(raw_score=True)`."""
        if self._compiled is not None and len(row) == self.n_features:
            return self._compiled(row)
        has_nan = any(v != v for v in row)
        total = 0.0
        if self._all_simple and not has_nan:
            for sf, th, le, ri, lv in self._fast:
                node = 0
                if le:
                    while node >= 0:
                        node = le[node] if row[sf[node]] <= th[node] else ri[node]
                    total += lv[~node]
                else:
                    total += lv[0]
            return total / len(self.trees) if self.average_output else total
        for t in self.trees:
            if len(t.leaf_value) == 1:
                total += t.leaf_value[0]
                continue
            node = 0
            if t.simple and not has_nan:
                sf, th, le, ri = t.split_feature, t.threshold, t.left, t.right
                while node >= 0:
                    node = le[node] if row[sf[node]] <= th[node] else ri[node]
            else:
                while node >= 0:
                    node = _lgb_decision(t, node, float(row[t.split_feature[node]]))
            total += t.leaf_value[~node]
        if self.average_output:
            total /= len(self.trees)
        return total

    def predict_proba(self, row: Sequence[float]) -> float:
        """P(positive class) of a binary model, as `lightgbm.Booster.predict` returns it."""
        if self.kind != "binary":
            raise ModelFormatError(f"a {self.objective!r} model predicts values, not probabilities: use predict")
        return 1.0 / (1.0 + math.exp(-self.sigmoid * self.raw_score(row)))

    def predict(self, row: Sequence[float]) -> float:
        """What `lightgbm.Booster.predict` returns: P(positive) for a binary model, the raw score
        (identity output) for a regression model."""
        if self.kind == "regression":
            return self.raw_score(row)
        return 1.0 / (1.0 + math.exp(-self.sigmoid * self.raw_score(row)))


#: Trees deeper than this are walked by the loop inside the compiled function (CPython's parser
#: limits nesting to 200 parentheses).
_MAX_COMPILED_DEPTH = 80


def _compile_lgb(trees: Sequence[_LgbTree], n_features: int, average_output: bool
                 ) -> Callable[[Sequence[float]], float]:
    """One Python function summing every tree's leaf for a row, generated from the trees as nested
    conditional expressions and compiled once: about four times faster than walking the node arrays.
    Each split is LightGBM's numerical decision (`Tree::NumericalDecision`) with NaN included: a
    value goes left when `x <= threshold`; NaN goes where LightGBM sends it (missing type nan: the
    default child; missing type none: as 0.0), written as `x <= threshold` when NaN goes right
    (the comparison is False for NaN) and `not x > threshold` when it goes left (True for NaN), the
    same for every number. Thresholds and leaf values are written with repr (exact round trip) and
    added in tree order from 0.0, so the sum is bit-identical to the loop's. A tree with categorical
    or zero-as-missing splits, a non-finite number, or deeper than _MAX_COMPILED_DEPTH, is evaluated
    by `_lgb_tree_value`."""
    fallback: list[_LgbTree] = []

    def num(v: float) -> str | None:
        return repr(v) if math.isfinite(v) else None

    def expr(t: _LgbTree, node: int, depth: int) -> str | None:
        if node < 0:
            return num(t.leaf_value[~node])
        if depth > _MAX_COMPILED_DEPTH or not math.isfinite(t.threshold[node]):
            return None
        left, right = expr(t, t.left[node], depth + 1), expr(t, t.right[node], depth + 1)
        if left is None or right is None:
            return None
        x, th = f"x{t.split_feature[node]}", t.threshold[node]
        nan_left = t.default_left[node] if t.missing_type[node] == 2 else 0.0 <= th
        test = f"not {x} > {th!r}" if nan_left else f"{x} <= {th!r}"
        return f"({left} if {test} else {right})"

    names = [f"x{i}" for i in range(n_features)]
    lines = ["def score(row):", f"    {', '.join(names)}{',' if len(names) == 1 else ''} = row" if names else "    pass",
             "    s = 0.0"]
    for t in trees:
        e = num(t.leaf_value[0]) if len(t.leaf_value) == 1 else (expr(t, 0, 0) if t.simple else None)
        if e is None:
            fallback.append(t)
            e = f"_tree({len(fallback) - 1}, row)"
        lines.append(f"    s += {e}")
    lines.append(f"    return s / {len(trees)}" if average_output else "    return s")
    namespace: dict[str, object] = {"_tree": lambda k, row: _lgb_tree_value(fallback[k], row)}
    exec(compile("\n".join(lines), "<lightgbm trees>", "exec"), namespace)
    return namespace["score"]  # type: ignore[return-value]


def _lgb_tree_value(t: _LgbTree, row: Sequence[float]) -> float:
    """One tree's leaf value for a row, by LightGBM's full decision rules."""
    if len(t.leaf_value) == 1:
        return t.leaf_value[0]
    node = 0
    while node >= 0:
        node = _lgb_decision(t, node, float(row[t.split_feature[node]]))
    return t.leaf_value[~node]


def _kv(lines: Sequence[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split()) if s else ()


def _floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split()) if s else ()


def _parse_lgb_tree(kv: dict[str, str]) -> _LgbTree:
    if kv.get("is_linear", "0") != "0":
        raise ValueError("linear trees (linear_tree=true) are not supported")
    n_leaves = int(kv["num_leaves"])
    leaf_value = _floats(kv["leaf_value"])
    if len(leaf_value) != n_leaves:
        raise ValueError(f"num_leaves={n_leaves} but {len(leaf_value)} leaf values")
    if n_leaves == 1:
        return _LgbTree((), (), (), (), (), (), (), (), (), leaf_value, True)
    dt = _ints(kv["decision_type"])
    categorical = tuple(bool(d & 1) for d in dt)
    missing = tuple((d >> 2) & 3 for d in dt)
    tree = _LgbTree(
        split_feature=_ints(kv["split_feature"]), threshold=_floats(kv["threshold"]),
        left=_ints(kv["left_child"]), right=_ints(kv["right_child"]),
        default_left=tuple(bool(d & 2) for d in dt), missing_type=missing, categorical=categorical,
        cat_boundaries=_ints(kv.get("cat_boundaries", "")), cat_threshold=_ints(kv.get("cat_threshold", "")),
        leaf_value=leaf_value,
        simple=not any(categorical) and all(m != 1 for m in missing))
    n_nodes = n_leaves - 1
    for name in ("split_feature", "threshold", "left", "right"):
        if len(getattr(tree, name)) != n_nodes:
            raise ValueError(f"{name} has {len(getattr(tree, name))} entries, expected {n_nodes}")
    return tree


def _lgb_decision(t: _LgbTree, node: int, x: float) -> int:
    if t.categorical[node]:
        if x != x:
            return t.right[node]
        ix = int(x)
        if ix < 0:
            return t.right[node]
        cat = int(t.threshold[node])
        lo, hi = t.cat_boundaries[cat], t.cat_boundaries[cat + 1]
        word = ix // 32
        if word < hi - lo and (t.cat_threshold[lo + word] >> (ix % 32)) & 1:
            return t.left[node]
        return t.right[node]
    mt = t.missing_type[node]
    if x != x and mt != 2:
        x = 0.0
    if (mt == 1 and -_ZERO_THRESHOLD <= x <= _ZERO_THRESHOLD) or (mt == 2 and x != x):
        return t.left[node] if t.default_left[node] else t.right[node]
    return t.left[node] if x <= t.threshold[node] else t.right[node]


# ------------------------------------------------------------------------------------------- XGBoost
@dataclass(frozen=True)
class _XgbTree:
    left: tuple[int, ...]
    right: tuple[int, ...]
    feature: tuple[int, ...]
    condition: tuple[float, ...]         # float32 values; leaf value at leaves
    default_left: tuple[bool, ...]
    categories: dict[int, frozenset[int]]  # node -> categories that go RIGHT (xgboost convention)


class XGBoostJSONModel:
    """An XGBoost binary:logistic gbtree model from its JSON (`Booster.save_model("m.json")`)."""

    format = "xgboost_json"

    def __init__(self, trees: list[_XgbTree], feature_names: list[str], base_margin: float) -> None:
        self.trees = trees
        self.feature_names = feature_names
        self.base_margin = base_margin

    @classmethod
    def from_json(cls, text: str, source: str = "model.json") -> "XGBoostJSONModel":
        try:
            doc = json.loads(text)
            learner = doc["learner"]
            objective = learner["objective"]["name"]
            booster = learner["gradient_booster"]
            mparam = learner["learner_model_param"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFormatError(f"{source}: not an XGBoost JSON model ({exc})") from None
        if objective != "binary:logistic":
            raise ModelFormatError(f"{source}: objective {objective!r} is not supported (binary:logistic)")
        if booster.get("name") != "gbtree":
            raise ModelFormatError(f"{source}: booster {booster.get('name')!r} is not supported (gbtree)")
        if int(mparam.get("num_class", "0")) > 1 or int(mparam.get("num_target", "1")) != 1:
            raise ModelFormatError(f"{source}: multiclass / multi-target models are not supported")
        base = str(mparam["base_score"]).strip("[]").split(",")[0]
        p = f32(float(base))
        # xgboost ObjFunction::ProbToMargin for logistic: -logf(1.0f / p - 1.0f), in float32
        base_margin = f32(-f32(math.log(f32(f32(1.0 / p) - 1.0))))
        trees = [_parse_xgb_tree(t, i, source) for i, t in enumerate(booster["model"]["trees"])]
        if not trees:
            raise ModelFormatError(f"{source}: no trees found")
        return cls(trees, list(learner.get("feature_names") or []), base_margin)

    def raw_score(self, row: Sequence[float]) -> float:
        x = [f32(float(v)) for v in row]
        total = self.base_margin
        for t in self.trees:
            node = 0
            le = t.left
            while le[node] != -1:
                v = x[t.feature[node]]
                if v != v:
                    node = le[node] if t.default_left[node] else t.right[node]
                elif node in t.categories:
                    iv = int(v)
                    node = t.right[node] if (v >= 0 and iv in t.categories[node]) else le[node]
                else:
                    node = le[node] if v < t.condition[node] else t.right[node]
            total = f32(total + t.condition[node])
        return total

    def predict_proba(self, row: Sequence[float]) -> float:
        """P(positive class), as `xgboost.Booster.predict` returns it (float32 arithmetic)."""
        m = min(-self.raw_score(row), _XGB_SIGMOID_CLAMP)
        return f32(1.0 / f32(f32(math.exp(m)) + 1.0))


def _parse_xgb_tree(t: dict, i: int, source: str) -> _XgbTree:
    try:
        left = tuple(int(v) for v in t["left_children"])
        right = tuple(int(v) for v in t["right_children"])
        feature = tuple(int(v) for v in t["split_indices"])
        condition = tuple(f32(float(v)) for v in t["split_conditions"])
        default_left = tuple(bool(v) for v in t["default_left"])
        split_type = t.get("split_type") or [0] * len(left)
        categories: dict[int, frozenset[int]] = {}
        cat_nodes = t.get("categories_nodes") or []
        for k, node in enumerate(cat_nodes):
            seg, size = t["categories_segments"][k], t["categories_sizes"][k]
            categories[int(node)] = frozenset(int(c) for c in t["categories"][seg:seg + size])
        if int(t.get("tree_param", {}).get("size_leaf_vector", "1")) > 1:
            raise ModelFormatError(f"{source}: tree {i}: vector leaves are not supported")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{source}: tree {i}: {exc}") from None
    if not (len(left) == len(right) == len(feature) == len(condition) == len(default_left)):
        raise ModelFormatError(f"{source}: tree {i}: node arrays differ in length")
    if any(st == 1 for st in split_type) and not categories:
        raise ModelFormatError(f"{source}: tree {i}: categorical split without categories")
    return _XgbTree(left, right, feature, condition, default_left, categories)


def load_model(fmt: str, text: str, source: str) -> LightGBMTextModel | XGBoostJSONModel:
    """Load a serving model from its text. `fmt` is model_metadata.json's serving.format."""
    if fmt == "lightgbm_text":
        return LightGBMTextModel.from_text(text, source)
    if fmt == "xgboost_json":
        return XGBoostJSONModel.from_json(text, source)
    raise ModelFormatError(f"{source}: serving format {fmt!r} is not one of lightgbm_text, xgboost_json")
