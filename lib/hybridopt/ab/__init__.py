"""Stage 08, the A/B test: `stats` (bootstrap CIs, tests, power and sample size), `online` (the
router in front of the testbed or AWS, driven by Artillery, and the same test at scale in the
simulator), `proxy` (the router as an HTTP hop on the testbed) and `offline` (policy evaluation
on held-out logged pairs)."""
