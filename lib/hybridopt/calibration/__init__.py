"""Calibration: what real request logs can tell about the platform model, fitted with uncertainty.

Input: a DataFrame in the request-log contract (`hybridopt.data.ingest`), e.g. the student's November 2025
AWS logs. Per workload and platform it fits

- **service time**: `execution_time_ms` (measured inside the handler) of warm, successful requests
  against payload size: `intercept_ms + slope_ms_per_mb * MB`, with a lognormal spread (`sigma_log`);
- **network and upload**: `total_ms - execution_time_ms` (what the client saw beyond the handler:
  connection set-up, TLS, upload, front door, download) against payload size, the same form;
- **the Lambda cold-start penalty**: for every `cold_start` row, its extra end-to-end time over the
  warm requests of the same run, workload and payload size (median, bootstrap CI, lognormal fit);
- **the measurement setup's load-dependent inflation**: how the network part grows with the
  request rate the load generator offered (`1 + k * max(0, rate - reference_rate)`, per platform).
  The legacy generator was itself saturated at higher rates (payloads built character by character
  during the run, one machine far from the region), so this is a property of the client preset,
  not of the platforms.

Through the platform model's own equations (`fit_model`) it also fits the client preset (RTT per session,
TLS round trips, upload bandwidth, jitter, and the inflation in the form the base preset names:
additive, round_trip or multiplicative), the handler times per (workload, platform), and how much of a
request reaches an ECS task while it waits for a worker (`fit_queued_body`: queued_receive_bytes); ECS
requests that waited and whose whole body was already there measure the ECS handler's own time.

Only the rate band nearest the lowest offered rate feeds the service and network fits (they
describe an unloaded client), and only cells whose requests were (nearly) all logged feed any fit:
the legacy logger dropped every non-JSON response and Artillery gave up after 10 s, so in a cell
that lost many requests the survivors are the fast ones (see `logged_share`).

The modules, in the order the work flows:

- `options`       FitOptions: how rows are selected and weighed;
- `context`       the row context (session, offered rate, logged share) and the row selections;
- `empirical`     what the logs tell directly: service and network lines, cold start, inflation;
- `client`        the client preset through the model's handshake and upload equations;
- `handlers`      handler times per (workload, platform) and the queued ECS body;
- `fit`           `calibrate` (everything, in order) and `fit_model` (the platform model's part);
- `presets`       the fit as params overrides (`testbed_overrides`, `with_presets`);
- `testbed_yaml`  the fitted presets written into params/testbed.yaml between marker comments;
- `validate`      the fitted model replayed against sessions it was not fitted on.

Everything here except `validate.validation_result` is a pure function of (frame, options);
`hybridopt.commands.calibrate` does the I/O. Tables and figures are in `hybridopt.report.calibration`.
"""

from hybridopt.calibration.client import (
    INFLATION_FORMS,
    MULTIPLICATIVE_GRID,
    UPLOAD_GRID_MBPS,
    ClientFit,
    body_bytes,
    extra_ms,
    fit_client,
    round_trip_ms,
    upload_ms,
)
from hybridopt.calibration.context import (
    add_context,
    clean,
    rate_at,
    reference_rows,
    requests_per_arrival,
    sessions,
    successful,
    warm_rows,
)
from hybridopt.calibration.empirical import (
    ColdStartFit,
    InflationFit,
    LinearFit,
    fit_cold_start,
    fit_inflation,
    fit_network,
    fit_service,
    linear_fit,
    normalise_sessions,
    queue_utilisation,
)
from hybridopt.calibration.fit import Calibration, ModelFit, calibrate, fit_model
from hybridopt.calibration.handlers import (
    QueuedBodyFit,
    ServiceEntryFit,
    fit_queued_body,
    fit_queued_service_entries,
    fit_service_entries,
)
from hybridopt.calibration.options import KB_PER_MB, FitOptions
from hybridopt.calibration.presets import (
    PRESET_NAME,
    client_preset,
    queued_body_value,
    service_preset,
    testbed_overrides,
    with_presets,
)
from hybridopt.calibration.testbed_yaml import preset_yaml, replace_block

__all__ = [
    # options
    "KB_PER_MB", "FitOptions",
    # context
    "add_context", "clean", "rate_at", "reference_rows", "requests_per_arrival", "sessions", "successful",
    "warm_rows",
    # empirical
    "ColdStartFit", "InflationFit", "LinearFit", "fit_cold_start", "fit_inflation", "fit_network", "fit_service",
    "linear_fit", "normalise_sessions", "queue_utilisation",
    # client
    "INFLATION_FORMS", "MULTIPLICATIVE_GRID", "UPLOAD_GRID_MBPS", "ClientFit", "body_bytes", "extra_ms",
    "fit_client", "round_trip_ms", "upload_ms",
    # handlers
    "QueuedBodyFit", "ServiceEntryFit", "fit_queued_body", "fit_queued_service_entries", "fit_service_entries",
    # fit
    "Calibration", "ModelFit", "calibrate", "fit_model",
    # presets
    "PRESET_NAME", "client_preset", "queued_body_value", "service_preset", "testbed_overrides", "with_presets",
    # testbed_yaml
    "preset_yaml", "replace_block",
]
