#!/usr/bin/env bash
# daybook vs restic, side by side, in one run, on the shared workload.
#
#   bash bench/vs-restic.sh                          # 4 x 50,000 records, 30 days
#   PER_TYPE=250000 DAYS=3 bash bench/vs-restic.sh   # memory-flatness check
#   bash bench/vs-restic.sh --generate-only          # only generate/cache the workload
#
# Environment:
#   PER_TYPE     records per data type (default 50000)
#   DAYS         number of daily exports, >= 2 (default 30)
#   DAYBOOK_BIN  daybook binary (default <repo>/target/release/daybook; built if missing)
#   BENCH_DIR    work folder, wiped at start (default ~/.cache/daybook/bench/run)
#   WORKLOAD_PY  workload generator (default ../shared/bench/workload.py beside the checkout)
#
# See bench/README.md for what each figure means. The last line of output is
#   vault_bytes=<int> restic_bytes=<int> size_ratio=<x.xxx> cycle_time_ratio=<x.xxx>
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PER_TYPE=${PER_TYPE:-50000}
DAYS=${DAYS:-30}
DAYBOOK_BIN=${DAYBOOK_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/daybook}
BENCH_DIR=${BENCH_DIR:-$HOME/.cache/daybook/bench/run}
WORKLOAD_PY=${WORKLOAD_PY:-$REPO_ROOT/../shared/bench/workload.py}
WORKLOAD=$HOME/.cache/daybook/bench/workload-${PER_TYPE}x${DAYS}

export DAYBOOK_PASSPHRASE=${DAYBOOK_PASSPHRASE:-daybook-bench-passphrase}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-daybook-bench-passphrase}

GENERATE_ONLY=0
case "${1:-}" in
  "") ;;
  --generate-only) GENERATE_ONLY=1 ;;
  *) echo "usage: $0 [--generate-only]" >&2; exit 2 ;;
esac

die() { echo "ERROR: $*" >&2; exit 1; }

[[ $PER_TYPE =~ ^[1-9][0-9]*$ ]] || die "PER_TYPE must be a positive integer (got '$PER_TYPE')"
[[ $DAYS =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive integer (got '$DAYS')"
(( DAYS >= 2 )) || die "DAYS must be at least 2 (the medians and growth use days 2..DAYS)"
command -v python3 >/dev/null || die "python3 is required"
[[ -f $WORKLOAD_PY ]] || die "workload generator not found: $WORKLOAD_PY"

# ---------------------------------------------------------------- tools
ensure_tools() {
  if ! command -v restic >/dev/null || [[ ! -x /usr/bin/time ]]; then
    echo "== installing restic and time (apt-get)"
    local sudo=""
    (( EUID == 0 )) || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq restic time >/dev/null
  fi
  command -v restic >/dev/null || die "restic is still missing after apt-get install"
  [[ -x /usr/bin/time ]] || die "/usr/bin/time is still missing after apt-get install"

  if [[ ! -x $DAYBOOK_BIN ]]; then
    echo "== $DAYBOOK_BIN missing: cargo build --release"
    (cd "$REPO_ROOT" && cargo build --release) || die "cargo build --release failed"
    [[ -x $DAYBOOK_BIN ]] || die "daybook binary still missing after the build: $DAYBOOK_BIN"
  fi
}

# ---------------------------------------------------------------- workload (cached)
ensure_workload() {
  if [[ -f $WORKLOAD/params.json ]]; then
    echo "== workload: reusing $WORKLOAD"
    return
  fi
  # Generate into a private folder and rename it at the end, so an interrupted
  # or concurrent generation never leaves a half-written cache behind.
  local tmp="$WORKLOAD.partial-$$"
  echo "== workload: generating $WORKLOAD (PER_TYPE=$PER_TYPE DAYS=$DAYS); this takes a while"
  mkdir -p "$(dirname "$WORKLOAD")"
  rm -rf "$tmp"
  python3 "$WORKLOAD_PY" generate --out "$tmp" --per-type "$PER_TYPE" --days "$DAYS" \
    || { rm -rf "$tmp"; die "workload generation failed"; }
  if [[ -f $WORKLOAD/params.json ]]; then
    rm -rf "$tmp"   # somebody else finished first
  else
    rm -rf "$WORKLOAD"
    mv "$tmp" "$WORKLOAD"
  fi
}

if (( GENERATE_ONLY )); then
  ensure_workload
  echo "workload ready: $WORKLOAD"
  exit 0
fi
ensure_tools
ensure_workload

# ---------------------------------------------------------------- fresh work dir
# Only wipe a folder this script created (it carries a marker file) or an empty one.
if [[ -e $BENCH_DIR ]]; then
  if [[ -f $BENCH_DIR/.daybook-bench ]] || [[ -z $(ls -A "$BENCH_DIR") ]]; then
    rm -rf "$BENCH_DIR"
  else
    die "BENCH_DIR=$BENCH_DIR exists and was not made by this script; refusing to wipe it"
  fi
fi
mkdir -p "$BENCH_DIR"
touch "$BENCH_DIR/.daybook-bench"

EXPORT=$BENCH_DIR/export            # the one export folder both tools back up
CFG=$BENCH_DIR/daybook.toml
VAULT=$BENCH_DIR/vault
RREPO=$BENCH_DIR/restic-repo
RESTORE=$BENCH_DIR/restore
DB_RESTORE=$BENCH_DIR/daybook-restore
LOGS=$BENCH_DIR/logs
RESULTS=$BENCH_DIR/results.tsv
export RESTIC_CACHE_DIR=$BENCH_DIR/restic-cache   # fresh cache per run, not ~/.cache/restic
mkdir -p "$EXPORT" "$LOGS"

cat >"$CFG" <<'EOF'
[vault]
catalog = "sqlite://vault/catalog.db"
store = "vault/blobs"

[[orgs]]
sid = "bench"
name = "Bench Org"
timezone = "UTC"

[[orgs.sources]]
name = "export"
kind = "jsonl"
path = "export"
EOF

# ---------------------------------------------------------------- helpers
# timed TOOL LABEL CMD...: run CMD under /usr/bin/time, output to $LOGS/LABEL.log;
# sets WALL (seconds) and RSS_KB. Any failure stops the script.
timed() {
  local tool=$1 label=$2; shift 2
  local log=$LOGS/$label.log tf=$LOGS/$label.time rc=0
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    echo >&2
    echo "ERROR: $tool command failed (exit $rc): $*" >&2
    echo "---- last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  read -r WALL RSS_KB < <(tail -n 1 "$tf")
}

bytes_of() { du -sb "$1" | cut -f1; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
mib_kb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# ---------------------------------------------------------------- run
echo "== $(date -u +%FT%TZ)  $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== daybook: $DAYBOOK_BIN"
echo "== restic:  $(restic version)"
echo "== workload $WORKLOAD, work dir $BENCH_DIR"

timed daybook daybook-init "$DAYBOOK_BIN" --config "$CFG" init
timed restic restic-init restic --repo "$RREPO" init --quiet

printf 'day\texport_bytes\tvault_bytes\trestic_bytes\tdaybook_s\tdaybook_rss_kb\trestic_s\trestic_rss_kb\tcatalog_bytes\n' >"$RESULTS"
printf '%-5s %10s | %10s %9s %10s | %10s %9s %10s\n' \
  day "export MB" "vault MB" "daybook s" "daybook MiB" "restic MB" "restic s" "restic MiB"

for ((day = 1; day <= DAYS; day++)); do
  d=$(printf '%02d' "$day")
  python3 "$WORKLOAD_PY" materialize --data "$WORKLOAD" --day "$day" --to "$EXPORT" \
    || die "materialize of day $day failed"
  sync   # don't let the export's write-back land in the first tool's timing
  export_bytes=$(bytes_of "$EXPORT")

  timed daybook "day$d-daybook-backup" "$DAYBOOK_BIN" --config "$CFG" backup
  db_s=$WALL db_kb=$RSS_KB
  [[ -d $VAULT ]] || die "daybook backup left no vault folder at $VAULT"
  sync
  vault_bytes=$(bytes_of "$VAULT")
  catalog_bytes=$(cat "$VAULT"/catalog.db* | wc -c)

  timed restic "day$d-restic-backup" restic --repo "$RREPO" backup --quiet "$EXPORT"
  r_s=$WALL r_kb=$RSS_KB
  sync
  restic_bytes=$(bytes_of "$RREPO")

  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$day" "$export_bytes" "$vault_bytes" \
    "$restic_bytes" "$db_s" "$db_kb" "$r_s" "$r_kb" "$catalog_bytes" >>"$RESULTS"
  printf '%-5s %10s | %10s %9s %10s | %10s %9s %10s\n' "$d" "$(mb "$export_bytes")" \
    "$(mb "$vault_bytes")" "$db_s" "$(mib_kb "$db_kb")" \
    "$(mb "$restic_bytes")" "$r_s" "$(mib_kb "$r_kb")"
done

echo "== check --read-data"
timed daybook daybook-check "$DAYBOOK_BIN" --config "$CFG" check --read-data
db_check_s=$WALL
timed restic restic-check restic --repo "$RREPO" check --read-data
r_check_s=$WALL
echo "daybook ${db_check_s} s, restic ${r_check_s} s"

echo "== restore of day $DAYS"
sync
timed daybook daybook-export "$DAYBOOK_BIN" --config "$CFG" export --org bench --to "$DB_RESTORE"
db_restore_s=$WALL db_restore_kb=$RSS_KB
sync
timed restic restic-restore restic --repo "$RREPO" restore latest --target "$RESTORE" --quiet
r_restore_s=$WALL r_restore_kb=$RSS_KB
restored_bytes=$(bytes_of "$RESTORE")
same=no
diff -rq "$EXPORT" "$RESTORE$EXPORT" >/dev/null 2>&1 && same=yes
# daybook writes each data type's records (in the order it stores them) and its files: the
# same records and bytes as the export, which is what is checked.
db_same=$(python3 - "$EXPORT" "$DB_RESTORE/bench/export" <<'PY'
import json, os, sys, filecmp
exp, got = sys.argv[1], sys.argv[2]
ok = True
for f in os.listdir(os.path.join(exp, "records")):
    t = f[:-len(".jsonl")]
    canon = lambda p: sorted(json.dumps(json.loads(l), sort_keys=True) for l in open(p) if l.strip())
    ok &= canon(os.path.join(exp, "records", f)) == canon(os.path.join(got, t, "records.jsonl"))
att = os.path.join(exp, "attachments")
if os.path.isdir(att):
    names = sorted(os.listdir(att))
    ok &= names == sorted(os.listdir(os.path.join(got, "attachments", "files")))
    ok &= all(filecmp.cmp(os.path.join(att, n), os.path.join(got, "attachments", "files", n), shallow=False) for n in names)
print("yes" if ok else "no")
PY
)
echo "daybook: ${db_restore_s} s, $(mib_kb "$db_restore_kb") MiB peak (the same records and files as day $DAYS's export: $db_same)"
echo "restic:  ${r_restore_s} s, $(mib_kb "$r_restore_kb") MiB peak, $(mb "$restored_bytes") MB restored (identical to day $DAYS's export: $same)"

echo "== lookups after day $DAYS (one record, the first of the first data type)"
first_type=$(ls "$EXPORT/records" | head -n 1); first_type=${first_type%.jsonl}
first_id=$(head -n 1 "$EXPORT/records/$first_type.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
timed daybook lookup-history "$DAYBOOK_BIN" --config "$CFG" history "$first_id"
q_history_s=$WALL
timed daybook lookup-show "$DAYBOOK_BIN" --config "$CFG" show "$first_id" --at cycle:1
q_show_s=$WALL
timed daybook lookup-diff "$DAYBOOK_BIN" --config "$CFG" diff --type "$first_type" --from cycle:1 --to "cycle:$DAYS"
q_diff_s=$WALL
timed daybook lookup-recover "$DAYBOOK_BIN" --config "$CFG" recover --type "$first_type" --json
q_recover_s=$WALL
q_peak_kb=$RSS_KB
echo "history ${q_history_s} s, show --at ${q_show_s} s, diff ${q_diff_s} s, recover ${q_recover_s} s"
live=$("$DAYBOOK_BIN" --config "$CFG" snapshots --json | python3 -c '
import json, sys
last = {}
for s in json.load(sys.stdin):
    last[(s["source"], s["key"])] = s["live"]
print(sum(last.values()))')

# ---------------------------------------------------------------- summary
python3 - "$RESULTS" "$db_check_s" "$r_check_s" "$r_restore_s" "$db_restore_s" "$live" <<'PY'
import csv, statistics, sys

path, db_check, r_check, r_restore, db_restore, live = sys.argv[1], *map(float, sys.argv[2:])
rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(path), delimiter="\t")]
first, last, later = rows[0], rows[-1], rows[1:]
n = len(rows)

def growth(key):   # mean of the day-over-day increments, days 2..N
    return (last[key] - first[key]) / (n - 1)

def med(key):
    return statistics.median(r[key] for r in later)

def peak(key):
    return max(r[key] for r in rows)

def ratio(a, b):
    return "%.3f" % (a / b) if a is not None and b else "n/a"

MB = lambda b: "%.1f MB" % (b / 1e6)
S = lambda s: "%.2f s" % s
MIB = lambda kb: "%.0f MiB" % (kb / 1024)

table = [
    ("repo after day 1", first["vault_bytes"], first["restic_bytes"], MB),
    ("repo after day %d" % n, last["vault_bytes"], last["restic_bytes"], MB),
    ("growth per day (mean, days 2-%d)" % n, growth("vault_bytes"), growth("restic_bytes"), MB),
    ("backup wall time (median, days 2-%d)" % n, med("daybook_s"), med("restic_s"), S),
    ("backup peak memory (max, all days)", peak("daybook_rss_kb"), peak("restic_rss_kb"), MIB),
    ("check --read-data", db_check, r_check, S),
    ("day-1 backup wall time", first["daybook_s"], first["restic_s"], S),
    ("restore of day %d (daybook export)" % n, db_restore, r_restore, S),
]
cells = [("figure", "daybook", "restic", "ratio")] + [
    (name, fmt(a) if a is not None else "n/a", fmt(b), ratio(a, b)) for name, a, b, fmt in table]
w = [max(len(c[i]) for c in cells) for i in range(4)]
print()
for i, c in enumerate(cells):
    print("| " + " | ".join(c[j].ljust(w[j]) if j == 0 else c[j].rjust(w[j]) for j in range(4)) + " |")
    if i == 0:
        print("|" + "|".join("-" * (w[j] + 2) for j in range(4)) + "|")
print()
print("one day's export (day %d): %s; repo after day %d / export: daybook %.2f x, restic %.2f x" % (
    n, MB(last["export_bytes"]), n, last["vault_bytes"] / last["export_bytes"],
    last["restic_bytes"] / last["export_bytes"]))
print("catalog: %s after day 1, %s after day %d: %.1f bytes per live record (%d live)" % (
    MB(first["catalog_bytes"]), MB(last["catalog_bytes"]), n, last["catalog_bytes"] / max(live, 1), live))
print("per-day figures: %s" % path)
print()
# restic's median can't be 0 in practice; guard against /usr/bin/time's 0.01 s resolution anyway
print("vault_bytes=%d restic_bytes=%d size_ratio=%.3f cycle_time_ratio=%.3f" % (
    last["vault_bytes"], last["restic_bytes"], last["vault_bytes"] / last["restic_bytes"],
    med("daybook_s") / max(med("restic_s"), 0.01)))
PY
