#!/usr/bin/env bash
# The mirror benchmark: the shared workload (4 x 50,000 records, 500 attachments), day 1 then
# day 2 with 1% churn, mirrored into the local Google of tests/fake_google. Prints requests and
# cells beside a full rewrite's, day 1's time beside the least the write quota allows, and
# peak memory of each mirror process (GNU time: apt-get install time). Figures, not a test.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${BENCH_WORKLOAD_PY:-$here/../shared/bench/workload.py}"
data="${BENCH_WORKLOAD:-$HOME/.cache/daybook/bench-mirror-workload}"
if [ ! -f "$data/params.json" ]; then
  python3 "$py" generate --out "$data" --days 2
fi
cd "$here"
BENCH_WORKLOAD="$data" BENCH_WORKLOAD_PY="$py" cargo test --release --test mirror_bench -- --ignored --nocapture 2>&1 | grep -E "^day|^peak|test result"
