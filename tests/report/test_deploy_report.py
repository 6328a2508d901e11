"""The deploy stage's report helpers: the warm-latency note against the aim, and the inputs table
(names with angle brackets kept as cells, which the exporter escapes)."""

from __future__ import annotations

from hybridopt.report import deploy as report
from hybridopt.report.export import _styled


def test_warm_latency_note_states_the_aim_and_the_load_average() -> None:
    machine = {"cpus": 2, "loadavg_1m": 12.1669921875, "python": "3.11.7"}
    slow = report.warm_latency_note({"direct_event": {"p50_us": 211.3, "p99_us": 8617.4}, "runs": 3}, machine)
    assert "load average (1 min) 12.2 (6.1 per CPU)" in slow and "{" not in slow
    assert "8.62 ms against the 1 ms aim: not met at load average 12.2" in slow
    fast = report.warm_latency_note({"direct_event": {"p50_us": 90.0, "p99_us": 640.0}}, machine)
    assert "0.64 ms against the 1 ms aim: met." in fast and "not met" not in fast


def test_input_names_are_cells_escaped_in_html() -> None:
    t = report.inputs_table()
    assert "input" in t.columns and any("in_flight_<platform>" in v for v in t["input"])
    html = _styled(t, None, 3).to_html()
    assert "in_flight_&lt;platform&gt;" in html and "arrivals_&lt;W&gt;s_rps" in html
