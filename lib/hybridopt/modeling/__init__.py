"""Training, evaluation and explanation of the placement classifiers.

Modules, in the order the training notebook uses them:
- `data`       feature matrix (leak-guarded), target, pair groups, training categories
- `splits`     60/20/20 stratified split by pair group; grouped CV folds; leave-one-run-out
- `models`     the five model families and their fixed settings
- `tuning`     seeded CV search per model within a time budget
- `metrics`    accuracy, per-class precision/recall/F1, ROC-AUC, confusion, calibration
- `ceiling`    the noise ceiling: best accuracy any function of the 14 features can reach
- `importance` mean |SHAP| shares (verdict importance) and each model's own importance
- `verdicts`   the thesis plan's accept / fail criteria
- `decision`   what routing by a model costs and how fast it is, vs static policies and the oracle
- `explain`    SHAP interactions, dependence data and surrogate if-then rules (05_shap)
- `train`      the whole training run, pure (tables in, results out)
- `artifacts`  models/<profile>/: portable model, feature columns/spec, static rule, metadata
- `evaluate`   score the saved model on another table
- `synthetic`  synthetic training tables with a known Bayes accuracy (tests, benchmark)
"""

import os as _os

# OpenMP threads of LightGBM/XGBoost/scikit-learn spin while waiting by default; on this shared
# 2-core machine that made 2-thread fits 10-15x SLOWER than 1-thread fits whenever another process
# was busy (measured: LightGBM 200 trees on 10k rows 11-33 s vs 0.8-1.2 s with a passive policy).
# The runtime reads this once when it loads, so it only helps if the boosters are imported after
# this package (the notebooks and benchmark import hybridopt.modeling first).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
