#!/usr/bin/env bash
# One replace job over N listeners (default 100,000), end to end through a release
# `certbind serve`: wall time from submission until the job succeeded (every listener's
# new binding served by the data plane) and the server's peak resident memory.
# Runs RUNS times (default 5) and reports each run and the medians. With LISTENER (an id
# such as lsn-50000), the replace is scoped to that one listener among them all, and the
# job is polled every 2 ms: what one listener's rotation costs in a large deployment.
#
#   bench/replace.sh [LISTENERS] [RUNS] [LISTENER]
set -euo pipefail
cd "$(dirname "$0")/.."
LISTENERS="${1:-100000}"
RUNS="${2:-5}"
SCOPE=()
if [ -n "${3:-}" ]; then SCOPE=(--listener "$3" --poll-ms 2); fi

cargo build --release --bin certbind --example replace_bench >/dev/null
out="$(mktemp)"
for _ in $(seq "$RUNS"); do
    target/release/examples/replace_bench --listeners "$LISTENERS" --server target/release/certbind "${SCOPE[@]}" | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def median(key):
    return statistics.median(r[key] for r in runs)
print(json.dumps({
    "runs": len(runs),
    "listeners": runs[0]["listeners"],
    "all_succeeded": all(r["state"] == "succeeded" for r in runs),
    "median_replace_wall_seconds": round(median("replace_wall_seconds"), 3),
    "median_replace_accepted_seconds": round(median("replace_accepted_seconds"), 3),
    "median_peak_rss_mib": round(median("peak_rss_mib"), 1),
    "median_server_startup_seconds": round(median("server_startup_seconds"), 3),
}))
PY
rm -f "$out"
