// Artillery 2.0.21 processor for the paired variance experiment.
//
// Every generated payload goes to Lambda and to ECS at the same moment (a `parallel` step with
// one `pair_id`), and every request ATTEMPT becomes exactly one line of the request-log contract
// (lib/hybridopt/data/contract.py, schema_version 1.0): success, HTTP error, non-JSON body, timeout,
// connection refused/reset. Lines are written with fs.writeSync on a per-worker file as soon as
// the outcome is known, so an interrupted run keeps every line it wrote.
//
// Configuration: the orchestrator (`python -m hybridopt collect`, lib/hybridopt/collection/) writes a
// run config JSON derived from params (loadgen.run_config) and passes its path in the environment
// variable HYBRIDOPT_RUN_CONFIG. Nothing here is a default for the experiment: sizes, routes,
// targets, phases, clock all come from that file. The contract line, the payload bodies, the clock
// and the error kinds are request-log.js's, shared with the A/B processor.
//
// Probe: when the run config has `probe: {phase, workload}`, every pair started in that phase (the
// first, a few pairs at a low rate) carries that workload, so a window's log starts with lightweight
// requests to both platforms that read the client's network before the load begins.
//
// Health: every health_interval_s each worker appends one record to
// loadgen-health.w<pid>-<thread>.ndjson (pairs started, attempts, lines written, in flight,
// event-loop lag); the orchestrator reads them for its progress lines and the manifest.
//
// Where the outcomes come from (node_modules/@artilleryio/int-core/lib/engine_http.js):
//  - a response (any status): scenario-level `afterResponse` hooks run after the body has been
//    read; `response.timings.phases` holds request (upload), firstByte and total.
//  - no response (timeout, refused, reset, DNS...): `afterResponse` never runs; got's promise
//    rejects and the scenario-level `onError` hooks run with the error (err.code, err.timings).
//    Both paths write through `recordOnce`, keyed by requestParams.uuid, so an attempt can never
//    produce two lines, and every attempt that was started is tracked in `inFlight` until its
//    line is written.
//  - when one request of a pair fails, Artillery ends the scenario at once although its sibling
//    may still be in flight; `hyLogError` therefore waits for the sibling's line before letting
//    the scenario end, so the run cannot finish (and the worker exit) with an unwritten line.
//  - SIGINT/SIGTERM: Artillery posts `stop` to the worker and the worker calls process.exit();
//    here process.exit waits (up to drain_grace_s) until the in-flight attempts have their lines,
//    and new pairs are refused meanwhile. artillery/preload.js makes the main thread wait for it.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const http = require('node:http');
const https = require('node:https');
const wt = require('node:worker_threads');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const {
  SCHEMA_VERSION, PLATFORMS, writeContractLine, keyChecker, makeRng, seedFrom, buildBodies, clockIso,
  errorKindOf, errorKindOfResponse, platformMetrics, parseJsonObject, timingsOf
} = require('./request-log.js');

const LAG_RESOLUTION_MS = 10;

function fail(message) {
  throw new Error(`hybridopt variance-functions.js: ${message}`);
}

/** Validate the run config and return it (throws naming the file and the key). */
function validateConfig(cfg, where) {
  const need = keyChecker('variance-functions.js', where);
  if (cfg.schema_version !== SCHEMA_VERSION) {
    fail(`${where}: schema_version must be "${SCHEMA_VERSION}", got ${JSON.stringify(cfg.schema_version)}`);
  }
  for (const k of ['experiment', 'run_id', 'source', 'time_window', 'load_pattern', 'out_dir']) {
    need(cfg, k, 'string');
  }
  need(cfg, 'seed', 'number');
  need(cfg, 'http_timeout_s', 'number');
  need(cfg, 'drain_grace_s', 'number');
  const targets = need(cfg, 'targets', 'object');
  for (const p of PLATFORMS) {
    const u = need(targets, `${p}_base_url`, 'string', 'targets.');
    if (!/^https?:\/\//.test(u)) {
      fail(`${where}: key 'targets.${p}_base_url' must start with http:// or https://, got ${JSON.stringify(u)}`);
    }
  }
  const workloads = need(cfg, 'workloads', 'object');
  if (Object.keys(workloads).length === 0) {
    fail(`${where}: key 'workloads' is empty`);
  }
  for (const [name, w] of Object.entries(workloads)) {
    const sizes = need(w, 'sizes_kb', 'array', `workloads.${name}.`);
    if (sizes.length === 0 || sizes.some((s) => !(typeof s === 'number' && s > 0))) {
      fail(`${where}: key 'workloads.${name}.sizes_kb' must be positive numbers, got ${JSON.stringify(sizes)}`);
    }
    need(w, 'lambda_route', 'string', `workloads.${name}.`);
    need(w, 'ecs_route', 'string', `workloads.${name}.`);
    const enc = need(w, 'encoding', 'string', `workloads.${name}.`);
    if (enc !== 'json' && enc !== 'base64') {
      fail(`${where}: key 'workloads.${name}.encoding' must be "json" or "base64", got ${JSON.stringify(enc)}`);
    }
  }
  const phases = need(cfg, 'phases', 'array');
  if (phases.length === 0) {
    fail(`${where}: key 'phases' is empty`);
  }
  phases.forEach((ph, i) => {
    need(ph, 'name', 'string', `phases[${i}].`);
    need(ph, 'duration_s', 'number', `phases[${i}].`);
    need(ph, 'arrival_rate_rps', 'number', `phases[${i}].`);
  });
  if (cfg.probe !== undefined && cfg.probe !== null) {
    const probe = need(cfg, 'probe', 'object');
    const ph = need(probe, 'phase', 'string', 'probe.');
    const w = need(probe, 'workload', 'string', 'probe.');
    if (!Object.prototype.hasOwnProperty.call(workloads, w)) {
      fail(`${where}: key 'probe.workload' is ${JSON.stringify(w)}, not one of the workloads ` +
        `${JSON.stringify(Object.keys(workloads))}`);
    }
    if (!phases.some((p) => p.name === ph)) {
      fail(`${where}: key 'probe.phase' is ${JSON.stringify(ph)}, which no entry of 'phases' names`);
    }
  }
  const clock = need(cfg, 'virtual_clock', 'object');
  need(clock, 'start', 'string', 'virtual_clock.');
  need(clock, 'utc_offset_minutes', 'number', 'virtual_clock.');
  need(clock, 'rate', 'number', 'virtual_clock.');
  if (Number.isNaN(Date.parse(clock.start))) {
    fail(`${where}: key 'virtual_clock.start' is not an ISO-8601 timestamp: ${JSON.stringify(clock.start)}`);
  }
  return cfg;
}

/** The phase and scheduled rate (pairs/s) at `elapsedS` seconds into the run, as Artillery's
 * phaser schedules it (int-core/lib/phases.js: a ramp steps once per second). A phase's
 * `pause_after_s` (seconds without arrivals after it) belongs to that phase. */
function scheduleAt(phases, elapsedS) {
  let t0 = 0;
  for (const ph of phases) {
    const d = ph.duration_s;
    if (elapsedS < t0 + d + (ph.pause_after_s || 0)) {
      const ramp = ph.ramp_to_rps;
      if (ramp === undefined || ramp === null) {
        return { phase: ph.name, rate: ph.arrival_rate_rps };
      }
      if (d <= 1) {
        return { phase: ph.name, rate: (ph.arrival_rate_rps + ramp) / 2 };
      }
      const i = Math.min(d - 1, Math.floor(elapsedS - t0));
      return { phase: ph.name, rate: ph.arrival_rate_rps + ((ramp - ph.arrival_rate_rps) / (d - 1)) * i };
    }
    t0 += d + (ph.pause_after_s || 0);
  }
  const last = phases[phases.length - 1];
  const lastRate = last.ramp_to_rps === undefined || last.ramp_to_rps === null
    ? last.arrival_rate_rps : last.ramp_to_rps;
  return { phase: last.name, rate: lastRate };
}

// ------------------------------------------------------------------------------ per-worker state
const state = {
  ready: false,
  cfg: null,
  bodies: null,
  rng: null,
  secretHeaders: {},
  runStartMs: null,
  fd: null,
  file: null,
  healthFd: null,
  inFlight: new Map(), // uuid -> meta
  attempts: 0,
  lines: 0,
  pairs: 0,
  refused: 0,
  errorsByKind: {},
  stopping: false,
  lag: null,
  lagRun: null,
  healthTimer: null,
  drainWaiters: []
};

function configPath() {
  const p = process.env.HYBRIDOPT_RUN_CONFIG;
  if (!p) {
    fail('the environment variable HYBRIDOPT_RUN_CONFIG is not set: run collection through ' +
      '`python -m hybridopt collect --profile NAME` (or artillery/run-variance-tests.sh), which writes the run config');
  }
  return p;
}

function init() {
  if (state.ready) return;
  const p = configPath();
  let cfg;
  try {
    cfg = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    fail(`${p}: cannot read the run config: ${e.message}`);
  }
  state.cfg = validateConfig(cfg, p);
  for (const [header, envName] of Object.entries(cfg.secret_headers || {})) {
    const v = process.env[envName];
    if (!v) {
      fail(`${p}: secret_headers.${header} names the environment variable ${envName}, which is not set`);
    }
    state.secretHeaders[header.toLowerCase()] = v;
  }
  state.bodies = buildBodies(cfg.workloads, seedFrom(cfg.seed, 'payload-bytes'));
  state.rng = makeRng(seedFrom(cfg.seed, cfg.run_id, process.pid, wt.threadId));
  fs.mkdirSync(cfg.out_dir, { recursive: true });
  const tag = `${cfg.run_id}.w${process.pid}-${wt.threadId}`;
  state.file = path.join(cfg.out_dir, `${tag}.jsonl`);
  state.fd = fs.openSync(state.file, 'a');
  state.healthFd = fs.openSync(path.join(cfg.out_dir, `loadgen-health.w${process.pid}-${wt.threadId}.ndjson`), 'a');
  state.lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  state.lag.enable();
  state.lagRun = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS }); // whole run, reset at run start
  state.lagRun.enable();
  const everyMs = Math.max(100, Math.round((cfg.health_interval_s || 1) * 1000));
  state.healthTimer = setInterval(() => writeHealth(false), everyMs);
  state.healthTimer.unref();
  state.ready = true;
}

function writeHealth(final, extra) {
  if (state.healthFd === null) return;
  const h = state.lag;
  // the histogram records whole timer intervals (resolution + delay): report the delay only
  const ns = (v) => (Number.isFinite(v) ? Math.max(0, Math.round(v / 1e4) / 100 - LAG_RESOLUTION_MS) : null);
  const rec = {
    t: new Date().toISOString(),
    elapsed_s: state.runStartMs === null ? null : (Date.now() - state.runStartMs) / 1000,
    thread_id: wt.threadId,
    attempts: state.attempts,
    lines: state.lines,
    in_flight: state.inFlight.size,
    pairs: state.pairs,
    pairs_refused_while_stopping: state.refused,
    errors_by_kind: state.errorsByKind,
    loop_lag_samples: h ? h.count : 0,
    loop_lag_p50_ms: h && h.count ? ns(h.percentile(50)) : null,
    loop_lag_p99_ms: h && h.count ? ns(h.percentile(99)) : null,
    loop_lag_max_ms: h && h.count ? ns(h.max) : null,
    rss_mb: Math.round(process.memoryUsage().rss / 1048576),
    // every timer sample since the run started (not per period): the window's own lag percentiles
    run_loop_lag_samples: state.lagRun ? state.lagRun.count : 0,
    run_loop_lag_p50_ms: state.lagRun && state.lagRun.count ? ns(state.lagRun.percentile(50)) : null,
    run_loop_lag_p99_ms: state.lagRun && state.lagRun.count ? ns(state.lagRun.percentile(99)) : null,
    run_loop_lag_max_ms: state.lagRun && state.lagRun.count ? ns(state.lagRun.max) : null,
    final
  };
  if (extra) Object.assign(rec, extra);
  if (h) h.reset();
  try {
    fs.writeSync(state.healthFd, JSON.stringify(rec) + '\n');
  } catch (_e) {
    // health is diagnostics; never let it take a contract line down with it
  }
}

function clockAt(epochMs) {
  return clockIso(state.cfg.virtual_clock, state.runStartMs, epochMs);
}

function writeLine(meta, outcome, ee) {
  const cfg = state.cfg;
  const rec = {
    schema_version: SCHEMA_VERSION,
    request_id: meta.requestId,
    pair_id: meta.pair.pairId,
    experiment: cfg.experiment,
    run_id: cfg.run_id,
    source: cfg.source,
    platform: meta.platform,
    workload_type: meta.pair.workload,
    target_payload_size_kb: meta.pair.sizeKb,
    time_window: cfg.time_window,
    load_pattern: cfg.load_pattern,
    phase: meta.phase,
    scheduled_rate_rps: meta.rate,
    sent_at: meta.sentAt,
    ...outcome
  };
  const ordered = writeContractLine(state.fd, rec);
  state.lines += 1;
  const kind = ordered.error || 'ok';
  state.errorsByKind[kind] = (state.errorsByKind[kind] || 0) + 1;
  if (ee) {
    ee.emit('counter', 'hybridopt.lines_written', 1);
    ee.emit('counter', `hybridopt.outcome.${kind}`, 1);
  }
}

/** Write the line of one attempt unless it has one already; settle its pair bookkeeping. */
function recordOnce(uuid, outcome, ee, startMs) {
  const meta = state.inFlight.get(uuid);
  if (!meta) return false; // already written (got can report one failure twice) or unknown
  state.inFlight.delete(uuid);
  if (typeof startMs === 'number' && Number.isFinite(startMs)) {
    meta.sentAt = clockAt(startMs); // when got started the request (http-timer `start`)
  }
  try {
    writeLine(meta, outcome, ee);
  } finally {
    const pair = meta.pair;
    pair.pending -= 1;
    if (pair.pending <= 0) {
      const waiters = pair.waiters.splice(0);
      waiters.forEach((fn) => fn());
    }
    if (state.inFlight.size === 0) {
      state.drainWaiters.splice(0).forEach((fn) => fn());
    }
  }
  return true;
}

// ------------------------------------------------------------------------------ Artillery hooks

/** The workload of a new pair: the probe's in the probe phase, else one drawn uniformly. */
function pickWorkload(cfg, phase, rng) {
  if (cfg.probe && phase === cfg.probe.phase) return cfg.probe.workload;
  const names = Object.keys(cfg.workloads);
  return names[Math.floor(rng() * names.length)];
}

/** `function` step: pick the workload and size of a new pair (the probe's workload in the probe
 * phase); the pair keeps the phase and scheduled rate of its start; refuse new pairs while stopping. */
function hyStartPair(context, ee, next) {
  try {
    init();
    if (state.stopping) {
      state.refused += 1;
      return next(new Error('hybridopt_stopping'));
    }
    if (state.runStartMs === null) state.runStartMs = Date.now();
    const cfg = state.cfg;
    const sched = scheduleAt(cfg.phases, (Date.now() - state.runStartMs) / 1000);
    const workload = pickWorkload(cfg, sched.phase, state.rng);
    const sizes = cfg.workloads[workload].sizes_kb;
    const sizeKb = sizes[Math.floor(state.rng() * sizes.length)];
    // pending = the two requests of the parallel step; a failing request waits for its sibling
    context._hyPair = {
      pairId: crypto.randomUUID(), workload, sizeKb, pending: PLATFORMS.length, waiters: [],
      phase: sched.phase, rate: Math.round(sched.rate * 1000) / 1000
    };
    context.vars.workload_type = workload;
    context.vars.lambda_url = cfg.targets.lambda_base_url.replace(/\/+$/, '') + cfg.workloads[workload].lambda_route;
    context.vars.ecs_url = cfg.targets.ecs_base_url.replace(/\/+$/, '') + cfg.workloads[workload].ecs_route;
    // One new connection per request, as Artillery gives a fresh per-VU agent to every
    // scenario; but without its maxSockets=1 per VU, which would serialise the two requests of
    // a pair when both platforms share one origin (the local testbed).
    context._httpAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    context._httpsAgent = new https.Agent({ keepAlive: false, maxSockets: Infinity });
    state.pairs += 1;
    ee.emit('counter', 'hybridopt.pairs', 1);
    return next();
  } catch (e) {
    return next(e);
  }
}

/** Scenario-level beforeRequest: attach the prebuilt body and register the attempt. */
function hyPrepareRequest(requestParams, context, ee, next) {
  const pair = context._hyPair;
  const platform = requestParams.name;
  if (!pair || !PLATFORMS.includes(platform)) {
    return next(new Error(`hybridopt: request named ${JSON.stringify(platform)} outside a pair: ` +
      'each request must be named "lambda" or "ecs" and follow the hyStartPair step'));
  }
  const now = Date.now();
  const meta = {
    requestId: requestParams.uuid || crypto.randomUUID(),
    platform,
    pair,
    phase: pair.phase, // both requests of a pair carry the phase and rate of the pair's start
    rate: pair.rate,
    sentAt: clockAt(now)
  };
  requestParams.uuid = meta.requestId;
  state.inFlight.set(meta.requestId, meta);
  state.attempts += 1;
  ee.emit('counter', 'hybridopt.attempts', 1);
  try {
    requestParams.body = state.bodies[pair.workload][String(pair.sizeKb)];
    delete requestParams.json;
    requestParams.headers = Object.assign({}, requestParams.headers, state.secretHeaders, {
      'content-type': 'application/json',
      'x-request-id': meta.requestId,
      'x-pair-id': pair.pairId
    });
    requestParams.name = `${platform}_${pair.workload}`; // per-endpoint metrics
    return next();
  } catch (e) {
    recordOnce(meta.requestId, { error: 'client_error' }, ee);
    return next(e);
  }
}

/** Scenario-level afterResponse: one line for a request that got a complete response. */
function hyLogResponse(requestParams, response, context, ee, next) {
  try {
    const status = response.statusCode;
    const parsed = parseJsonObject(response.body);
    const outcome = Object.assign(
      { http_status: status, error: errorKindOfResponse(status, parsed) },
      timingsOf(response.timings),
      platformMetrics(status >= 200 && status < 300 ? parsed : null)
    );
    recordOnce(requestParams.uuid, outcome, ee, response.timings && response.timings.start);
  } catch (e) {
    // the line must exist even if the response was odd; note the failure as client_error
    try {
      recordOnce(requestParams.uuid, { http_status: response && response.statusCode, error: 'client_error' }, ee);
    } catch (_e) { /* the write itself failed: nothing more can be done here */ }
  }
  return next();
}

/** Scenario-level onError: one line for a request that got no complete response; then wait for
 * the sibling of the pair (Artillery ends the scenario on this error). */
function hyLogError(err, requestParams, context, ee, next) {
  try {
    const status = err && err.response && err.response.statusCode;
    const outcome = Object.assign(
      { http_status: typeof status === 'number' ? status : null, error: errorKindOf(err) },
      timingsOf(err && err.timings)
    );
    recordOnce(requestParams.uuid, outcome, ee, err && err.timings && err.timings.start);
  } catch (_e) { /* fall through: never block the scenario */ }
  const pair = context._hyPair;
  if (pair && pair.pending > 0) {
    // bounded: a sibling that never started must not hold the scenario forever
    let done = false;
    const release = () => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        next();
      }
    };
    const timer = setTimeout(release, (state.cfg.http_timeout_s + 5) * 1000);
    pair.waiters.push(release);
    return undefined;
  }
  return next();
}

// ------------------------------------------------------------------ worker start / stop handling
// In an Artillery worker with a run config: build payloads and open files while Artillery prepares
// the worker (not during the run), mark the run start, and drain in-flight attempts on exit.
// Without a run config the module only defines the hooks, whose first call fails with the
// message of configPath().
if (!wt.isMainThread && process.env.HYBRIDOPT_RUN_CONFIG) {
  init();
  if (wt.parentPort) {
    wt.parentPort.on('message', (m) => {
      if (m && m.command === 'run' && state.runStartMs === null) {
        state.runStartMs = Date.now();
        if (state.lagRun) state.lagRun.reset(); // module loading and payload building are not the run
        writeHealth(false, { event: 'run_start' });
      } else if (m && m.command === 'stop') {
        state.stopping = true;
      }
    });
  }
  const realExit = process.exit.bind(process);
  let exiting = false;
  process.exit = function drainThenExit(code) {
    if (exiting) return undefined;
    exiting = true;
    state.stopping = true;
    const graceMs = Math.max(0, (state.cfg.drain_grace_s || 0) * 1000);
    const finish = () => {
      const abandoned = Array.from(state.inFlight.values()).map((m) => ({
        request_id: m.requestId, pair_id: m.pair.pairId, platform: m.platform, sent_at: m.sentAt
      }));
      writeHealth(true, { abandoned_in_flight: abandoned });
      try {
        fs.closeSync(state.fd);
        fs.closeSync(state.healthFd);
      } catch (_e) { /* closing is best effort */ }
      realExit(code);
    };
    if (state.inFlight.size === 0) {
      finish();
      return undefined;
    }
    const timer = setTimeout(finish, graceMs);
    state.drainWaiters.push(() => {
      clearTimeout(timer);
      setImmediate(finish);
    });
    return undefined;
  };
}

module.exports = {
  hyStartPair,
  hyPrepareRequest,
  hyLogResponse,
  hyLogError,
  // the run config check and the schedule lookup, exported to be tested without running Artillery
  _internals: { validateConfig, scheduleAt, pickWorkload }
};
