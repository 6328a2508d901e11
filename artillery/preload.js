// Preloaded into Artillery 2.0.21 by whoever launches it:
//   NODE_OPTIONS="--require /abs/path/artillery/preload.js"
// (lib/hybridopt/collection/loadgen.py sets it; artillery/run-variance-tests.sh goes through that code).
//
// 1. Telemetry stall. Artillery 2.0.21 sends an event to PostHog at exit and, offline, retries
//    for about 12 s before exiting (ARTILLERY_DISABLE_TELEMETRY only anonymises the event in this
//    version: node_modules/artillery/lib/telemetry.js). `posthog-node` is replaced here by a
//    client that sends nothing, so the process exits as soon as the run is over.
//
// 2. No lost in-flight lines on SIGINT/SIGTERM. On a signal Artillery's main thread posts
//    `stop` to its worker threads and then calls process.exit() without waiting for them
//    (lib/cmds/run.js gracefulShutdown, lib/platform/local/index.js shutdown). The worker's
//    processor (variance-functions.js) drains its in-flight requests before the worker exits;
//    here the main thread's process.exit() waits for the worker threads to exit (bounded by
//    HYBRIDOPT_EXIT_WAIT_S, default 30 s) so that drain can finish.
'use strict';

const Module = require('module');
const wt = require('worker_threads');

// ---------------------------------------------------------------------------------- 1. telemetry
class SilentPostHog {
  constructor() {}
  capture() {}
  identify() {}
  alias() {}
  flush() { return Promise.resolve(); }
  shutdown() {}
  shutdownAsync() { return Promise.resolve(); }
}
const SILENT_POSTHOG = { PostHog: SilentPostHog, default: SilentPostHog };
const originalLoad = Module._load;
Module._load = function hybridoptLoad(request, parent, isMain) {
  if (request === 'posthog-node') {
    return SILENT_POSTHOG;
  }
  return originalLoad.apply(this, arguments);
};

// --------------------------------------------------------------------- 2. wait for worker drains
if (wt.isMainThread) {
  const live = new Set();
  const OriginalWorker = wt.Worker;
  class TrackedWorker extends OriginalWorker {
    constructor(...args) {
      super(...args);
      live.add(this);
      this.once('exit', () => live.delete(this));
    }
  }
  // Artillery destructures `Worker` from worker_threads when its modules load, after this preload.
  wt.Worker = TrackedWorker;

  const waitS = Number(process.env.HYBRIDOPT_EXIT_WAIT_S || 30);
  const realExit = process.exit.bind(process);
  let exiting = false;
  process.exit = function hybridoptExit(code) {
    if (code === undefined) {
      code = process.exitCode;
    }
    if (live.size === 0) {
      return realExit(code);
    }
    if (exiting) {
      return undefined;
    }
    exiting = true;
    const deadline = setTimeout(() => realExit(code), waitS * 1000);
    const check = () => {
      if (live.size === 0) {
        clearTimeout(deadline);
        realExit(code);
      }
    };
    for (const w of live) {
      w.once('exit', check);
    }
    check();
    return undefined;
  };
}
