#!/usr/bin/env bash
# The dashboard's benchmark: with the shared workload (/work/shared/bench/workload.py, by
# default 4 x 50,000 records over 30 days) backed up day by day into a vault, times the API's
# overview, a snapshot page, a record's history and a recovery search over many requests on
# 127.0.0.1 and prints p50 and p95 of each, server side (the Server-Timing header each answer
# carries) and as the client saw them (the JSON views are what the HTML pages render).
# Target: p95 under 100 ms each.
#
#   bash bench/web.sh                      # 50,000 per type, 30 days
#   PER_TYPE=250000 bash bench/web.sh      # 5 x the records
#   PER_TYPE=5000 DAYS=5 REQUESTS=50 bash bench/web.sh
#
# Needs python3 and a release build (made here, in CARGO_TARGET_DIR). Work goes to $WORK
# (default a new folder under /tmp), removed at the end unless KEEP=1.
set -euo pipefail

PER_TYPE=${PER_TYPE:-50000}
DAYS=${DAYS:-30}
REQUESTS=${REQUESTS:-200}
WORKLOAD=${WORKLOAD:-/work/shared/bench/workload.py}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/daybook-web-bench.XXXXXX)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/daybook/target-bench}

cleanup() {
  if [[ -n ${SERVER:-} ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# BIN=path/to/daybook skips the build (a figure from a debug build is not one to quote).
if [[ -z ${BIN:-} ]]; then
  (cd "$REPO" && cargo build --release --quiet)
  BIN=$CARGO_TARGET_DIR/release/daybook
fi

# DATA=DIR uses a workload generated before (`workload.py generate --out DIR` with the same
# PER_TYPE and DAYS): at 5 x the records it is 15 GB and takes minutes to write.
DATA=${DATA:-$WORK/data}
echo "workload: $PER_TYPE records per type x 4 types, $DAYS days, in $DATA"
if [[ ! -f $DATA/params.json ]]; then
  python3 "$WORKLOAD" generate --out "$DATA" --per-type "$PER_TYPE" --days "$DAYS" >/dev/null
fi
mkdir -p "$WORK/export"
cat >"$WORK/daybook.toml" <<TOML
[vault]
catalog = "sqlite://vault/catalog.db"
store = "vault/blobs"

[[orgs]]
sid = "acme"
name = "Acme"
timezone = "Europe/Dublin"

[[orgs.sources]]
name = "export"
kind = "jsonl"
path = "export"
TOML
export DAYBOOK_CONFIG=$WORK/daybook.toml DAYBOOK_PASSPHRASE="bench passphrase" DAYBOOK_USER_PASSWORD="bench password 123"
"$BIN" init >/dev/null
for ((d = 1; d <= DAYS; d++)); do
  python3 "$WORKLOAD" materialize --data "$DATA" --day "$d" --to "$WORK/export" >/dev/null
  "$BIN" backup --no-mirror --allow-deletions >/dev/null
done
TOKEN=$("$BIN" token create --org acme --name bench 2>/dev/null)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" web --listen "127.0.0.1:$PORT" 2>/dev/null &
SERVER=$!

TOKEN=$TOKEN PORT=$PORT REQUESTS=$REQUESTS python3 - <<'PY'
import json, os, statistics, time, urllib.request

base = f"http://127.0.0.1:{os.environ['PORT']}"
hdr = {"Authorization": "Bearer " + os.environ["TOKEN"]}
n = int(os.environ["REQUESTS"])

def get(path, timed=None):
    req = urllib.request.Request(base + path, headers=hdr)
    with urllib.request.urlopen(req, timeout=120) as r:
        body = json.loads(r.read())
        if timed is not None:  # the server's own time (Server-Timing: app;dur=MS)
            timed.append(float(r.headers["server-timing"].split("dur=")[1]))
        return body

deadline = time.time() + 60
while True:
    try:
        get("/api/v1/me"); break
    except Exception:
        if time.time() > deadline: raise
        time.sleep(0.1)

snaps = get("/api/v1/orgs/acme/snapshots")["types"]
t = snaps[0]
ty, cycle = t["id"], t["days"][0]["cycle"]
page = get(f"/api/v1/orgs/acme/types/{ty}/cycles/{cycle}/records")
sid = page["records"][0]["sid"]
deleted = get("/api/v1/orgs/acme/deleted?limit=1")
word = "invoice"
cases = [
    ("overview", "/api/v1/orgs/acme/overview"),
    ("snapshot page", f"/api/v1/orgs/acme/types/{ty}/cycles/{cycle}/records"),
    ("snapshot search", f"/api/v1/orgs/acme/types/{ty}/cycles/{cycle}/records?q={word}"),
    ("record history", f"/api/v1/orgs/acme/types/{ty}/records/{sid}"),
    ("recovery search", f"/api/v1/orgs/acme/deleted?q={word}"),
]
def pct(times):
    times = sorted(times)
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]

print("server side (Server-Timing), and as the client on 127.0.0.1 saw it")
print(f"{'view':<18} {'p50 ms':>8} {'p95 ms':>8} {'client p50':>11} {'client p95':>11} {'requests':>9}")
for name, path in cases:
    get(path)  # a first request warms the vault's caches, as a running daemon's are
    server, client = [], []
    for _ in range(n):
        t0 = time.perf_counter(); get(path, server); client.append((time.perf_counter() - t0) * 1000)
    (p50, p95), (c50, c95) = pct(server), pct(client)
    print(f"{name:<18} {p50:8.1f} {p95:8.1f} {c50:11.1f} {c95:11.1f} {n:9d}   {'ok' if p95 < 100 else 'over the 100 ms target'}")
PY
