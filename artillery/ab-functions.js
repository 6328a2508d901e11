// Artillery 2.0.21 processor for the online A/B test through the router (artillery/ab-test.yml).
//
// Per arrival: a workload and payload size (uniform over the run config's sizes, seeded), an arm
// (treatment with probability treatment_share, seeded), one POST /route/<workload> with headers
// x-ab-arm, x-sent-at (the run's virtual clock), x-load-pattern and x-time-window. The router
// answers with the chosen platform's response plus x-router-platform / x-router-arm /
// x-router-probability. Each attempt becomes one line of the request-log contract (schema 1.0)
// with arm, platform (the router's choice; null when the router never answered) and
// router_probability, written with fs.writeSync as soon as its outcome is known.
//
// The payload bodies, the clock, the error kinds, the platform metrics, the client timings and the
// contract line come from request-log.js, as in the collection processor (variance-functions.js),
// so both processors write the same contract the same way. The A/B run config's path comes in
// HYBRIDOPT_AB_CONFIG (written by lib/hybridopt/ab/online.py).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const wt = require('node:worker_threads');

const V = require('./request-log.js');

const { SCHEMA_VERSION } = V;
const ARMS = ['control', 'treatment'];

function fail(message) {
  throw new Error(`hybridopt ab-functions.js: ${message}`);
}

/** Validate the A/B run config (throws naming the file and key). */
function validateAbConfig(cfg, where) {
  const need = V.keyChecker('ab-functions.js', where);
  if (cfg.schema_version !== SCHEMA_VERSION) fail(`${where}: schema_version must be "${SCHEMA_VERSION}"`);
  for (const k of ['experiment', 'run_id', 'source', 'time_window', 'load_pattern', 'out_dir']) need(cfg, k, 'string');
  need(cfg, 'seed', 'number');
  const share = need(cfg, 'treatment_share', 'number');
  if (!(share > 0 && share < 1)) fail(`${where}: key 'treatment_share' must be in (0, 1), got ${share}`);
  const workloads = need(cfg, 'workloads', 'object');
  if (Object.keys(workloads).length === 0) fail(`${where}: key 'workloads' is empty`);
  for (const [name, w] of Object.entries(workloads)) {
    const sizes = need(w, 'sizes_kb', 'array');
    if (sizes.length === 0 || sizes.some((s) => !(typeof s === 'number' && s > 0))) {
      fail(`${where}: key 'workloads.${name}.sizes_kb' must be positive numbers`);
    }
    if (w.encoding !== 'json' && w.encoding !== 'base64') fail(`${where}: key 'workloads.${name}.encoding' must be json|base64`);
  }
  const clock = need(cfg, 'virtual_clock', 'object');
  need(clock, 'start', 'string');
  need(clock, 'utc_offset_minutes', 'number');
  need(clock, 'rate', 'number');
  return cfg;
}

const state = { cfg: null, bodies: null, rng: null, fd: null, startMs: null, lines: 0, inFlight: new Map() };

function init() {
  if (state.cfg) return;
  const p = process.env.HYBRIDOPT_AB_CONFIG;
  if (!p) fail('HYBRIDOPT_AB_CONFIG is not set: run the A/B through `python -m hybridopt ab --profile NAME`');
  let cfg;
  try {
    cfg = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    fail(`${p}: cannot read the A/B run config: ${e.message}`);
  }
  state.cfg = validateAbConfig(cfg, p);
  state.bodies = V.buildBodies(cfg.workloads, cfg.seed);
  const worker = wt.isMainThread ? 0 : wt.threadId;
  state.rng = V.makeRng(V.seedFrom(cfg.seed, cfg.run_id, worker));
  fs.mkdirSync(cfg.out_dir, { recursive: true });
  const file = path.join(cfg.out_dir, `${cfg.run_id}.${process.pid}-${worker}.jsonl`);
  state.fd = fs.openSync(file, 'a');
}

function clockAt(epochMs) {
  return V.clockIso(state.cfg.virtual_clock, state.startMs, epochMs);
}

function writeLine(meta, outcome) {
  const cfg = state.cfg;
  const rec = Object.assign({
    schema_version: SCHEMA_VERSION, request_id: meta.requestId, pair_id: null, experiment: cfg.experiment,
    run_id: cfg.run_id, source: cfg.source, platform: null, workload_type: meta.workload,
    target_payload_size_kb: meta.sizeKb, time_window: cfg.time_window, load_pattern: cfg.load_pattern,
    phase: 'ab', scheduled_rate_rps: cfg.rate_rps === undefined ? null : cfg.rate_rps, sent_at: meta.sentAt,
    arm: meta.arm, router_probability: null
  }, outcome);
  V.writeContractLine(state.fd, rec);
  state.lines += 1;
}

function recordOnce(uuid, outcome) {
  const meta = state.inFlight.get(uuid);
  if (!meta) return;
  state.inFlight.delete(uuid);
  writeLine(meta, outcome);
}

/** Router headers -> platform, arm, probability (validated). */
function routerDecision(headers) {
  const h = headers || {};
  const platform = V.PLATFORMS.includes(h['x-router-platform']) ? h['x-router-platform'] : null;
  const arm = ARMS.includes(h['x-router-arm']) ? h['x-router-arm'] : null;
  const p = Number(h['x-router-probability']);
  return { platform, arm, router_probability: Number.isFinite(p) && p >= 0 && p <= 1 ? p : null };
}

function abStart(context, ee, next) {
  try {
    init();
    if (state.startMs === null) state.startMs = Date.now();
    const cfg = state.cfg;
    const names = Object.keys(cfg.workloads);
    const workload = names[Math.floor(state.rng() * names.length)];
    const sizes = cfg.workloads[workload].sizes_kb;
    context._ab = {
      workload,
      sizeKb: sizes[Math.floor(state.rng() * sizes.length)],
      arm: state.rng() < cfg.treatment_share ? 'treatment' : 'control'
    };
    context.vars.route_url = `/route/${workload}`;
    return next();
  } catch (e) {
    return next(e);
  }
}

function abPrepareRequest(requestParams, context, ee, next) {
  const ab = context._ab;
  const now = Date.now();
  const meta = { requestId: crypto.randomUUID(), workload: ab.workload, sizeKb: ab.sizeKb, arm: ab.arm, sentAt: clockAt(now) };
  requestParams.uuid = meta.requestId;
  state.inFlight.set(meta.requestId, meta);
  try {
    requestParams.body = state.bodies[ab.workload][String(ab.sizeKb)];
    delete requestParams.json;
    requestParams.headers = Object.assign({}, requestParams.headers, {
      'content-type': 'application/json', 'x-request-id': meta.requestId, 'x-ab-arm': ab.arm,
      'x-sent-at': meta.sentAt, 'x-load-pattern': state.cfg.load_pattern, 'x-time-window': state.cfg.time_window,
      'x-payload-size-kb': String(ab.sizeKb)
    });
    requestParams.name = `route_${ab.arm}`;
    return next();
  } catch (e) {
    recordOnce(meta.requestId, { error: 'client_error' });
    return next(e);
  }
}

function abLogResponse(requestParams, response, context, ee, next) {
  try {
    const status = response.statusCode;
    const parsed = V.parseJsonObject(response.body);
    const decision = routerDecision(response.headers);
    const outcome = Object.assign(
      { http_status: status, error: V.errorKindOfResponse(status, parsed), platform: decision.platform,
        router_probability: decision.router_probability },
      V.timingsOf(response.timings),
      V.platformMetrics(status >= 200 && status < 300 ? parsed : null)
    );
    if (decision.arm) outcome.arm = decision.arm;
    const m = state.inFlight.get(requestParams.uuid);
    if (m && response.timings && typeof response.timings.start === 'number') m.sentAt = clockAt(response.timings.start);
    recordOnce(requestParams.uuid, outcome);
  } catch (e) {
    try {
      recordOnce(requestParams.uuid, { http_status: response && response.statusCode, error: 'client_error' });
    } catch (_e) { /* nothing more to do */ }
  }
  return next();
}

function abLogError(err, requestParams, context, ee, next) {
  try {
    const status = err && err.response && err.response.statusCode;
    recordOnce(requestParams.uuid, Object.assign(
      { http_status: typeof status === 'number' ? status : null, error: V.errorKindOf(err) },
      V.timingsOf(err && err.timings)));
  } catch (_e) { /* never block the scenario */ }
  return next();
}

module.exports = {
  abStart, abPrepareRequest, abLogResponse, abLogError,
  _internals: { validateAbConfig, routerDecision }
};
