"""Stage 06 (decide): routing judged by an explicit objective, not by a label.

- `load_state`  what the router observes before it sends (its recent arrivals and its requests in
                flight per platform), online (`LoadTracker`, shipped in the router) and
- `load_frame`  the same definitions computed causally on logged requests (numpy), with the guard
                that proves no feature reads a request's own outcome or a later request;
- `objective`   the objective (params `decision:`), the marginal cost of one more request per
                platform and load state, the policy's choice from predictions and the oracle's
                choice from measured outcomes (shipped in the router);
- `capacity`    the ECS tasks a run actually ran (recorded by the simulator, else the deployed count);
- `bill`        a run's cost as AWS would bill it, and the open-loop bill of routing pairs by a policy;
- `marginal_fit` the per-workload tables behind the marginal cost, fitted on training logs;
- `outcomes`    per-platform outcome models: latency p50 and p95 (LightGBM quantiles of log latency)
                and the probability of failure, on the 14 features plus the load state;
- `policies`    the policies judged side by side (static, lookup table, the plan's classifier, the
                objective at each setting) and the oracles;
- `evaluate`    leave-session-out evaluation with minute-block bootstrap CIs (open loop);
- `artifacts`   the serving files in models/<profile>/decision/ and decisions.json.

This __init__ imports nothing: the router's Lambda package ships `load_state` and `objective`,
which use the standard library only.
"""
