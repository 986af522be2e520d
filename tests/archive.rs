//! Archives end to end through the real binary: quote, create, list, download; the zip opened
//! by four real readers (Info-ZIP unzip, Python's zipfile, 7z, bsdtar); the layout, names,
//! parts and manifest; downloads through `daybook serve` (HEAD, Range, 206/416, ETag,
//! tokens tampered, revoked, deleted); email through a real SMTP server (aiosmtpd); and the
//! faults: kill -9 mid-build, a file missing from the vault, delete during a download, a full
//! disk.

mod common;

use common::{Backend, Env, noise, task};
use serde_json::{Value, json};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const ORG_CFG: &str = "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc.\"\ntimezone = \"Europe/Dublin\"\n\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n";

fn config(env: &Env, extra: &str) {
    env.write_config(&format!("{ORG_CFG}\n{extra}"));
}

/// Two days: 400 tasks, then 20 edited and 10 deleted; three attachments.
fn two_days(env: &Env) {
    env.write_records("tasks", &(0..400).map(|n| task(n, "first")).collect::<Vec<_>>());
    env.write_attachment("photo.jpg", &noise(1, 150_000));
    env.write_attachment("notes: draft.txt", "plain text notes\n".repeat(5000).as_bytes());
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let day2: Vec<Value> = (0..390).map(|n| task(n, if n < 20 { "edited" } else { "first" })).collect();
    env.write_records("tasks", &day2);
    env.write_attachment("CON.txt", b"a reserved name on Windows");
    env.ok(&["backup"]);
}

fn create(env: &Env, extra: &[&str]) -> Value {
    create_named(env, "Year end", extra)
}

fn create_named(env: &Env, name: &str, extra: &[&str]) -> Value {
    let mut a = vec!["archive", "create", "--org", "acme", "--name", name, "--yes"];
    a.extend_from_slice(extra);
    env.json(&a)
}

/// Opens a zip with the four readers; each must report it whole.
fn four_readers(zip: &Path) {
    let run = |c: &mut Command| {
        let o = c
            .output()
            .unwrap_or_else(|e| panic!("{c:?}: {e} (bash .ci/run installs unzip, p7zip-full, libarchive-tools)"));
        assert!(
            o.status.success(),
            "{c:?} rejects {}:\n{}{}",
            zip.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let out = run(Command::new("unzip").arg("-t").arg(zip));
    assert!(out.contains("No errors detected"), "{out}");
    let out = run(Command::new("python3").args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nbad = z.testzip()\nassert bad is None, bad\nprint(len(z.namelist()))"]).arg(zip));
    assert!(out.trim().parse::<u64>().unwrap() > 0);
    let out = run(Command::new("7z").arg("t").arg(zip));
    assert!(out.contains("Everything is Ok"), "{out}");
    run(Command::new("bsdtar").arg("-tf").arg(zip));
}

/// The zip's entries and the bytes of `wanted`, read by Python's zipfile.
fn zip_read(zip: &Path, wanted: &[&str]) -> (Vec<String>, Vec<Vec<u8>>) {
    let script = "import sys, zipfile, json, base64\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps({'names': z.namelist(), 'data': [base64.b64encode(z.read(n)).decode() for n in sys.argv[2:]]}))";
    let o = Command::new("python3").args(["-c", script]).arg(zip).args(wanted).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names = v["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
    use base64::Engine;
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| base64::engine::general_purpose::STANDARD.decode(d.as_str().unwrap()).unwrap())
        .collect();
    (names, data)
}

/// Data descriptors (general purpose bit 3) in any local header: there must be none.
fn has_data_descriptors(zip: &Path) -> bool {
    let script =
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(any(i.flag_bits & 8 for i in z.infolist()))";
    let o = Command::new("python3").args(["-c", script]).arg(zip).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim() == "True"
}

/// Checks a manifest against schemas/archive-manifest.schema.json: required keys and types
/// of the top level, of parts and of entries (the schema's own words, read from the file).
fn check_against_schema(m: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/archive-manifest.schema.json"))
            .unwrap(),
    )
    .unwrap();
    fn check(v: &Value, s: &Value, root: &Value, at: &str) {
        let s = match s.get("$ref").and_then(Value::as_str) {
            Some(r) => root.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("schema: no {r}")),
            None => s,
        };
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let ok = types.iter().any(|t| match *t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                _ => false,
            });
            assert!(ok, "{at}: {v} is not of type {t}");
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            assert!(e.contains(v), "{at}: {v} not in {e:?}");
        }
        if let (Some(req), Some(o)) = (s.get("required").and_then(Value::as_array), v.as_object()) {
            for r in req {
                assert!(o.contains_key(r.as_str().unwrap()), "{at}: lacks {r}");
            }
        }
        if let (Some(props), Some(o)) = (s.get("properties").and_then(Value::as_object), v.as_object()) {
            for (k, sub) in props {
                if let Some(x) = o.get(k) {
                    check(x, sub, root, &format!("{at}.{k}"));
                }
            }
            if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                for k in o.keys() {
                    assert!(props.contains_key(k), "{at}: {k} is not in the schema");
                }
            }
        }
        if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
            for (i, x) in a.iter().enumerate() {
                check(x, items, root, &format!("{at}[{i}]"));
            }
        }
    }
    check(m, &schema, &schema, "manifest");
}

fn sha256_hex(b: &[u8]) -> String {
    let o = Command::new("python3")
        .args(["-c", "import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

async fn layout_and_readers(b: Backend) {
    let env = Env::new(b).await;
    two_days(&env);
    let q = env.json(&["archive", "quote", "--org", "acme"]);
    assert_eq!(q["versions"], 390 + 3, "one version per live record: 390 tasks, 3 attachments: {q}");
    assert_eq!(q["files"], 3);
    let out = create(&env, &[]);
    let a = &out["archive"];
    assert_eq!(a["status"], "ready", "{out}");
    assert_eq!(a["versions"], q["versions"]);
    let (quoted, charged) = (q["price"].as_f64().unwrap(), a["price"].as_f64().unwrap());
    assert!((quoted - charged).abs() < 0.01 * charged, "the quote is the price charged: {quoted} vs {charged}");
    let zip = env.path().join("a.zip");
    env.ok(&["archive", "download", &a["id"].to_string(), "--to", zip.to_str().unwrap()]);
    four_readers(&zip);
    assert!(!has_data_descriptors(&zip), "sizes and CRCs are in the local headers");

    let (names, data) = zip_read(&zip, &["acme/manifest.json", "acme/index.csv"]);
    assert!(names.iter().all(|n| n.starts_with("acme/")), "one folder named after the org's SID: {names:?}");
    let manifest: Value = serde_json::from_slice(&data[0]).unwrap();
    check_against_schema(&manifest);
    let entries = manifest["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 393 + 3);
    // A record's version is its JSON as the app gave it, under <SID>_<Version>.
    let sid = env.sid("tasks", "t5");
    let v = entries.iter().find(|e| e["record"] == sid.as_str() && e["kind"] == "version").unwrap();
    assert_eq!(v["path"], format!("acme/versions/{sid}_2"), "t5 was edited on day 2");
    let (_, got) = zip_read(&zip, &[v["path"].as_str().unwrap()]);
    let rec: Value = serde_json::from_slice(&got[0]).unwrap();
    assert_eq!(rec, task(5, "edited"));
    assert_eq!(v["sha256"], sha256_hex(&got[0]));
    // A file is `<UID>: <File name>`, byte for byte, and its manifest line names its record.
    let f = entries.iter().find(|e| e["file_name"] == "notes: draft.txt").unwrap();
    let uid = f["uid"].as_str().unwrap();
    assert_eq!(f["path"], format!("acme/{uid}: notes: draft.txt"));
    assert_eq!(f["record"], env.sid("attachments", "notes: draft.txt").as_str());
    let (_, got) = zip_read(&zip, &[f["path"].as_str().unwrap()]);
    assert_eq!(got[0], "plain text notes\n".repeat(5000).as_bytes());
    assert_eq!(f["sha256"], sha256_hex(&got[0]));
    // The index has the same rows.
    let index = String::from_utf8(data[1].clone()).unwrap();
    assert_eq!(index.lines().count(), 1 + entries.len());
    assert!(
        index.lines().any(|l| l.starts_with(&format!("acme/versions/{sid}_2,version,1,{sid},t5,tasks,export,2,"))),
        "{index}"
    );

    // With history: every version up to then, deleted records' last versions included.
    let q = env.json(&["archive", "quote", "--org", "acme", "--history"]);
    assert_eq!(q["versions"], 400 + 20 + 3, "{q}");
    let out = create(&env, &["--history"]);
    assert_eq!(out["archive"]["versions"], 423);
    let zip2 = env.path().join("h.zip");
    env.ok(&["archive", "download", &out["archive"]["id"].to_string(), "--to", zip2.to_str().unwrap()]);
    let (names, _) = zip_read(&zip2, &[]);
    assert!(names.contains(&format!("acme/versions/{sid}_1")) && names.contains(&format!("acme/versions/{sid}_2")));
    let gone = env.sid("tasks", "t395");
    assert!(names.contains(&format!("acme/versions/{gone}_1")), "a deleted record's last version is in the history");
    // --at the end of day 1... is today too in a test; cycle:1 is the first backup.
    let day1 = env.json(&["archive", "quote", "--org", "acme", "--at", "cycle:1"]);
    assert_eq!(day1["versions"], 400 + 2, "{day1}");

    // list shows the columns, show the parts; rename changes the name only.
    let list = env.ok(&["archive", "list", "--org", "acme"]);
    for col in ["Name", "Description", "Status", "Versions", "Files", "File Size", "File Path", "Date Created", "Price"]
    {
        assert!(list.contains(col), "{list}");
    }
    assert!(list.contains("Year end") && list.contains("/downloads/"));
    let id = a["id"].to_string();
    env.ok(&["archive", "rename", &id, "--name", "Renamed", "--description", "for the auditors"]);
    let shown = env.json(&["archive", "show", &id]);
    assert_eq!((shown["name"].as_str(), shown["description"].as_str()), (Some("Renamed"), Some("for the auditors")));
    // What a person named the archive is sealed in the catalog.
    let cat = common::catalog_bytes(&env).await;
    assert!(!common::contains(&cat, "for the auditors") && !common::contains(&cat, "Renamed"));
    assert!(!common::contains(&cat, "draft.txt"), "no file name in the clear");
}

async fn windows_names_and_parts(b: Backend) {
    let env = Env::new(b).await;
    // 1 MiB parts; four 600 KB files make at least three parts.
    config(&env, "[archive]\npart_bytes = 1048576\n");
    env.write_records("tasks", &(0..50).map(|n| task(n, "x")).collect::<Vec<_>>());
    for (i, n) in ["a:b?.png", "CON.txt", "trailing. ", "back\\slash|pipe*.jpg"].iter().enumerate() {
        env.write_attachment(n, &noise(i as u64 + 10, 600_000));
    }
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let q = env.json(&["archive", "quote", "--org", "acme"]);
    let out = create(&env, &["--windows-safe"]);
    let a = &out["archive"];
    let parts = a["parts"].as_array().unwrap();
    assert!(parts.len() >= 3, "{out}");
    assert_eq!(q["parts"].as_u64().unwrap(), parts.len() as u64, "the quote says how many parts");
    assert_eq!(out["links"].as_array().unwrap().len(), parts.len(), "a link per part");
    let zip = env.path().join("w.zip");
    let written = env.ok(&["archive", "download", &a["id"].to_string(), "--to", zip.to_str().unwrap()]);
    let files: Vec<PathBuf> = written.lines().map(PathBuf::from).collect();
    assert_eq!(files.len(), parts.len());
    let mut all = Vec::new();
    for f in &files {
        four_readers(f);
        let (names, _) = zip_read(f, &[]);
        all.extend(names);
    }
    let (_, data) = zip_read(&files[0], &["acme/manifest.json"]);
    let manifest: Value = serde_json::from_slice(&data[0]).unwrap();
    check_against_schema(&manifest);
    assert_eq!(manifest["parts"].as_array().unwrap().len(), parts.len(), "the first part lists every part");
    for e in manifest["entries"].as_array().unwrap() {
        assert!(all.contains(&e["path"].as_str().unwrap().to_string()), "{e} is in a part");
    }
    let forbidden = ['<', '>', '"', '|', '?', '*', ':', '\\'];
    for n in all.iter().filter(|n| !n.ends_with(".json") && !n.ends_with(".csv")) {
        let leaf = n.rsplit('/').next().unwrap();
        assert!(!leaf.chars().any(|c| forbidden.contains(&c)), "{n:?} cannot be extracted on Windows");
        assert!(!leaf.ends_with('.') && !leaf.ends_with(' '), "{n:?}");
        // Windows reserves a name whose whole stem is a device (CON, CON.txt), not one that
        // contains it ("<UID>： CON.txt").
        let stem = leaf.split('.').next().unwrap().trim_end();
        assert!(!["CON", "PRN", "AUX", "NUL", "COM1", "LPT1"].contains(&stem.to_ascii_uppercase().as_str()), "{n:?}");
    }
    assert!(all.iter().any(|n| n.contains('\u{FF1A}')), "`:` becomes the fullwidth colon: {all:?}");
    // Extracting with unzip puts every file inside the org folder.
    let out = env.path().join("x");
    for f in &files {
        let o = Command::new("unzip").arg("-q").arg(f).arg("-d").arg(&out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "only the org folder");
}

async fn quote_is_within_ten_percent(b: Backend) {
    // Two workloads: many small records and few files; few records and large files.
    for (records, files, size) in [(3000u32, 2usize, 20_000usize), (30, 8, 400_000)] {
        let env = Env::new(b).await;
        env.write_records(
            "tasks",
            &(0..records).map(|n| task(n, &"words ".repeat((n % 50) as usize))).collect::<Vec<_>>(),
        );
        for i in 0..files {
            env.write_attachment(&format!("f{i}.{}", if i % 2 == 0 { "bin" } else { "txt" }), &noise(i as u64, size));
        }
        env.ok(&["init"]);
        env.ok(&["backup"]);
        config(&env, "[pricing]\ncurrency = \"USD\"\nbase = 0.0\nper_gb = 1000.0\nper_1000_versions = 1.0\n");
        let q = env.json(&["archive", "quote", "--org", "acme"]);
        let a = create(&env, &[])["archive"].clone();
        let (quoted, charged) = (q["price"].as_f64().unwrap(), a["price"].as_f64().unwrap());
        assert!((quoted - charged).abs() <= 0.1 * charged, "quoted {quoted}, charged {charged}");
        let bill = env.json(&["billing", "--org", "acme"]);
        assert_eq!(bill["currency"], "USD");
        assert!((bill["archives"][0]["build"].as_f64().unwrap() - charged).abs() < 1e-6, "{bill}");
        let (est, real) = (q["estimated_zip_bytes"].as_f64().unwrap(), a["file_size"].as_f64().unwrap());
        assert!(est > 0.5 * real && est < 2.0 * real, "the zip's size is estimated: {est} vs {real}");
    }
}

/// A free port on 127.0.0.1 (bound and released: the server binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn serve(env: &Env) -> (Server, u16) {
    let port = free_port();
    config(env, &format!("[archive]\npublic_url = \"http://127.0.0.1:{port}\"\n"));
    let child = env
        .cmd(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let s = Server(child);
    wait_for_port(port, "daybook serve");
    (s, port)
}

async fn downloads_over_http(b: Backend) {
    let env = Env::new(b).await;
    two_days(&env);
    let (_server, _) = serve(&env);
    let out = create(&env, &[]);
    let id = out["archive"]["id"].to_string();
    let link = out["links"][0].as_str().unwrap().to_string();
    let file = env.path().join("cli.zip");
    env.ok(&["archive", "download", &id, "--to", file.to_str().unwrap()]);
    let whole = std::fs::read(&file).unwrap();
    let http = reqwest::Client::new();

    let head = http.head(&link).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let h = head.headers();
    assert_eq!(h["content-length"], whole.len().to_string().as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    let etag = h["etag"].to_str().unwrap().to_string();
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"Archive_Acme-Inc_") && disposition.ends_with(".zip\""),
        "{disposition}"
    );

    let body = http.get(&link).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body.as_ref(), whole.as_slice(), "the download is the archive");
    // Resume: the rest from byte 1000, and the last 10 bytes.
    let r = http.get(&link).header("range", "bytes=1000-").header("if-range", &etag).send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], format!("bytes 1000-{}/{}", whole.len() - 1, whole.len()).as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), &whole[1000..]);
    let r = http.get(&link).header("range", "bytes=-10").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &whole[whole.len() - 10..]);
    let r = http.get(&link).header("range", format!("bytes={}-", whole.len())).send().await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], format!("bytes */{}", whole.len()).as_str());

    // Tampered: 403, and nothing about other archives.
    let mut bad = link.clone().into_bytes();
    let i = bad.len() - 40;
    bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
    let r = http.get(String::from_utf8(bad).unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("not valid") && !text.contains("acme") && !text.contains("Year"), "{text}");
    assert_eq!(http.get(format!("{link}x")).send().await.unwrap().status(), 403);

    // A new link needs no rebuild; revoking stops every link; a fresh one works again.
    let fresh = env.ok(&["archive", "link", &id, "--expires", "1h"]).trim().to_string();
    assert_ne!(fresh, link);
    assert_eq!(http.head(&fresh).send().await.unwrap().status(), 200);
    env.ok(&["archive", "revoke", &id]);
    for l in [&link, &fresh] {
        let r = http.get(l.as_str()).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("revoked"));
    }
    let again = env.ok(&["archive", "link", &id]).trim().to_string();
    assert_eq!(http.get(&again).send().await.unwrap().bytes().await.unwrap().len(), whole.len());
    // Deleted: 404; its objects are gone from the store; storage stops.
    env.ok(&["archive", "delete", &id]);
    let r = http.get(&again).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no longer exists"));
    assert!(!env.store_objects().iter().any(|(p, _)| p.contains(&format!("archive-{id}"))));
    assert_eq!(env.json(&["billing", "--org", "acme"])["archives"][0]["status"], "deleted");
}

async fn delete_during_download(b: Backend) {
    let env = Env::new(b).await;
    env.write_records("tasks", &[task(1, "a")]);
    for i in 0..6 {
        env.write_attachment(&format!("big{i}.bin"), &noise(i, 4_000_000));
    }
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let (_server, _) = serve(&env);
    let out = create(&env, &[]);
    let id = out["archive"]["id"].to_string();
    let link = out["links"][0].as_str().unwrap().to_string();
    let size = out["archive"]["file_size"].as_u64().unwrap();
    let mut r = reqwest::get(&link).await.unwrap();
    assert_eq!(r.content_length(), Some(size));
    let mut got = r.chunk().await.unwrap().unwrap().len() as u64;
    env.ok(&["archive", "delete", &id]);
    let ended = loop {
        match r.chunk().await {
            Ok(Some(c)) => got += c.len() as u64,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(ended.is_err(), "the download ends with an error, not as a whole file ({got} of {size} bytes)");
    assert!(got < size);
    // The server lives on.
    assert_eq!(reqwest::get(&link).await.unwrap().status(), 404);
}

async fn killed_mid_build(b: Backend) {
    let env = Env::new(b).await;
    env.write_records("tasks", &[task(1, "a")]);
    for i in 0..3 {
        env.write_attachment(&format!("big{i}.bin"), &noise(i, 4_000_000));
    }
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let o = env
        .cmd(&["archive", "create", "--org", "acme", "--name", "doomed", "--yes"])
        .env("DAYBOOK_FAULT", "archive-chunk-sealed:2")
        .output()
        .unwrap();
    assert_eq!(o.status.signal(), Some(9), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(env.store_objects().iter().any(|(p, _)| p.contains("objects")), "chunks were stored before the kill");
    let list = env.json(&["archive", "list", "--org", "acme"]);
    assert_eq!(list[0]["status"], "failed", "{list}");
    assert!(list[0]["error"].as_str().unwrap().contains("interrupted"));
    assert!(!env.store_objects().iter().any(|(p, _)| p.contains("objects")), "its partial objects are removed");
    let bill = env.json(&["billing", "--org", "acme"]);
    assert_eq!(bill["total"], 0.0, "a failed build is not charged: {bill}");
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));
}

async fn missing_file_fails_the_build(b: Backend) {
    let env = Env::new(b).await;
    env.write_records("tasks", &[task(1, "a")]);
    env.write_attachment("kept.txt", b"kept");
    env.write_attachment("lost.pdf", b"%PDF lost");
    env.ok(&["init"]);
    env.ok(&["backup"]);
    // The catalog loses the file's row (a damaged or hand-edited catalog).
    sqlx::any::install_default_drivers();
    let url = if env.catalog.starts_with("sqlite:") {
        format!("sqlite://{}", env.path().join("vault/catalog.db").display())
    } else {
        env.catalog.clone()
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let uid = {
        let files: Vec<String> = sqlx::query("SELECT uid FROM files")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::get(r, 0))
            .collect();
        assert_eq!(files.len(), 2);
        files
    };
    // Which of the two is lost.pdf: the one whose bytes open_file gives as the PDF.
    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = daybook::vault::Vault::open(&cfg, common::PASS).await.unwrap();
    let lost = {
        let mut found = None;
        for u in &uid {
            if common::read_file(&vault, "acme", u).await == b"%PDF lost" {
                found = Some(u.clone());
            }
        }
        found.unwrap()
    };
    drop(vault);
    sqlx::query("DELETE FROM files WHERE uid = $1").bind(&lost).execute(&pool).await.unwrap();
    pool.close().await;
    let o = env.run(&["archive", "create", "--org", "acme", "--name", "n", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&lost) && err.contains("lost.pdf") && err.contains("missing"), "{err}");
    let list = env.json(&["archive", "list", "--org", "acme"]);
    assert_eq!(list[0]["status"], "failed");
    assert!(!env.store_objects().iter().any(|(p, _)| p.contains("objects")));
    assert_eq!(env.json(&["billing", "--org", "acme"])["total"], 0.0);
}

async fn erase_org_removes_archives(b: Backend) {
    let env = Env::new(b).await;
    two_days(&env);
    create(&env, &[]);
    assert!(env.store_objects().iter().any(|(p, _)| p.contains("objects")));
    env.ok(&["erase-org", "acme", "--confirm", "acme"]);
    assert!(!env.store_objects().iter().any(|(p, _)| p.contains("objects")));
    let o = env.run(&["archive", "show", "1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no archive 1"), "{}", String::from_utf8_lossy(&o.stderr));
}

both_backends!(
    layout_and_readers,
    windows_names_and_parts,
    quote_is_within_ten_percent,
    downloads_over_http,
    delete_during_download,
    killed_mid_build,
    missing_file_fails_the_build,
    erase_org_removes_archives,
);

#[tokio::test(flavor = "multi_thread")]
async fn emails_the_link_or_the_failure() {
    let env = Env::new(Backend::Sqlite).await;
    two_days(&env);
    let s = common::smtp::start();
    config(&env, &format!("[archive]\npublic_url = \"https://backups.example.com\"\n\n{}", s.config()));
    let out = create_named(&env, "Quarterly", &["--email", "admin@acme.example"]);
    assert_eq!(out["emailed"], true, "{out}");
    let mail = s.received();
    assert_eq!(mail.len(), 1);
    let m = &mail[0];
    assert!(m.contains("To: admin@acme.example"), "{m}");
    assert!(m.contains("Subject: Your archive \"Quarterly\" is ready"), "{m}");
    let link = out["links"][0].as_str().unwrap();
    assert!(link.starts_with("https://backups.example.com/downloads/"));
    assert!(m.contains(link), "the link is in the message: {m}");

    // A server that does not answer: the archive is still ready, and the reason is said.
    config(&env, "[email]\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\nfrom = \"daybook@example.com\"\n");
    let out = create(&env, &["--email", "admin@acme.example"]);
    assert_eq!(out["archive"]["status"], "ready");
    assert!(out["email_error"].as_str().unwrap().contains("127.0.0.1:1"), "{out}");
    let o = env.run(&["archive", "create", "--org", "acme", "--name", "x", "--yes", "--email", "not an address"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an email address"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_the_build_cleanly() {
    // A 2 MiB tmpfs as the build's temporary folder (needs root to mount; CI runs as root).
    let env = Env::new(Backend::Sqlite).await;
    env.write_records("tasks", &[task(1, "a")]);
    env.write_attachment("big.bin", &noise(3, 5_000_000));
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let tmp = env.path().join("small");
    std::fs::create_dir_all(&tmp).unwrap();
    let m = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&tmp).output().unwrap();
    assert!(m.status.success(), "mounting a small tmpfs needs root: {}", String::from_utf8_lossy(&m.stderr));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(tmp.clone());
    config(&env, &format!("[archive]\ntemp_dir = \"{}\"\n", tmp.display()));
    let o = env.run(&["archive", "create", "--org", "acme", "--name", "n", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device") || err.contains("os error 28"), "{err}");
    assert_eq!(env.json(&["archive", "list", "--org", "acme"])[0]["status"], "failed");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "nothing is left in the temporary folder");
    assert!(!env.store_objects().iter().any(|(p, _)| p.contains("objects")));
    assert_eq!(env.json(&["billing", "--org", "acme"])["total"], 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn zip64_past_65535_entries() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_records("tasks", &(0..66_000).map(|n| json!({"id": format!("t{n}")})).collect::<Vec<_>>());
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let out = create(&env, &[]);
    assert_eq!(out["archive"]["versions"], 66_000);
    let zip = env.path().join("big.zip");
    env.ok(&["archive", "download", &out["archive"]["id"].to_string(), "--to", zip.to_str().unwrap()]);
    four_readers(&zip);
    let (names, _) = zip_read(&zip, &[]);
    assert_eq!(names.len(), 66_002);
}
