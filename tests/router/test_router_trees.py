"""The pure-Python tree evaluators equal the libraries' own predictions (to 1e-9, in practice
exactly) on thousands of rows, including NaN / zero values and categorical splits: binary models
(probability) and LightGBM regression / quantile models (identity output, `raw_score=True`), by the
compiled function and by the node-walking loop."""

from __future__ import annotations

import json
from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from hybridopt.router.trees import (
    LightGBMTextModel,
    ModelFormatError,
    XGBoostJSONModel,
    f32,
    load_model,
)

N = 2500


def _data(seed: int, missing: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 6)) * [1, 10, 1000, 1, 1, 1]
    X[:, 5] = rng.integers(0, 9, N)
    y = ((X[:, 0] + X[:, 1] / 10 * X[:, 3] + (X[:, 5] % 3 == 0)) > 0.4).astype(int)
    if missing:
        X[rng.random(X.shape) < 0.05] = np.nan
        X[rng.random(X.shape) < 0.05] = 0.0
    return X, y


def _max_diff(model, ref: np.ndarray, X: np.ndarray, how: str = "predict_proba") -> float:
    mine = np.array([getattr(model, how)([float(v) for v in row]) for row in X])
    return float(np.max(np.abs(mine - ref.astype(np.float64))))


def _loop(model: LightGBMTextModel) -> LightGBMTextModel:
    """The same trees evaluated by the node-walking loop only (no compiled function)."""
    return LightGBMTextModel(model.trees, model.feature_names, model.sigmoid, model.average_output, model.kind,
                             model.objective, model.n_features, compiled=False)


@pytest.mark.parametrize("missing", [False, True])
def test_lightgbm_text_equals_library(missing: bool) -> None:
    X, y = _data(1, missing)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 31, "num_threads": 1,
                         "seed": 1}, lgb.Dataset(X, y), 200)
    model = LightGBMTextModel.from_text(booster.model_to_string())
    assert len(model.trees) == 200 and model.kind == "binary"
    assert _max_diff(model, booster.predict(X), X) <= 1e-9
    assert _max_diff(model, booster.predict(X), X, "predict") <= 1e-9
    assert _max_diff(model, booster.predict(X, raw_score=True), X, "raw_score") <= 1e-9
    assert _max_diff(_loop(model), booster.predict(X), X) <= 1e-9


@pytest.mark.parametrize("trained_with_nan", [False, True])
def test_the_compiled_function_sends_nan_where_lightgbm_does(trained_with_nan: bool) -> None:
    """Rows with NaN take the compiled function too: trained without NaN (missing type none: NaN
    counts as 0.0) and with NaN (missing type nan: the default child), it equals the library and,
    bit for bit, the node-walking loop."""
    X, y = _data(3, trained_with_nan)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 31, "num_threads": 1, "seed": 3},
                        lgb.Dataset(X, y), 100)
    model = LightGBMTextModel.from_text(booster.model_to_string())
    assert model._compiled is not None
    rng = np.random.default_rng(4)
    Xq = X.copy()
    Xq[rng.random(Xq.shape) < 0.2] = np.nan
    rows = [[float(v) for v in r] for r in Xq]
    compiled = np.array([model._compiled(r) for r in rows])
    loop = np.array([_loop(model).raw_score(r) for r in rows])
    assert np.isnan(Xq).any(axis=1).mean() > 0.5
    assert np.array_equal(compiled, loop)
    assert float(np.max(np.abs(compiled - booster.predict(Xq, raw_score=True)))) <= 1e-9


def _regression_data(seed: int, missing: bool) -> tuple[np.ndarray, np.ndarray]:
    X, _ = _data(seed, False)
    rng = np.random.default_rng(seed + 100)
    y = np.log(50 + 20 * np.abs(X[:, 0]) + X[:, 2] / 100 + 5 * (X[:, 5] % 3)) + rng.normal(0, 0.3, N)
    if missing:
        X[rng.random(X.shape) < 0.05] = np.nan
        X[rng.random(X.shape) < 0.05] = 0.0
    return X, y


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("objective", [{"objective": "quantile", "alpha": 0.5}, {"objective": "quantile", "alpha": 0.95},
                                       {"objective": "regression"}, {"objective": "regression_l1"},
                                       {"objective": "huber"}, {"objective": "fair"}, {"objective": "mape"}])
def test_lightgbm_regression_and_quantile_equal_library(objective: dict, missing: bool) -> None:
    """Identity output: predict == raw_score == Booster.predict(raw_score=True) == Booster.predict,
    with the decide stage's outcome-model settings (15 leaves, >= 200 rows per leaf) and deeper trees."""
    X, y = _regression_data(7, missing)
    for extra in ({"num_leaves": 15, "min_data_in_leaf": 200}, {"num_leaves": 63, "min_data_in_leaf": 5}):
        booster = lgb.train({**objective, **extra, "verbose": -1, "num_threads": 1, "seed": 7,
                             "bagging_fraction": 0.8, "bagging_freq": 1}, lgb.Dataset(X, y), 120)
        model = LightGBMTextModel.from_text(booster.model_to_string())
        assert model.kind == "regression" and model.objective == objective["objective"]
        raw = booster.predict(X, raw_score=True)
        assert np.array_equal(raw, booster.predict(X))                       # identity output
        assert _max_diff(model, raw, X, "raw_score") <= 1e-9
        assert _max_diff(model, raw, X, "predict") <= 1e-9
        assert _max_diff(_loop(model), raw, X, "predict") <= 1e-9
        with pytest.raises(ModelFormatError, match="use predict"):
            model.predict_proba([0.0] * 6)


def test_compiled_trees_are_bit_identical_to_the_loop() -> None:
    """The compiled function adds the same leaves in the same order: equal floats, not just close."""
    X, y = _regression_data(8, False)
    booster = lgb.train({"objective": "quantile", "alpha": 0.95, "verbose": -1, "num_threads": 1, "num_leaves": 31},
                        lgb.Dataset(X, y), 150)
    model = LightGBMTextModel.from_text(booster.model_to_string())
    loop = _loop(model)
    rows = [[float(v) for v in r] for r in X]
    assert model._compiled is not None and loop._compiled is None
    assert [model.raw_score(r) for r in rows] == [loop.raw_score(r) for r in rows]
    assert model.raw_score(rows[0] + [1.0]) == loop.raw_score(rows[0])      # a longer row: the loop's path


def test_lightgbm_random_forest_average_output_equals_library() -> None:
    X, y = _regression_data(9, True)
    booster = lgb.train({"objective": "regression", "boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1,
                         "feature_fraction": 0.8, "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), 40)
    model = LightGBMTextModel.from_text(booster.model_to_string())
    assert model.average_output
    assert _max_diff(model, booster.predict(X), X, "predict") <= 1e-9
    assert _max_diff(_loop(model), booster.predict(X), X, "predict") <= 1e-9


def test_lightgbm_categorical_and_zero_missing_equal_library() -> None:
    X, y = _data(2, True)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15, "num_threads": 1,
                         "min_data_per_group": 5, "cat_smooth": 1, "zero_as_missing": True, "seed": 2},
                        lgb.Dataset(X, y, categorical_feature=[5]), 80)
    text = booster.model_to_string()
    assert "num_cat=0" in text and text.count("num_cat=0") < 80      # some trees split categorically
    model = LightGBMTextModel.from_text(text)
    assert any(not t.simple for t in model.trees)
    assert _max_diff(model, booster.predict(X), X) <= 1e-9
    assert _max_diff(_loop(model), booster.predict(X), X) <= 1e-9
    reg = lgb.train({"objective": "quantile", "alpha": 0.9, "verbose": -1, "num_leaves": 15, "num_threads": 1,
                     "min_data_per_group": 5, "cat_smooth": 1, "zero_as_missing": True, "seed": 2},
                    lgb.Dataset(X, _regression_data(2, False)[1], categorical_feature=[5]), 80)
    rmodel = LightGBMTextModel.from_text(reg.model_to_string())
    assert any(not t.simple for t in rmodel.trees)
    assert _max_diff(rmodel, reg.predict(X, raw_score=True), X, "predict") <= 1e-9


@pytest.mark.parametrize("missing", [False, True])
def test_xgboost_json_equals_library(missing: bool) -> None:
    X, y = _data(3, missing)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "nthread": 1, "seed": 3},
                        xgb.DMatrix(X, y), 200)
    model = XGBoostJSONModel.from_json(bytes(booster.save_raw("json")).decode())
    assert _max_diff(model, booster.predict(xgb.DMatrix(X)), X) <= 1e-9


def test_xgboost_categorical_equals_library() -> None:
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"a": rng.normal(size=N), "b": rng.normal(size=N),
                       "c": pd.Categorical(rng.integers(0, 10, N))})
    y = ((df.a > 0) ^ (df.c.cat.codes % 3 == 0)).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "max_cat_to_onehot": 1,
                         "nthread": 1}, xgb.DMatrix(df, y, enable_categorical=True), 60)
    model = XGBoostJSONModel.from_json(bytes(booster.save_raw("json")).decode())
    assert sum(len(t.categories) for t in model.trees) > 0
    X = np.c_[df.a, df.b, df.c.cat.codes.astype(float)]
    assert _max_diff(model, booster.predict(xgb.DMatrix(df, enable_categorical=True)), X) <= 1e-9


def test_an_error_in_the_evaluator_would_be_caught() -> None:
    """The comparison above is sensitive: flipping one split's direction changes predictions."""
    X, y = _data(5, False)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), 20)
    text = booster.model_to_string()
    model = LightGBMTextModel.from_text(text)
    assert _max_diff(model, booster.predict(X), X) <= 1e-9
    t0 = model.trees[0]
    sabotaged = LightGBMTextModel([replace(t0, left=t0.right)] + model.trees[1:], model.feature_names,
                                  model.sigmoid, model.average_output)
    assert _max_diff(sabotaged, booster.predict(X), X) > 1e-3
    assert _max_diff(_loop(sabotaged), booster.predict(X), X) > 1e-3


def test_f32_rounds_like_c_float() -> None:
    assert f32(0.1) == float(np.float32(0.1))
    assert f32(1e39) == float("inf")


@pytest.mark.parametrize("text, message", [
    ("not a model", "not a LightGBM text model"),
    ("tree\nversion=v4\nobjective=poisson\n", "objective 'poisson' is not supported"),
    ("tree\nversion=v4\nobjective=regression sqrt\n", "objective 'regression sqrt' is not supported"),
    ("tree\nversion=v4\nobjective=lambdarank\n", "objective 'lambdarank' is not supported"),
    ("tree\nversion=v4\nnum_class=3\nnum_tree_per_iteration=3\nobjective=binary sigmoid:1\n",
     "multiclass"),
    ("tree\nobjective=binary sigmoid:1\nfeature_names=a\n", "no trees"),
    ("tree\nobjective=binary sigmoid:1\n\nTree=0\nnum_leaves=2\nleaf_value=0.1\n", "tree 0"),
    ("tree\nobjective=binary sigmoid:1\n\nTree=0\nnum_leaves=1\nleaf_value=0.1\nis_linear=1\n",
     "linear trees"),
])
def test_lightgbm_format_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        LightGBMTextModel.from_text(text)


def test_xgboost_format_errors_name_the_problem() -> None:
    X, y = _data(6, False)
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(X, y), 2)
    doc = json.loads(bytes(booster.save_raw("json")).decode())
    doc["learner"]["objective"]["name"] = "reg:squarederror"
    with pytest.raises(ModelFormatError, match="reg:squarederror"):
        XGBoostJSONModel.from_json(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="not an XGBoost JSON model"):
        XGBoostJSONModel.from_json("{}")
    with pytest.raises(ModelFormatError, match="serving format 'onnx'"):
        load_model("onnx", "", "m.onnx")
