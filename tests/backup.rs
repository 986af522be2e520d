//! Backups as a user sees them: versions, snapshots, history, diffs, files, integrity.

mod common;

use common::{Backend, Env, PASS, task};
use serde_json::json;

both_backends!(versions_snapshots_and_history, bad_input_commits_nothing_of_that_type, flipped_byte_is_found_and_named);

async fn versions_snapshots_and_history(b: Backend) {
    let env = Env::new(b).await;
    env.write_records("tasks", &[task(1, "alpha"), task(2, "bravo ZEBRA-SECRET-7731"), task(3, "charlie")]);
    env.write_records("comments", &[json!({"id": 10, "text": "first"})]);
    let scan = b"%PDF scanned invoice ".repeat(130_000); // 2.7 MB: three 1 MiB pieces
    env.write_attachment("invoice.pdf", &scan);
    env.write_attachment("invoice-copy.pdf", &scan);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let day1 = env.latest();
    assert_eq!(day1["tasks"].1, 3, "3 tasks live after day 1");
    assert_eq!(day1["comments"].1, 1);
    assert_eq!(day1["attachments"].1, 2);

    // Day 2 at the source: one edit, one deletion, one addition, one new file.
    env.write_records("tasks", &[task(1, "alpha"), task(2, "bravo renamed"), task(4, "delta")]);
    env.write_attachment("photo.jpg", b"JPEG bytes of a photo");
    let out = env.json(&["backup"]);
    let tasks = out["types"].as_array().unwrap().iter().find(|t| t["data_type"] == "tasks").unwrap();
    assert_eq!(
        (tasks["stats"]["added"].as_i64(), tasks["stats"]["changed"].as_i64(), tasks["stats"]["deleted"].as_i64()),
        (Some(1), Some(1), Some(1))
    );
    let files = out["types"].as_array().unwrap().iter().find(|t| t["data_type"] == "attachments").unwrap();
    assert_eq!(files["stats"]["files_fetched"], 1, "unchanged files are not read again");
    let comments = out["types"].as_array().unwrap().iter().find(|t| t["data_type"] == "comments").unwrap();
    assert_eq!(comments["stats"]["stored_bytes"], 0, "an unchanged data type stores nothing");

    let day2 = env.latest();
    assert_eq!(day2["tasks"].1, 3);
    let (c1, c2) = (day1["tasks"].0, day2["tasks"].0);
    let d = env.json(&["diff", "--type", "tasks", "--from", &format!("cycle:{c1}"), "--to", &format!("cycle:{c2}")]);
    let ids =
        |k: &str| d[k].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(
        (ids("added"), ids("changed"), ids("deleted")),
        (vec!["t4".to_string()], vec!["t2".to_string()], vec!["t3".to_string()])
    );

    let sid2 = env.sid("tasks", "t2");
    let h = env.json(&["history", &sid2]);
    assert_eq!(h["versions"].as_array().unwrap().len(), 2);
    assert_eq!(h["record"]["source_id"], "t2");
    let then = env.json(&["show", &sid2, "--at", &format!("cycle:{c1}")]);
    assert_eq!(then["content"]["data"]["title"], "bravo ZEBRA-SECRET-7731");
    let now = env.json(&["show", &sid2]);
    assert_eq!(now["content"]["data"]["title"], "bravo renamed");
    // A date is the end of that day in the org's timezone: today is the latest state.
    let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Dublin).format("%Y-%m-%d").to_string();
    assert_eq!(env.json(&["show", &sid2, "--at", &today])["content"]["data"]["title"], "bravo renamed");
    assert_eq!(
        env.json(&["diff", "--type", "tasks", "--from", "2020-01-01", "--to", &today])["added"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let sid3 = env.sid("tasks", "t3");
    let gone = env.json(&["show", &sid3]);
    assert!(gone["deleted_since"].is_string(), "a deleted record says so: {gone}");
    assert_eq!(gone["content"]["data"]["title"], "charlie", "the last content before deletion is kept");

    // The same bytes under two names are one stored file.
    let a = env.json(&["show", &env.sid("attachments", "invoice.pdf")]);
    let b2 = env.json(&["show", &env.sid("attachments", "invoice-copy.pdf")]);
    assert_eq!(a["content"]["files"][0]["uid"], b2["content"]["files"][0]["uid"]);
    assert_eq!(a["content"]["files"][0]["size"], scan.len());
    // And the bytes come back as they were.
    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = daybook::vault::Vault::open(&cfg, PASS).await.unwrap();
    let back = common::read_file(&vault, "acme", a["content"]["files"][0]["uid"].as_str().unwrap()).await;
    assert!(back == scan, "the stored file reads back byte for byte");

    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["problems"], json!([]));
    assert!(check["bytes_read"].as_u64().unwrap() > 0);

    // Neither a record's text nor a file's bytes appear in the store in the clear.
    for (f, bytes) in env.store_objects() {
        for needle in [&b"ZEBRA-SECRET-7731"[..], &b"scanned invoice"[..], PASS.as_bytes()] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{f} reveals {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

async fn bad_input_commits_nothing_of_that_type(b: Backend) {
    let env = Env::new(b).await;
    env.write_records("tasks", &[task(1, "a"), task(2, "b"), task(3, "c")]);
    env.write_records("comments", &[json!({"id": 1, "text": "x"})]);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let before = env.latest();

    let cases: &[(&str, &str)] = &[
        ("{\"id\":\"t1\",\"title\":\"a\"}\n{\"id\":\"t2\",\"title\":\n{\"id\":\"t3\"}\n", "line 2: malformed JSON"),
        ("{\"id\":\"t1\"}\n{\"title\":\"no id\"}\n", "line 2: record has no \"id\" field"),
        ("{\"id\":\"t1\"}\n{\"id\":\"t2\"}\n{\"id\":\"t1\"}\n", "id \"t1\" appears twice (line 3)"),
        ("{\"id\":\"t1\"}\n\u{0}\u{1}[1,2]\n", "line 2"),
        ("{\"id\":\"t1\"}\n[1,2]\n", "line 2: not a JSON object"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        env.write_raw("tasks", text);
        env.write_records("comments", &[json!({"id": 1, "text": format!("edit {i}")})]);
        let o = env.run(&["backup"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "a failed data type fails the backup: {err}");
        assert!(
            err.contains("tasks.jsonl") && err.contains(want),
            "error names the file and line: want {want:?} in {err}"
        );
        let now = env.latest();
        assert_eq!(now["tasks"], before["tasks"], "no snapshot, no phantom deletion for the failed type");
        assert_eq!(now["comments"].3, 1, "the other data type still completes");
        assert!(now["comments"].0 > before["comments"].0);
    }

    // A file name that is not UTF-8 fails the attachments, not the records.
    env.write_records("tasks", &[task(1, "a"), task(2, "b"), task(3, "c")]);
    env.write_attachment("ok.txt", b"fine");
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt");
    std::fs::write(env.export().join("attachments").join(name), b"x").unwrap();
    let o = env.run(&["backup"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("attachments") && err.contains("not valid UTF-8") && err.contains("bad-"), "{err}");
    assert!(!env.latest().contains_key("attachments") || env.latest()["attachments"].1 == 0);
    std::fs::remove_file(env.export().join("attachments").join(name)).unwrap();
    env.ok(&["backup"]);
    assert_eq!(env.latest()["tasks"].1, 3);
    assert_eq!(env.latest()["attachments"].1, 1);
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));
}

async fn flipped_byte_is_found_and_named(b: Backend) {
    let env = Env::new(b).await;
    let tasks: Vec<_> = (0..3000).map(|n| task(n, &format!("task number {n} with some text"))).collect();
    env.write_records("tasks", &tasks);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    assert!(env.run(&["check", "--read-data"]).status.success());
    let mut packs: Vec<_> =
        env.store_objects().into_iter().filter(|(p, _)| p.starts_with("data/") && !p.ends_with("/clock")).collect();
    assert!(!packs.is_empty());
    let (name, mut bytes) = packs.swap_remove(0);
    // Inside the first chunk (past its nonce): the records in it become unreadable.
    bytes[100] ^= 0x01;
    env.put_object(&name, bytes);

    assert!(env.run(&["check"]).status.success(), "a flipped byte keeps the size: only --read-data can see it");
    let o = env.run(&["check", "--read-data"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let damaged: Vec<&str> = out.lines().filter(|l| l.contains("record ") && l.contains("is damaged")).collect();
    assert!(!damaged.is_empty(), "check names the damaged records: {out}");
    // The named record really is one of ours and is unreadable now.
    let sid = damaged[0].split("record ").nth(1).unwrap().split(' ').next().unwrap();
    let h = env.json(&["history", sid]);
    assert_eq!(h["record"]["data_type"], "tasks");
    let shown = env.run(&["show", sid]);
    assert!(!shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stderr).contains("damaged"));
}

/// A data type that fails after one of its packs filled up must not take anything of the
/// data types before it: their versions stay readable, today and after the next backup.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_type_after_a_full_pack_leaves_earlier_types_whole() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_records("a_small", &[json!({"id": "a1", "v": "hello"}), json!({"id": "a2", "v": "world"})]);
    // About 60 MB of poorly compressible text: more than one pack, then a bad last line.
    let mut big = String::new();
    for i in 0..4000u32 {
        let mut xof = blake3::Hasher::new().update(&i.to_le_bytes()).finalize_xof();
        let mut noise = [0u8; 7500];
        xof.fill(&mut noise);
        big.push_str(&format!("{{\"id\":{i},\"blob\":\"{}\"}}\n", hex::encode(noise)));
    }
    env.write_raw("b_big", &format!("{big}{{not json\n"));
    env.ok(&["init"]);
    assert_eq!(env.run(&["backup"]).status.code(), Some(1));
    assert_eq!(env.json(&["show", "a1"])["content"]["data"]["v"], "hello");
    let check = env.json(&["check"]);
    assert_eq!(check["problems"], json!([]));
    assert!(!check["notes"].as_array().unwrap().is_empty(), "a pack filled up during the failing type: {check}");
    env.write_raw("b_big", &big);
    env.ok(&["backup"]);
    assert_eq!(env.json(&["show", "a2"])["content"]["data"]["v"], "world");
    assert_eq!(env.latest()["b_big"].1, 4000);
    let check = env.json(&["check", "--read-data"]);
    assert_eq!((check["problems"].clone(), check["notes"].clone()), (json!([]), json!([])));
}

/// An export that broke off (but parses) must not turn into mass deletion.
#[tokio::test(flavor = "multi_thread")]
async fn mass_deletion_is_held_back_until_allowed() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_records("tasks", &(0..40).map(|n| task(n, "kept")).collect::<Vec<_>>());
    env.write_records("comments", &[json!({"id": "c1", "text": "x"})]);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let before = env.latest();

    env.write_records("tasks", &(0..5).map(|n| task(n, "kept")).collect::<Vec<_>>());
    let o = env.run(&["backup"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("35 would be marked deleted") && err.contains("--allow-deletions"), "{err}");
    assert_eq!(env.latest()["tasks"], before["tasks"], "nothing of it is committed");

    env.ok(&["backup", "--allow-deletions"]);
    let after = env.latest()["tasks"];
    assert_eq!((after.1, after.4), (5, 35), "allowed, the deletions are recorded");
}

/// A data type whose state was read ahead (while the one before it backed up) stores only
/// what changed, as the first does: a state found in memory is not taken for a long chain
/// of pages that needs a new checkpoint (every cycle stored a whole state page once).
#[tokio::test(flavor = "multi_thread")]
async fn a_state_read_ahead_stores_only_the_change() {
    let env = Env::new(Backend::Sqlite).await;
    let day = |edit: &str| -> Vec<serde_json::Value> {
        (0..3000).map(|n| task(n, &if n == 7 { edit.to_string() } else { format!("task number {n}") })).collect()
    };
    env.write_records("a_tasks", &day("first"));
    env.write_records("b_tasks", &day("first"));
    env.ok(&["init"]);
    env.ok(&["backup"]);
    env.write_records("a_tasks", &day("second"));
    env.write_records("b_tasks", &day("second"));
    let out = env.json(&["backup"]);
    let stored = |ty: &str| {
        let t = out["types"].as_array().unwrap().iter().find(|t| t["data_type"] == ty).unwrap();
        assert_eq!(t["stats"]["changed"], 1, "{t}");
        t["stats"]["stored_bytes"].as_u64().unwrap()
    };
    let (a, b) = (stored("a_tasks"), stored("b_tasks"));
    assert!(b < a + 512, "the read-ahead type stored {b} bytes for one change, the other {a}");
}

/// An export line is read for its id alone when the id comes first; the record is still the
/// one the whole line gives: a field named twice is its last value (as JSON readers take
/// it), a nested `id` is not the record's, and a line that stays as it was stays unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_is_the_record_its_whole_text_gives() {
    let env = Env::new(Backend::Sqlite).await;
    let lines = "{\"id\":\"t1\",\"title\":\"first of two\",\"id\":\"t9\"}\n\
                 {\"id\":\"t2\",\"owner\":{\"id\":\"u1\"},\"title\":\"nested\"}\n\
                 {\"id\":3,\"title\":\"a number\"}\n";
    env.write_raw("tasks", lines);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    assert_eq!(env.json(&["history", "t9"])["record"]["source_id"], "t9");
    assert!(!env.run(&["history", "t1"]).status.success(), "t1 is not a record: its id field says t9 last");
    assert_eq!(env.json(&["show", "t2"])["content"]["data"]["owner"]["id"], "u1");
    assert_eq!(env.json(&["show", "3"])["content"]["data"]["title"], "a number");
    assert_eq!(env.latest()["tasks"].1, 3);

    env.write_raw("tasks", lines);
    let out = env.json(&["backup"]);
    let t = out["types"].as_array().unwrap().iter().find(|t| t["data_type"] == "tasks").unwrap();
    let s = &t["stats"];
    assert_eq!(
        (s["unchanged"].as_u64(), s["changed"].as_u64(), s["added"].as_u64()),
        (Some(3), Some(0), Some(0)),
        "{t}"
    );
}
