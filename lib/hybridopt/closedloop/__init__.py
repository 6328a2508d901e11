"""Closed loop: routing policies judged in the simulator where their own decisions shape the load.

- `loop`       the discrete-event loop: arrivals routed at send time by a send-time policy (which
               reads a LoadTracker fed with its arrivals, sends and completions in virtual time),
               the platform model runs what was routed to it;
- `policies`   the send-time policies (static choices, the load-aware threshold rule, the router's
               objective policy, the A/B's two arms);
- `metrics`    one run's bill (decision.bill on the run's own capacity timeline), latency, failures
               and objective; means and CIs over seeds;
- `replay`     a profile's logged pairs replayed closed loop under each policy (replay-policy);
- `crossover`  one cell of the crossover map: constant-rate Poisson arrivals of one workload at one
               payload, at a chosen Fargate capacity.
"""
