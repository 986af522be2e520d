#!/usr/bin/env bash
# The archive benchmark: the shared workload (4 x 50,000 records, ~650 files after 30 days)
# backed up day by day, then the archive of the last day built with and without --history,
# beside Info-ZIP's `zip -r` of the same content written out as files (each archive unzipped
# into a folder: one file per version, the files, manifest.json and index.csv), in one run.
# Also `zip -r` of `daybook export` (a JSON-lines file per data type: fewer, larger files), for
# reference. Prints wall times, the ratio to zip -r, peak memory (/usr/bin/time -v), sizes,
# and the download throughput through `daybook serve` (curl to /dev/null). Figures, not a test.
#
#   bash bench/archive.sh            # BENCH_DAYS=30 (default); BENCH_PER_TYPE=50000
# Needs: a release build (cargo build --release), zip, curl, /usr/bin/time.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${BENCH_WORKLOAD_PY:-$here/../shared/bench/workload.py}"
days="${BENCH_DAYS:-30}"
per_type="${BENCH_PER_TYPE:-50000}"
data="${BENCH_WORKLOAD:-$HOME/.cache/daybook/bench-archive-workload-$per_type-$days}"
bin="${DAYBOOK_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/daybook}"
[ -x "$bin" ] || { echo "no release binary at $bin: cargo build --release (or set DAYBOOK_BIN)" >&2; exit 1; }
for t in zip unzip curl /usr/bin/time; do command -v "$t" >/dev/null || { echo "needs $t (apt-get install zip unzip curl time)" >&2; exit 1; }; done
if [ ! -f "$data/params.json" ]; then
  python3 "$py" generate --out "$data" --days "$days" --per-type "$per_type" >&2
fi
work=$(mktemp -d)
trap 'kill "${srv:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/daybook.toml" <<TOML
[vault]
catalog = "sqlite://vault/catalog.db"
store = "vault/blobs"

[archive]
public_url = "http://127.0.0.1:$port"
temp_dir = "$work/tmp"

[[orgs]]
sid = "bench"
name = "Bench"

[[orgs.sources]]
name = "export"
kind = "jsonl"
path = "export"
TOML
mkdir -p "$work/tmp"
export DAYBOOK_CONFIG="$work/daybook.toml" DAYBOOK_PASSPHRASE=bench
"$bin" init >/dev/null
for d in $(seq 1 "$days"); do
  rm -rf "$work/export"
  python3 "$py" materialize --data "$data" --day "$d" --to "$work/export" >/dev/null
  "$bin" backup --no-mirror >/dev/null
done

# Seconds and peak RSS (MB) of a command, from /usr/bin/time -v.
measure() {
  local log="$work/time.log"
  /usr/bin/time -v "$@" >"$work/out.txt" 2>"$log"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$log")
  echo "$wall $rss"
}

"$bin" export --org bench --to "$work/plain" >/dev/null
read -r zip_s zip_mb < <(cd "$work/plain" && measure zip -q -r "$work/plain.zip" .)
zip_bytes=$(stat -c %s "$work/plain.zip")
read -r a_s a_mb < <(measure "$bin" archive create --org bench --name day --yes --json)
a_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["archive"]["id"])' "$work/out.txt")
a_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["archive"]["file_size"])' "$work/out.txt")
read -r h_s h_mb < <(measure "$bin" archive create --org bench --name history --history --yes --json)
h_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["archive"]["id"])' "$work/out.txt")
h_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["archive"]["file_size"])' "$work/out.txt")
h_versions=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["archive"]["versions"])' "$work/out.txt")

# The same content as files: each archive unzipped, then zipped again by Info-ZIP.
same_content() {
  local id=$1 dir="$work/content-$1"
  "$bin" archive download "$id" --to "$work/a-$id.zip" >/dev/null
  # Past archive.part_bytes it comes in parts (a-ID.part1.zip, ...), each a zip of its own.
  mkdir -p "$dir" && (cd "$dir" && for z in "$work/a-$id".*zip; do unzip -q -o "$z"; done) && rm "$work/a-$id".*zip
  sync
  local s mb
  read -r s mb < <(cd "$dir" && measure zip -q -r "$work/z-$id.zip" .)
  echo "$s $mb $(stat -c %s "$work/z-$id.zip")"
  rm -rf "$dir" "$work/z-$id.zip"
}
read -r za_s za_mb za_bytes < <(same_content "$a_id")
read -r zh_s zh_mb zh_bytes < <(same_content "$h_id")

"$bin" serve --listen "127.0.0.1:$port" 2>/dev/null &
srv=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
link=$("$bin" archive link "$a_id" | head -n 1)
speed=$(curl -s -o /dev/null -w '%{speed_download}' "$link")

printf 'workload: %s records x %s days, %s\n' "$((per_type * 4))" "$days" "$data"
printf 'zip -r of the export (JSONL): %6.2f s  %7.1f MB peak  %s bytes  (reference only)\n' "$zip_s" "$zip_mb" "$zip_bytes"
printf 'zip -r of day %s as files:    %6.2f s  %7.1f MB peak  %s bytes\n' "$days" "$za_s" "$za_mb" "$za_bytes"
printf 'archive of day %s:            %6.2f s  %7.1f MB peak  %s bytes  (%.2f x zip -r time)\n' "$days" "$a_s" "$a_mb" "$a_bytes" "$(echo "$a_s / $za_s" | bc -l)"
printf 'zip -r of history as files:   %6.2f s  %7.1f MB peak  %s bytes\n' "$zh_s" "$zh_mb" "$zh_bytes"
printf 'archive with --history:       %6.2f s  %7.1f MB peak  %s bytes, %s versions  (%.2f x zip -r time)\n' "$h_s" "$h_mb" "$h_bytes" "$h_versions" "$(echo "$h_s / $zh_s" | bc -l)"
printf 'download through serve:      %.0f MB/s\n' "$(echo "$speed / 1000000" | bc -l)"
