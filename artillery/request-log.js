// Pure helpers shared by the two Artillery processors (variance-functions.js for collection,
// ab-functions.js for the A/B test through the router): the request-log contract line, the
// payload bodies built once per size, the virtual clock, the client timings, the platform metrics
// read from a response body and the classification of failures into the contract's error kinds.
//
// Requiring this module has no side effects: it reads no environment variable, opens no file and
// starts no timer.
'use strict';

const fs = require('node:fs');
const crypto = require('node:crypto');

// The request-log contract (lib/hybridopt/data/contract.py, schema_version 1.0), in field order.
const SCHEMA_VERSION = '1.0';
const CONTRACT_FIELDS = [
  'schema_version', 'request_id', 'pair_id', 'experiment', 'run_id', 'source',
  'platform', 'workload_type', 'target_payload_size_kb', 'time_window', 'load_pattern', 'phase',
  'scheduled_rate_rps', 'sent_at', 'arm', 'router_probability',
  'http_status', 'error', 'upload_ms', 'first_byte_ms', 'total_ms',
  'execution_time_ms', 'cold_start', 'init_duration_ms', 'billed_duration_ms', 'memory_limit_mb',
  'instance_id', 'actual_payload_size_kb'
];
const PLATFORMS = ['lambda', 'ecs'];

const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT']);
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'ECONNABORTED', 'EADDRNOTAVAIL', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_SOCKET_CLOSED',
  'ERR_HTTP2_STREAM_ERROR', 'EPROTO', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_SSL_WRONG_VERSION_NUMBER'
]);

// ------------------------------------------------------------------------------- the contract line
/** The record with every contract field in contract order (missing fields are null). */
function contractRecord(rec) {
  const ordered = {};
  for (const k of CONTRACT_FIELDS) {
    ordered[k] = rec[k] === undefined ? null : rec[k];
  }
  return ordered;
}

/** Write one contract line to `fd` at once (fs.writeSync) and return the record written. */
function writeContractLine(fd, rec) {
  const ordered = contractRecord(rec);
  fs.writeSync(fd, JSON.stringify(ordered) + '\n');
  return ordered;
}

// ----------------------------------------------------------------------------- run config checks
/** A key checker for a run config: need(obj, key, type, keyPrefix) returns obj[key] or throws an
 * Error naming `who`, the file `where` and the key (type: a typeof name or 'array'). */
function keyChecker(who, where) {
  return function need(obj, key, type, keyPrefix = '') {
    const v = obj == null ? undefined : obj[key];
    const ok = type === 'array' ? Array.isArray(v) : (typeof v === type && v !== null);
    if (!ok) {
      throw new Error(`hybridopt ${who}: ${where}: key '${keyPrefix}${key}' must be a ${type}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
}

// ------------------------------------------------------------------------------- payloads (cached)
/** mulberry32: a small seeded PRNG (deterministic per seed). */
function makeRng(seed) {
  let a = seed >>> 0;
  return function rng() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit seed from any parts (sha256 of their joined text). */
function seedFrom(...parts) {
  return crypto.createHash('sha256').update(parts.join('|')).digest().readUInt32LE(0);
}

/** Every request body of a run, built once: bodies[workload][String(sizeKb)] is a Buffer holding
 * {"workload_type": ..., "payload": ...} whose JSON `payload` value has exactly
 * round(size_kb*1024) characters (base64: rounded down to a multiple of 4 so it decodes). All
 * bodies are cut from one block of seeded random bytes. */
function buildBodies(workloads, seed) {
  let maxChars = 0;
  for (const w of Object.values(workloads)) {
    for (const s of w.sizes_kb) {
      maxChars = Math.max(maxChars, Math.round(s * 1024));
    }
  }
  const rng = makeRng(seed);
  const raw = Buffer.allocUnsafe(Math.ceil((maxChars * 3) / 4) + 3);
  for (let i = 0; i < raw.length; i += 4) {
    const v = (rng() * 4294967296) >>> 0;
    raw[i] = v & 255;
    if (i + 1 < raw.length) raw[i + 1] = (v >>> 8) & 255;
    if (i + 2 < raw.length) raw[i + 2] = (v >>> 16) & 255;
    if (i + 3 < raw.length) raw[i + 3] = (v >>> 24) & 255;
  }
  const alphabet = raw.toString('base64'); // JSON-safe characters, >= maxChars long
  const bodies = {};
  for (const [name, w] of Object.entries(workloads)) {
    bodies[name] = {};
    for (const sizeKb of w.sizes_kb) {
      const chars = Math.round(sizeKb * 1024);
      let payloadJson;
      if (w.encoding === 'base64') {
        const n = Math.max(4, Math.floor(chars / 4) * 4);
        payloadJson = `"${alphabet.slice(0, n)}"`;
      } else {
        const head = '{"user":"test","action":"validate","data":"';
        const tail = '"}';
        const n = Math.max(1, chars - head.length - tail.length);
        payloadJson = head + alphabet.slice(0, n) + tail;
      }
      const body = `{"workload_type":${JSON.stringify(name)},"payload":${payloadJson}}`;
      bodies[name][String(sizeKb)] = Buffer.from(body, 'utf8');
    }
  }
  return bodies;
}

// ------------------------------------------------------------------------------------------ clock
function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}

/** ISO-8601 with the given UTC offset, millisecond precision: 2025-11-24T02:00:01.250+05:30 */
function isoWithOffset(epochMs, offsetMin) {
  const d = new Date(epochMs + offsetMin * 60000);
  const sign = offsetMin < 0 ? '-' : '+';
  const a = Math.abs(offsetMin);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.` +
    `${pad(d.getUTCMilliseconds(), 3)}${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** `sent_at` of a request started at `epochMs`. The run config's virtual_clock {start,
 * utc_offset_minutes, rate, real}: real = the wall clock in the profile's zone (aws); otherwise
 * clock.start plus the time since `runStartMs` (times rate), so the hour is the window's. */
function clockIso(clock, runStartMs, epochMs) {
  if (clock.real === true) {
    return isoWithOffset(epochMs, clock.utc_offset_minutes);
  }
  const start = runStartMs === null ? epochMs : runStartMs;
  return isoWithOffset(Date.parse(clock.start) + (epochMs - start) * clock.rate, clock.utc_offset_minutes);
}

// ------------------------------------------------------------------------- outcome of one request
function roundMs(x) {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0 ? Math.round(x * 1000) / 1000 : null;
}

function num(x) {
  if (typeof x === 'number') return Number.isFinite(x) ? x : null;
  if (typeof x === 'string' && x.trim() !== '' && Number.isFinite(Number(x))) return Number(x);
  return null;
}

function bool(x) {
  if (typeof x === 'boolean') return x;
  if (x === 'true' || x === 'True') return true;
  if (x === 'false' || x === 'False') return false;
  return null;
}

/** Contract error kind of a request that got no (complete) response. */
function errorKindOf(err) {
  const code = (err && (err.code || (err.cause && err.cause.code))) || '';
  if (TIMEOUT_CODES.has(code) || (err && err.name === 'TimeoutError')) return 'timeout';
  if (CONNECTION_CODES.has(code) || (err && /socket hang up|ECONNRESET|ECONNREFUSED/i.test(err.message || ''))) {
    return 'connection';
  }
  if (err && (err.name === 'RequestError' || err.name === 'ReadError' || err.name === 'UploadError')) {
    return 'connection';
  }
  return 'client_error';
}

/** Contract error kind of a response (null = success). */
function errorKindOfResponse(status, parsed) {
  if (status >= 200 && status < 300) {
    return parsed === null ? 'non_json' : null;
  }
  return { 413: 'payload_too_large', 429: 'throttled', 504: 'gateway_timeout' }[status] || 'http_error';
}

/** The platform's own metrics from a parsed response body (metrics.* first, then top level). */
function platformMetrics(body) {
  const out = {
    execution_time_ms: null, cold_start: null, init_duration_ms: null, billed_duration_ms: null,
    memory_limit_mb: null, instance_id: null, actual_payload_size_kb: null
  };
  if (!body || typeof body !== 'object') return out;
  const m = body.metrics && typeof body.metrics === 'object' ? body.metrics : {};
  const pick = (k) => (m[k] !== undefined ? m[k] : body[k]);
  out.execution_time_ms = num(pick('execution_time_ms'));
  out.cold_start = bool(pick('cold_start'));
  out.init_duration_ms = num(pick('init_duration_ms'));
  out.billed_duration_ms = num(pick('billed_duration_ms'));
  out.memory_limit_mb = num(pick('memory_limit_mb'));
  const inst = pick('instance_id');
  out.instance_id = inst === undefined || inst === null ? null : String(inst);
  out.actual_payload_size_kb = num(pick('payload_size_kb') !== undefined ? pick('payload_size_kb') : pick('actual_payload_size_kb'));
  return out;
}

/** A JSON object parsed from a response body, or null (not JSON, or not an object). */
function parseJsonObject(text) {
  if (typeof text !== 'string' || text.length === 0) return null;
  try {
    const v = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch (_e) {
    return null;
  }
}

/** Client timings from got's http-timer timestamps (ms). upload = body sent (upload end minus
 * connect), first byte = upload end to the first response byte, total = start to last byte (or to
 * the error). For large bodies Node can emit the request's `finish` after the `response` event
 * (the write callback runs after the answer was read), which leaves phases.request/firstByte
 * unset or NaN; the upload cannot have ended after the first response byte was in, so the upload
 * end is taken as min(upload, response). */
function timingsOf(t) {
  if (!t || typeof t.start !== 'number') {
    return { upload_ms: null, first_byte_ms: null, total_ms: null };
  }
  const ph = t.phases || {};
  const conn = [t.secureConnect, t.connect, t.socket, t.start].find((x) => typeof x === 'number');
  let up = t.upload;
  if (typeof t.response === 'number' && (typeof up !== 'number' || up > t.response)) {
    up = t.response;
  }
  let total = ph.total;
  if (typeof total !== 'number' || !Number.isFinite(total)) {
    total = (t.end || t.error || t.abort || Date.now()) - t.start;
  }
  return {
    upload_ms: typeof up === 'number' ? roundMs(up - conn) : null,
    first_byte_ms: typeof t.response === 'number' && typeof up === 'number' ? roundMs(t.response - up) : null,
    total_ms: roundMs(total)
  };
}

module.exports = {
  SCHEMA_VERSION,
  CONTRACT_FIELDS,
  PLATFORMS,
  contractRecord,
  writeContractLine,
  keyChecker,
  makeRng,
  seedFrom,
  buildBodies,
  isoWithOffset,
  clockIso,
  errorKindOf,
  errorKindOfResponse,
  platformMetrics,
  parseJsonObject,
  timingsOf
};
