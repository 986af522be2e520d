#!/usr/bin/env bash
# The daemon under load. Figures, not a test:
#  1. 1,000 orgs with small sources scheduled on one daemon (SQLite): on its first start all
#     of them are due (each org's latest run is caught up once): backups a second and memory
#     under that load; then the spread of their next start times over the window, and the
#     daemon's memory at rest;
#  2. the queue alone (jobs whose work is nothing, examples/queue_bench.rs): jobs a second on
#     SQLite, on PostgreSQL with one daemon, and with three daemons on PostgreSQL (the ratio);
#  3. the round trips of one claim on PostgreSQL.
# Targets (issue 11): memory at rest under 64 MiB; a claim costs one round trip (counted by
# bench/pg_round_trips.py, a proxy in front of PostgreSQL); three daemons at
# least 2.5 x one. What a user would pick instead is a cron line or a systemd timer per org:
# no queue, no memory at rest, and no figure to compare.
#
# Usage: bash bench/daemon.sh   (ORGS=1000 JOBS=2000 PROFILE=release by default; PostgreSQL at
# DAYBOOK_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test, and psql).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
ORGS=${ORGS:-1000}
JOBS=${JOBS:-2000}
PG=${DAYBOOK_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
target=${CARGO_TARGET_DIR:-$here/target}
# PROFILE=debug uses the dev profile (dependencies optimized, daybook's own code not).
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin daybook --example queue_bench
else
  cargo build --quiet --bin daybook --example queue_bench
fi
bin="$target/$PROFILE/daybook"
qb="$target/$PROFILE/examples/queue_bench"
echo "profile: $PROFILE"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export DAYBOOK_PASSPHRASE=bench DAYBOOK_LOG=info

mib() { awk -v k="$2" '$1 == k":" {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
started() { # wait for a daemon's start line in its log
  for _ in $(seq 600); do grep -q "runs .* workers" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "daemon did not start: $(cat "$1")" >&2
  exit 1
}
pg_schema() {
  local s="bench_$$_$1"
  psql "$PG" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $s CASCADE; CREATE SCHEMA $s" >/dev/null
  echo "$PG?options=-c%20search_path%3D$s"
}

# A config of $ORGS orgs due at $3 (UTC, HH:MM) over a 60-minute window, each with a small
# jsonl source.
config() { # file catalog at [port]
  local f=$1 catalog=$2 at=$3 p=${4:-$(port)}
  {
    printf '[vault]\ncatalog = "%s"\nstore = "blobs"\n[daemon]\nlisten = "127.0.0.1:%s"\nworkers = 2\npoll_ms = 100\n\n' "$catalog" "$p"
    for i in $(seq -w 1 "$ORGS"); do
      printf '[[orgs]]\nsid = "org-%s"\nname = "Org %s"\ntimezone = "UTC"\n[orgs.schedule]\nat = "%s"\nwindow_minutes = 60\n' "$i" "$i" "$at"
      printf '[[orgs.sources]]\nname = "export"\nkind = "jsonl"\npath = "export"\n\n'
    done
  } >"$f"
}

echo "== 1. $ORGS orgs on one daemon (SQLite)"
d="$work/one"
mkdir -p "$d/export/records"
for n in $(seq 1 20); do echo "{\"id\":\"t$n\",\"title\":\"task $n\"}"; done >"$d/export/records/tasks.jsonl"
# Due at the next full hour over a 60-minute window: on its first start the daemon queues
# each org's latest run (yesterday's), so all of them are backed up at once: that is the load.
later=$(date -u -d '+1 hour' +%H:00)
config "$d/daybook.toml" "sqlite://catalog.db" "$later"
"$bin" --config "$d/daybook.toml" init >/dev/null
"$bin" --config "$d/daybook.toml" daemon 2>"$d/daemon.log" &
pid=$!
pids+=("$pid")
started "$d/daemon.log"
peak=0
for _ in $(seq 3000); do
  peak=$(echo "$peak $(mib "$pid" VmRSS)" | awk '{print ($2 > $1) ? $2 : $1}')
  left=$("$bin" --config "$d/daybook.toml" status --json | python3 -c '
import json, sys
st = json.load(sys.stdin)
print(sum(1 for o in st["orgs"] if not (o["last"] and o["last"]["state"] == "done")))')
  [ "$left" = 0 ] && break
  sleep 1
done
"$bin" --config "$d/daybook.toml" status --json | python3 -c '
import json, sys, datetime, collections
st = json.load(sys.stdin)
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
first = min(p(o["last"]["started_at"]) for o in st["orgs"])
last = max(p(o["last"]["finished_at"]) for o in st["orgs"])
n = len(st["orgs"])
print(f"first start, {n} orgs caught up through the queue: {last - first:.1f} s, {n / (last - first):.1f} backups a second (2 workers)")
ts = sorted(o["next_run"] for o in st["orgs"] if o["next_run"])
mins = collections.Counter(t[:16] for t in ts)
secs = len(set(t[:19] for t in ts))
print(f"next start times: {len(ts)} orgs from {ts[0][11:19]} to {ts[-1][11:19]} UTC; {secs} distinct seconds; "
      f"per minute {min(mins.values())} to {max(mins.values())} (even: {len(ts)/60:.1f})")'
echo "memory under that load: $peak MiB at most, sampled each second (the high-water mark, $(mib "$pid" VmHWM) MiB, includes opening the vault: Argon2id takes 64 MiB for a moment)"
sleep 10
echo "memory at rest afterwards, $ORGS orgs scheduled: $(mib "$pid" VmRSS) MiB (target: under 64)"
kill "$pid"
wait "$pid" || true

echo
echo "== 2. the queue alone: $JOBS jobs whose work is nothing"
queue() { # name catalog daemons
  local q="$work/$1" n=$3
  mkdir -p "$q"
  printf '[vault]\ncatalog = "%s"\nstore = "blobs"\n' "$2" >"$q/base.toml"
  cp "$q/base.toml" "$q/daybook.toml"
  "$bin" --config "$q/daybook.toml" init >/dev/null
  local mine=()
  for i in $(seq 1 "$n"); do
    { cat "$q/base.toml"; printf '[daemon]\nlisten = "127.0.0.1:%s"\nworkers = 2\npoll_ms = 20\n' "$(port)"; } >"$q/d$i.toml"
    "$qb" daemon "$q/d$i.toml" 2>"$q/d$i.log" &
    mine+=($!)
    pids+=($!)
  done
  for i in $(seq 1 "$n"); do started "$q/d$i.log"; done
  "$qb" push "$q/daybook.toml" "$JOBS"
  read -r rate secs holders < <("$qb" done "$q/daybook.toml" "$JOBS")
  for p in "${mine[@]}"; do kill "$p"; wait "$p" || true; done
  echo "$rate"
  echo "$1: $JOBS jobs in $secs s, $rate jobs a second, run by $holders daemons" >&2
}
sqlite=$(queue sqlite "sqlite://catalog.db" 1)
pg1=$(queue pg-one "$(pg_schema one)" 1)
pg3=$(queue pg-three "$(pg_schema three)" 3)
python3 -c "print(f'three daemons on PostgreSQL: {$pg3 / $pg1:.2f} x one (target: at least 2.5); SQLite: {$sqlite:.1f} jobs a second')"

echo
echo "== 3. what a claim costs on PostgreSQL: round trips, counted by a proxy in front of it"
rt="$work/rt"
mkdir -p "$rt"
pport=$(port)
read -r pghost pgport < <(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or 5432)' "$PG")
python3 "$here/bench/pg_round_trips.py" "$pport" "$pghost" "$pgport" "$rt/count" &
pids+=($!)
for _ in $(seq 100); do [ -s "$rt/count" ] && break; sleep 0.1; done
proxied=$(python3 -c 'import sys, urllib.parse as u
p = u.urlparse(sys.argv[1])
print(p._replace(netloc=p.netloc.rsplit("@", 1)[0] + "@127.0.0.1:" + sys.argv[2] if "@" in p.netloc else "127.0.0.1:" + sys.argv[2]).geturl())' "$(pg_schema rt)" "$pport")
printf '[vault]\ncatalog = "%s"\nstore = "blobs"\n' "$proxied" >"$rt/daybook.toml"
"$bin" --config "$rt/daybook.toml" init >/dev/null
"$qb" push "$rt/daybook.toml" "$JOBS"
trips() { local before after; before=$(cat "$rt/count"); "$qb" claim "$rt/daybook.toml" "$1"; after=$(cat "$rt/count"); echo $((after - before)); }
none=$(trips 0)
all=$(trips "$JOBS")
python3 -c "print(f'a claim: {($all - $none) / $JOBS:.2f} round trips ({$all} for $JOBS claims and the connection, {$none} for the connection alone); target: 1')"
psql "$PG" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_$$_one CASCADE; DROP SCHEMA IF EXISTS bench_$$_three CASCADE; DROP SCHEMA IF EXISTS bench_$$_rt CASCADE" >/dev/null
