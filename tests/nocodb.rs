//! The NocoDB connector against a real NocoDB (see tests/nocodb/server.rs): back up, change
//! and delete rows, back up again reading only the changes, find the deleted rows with
//! `recover`, bring them back with `restore` as new rows with their attachments.

mod common;
#[path = "nocodb/server.rs"]
mod server;

use common::{Backend, Env};
use serde_json::{Value, json};
use server::{Noco, Proxy};

both_backends!(
    backup_recover_restore,
    revoked_token_changes_nothing,
    scope_and_a_missing_attachment,
    renaming_a_table_keeps_its_history,
    a_base_deleted_while_it_is_listed_fails_nothing_else
);

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

async fn env_for(b: Backend, noco: &Noco, include: &[&str]) -> Env {
    let mut env = Env::new(b).await;
    env.vars.push(("NOCODB_TOKEN".into(), noco.token.clone()));
    env.write_config(&format!(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\ntimezone = \"Europe/Dublin\"\n\n{}",
        noco.source("crm", include)
    ));
    env.ok(&["init"]);
    env
}

fn type_stats<'a>(out: &'a Value, ty: &str) -> &'a Value {
    let t = out["types"].as_array().unwrap().iter().find(|t| t["data_type"] == ty);
    let t = t.unwrap_or_else(|| panic!("no data type {ty} in {out}"));
    assert!(t["error"].is_null(), "{ty} failed: {}", t["error"]);
    &t["stats"]
}

async fn backup_recover_restore(b: Backend) {
    let noco = Noco::new();
    let base_title = unique("Sales");
    let fields = json!([
        {"title": "Name", "uidt": "SingleLineText"},
        {"title": "Notes", "uidt": "LongText"},
        {"title": "Amount", "uidt": "Number"},
        {"title": "Won", "uidt": "Checkbox"},
        {"title": "Files", "uidt": "Attachment"}
    ]);
    let [table]: [String; 1] = noco.create_base_with(&base_title, &[("Leads", fields)]).await.1.try_into().unwrap();
    let contract = b"%PDF signed contract, page 1 of 1".repeat(2000);
    let file = noco.upload("contract.pdf", &contract).await;
    let rows: Vec<Value> = (1..=2500)
        .map(|i| match i {
            7 => json!({"Name": "Globex needle", "Notes": "renewal in March", "Amount": 1200, "Won": true, "Files": [file.clone()]}),
            _ => json!({"Name": format!("lead {i}"), "Amount": i}),
        })
        .collect();
    let ids = noco.insert(&table, &rows).await;
    let env = env_for(b, &noco, &[&base_title]).await;
    let ty = format!("{base_title}/Leads");

    // Day 1: everything, past the 1000-row page.
    let day1 = env.json(&["backup"]);
    let s = type_stats(&day1, &ty);
    assert_eq!(
        (s["live"].as_i64(), s["added"].as_i64(), s["files_fetched"].as_i64()),
        (Some(2500), Some(2500), Some(1))
    );
    assert_eq!(type_stats(&day1, &format!("{base_title} (tables)"))["live"], 1, "the table definition is backed up");
    assert_eq!(type_stats(&day1, &format!("{base_title} (views)"))["live"], 1, "the grid view is backed up");
    let seen = day1["sources"][0]["visible"].as_array().unwrap();
    assert!(seen.iter().any(|v| v.as_str().unwrap().contains(&format!("{base_title}/Leads"))), "{seen:?}");

    // A cycle without changes: nothing stored, and attachments are not downloaded again.
    let quiet = env.json(&["backup"]);
    let s = type_stats(&quiet, &ty);
    assert_eq!((s["added"].as_i64(), s["changed"].as_i64(), s["deleted"].as_i64()), (Some(0), Some(0), Some(0)));
    assert_eq!((s["files_fetched"].as_i64(), s["stored_bytes"].as_i64()), (Some(0), Some(0)));
    assert_eq!(s["full_read"], false, "the second cycle reads changes only");

    // At the source: one edit, two deletions (one with the attachment), one new row.
    noco.update(&table, json!([{"Id": ids[4], "Name": "lead 5 renamed"}])).await;
    noco.delete(&table, &[ids[6], ids[1999]]).await;
    noco.insert(&table, &[json!({"Name": "late lead"})]).await;
    let day2 = env.json(&["backup"]);
    let s = type_stats(&day2, &ty);
    assert_eq!(
        (s["live"].as_i64(), s["added"].as_i64(), s["changed"].as_i64(), s["deleted"].as_i64()),
        (Some(2499), Some(1), Some(1), Some(2))
    );
    assert_eq!(s["full_read"], false, "changes came from the change query, deletions from the listing");

    // recover lists both deleted rows with their last content; --search narrows to one.
    let found = env.json(&["recover", "--type", &ty]);
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let globex = found.iter().find(|d| d["source_id"] == ids[6].to_string().as_str()).expect("row 7 is listed");
    assert_eq!(globex["content"]["data"]["Notes"], "renewal in March");
    assert!(globex["last_seen"].is_string() && globex["deletion_noticed"].is_string());
    let hit = env.json(&["recover", "--search", "NEEDLE"]);
    assert_eq!(hit.as_array().unwrap().len(), 1);
    assert_eq!(hit[0]["source_id"], ids[6].to_string());
    let sid = globex["sid"].as_str().unwrap().to_string();

    // A dry run writes nothing; the restore makes a new row with the same values and file.
    let before = noco.count(&table).await;
    let dry = env.json(&["restore", &sid, "--dry-run"]);
    assert_eq!(dry["content"]["Name"], "Globex needle");
    assert_eq!(noco.count(&table).await, before, "a dry run creates nothing");
    let done = env.json(&["restore", &sid]);
    let new_id: i64 = done["restored"]["new_id"].as_str().unwrap().parse().unwrap();
    assert!(!ids.contains(&new_id), "the copy is a new row, not the old id");
    assert_eq!(noco.count(&table).await, before + 1);
    let copy = noco.row(&table, new_id).await;
    let kept = &globex["content"]["data"];
    for field in ["Name", "Notes", "Amount", "Won"] {
        assert_eq!(copy[field], kept[field], "{field} of the copy");
    }
    assert_eq!((&copy["Name"], &copy["Amount"]), (&json!("Globex needle"), &json!(1200)));
    let files = copy["Files"].as_array().expect("the copy has its attachment");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["title"], "contract.pdf");
    assert_eq!(noco.download(&files[0]).await, contract, "the attachment's bytes come back");

    // The restore is remembered: recover says so, and a second restore needs --again.
    let again = env.run(&["restore", &sid]);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already restored") && err.contains(&new_id.to_string()), "{err}");
    let listed = env.json(&["recover", "--search", "needle"]);
    assert_eq!(listed[0]["restored_as"], json!([new_id.to_string()]));

    // The next backup sees the copy as one new row and nothing else.
    let day3 = env.json(&["backup"]);
    let s = type_stats(&day3, &ty);
    assert_eq!((s["added"].as_i64(), s["changed"].as_i64(), s["deleted"].as_i64()), (Some(1), Some(0), Some(0)));

    // Configuration types cannot be restored, and say why.
    let def = env.json(&["recover"]);
    assert!(def.as_array().unwrap().iter().all(|d| d["data_type"] == ty));
    let tables = env.json(&["snapshots"]);
    assert!(tables.as_array().unwrap().iter().any(|s| s["data_type"] == format!("{base_title} (tables)")));
}

async fn revoked_token_changes_nothing(b: Backend) {
    let noco = Noco::new();
    let base_title = unique("Ops");
    let tables = [("Tickets", json!([{"title": "Title", "uidt": "SingleLineText"}]))];
    let [table]: [String; 1] = noco.create_base_with(&base_title, &tables).await.1.try_into().unwrap();
    noco.insert(&table, &(0..30).map(|i| json!({"Title": format!("t{i}")})).collect::<Vec<_>>()).await;
    let mut env = env_for(b, &noco, &[&base_title]).await;
    let first = env.json(&["backup"]);
    assert_eq!(type_stats(&first, &format!("{base_title}/Tickets"))["live"], 30);

    let secret = "revoked-token-0d1f9a7c";
    env.vars.retain(|(k, _)| k != "NOCODB_TOKEN");
    env.vars.push(("NOCODB_TOKEN".into(), secret.into()));
    let out = env.run(&["backup"]);
    assert_eq!(out.status.code(), Some(1), "a refused token fails the cycle");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NOCODB_TOKEN") && err.contains("refused"), "{err}");
    assert!(!err.contains(secret), "the token must not be shown: {err}");
    assert!(env.json(&["recover"]).as_array().unwrap().is_empty(), "nothing is marked deleted");
    let latest = env.latest();
    assert_eq!(latest[&format!("{base_title}/Tickets")].1, 30, "the last snapshot stands");
}

async fn scope_and_a_missing_attachment(b: Backend) {
    let noco = Noco::new();
    let base_title = unique("Desk");
    let files = json!([{"title": "Title", "uidt": "SingleLineText"}, {"title": "Files", "uidt": "Attachment"}]);
    let (_, made) = noco.create_base_with(&base_title, &[("Tickets", files.clone()), ("Archive", files)]).await;
    let [tickets, archive]: [String; 2] = made.try_into().unwrap();
    noco.insert(&archive, &[json!({"Title": "old"})]).await;
    let screenshot = noco.upload(&format!("{}.png", unique("screen")), b"PNG bytes of a screenshot").await;
    noco.insert(&tickets, &[json!({"Title": "printer on fire", "Files": [screenshot.clone()]})]).await;
    noco.insert(&tickets, &(0..25).map(|i| json!({"Title": format!("t{i}")})).collect::<Vec<_>>()).await;

    let env = env_for(b, &noco, &[&base_title]).await;
    let cfg = std::fs::read_to_string(env.path().join("daybook.toml")).unwrap();
    std::fs::write(env.path().join("daybook.toml"), format!("{cfg}exclude = [\"{base_title}/Archive\"]\n")).unwrap();

    // The attachment's bytes are gone from NocoDB's disk: its download fails.
    let stored = noco.server_path(&screenshot);
    let bytes = std::fs::read(&stored).unwrap();
    std::fs::remove_file(&stored).unwrap();
    let out = env.run(&["backup", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a failed download fails the cycle");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t =
        report["types"].as_array().unwrap().iter().find(|t| t["data_type"] == format!("{base_title}/Tickets")).unwrap();
    let err = t["error"].as_str().expect("the table with the missing file is not snapshotted");
    assert!(err.contains(screenshot["title"].as_str().unwrap()), "the error names the file: {err}");
    assert!(!env.latest().contains_key(&format!("{base_title}/Tickets")), "no partial snapshot");

    // Scope: Archive is seen, left out, and said to be left out.
    let types: Vec<&str> =
        report["types"].as_array().unwrap().iter().map(|t| t["data_type"].as_str().unwrap()).collect();
    assert!(!types.iter().any(|t| t.contains("Archive")), "{types:?}");
    let skipped = report["sources"][0]["skipped"].as_array().unwrap();
    assert!(skipped.iter().any(|s| s.as_str().unwrap().contains("Archive")), "{skipped:?}");

    // With the file back, the next cycle stores the table whole, the file once.
    std::fs::write(&stored, &bytes).unwrap();
    let next = env.json(&["backup"]);
    let s = type_stats(&next, &format!("{base_title}/Tickets"));
    assert_eq!((s["live"].as_i64(), s["files_fetched"].as_i64()), (Some(26), Some(1)));
    let sid = env.sid(&format!("{base_title}/Tickets"), "1");
    let shown = env.json(&["show", &sid]);
    assert_eq!(shown["content"]["files"][0]["size"], bytes.len());

    // A table that goes (here: out of scope) is named as gone, every cycle; nothing is deleted.
    std::fs::write(
        env.path().join("daybook.toml"),
        format!("{cfg}exclude = [\"{base_title}/Archive\", \"Tickets\"]\n"),
    )
    .unwrap();
    let after = env.json(&["backup"]);
    let missing = after["sources"][0]["missing"].as_array().unwrap();
    assert!(missing.iter().any(|m| m == &json!(format!("{base_title}/Tickets"))), "{missing:?}");
    assert!(env.json(&["recover"]).as_array().unwrap().is_empty());
}

/// Needs the engine's half of issue 7 (a data type's display name follows its key).
async fn renaming_a_table_keeps_its_history(b: Backend) {
    let noco = Noco::new();
    let base_title = unique("Crm");
    let tables = [("Leads", json!([{"title": "Name", "uidt": "SingleLineText"}]))];
    let [table]: [String; 1] = noco.create_base_with(&base_title, &tables).await.1.try_into().unwrap();
    let ids = noco.insert(&table, &(0..30).map(|i| json!({"Name": format!("lead {i}")})).collect::<Vec<_>>()).await;
    let env = env_for(b, &noco, &[&base_title]).await;
    let day1 = env.json(&["backup"]);
    assert_eq!(type_stats(&day1, &format!("{base_title}/Leads"))["live"], 30);
    let before = env.json(&["history", &ids[0].to_string()]);

    noco.rename_table(&table, "Prospects").await;
    noco.update(&table, json!([{"Id": ids[0], "Name": "lead 0, renamed table"}])).await;
    let day2 = env.json(&["backup"]);
    let s = type_stats(&day2, &format!("{base_title}/Prospects"));
    assert_eq!((s["live"].as_i64(), s["deleted"].as_i64()), (Some(30), Some(0)), "{s}");
    let mut cycles: Vec<String> = env
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["data_type"].as_str().unwrap().starts_with(&format!("{base_title}/")))
        .map(|s| format!("{} {}", s["data_type"].as_str().unwrap(), s["cycle"]))
        .collect();
    cycles.sort();
    let new = format!("{base_title}/Prospects");
    assert_eq!(cycles, [format!("{new} 1"), format!("{new} 2")], "one data type, its new name, its cycles continuing");
    let after = env.json(&["history", &ids[0].to_string()]);
    assert_eq!(after["record"]["sid"], before["record"]["sid"]);
    assert_eq!(after["record"]["data_type"], new.as_str());
    assert_eq!(after["versions"].as_array().unwrap().len(), 2, "{after}");
    assert!(env.json(&["recover"]).as_array().unwrap().is_empty(), "nothing marked deleted");
}

/// A base deleted between daybook's listing of the bases and its listing of that base's
/// tables: the cycle goes on without it (as if it had been deleted a moment earlier), the
/// other base is backed up, and the deleted base's records stay at their last snapshot.
async fn a_base_deleted_while_it_is_listed_fails_nothing_else(b: Backend) {
    let noco = Noco::new();
    let (kept, gone) = (unique("Kept"), unique("Gone"));
    let title = json!([{"title": "Title", "uidt": "SingleLineText"}]);
    let [tickets]: [String; 1] =
        noco.create_base_with(&kept, &[("Tickets", title.clone())]).await.1.try_into().unwrap();
    let (gone_id, notes) = noco.create_base_with(&gone, &[("Notes", title)]).await;
    noco.insert(&tickets, &(0..3).map(|i| json!({"Title": format!("t{i}")})).collect::<Vec<_>>()).await;
    noco.insert(&notes[0], &(0..2).map(|i| json!({"Title": format!("n{i}")})).collect::<Vec<_>>()).await;
    let env = env_for(b, &noco, &[&kept, &gone]).await;
    let first = env.json(&["backup"]);
    assert_eq!(type_stats(&first, &format!("{gone}/Notes"))["live"], 2);
    let before = env.latest()[&format!("{gone}/Notes")];

    let proxy = Proxy::start();
    let cfg = std::fs::read_to_string(env.path().join("daybook.toml")).unwrap();
    std::fs::write(env.path().join("daybook.toml"), cfg.replace(&noco.url, &proxy.url)).unwrap();
    noco.insert(&tickets, &[json!({"Title": "late"})]).await;
    proxy.delete_after_listing(&gone_id);
    let second = env.json(&["backup"]);
    let s = type_stats(&second, &format!("{kept}/Tickets"));
    assert_eq!((s["live"].as_i64(), s["added"].as_i64()), (Some(4), Some(1)), "the other base is backed up");
    let latest = env.latest();
    let (cycle, live, _, _, deleted) = latest[&format!("{gone}/Notes")];
    assert_eq!((cycle, live, deleted), (before.0, 2, 0), "the deleted base keeps its last snapshot");
    assert!(env.json(&["recover"]).as_array().unwrap().is_empty(), "nothing is marked deleted");
}
