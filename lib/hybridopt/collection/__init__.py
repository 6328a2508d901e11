"""Data collection that loses nothing: the five-window schedule with real Artillery against the local
testbed (source `testbed`) or the student's AWS endpoints (source `aws`).

`collect(params)` runs every window of `params.time_windows` (in code order: early_morning low,
morning_peak ramp, midday medium, evening burst, late_night low) that is not done yet; a window is
one Artillery run whose processor (artillery/variance-functions.js) writes one contract line per
request attempt. `run_profile(params)` is what notebook 01 calls. While a window runs, a progress
line is printed every few seconds ("window k of N (name, load pattern): pairs sent of planned,
lines written, elapsed s") and a closing line when it ends.

The modules, one job each:

- `orchestrator`: the schedule (which windows run now, AWS opt-in and open window), `collect`,
  `run_profile`, `plan`
- `window`: one window: render the script and run config, run Artillery, stop it cleanly, manifest
- `targets`: where requests go (the local testbed, started here, or the AWS endpoints)
- `manifest`: each window's manifest.json (its keys are listed there), resume and superseded runs
- `progress`: the events a caller receives while collection runs, and the lines printed for them
- `health`: the CPU sampler of Artillery's processes and the live counts of what was flushed
- `loadgen`: pure helpers: phases, the run config, the Artillery script and command, summaries
- `summaries`: tables of what was collected (per window; legacy logs on disk)
"""

from hybridopt.collection.health import CpuSampler, LiveCounts, RunDirWatcher
from hybridopt.collection.manifest import (
    MANIFEST_VERSION,
    Manifest,
    is_done,
    manifests,
    read_manifest,
    run_dir_for,
    superseded_dir,
    write_manifest,
)
from hybridopt.collection.orchestrator import (
    CollectionFailed,
    CollectionRefused,
    collect,
    plan,
    run_profile,
)
from hybridopt.collection.progress import (
    Notice,
    Progress,
    ProgressEvent,
    WindowFinished,
    WindowProgress,
    WindowSkipped,
    WindowSlot,
    WindowStarted,
    describe,
    print_progress,
)
from hybridopt.collection.summaries import legacy_summary, summary_rows
from hybridopt.collection.targets import Target, aws_target, start_testbed
from hybridopt.collection.window import run_window

__all__ = [
    "MANIFEST_VERSION", "CollectionFailed", "CollectionRefused", "CpuSampler", "LiveCounts", "Manifest",
    "Notice", "Progress", "ProgressEvent", "RunDirWatcher", "Target", "WindowFinished", "WindowProgress",
    "WindowSkipped", "WindowSlot", "WindowStarted", "aws_target", "collect", "describe", "is_done",
    "legacy_summary", "manifests", "plan", "print_progress", "read_manifest", "run_dir_for", "run_profile",
    "run_window", "start_testbed", "summary_rows", "superseded_dir", "write_manifest",
]
