#!/usr/bin/env python3
"""daybook's NocoDB connector against a local NocoDB: a table of ROWS rows (default 50,000)
with 1% of them changed a day. Prints the API requests and seconds of the first (full)
cycle, a cycle with no changes, and a cycle with 1% changes, beside a plain full export
(every row paged through, as a script or NocoDB's own export would each day), and checks the
issue's bound: a cycle costs no more than the key listing, one change query per table (plus
the pages that hold the changes), and the base's configuration.

    python3 bench/nocodb.py                 # 50,000 rows
    ROWS=5000 python3 bench/nocodb.py       # quicker

Days are compressed into seconds, so the config sets overlap_seconds = 5 (default 600) and
the script waits that long after its own writes; requests_per_minute = 60000, as a
self-hosted NocoDB without NC_RATE_LIMITER allows (NocoDB Cloud's 5 a second would make
each request 200 ms).
"""
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = int(os.environ.get("ROWS", "50000"))
PAGE = 1000
OVERLAP = 5
BIN = os.path.abspath(os.environ.get("DAYBOOK_BIN", os.path.join(ROOT, "target", "release", "daybook")))


def call(url, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def start_nocodb():
    install = subprocess.run(["bash", os.path.join(ROOT, "tests/nocodb/install.sh")], check=True, stdout=subprocess.PIPE, text=True)
    home = install.stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tempfile.mkdtemp(prefix="daybook-bench-nocodb-")
    env = dict(os.environ, PORT=str(port), NOCODB_EPHEMERAL="1")
    p = subprocess.Popen(["node", os.path.join(home, "launch.js")], cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if line.startswith("nocodb listening"):
            break
    else:
        sys.exit("NocoDB did not start")
    url = f"http://127.0.0.1:{port}"
    jwt = call(f"{url}/api/v1/auth/user/signup", "POST", {"email": "bench@example.com", "password": "bench-Pass-word-1"})["token"]
    token = call(f"{url}/api/v1/tokens", "POST", {"description": "bench"}, {"xc-auth": jwt})["token"]
    return p, url, token


def daybook(work, *args):
    env = dict(os.environ, DAYBOOK_PASSPHRASE="bench", DAYBOOK_CONFIG=os.path.join(work, "daybook.toml"))
    t = time.monotonic()
    out = subprocess.run([BIN, *args], env=env, cwd=work, stdout=subprocess.PIPE, text=True)
    secs = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"daybook {' '.join(args)} failed: {out.stdout}")
    return secs, out.stdout


def main():
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    proc, url, token = start_nocodb()
    h = {"xc-token": token}
    base = call(f"{url}/api/v2/meta/bases", "POST", {"title": "Bench"}, h)["id"]
    cols = [{"column_name": "id", "title": "Id", "uidt": "ID"}] + [
        {"column_name": c.lower(), "title": c, "uidt": u}
        for c, u in [("Name", "SingleLineText"), ("Notes", "LongText"), ("Amount", "Number"), ("Email", "Email"), ("Due", "Date")]
    ]
    table = call(f"{url}/api/v2/meta/bases/{base}/tables", "POST", {"table_name": "rows", "title": "Rows", "columns": cols}, h)["id"]
    rec = f"{url}/api/v2/tables/{table}/records"
    t = time.monotonic()
    for start in range(0, ROWS, 100):
        rows = [{"Name": f"row {i}", "Notes": "n" * (i % 200), "Amount": i, "Email": f"u{i}@example.com", "Due": "2026-11-22"} for i in range(start, min(start + 100, ROWS))]
        call(rec, "POST", rows, h)
    print(f"setup: {ROWS} rows inserted in {time.monotonic() - t:.1f} s")

    work = tempfile.mkdtemp(prefix="daybook-bench-vault-")
    with open(os.path.join(work, "daybook.toml"), "w") as f:
        f.write(f'''[vault]
catalog = "sqlite://catalog.db"
store = "store"

[[orgs]]
sid = "bench"
name = "Bench"
timezone = "UTC"

[[orgs.sources]]
name = "noco"
kind = "nocodb"
base_url = "{url}"
include = ["Bench"]
requests_per_minute = 60000
overlap_seconds = {OVERLAP}
''')
    os.environ["NOCODB_TOKEN"] = token
    daybook(work, "init")

    def cycle():
        time.sleep(OVERLAP + 1)  # a "day" passes: the last writes fall out of the overlap
        secs, out = daybook(work, "backup", "--json")
        report = json.loads(out)
        rows = next(t for t in report["types"] if t["data_type"] == "Bench/Rows")["stats"]
        return secs, report["sources"][0]["requests"], rows

    # A plain full export: every row paged through, as a daily script would.
    t = time.monotonic()
    export_requests, offset = 0, 0
    while True:
        page = call(f"{rec}?limit={PAGE}&offset={offset}", headers=h)
        export_requests += 1
        offset += len(page["list"])
        if page["pageInfo"]["isLastPage"]:
            break
    export_secs = time.monotonic() - t

    listing = math.ceil(ROWS / PAGE)
    # Discovery and configuration: the bases, the tables of each base (the scope may name a
    # table of any base), the table's definition, its views and each view's filters, sorts
    # and fields (one grid view).
    bases = len(call(f"{url}/api/v2/meta/bases", headers=h)["list"])
    config = 1 + bases + 1 + 1 + 3
    figures = []
    full = cycle()
    figures.append(("first cycle (full read)", full, listing + config))
    quiet = cycle()
    figures.append(("no changes", quiet, listing + 1 + config))
    ids = random.Random(7).sample(range(1, ROWS + 1), ROWS // 100)
    for start in range(0, len(ids), 100):
        call(rec, "PATCH", [{"Id": i, "Notes": f"changed {i}"} for i in ids[start:start + 100]], h)
    changed = cycle()
    change_pages = math.ceil(len(ids) / PAGE)
    figures.append((f"1% changed ({len(ids)} rows)", changed, listing + change_pages + config))

    print(f"plain full export: {export_requests} requests, {export_secs:.2f} s")
    print(f"{'cycle':28} {'requests':>8} {'bound':>6} {'seconds':>8} {'vs export':>9}  rows: added/changed/deleted")
    ok = True
    for name, (secs, requests, s), bound in figures:
        ok &= requests <= bound
        print(f"{name:28} {requests:>8} {bound:>6} {secs:>8.2f} {secs / export_secs:>8.2f}x  {s['added']}/{s['changed']}/{s['deleted']}")
    assert changed[2]["changed"] == len(ids), f"the 1% cycle found {changed[2]['changed']} changes, not {len(ids)}"
    print(f"requests_within_bound={'yes' if ok else 'NO'} no_change_requests={quiet[1]} change_requests={changed[1]} "
          f"full_requests={full[1]} export_requests={export_requests}")
    proc.stdin.close()
    proc.wait()
    shutil.rmtree(work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
