//! The Trello connector against a local Trello that follows the public REST API
//! documentation (tests/fake_trello), driven through the real binary: what is backed up,
//! incremental cycles, paging, scope, faults, and restore as a copy.

mod common;
mod fake_trello;

use axum::http::Method;
use common::{Backend, Env};
use fake_trello::{Act, App, Fake, KEY, TOKEN};
use serde_json::{Value, json};
use std::time::Duration;

/// A source on the fake, paced far above Trello's limit and giving up after 4 s (unless
/// `extra` says otherwise), so faults show quickly.
fn config(f: &Fake, extra: &str) -> String {
    let give_up = if extra.contains("give_up_after_seconds") { "" } else { "give_up_after_seconds = 4\n" };
    format!(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc.\"\n\n[[orgs.sources]]\nname = \"trello\"\nkind = \"trello\"\n\
         base_url = \"{}\"\nrequests_per_minute = 30000\ntimeout_seconds = 10\n{give_up}{extra}",
        f.base
    )
}

async fn env(f: &Fake, extra: &str) -> Env {
    let mut env = Env::new(Backend::Sqlite).await;
    env.vars = vec![("TRELLO_KEY".into(), KEY.into()), ("TRELLO_TOKEN".into(), TOKEN.into())];
    env.write_config(&config(f, extra));
    env.ok(&["init"]);
    env
}

struct Seed {
    launch: String,
    plan: String,
    spec: String,
    comment: String,
}

const SPEC: &[u8] = b"%PDF-1.7 the launch spec\x00\x01\x02 bytes";

/// A workspace with the board "Roadmap" (two lists, labels, a custom field, a card with
/// everything on it), and a board "Ops" outside any workspace.
fn seed(a: &mut App) -> Seed {
    let ws = a.workspace("Product");
    let road = a.board("Roadmap", Some(&ws));
    let todo = a.list(&road, "To do");
    a.list(&road, "Done");
    let urgent = a.label(&road, "urgent", "red");
    let field = a.custom_field(&road, "Estimate", "number");
    let launch = a.card(&todo, "Launch");
    let member = a.member["id"].clone();
    a.edit_card(&launch, |c| {
        c["desc"] = "Ship **v2**".into();
        c["due"] = "2026-03-01T12:00:00.000Z".into();
        c["idLabels"] = json!([urgent]);
        c["idMembers"] = json!([member]);
    });
    a.checklist(&launch, "Steps", &[("write notes", true), ("tag release", false)]);
    a.set_field(&launch, &field, json!({"number": "5"}));
    let comment = a.comment(&launch, "Looks good to me");
    let spec = a.attach(&launch, "spec v2.pdf", SPEC);
    let plan = a.card(&todo, "Plan");
    let ops = a.board("Ops", None);
    let inbox = a.list(&ops, "Inbox");
    a.card(&inbox, "Rotate keys");
    Seed { launch, plan, spec, comment }
}

fn backup(env: &Env) -> (bool, Value, String) {
    let o = env.run(&["backup", "--json"]);
    let report = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.success(), report, String::from_utf8_lossy(&o.stderr).into_owned())
}

fn type_of<'r>(report: &'r Value, ty: &str) -> &'r Value {
    report["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["data_type"] == ty)
        .unwrap_or_else(|| panic!("{ty} in {report}"))
}

fn failed(report: &Value) -> Vec<String> {
    report["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["error"].is_null())
        .map(|t| format!("{}: {}", t["data_type"].as_str().unwrap(), t["error"].as_str().unwrap()))
        .collect()
}

fn stored_file(env: &Env, uid: &str) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
        let vault = daybook::vault::Vault::open(&cfg, common::PASS).await.unwrap();
        common::read_file(&vault, "acme", uid).await
    })
}

fn content(env: &Env, id: &str) -> Value {
    env.json(&["show", id])["content"].clone()
}

#[test]
fn every_data_type_is_backed_up_with_attachment_bytes() {
    let f = Fake::start();
    let s = f.with(seed);
    let env = block(env(&f, ""));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}\n{:?}", failed(&report));

    let latest = env.latest();
    let live = |t: &str| latest.get(t).map(|x| x.1).unwrap_or(-1);
    for (ty, n) in [
        ("workspaces", 1),
        ("boards", 2),
        ("Roadmap/cards", 2),
        ("Roadmap/lists", 2),
        ("Roadmap/labels", 1),
        ("Roadmap/checklists", 1),
        ("Roadmap/comments", 1),
        ("Roadmap/members", 1),
        ("Roadmap/custom-fields", 1),
        ("Ops/cards", 1),
    ] {
        assert_eq!(live(ty), n, "{ty} in {latest:?}");
    }

    let card = content(&env, &s.launch);
    let d = &card["data"];
    assert_eq!(d["name"], "Launch");
    assert_eq!(d["desc"], "Ship **v2**");
    assert_eq!(d["checklists"][0]["checkItems"][0]["state"], "complete");
    assert_eq!(d["customFieldItems"][0]["value"]["number"], "5");
    assert_eq!(d["comments"][0]["text"], "Looks good to me");
    assert_eq!(d["comments"][0]["author"], "Ada Lovelace");
    let file = &card["files"][0];
    assert_eq!(file["name"], "spec v2.pdf");
    assert_eq!(file["size"], SPEC.len());
    assert_eq!(stored_file(&env, file["uid"].as_str().unwrap()), SPEC, "the attachment's bytes are in the vault");
    assert_eq!(content(&env, &s.comment)["data"]["data"]["text"], "Looks good to me");

    // The cycle says which boards the token saw.
    let src = &report["sources"][0];
    let visible: Vec<&str> = src["visible"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(visible.iter().any(|v| v.starts_with("board Roadmap (")), "{visible:?}");
    assert!(visible.iter().any(|v| v.starts_with("board Ops (")), "{visible:?}");
    assert!(visible.iter().any(|v| v.starts_with("workspace Product (")), "{visible:?}");
    assert!(src["requests"].as_u64().unwrap() > 10);

    // Credentials only ever in the header: every request carried it, no URL held them.
    f.with(|a| {
        assert!(a.seen.iter().all(|r| r.authorized), "a request without the OAuth header");
        for r in &a.seen {
            assert!(r.query.iter().all(|(k, v)| k != "key" && k != "token" && v != TOKEN && v != KEY), "{r:?}");
        }
        let dl = a.requests("GET", &format!("/attachments/{}/download/", s.spec));
        assert_eq!(dl.len(), 1, "the attachment is downloaded once");
        // Every paged listing asks for at most 1000.
        for r in a.requests("GET", "/cards/all").iter().chain(a.requests("GET", "/actions").iter()) {
            assert_eq!(r.q("limit"), Some("1000"), "{r:?}");
        }
    });

    // A second cycle with no change: nothing new stored, the file not fetched again.
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    let cards = type_of(&report, "Roadmap/cards");
    assert_eq!(cards["stats"]["files_fetched"], 0);
    assert_eq!(cards["stats"]["changed"], 0);
    let _ = s.plan;
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn an_incremental_cycle_asks_only_for_what_changed_and_notices_deletions() {
    let f = Fake::start();
    let s = f.with(|a| {
        let s = seed(a);
        let road = a.boards[0]["id"].as_str().unwrap().to_string();
        let list = a.lists[0]["id"].as_str().unwrap().to_string();
        for i in 0..40 {
            a.card(&list, &format!("filler {i}"));
        }
        let _ = road;
        s
    });
    let env = block(env(&f, ""));
    let (ok, _, err) = backup(&env);
    assert!(ok, "{err}");
    let before = f.with(|a| a.seen.len());

    f.with(|a| {
        a.edit_card(&s.launch, |c| c["name"] = "Launch v2".into());
        a.delete_card(&s.plan);
        a.edit_comment(&s.comment, "Looks good, ship it");
    });
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    let cards = type_of(&report, "Roadmap/cards");
    assert_eq!(cards["stats"]["full_read"], false);
    assert_eq!(cards["stats"]["changed"], 1, "{cards}");
    assert_eq!(cards["stats"]["deleted"], 1, "{cards}");
    assert_eq!(cards["stats"]["live"], 41);
    assert_eq!(content(&env, &s.launch)["data"]["name"], "Launch v2");
    assert_eq!(content(&env, &s.comment)["data"]["data"]["text"], "Looks good, ship it");
    let gone = env.json(&["show", &s.plan]);
    assert!(gone["deleted_since"].is_string(), "{gone}");

    f.with(|a| {
        let cycle2 = &a.seen[before..];
        let full: Vec<_> =
            cycle2.iter().filter(|r| r.path.ends_with("/cards/all") && r.q("attachments").is_some()).collect();
        assert!(full.is_empty(), "no full card pages when one card changed: {full:?}");
        let listing: Vec<_> = cycle2.iter().filter(|r| r.path.ends_with("/cards/all")).collect();
        assert!(listing.iter().all(|r| r.q("fields") == Some("id,dateLastActivity")), "{listing:?}");
        let one: Vec<_> =
            cycle2.iter().filter(|r| r.path.starts_with("/1/cards/") && !r.path.contains("/download/")).collect();
        assert_eq!(one.len(), 1, "only the changed card is fetched: {one:?}");
        assert!(one[0].path.ends_with(&s.launch));
        let comments: Vec<_> = cycle2
            .iter()
            .filter(|r| r.path.ends_with("/actions") && r.q("filter") == Some("commentCard,updateComment"))
            .collect();
        assert!(comments.iter().all(|r| r.q("since").is_some()), "comments asked since the cursor: {comments:?}");
    });
}

#[test]
fn pages_go_past_1000_cards() {
    let f = Fake::start();
    f.with(|a| {
        let b = a.board("Big", None);
        let l = a.list(&b, "All");
        for i in 0..2500 {
            a.card(&l, &format!("card {i}"));
        }
    });
    let env = block(env(&f, ""));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    assert_eq!(type_of(&report, "Big/cards")["stats"]["live"], 2500);
    f.with(|a| {
        let pages = a.requests("GET", "/cards/all");
        // 1000, 1000 (one of them seen: the overlap), 501 (likewise), then the empty page
        // that ends the listing.
        assert_eq!(pages.len(), 4, "{pages:?}");
        assert!(pages[0].q("before").is_none() && pages[1..].iter().all(|p| p.q("before").is_some()));
        assert!(pages.iter().all(|p| p.q("sort") == Some("-id") && p.q("limit") == Some("1000")), "{pages:?}");
    });
}

#[test]
fn scope_includes_and_excludes_workspaces_and_boards() {
    let f = Fake::start();
    f.with(|a| {
        let ws = a.workspace("Product");
        for n in ["Roadmap", "Archive", "Design"] {
            let b = a.board(n, Some(&ws));
            let l = a.list(&b, "L");
            a.card(&l, "c");
        }
        let b = a.board("Ops", None);
        let l = a.list(&b, "L");
        a.card(&l, "c");
        // Two boards with one name get told apart.
        let b = a.board("Ops", None);
        a.list(&b, "L");
    });
    let env = block(env(&f, "include = [\"Product\", \"Ops\"]\nexclude = [\"archive\"]\n"));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    let types: Vec<&str> =
        report["types"].as_array().unwrap().iter().map(|t| t["data_type"].as_str().unwrap()).collect();
    assert!(types.contains(&"Roadmap/cards") && types.contains(&"Design/cards"), "{types:?}");
    assert!(!types.iter().any(|t| t.starts_with("Archive/")), "{types:?}");
    let ops: Vec<&&str> = types.iter().filter(|t| t.starts_with("Ops") && t.ends_with("/cards")).collect();
    assert_eq!(ops.len(), 2, "boards of one name get distinct data types: {types:?}");
    assert!(types.contains(&"Ops/cards"), "the older of the two keeps the board's name: {types:?}");
    let src = &report["sources"][0];
    let skipped = src["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].as_str().unwrap().starts_with("board Archive ("), "{skipped:?}");
    f.with(|a| {
        let archive = a.boards.iter().find(|b| b["name"] == "Archive").unwrap()["id"].as_str().unwrap().to_string();
        assert!(a.requests("GET", &archive).is_empty(), "nothing of a board left out is read");
    });
}

#[test]
fn a_revoked_token_fails_clearly_and_deletes_nothing() {
    let f = Fake::start();
    f.with(seed);
    let env = block(env(&f, ""));
    assert!(backup(&env).0);
    let before = env.latest();
    f.with(|a| a.revoked = true);
    let o = env.run(&["backup"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("TRELLO_TOKEN") && err.contains("401"), "{err}");
    assert!(!err.contains(TOKEN) && !err.contains(KEY), "no credential in messages: {err}");
    assert_eq!(env.latest(), before, "no snapshot changes, nothing deleted");
}

#[test]
fn a_429_storm_is_waited_out() {
    let f = Fake::start();
    f.with(|a| {
        seed(a);
        // Far stricter than the client's pacing thinks: the app must say so with 429s.
        a.rate = Some((4, Duration::from_millis(700)));
    });
    let env = block(env(&f, "give_up_after_seconds = 60\n"));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}\n{:?}", failed(&report));
    f.with(|a| {
        let limited: Vec<usize> = (0..a.seen.len()).filter(|i| a.seen[*i].status == 429).collect();
        assert!(limited.len() >= 2, "the storm happened: {} 429s", limited.len());
        for i in limited {
            if let Some(next) = a.seen.get(i + 1) {
                let waited = next.at - a.seen[i].at;
                assert!(waited >= Duration::from_millis(900), "request after a 429 came {waited:?} later");
            }
        }
    });
    assert_eq!(env.latest()["Roadmap/cards"].1, 2);
}

#[test]
fn a_500_in_the_middle_of_paging_is_retried() {
    let f = Fake::start();
    f.with(|a| {
        let b = a.board("Big", None);
        let l = a.list(&b, "All");
        for i in 0..1500 {
            a.card(&l, &format!("card {i}"));
        }
        a.rule(Method::GET, "/cards/all", Some("before="), 0, Some(1), Act::Status(500, "Internal Server Error"));
    });
    let env = block(env(&f, ""));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    assert_eq!(type_of(&report, "Big/cards")["stats"]["live"], 1500);
    f.with(|a| {
        let pages = a.requests("GET", "/cards/all");
        assert_eq!(pages.iter().map(|r| r.status).collect::<Vec<_>>(), vec![200, 500, 200, 200]);
        assert_eq!(pages[1].q("before"), pages[2].q("before"), "the same page asked again");
    });
}

#[test]
fn a_truncated_json_body_fails_only_that_type() {
    let f = Fake::start();
    f.with(seed);
    let env = block(env(&f, ""));
    assert!(backup(&env).0);
    f.with(|a| {
        let gone = a.cards.iter().find(|c| c["name"] == "Rotate keys").unwrap()["id"].as_str().unwrap().to_string();
        a.delete_card(&gone);
        a.lists.retain(|l| l["name"] != "Done");
        a.rule(Method::GET, "/lists", None, 0, None, Act::Truncated);
    });
    let (ok, report, _) = backup(&env);
    assert!(!ok);
    let bad = failed(&report);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad.iter().all(|e| e.contains("/lists: ") && e.contains("not the JSON expected")), "{bad:?}");
    // The lists keep their last snapshot (nothing deleted); the rest went on.
    let latest = env.latest();
    assert_eq!(latest["Roadmap/lists"].0, 1);
    assert_eq!(latest["Roadmap/lists"].1, 2);
    assert_eq!(latest["Ops/cards"].0, 2);
    assert_eq!(latest["Ops/cards"].4, 1, "the deleted card is noticed in another type");
}

#[test]
fn a_card_changed_while_paging_is_read_once_and_caught_up() {
    let f = Fake::start();
    let (early, late) = f.with(|a| {
        let b = a.board("Big", None);
        let l = a.list(&b, "All");
        let ids: Vec<String> = (0..1500).map(|i| a.card(&l, &format!("card {i}"))).collect();
        // The first page holds the newest 1000; the second the oldest 500.
        let (early, late) = (ids[0].clone(), ids[1400].clone());
        let (e, l2) = (early.clone(), late.clone());
        a.rule(
            Method::GET,
            "/cards/all",
            Some("before="),
            0,
            Some(1),
            Act::Mutate(Box::new(move |a: &mut App| {
                a.edit_card(&e, |c| c["name"] = "renamed while paging (page 2)".into());
                a.edit_card(&l2, |c| c["name"] = "renamed while paging (page 1)".into());
            })),
        );
        (early, late)
    });
    let env = block(env(&f, ""));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    assert_eq!(type_of(&report, "Big/cards")["stats"]["live"], 1500, "each card once, none twice");
    assert_eq!(content(&env, &early)["data"]["name"], "renamed while paging (page 2)");
    assert_eq!(content(&env, &late)["data"]["name"], "card 1400", "page 1 was read before the change");
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    let cards = type_of(&report, "Big/cards");
    assert_eq!(cards["stats"]["full_read"], false);
    assert_eq!(content(&env, &late)["data"]["name"], "renamed while paging (page 1)", "caught up by the next cycle");
}

#[test]
fn an_attachment_whose_download_fails_is_not_stored() {
    let f = Fake::start();
    let s = f.with(seed);
    f.with(|a| a.rule(Method::GET, "/download/", None, 0, None, Act::Status(502, "Bad Gateway")));
    let env = block(env(&f, ""));
    let (ok, report, _) = backup(&env);
    assert!(!ok);
    let bad = failed(&report);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("Roadmap/cards: ") && bad[0].contains("spec v2.pdf") && bad[0].contains("gave up"),
        "{bad:?}"
    );
    assert!(!env.latest().contains_key("Roadmap/cards"), "no snapshot of cards without their files");
    f.with(|a| a.rules.clear());
    let (ok, _, err) = backup(&env);
    assert!(ok, "{err}");
    let file = &content(&env, &s.launch)["files"][0];
    assert_eq!(stored_file(&env, file["uid"].as_str().unwrap()), SPEC);
}

#[test]
fn an_unauthorized_page_is_never_stored_as_the_file() {
    let f = Fake::start();
    let s = f.with(seed);
    f.with(|a| a.rule(Method::GET, "/download/", None, 0, None, Act::UnauthorizedPage));
    let env = block(env(&f, ""));
    let (ok, report, _) = backup(&env);
    assert!(!ok);
    let bad = failed(&report);
    assert!(bad.len() == 1 && bad[0].contains("unauthorized") && bad[0].contains("not stored"), "{bad:?}");
    assert!(!env.latest().contains_key("Roadmap/cards"));
    // Without the header, the app itself answers with its unauthorized text.
    f.with(|a| a.rules.clear());
    let url = format!("{}/cards/{}/attachments/{}/download/x", f.base, s.launch, s.spec);
    let plain = block(async {
        let r = reqwest::get(&url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(plain, (401, "unauthorized permission requested".to_string()));
}

#[test]
fn a_board_that_disappears_between_listing_and_reading() {
    let f = Fake::start();
    f.with(seed);
    let env = block(env(&f, ""));
    assert!(backup(&env).0);
    let before = env.latest();
    f.with(|a| {
        let ops = a.boards.iter().find(|b| b["name"] == "Ops").unwrap()["id"].as_str().unwrap().to_string();
        a.rule(
            Method::GET,
            "/members/me/organizations",
            None,
            0,
            Some(1),
            Act::Mutate(Box::new(move |a: &mut App| a.boards.retain(|b| b["id"] != ops.as_str()))),
        );
    });
    let (ok, report, _) = backup(&env);
    assert!(!ok);
    let bad = failed(&report);
    assert_eq!(bad.len(), 7, "every type of the board fails: {bad:?}");
    assert!(bad.iter().all(|e| e.starts_with("Ops/") && e.contains("404") && e.contains("board \"Ops\"")), "{bad:?}");
    let latest = env.latest();
    for (ty, (cycle, live, _, _, deleted)) in &latest {
        if ty.starts_with("Ops/") {
            assert_eq!((*cycle, *live), (before[ty].0, before[ty].1), "{ty} keeps its last snapshot");
        } else {
            assert_eq!(*cycle, 2, "{ty} completes");
        }
        assert_eq!(*deleted, 0, "{ty}: nothing deleted");
    }
}

#[test]
fn restore_creates_a_copy_with_its_fields_and_files_and_changes_nothing() {
    let f = Fake::start();
    let s = f.with(seed);
    let env = block(env(&f, ""));
    assert!(backup(&env).0);
    let old = f.with(|a| {
        let c = a.cards.iter().find(|c| c["id"] == s.launch.as_str()).unwrap().clone();
        a.delete_card(&s.launch);
        c
    });
    assert!(backup(&env).0);
    let writes_before = f.with(|a| a.seen.len());

    let out = env.json(&["restore", &s.launch]);
    let new_id =
        out["restored"]["new_id"].as_str().or(out["new_id"].as_str()).unwrap_or_else(|| panic!("{out}")).to_string();
    assert_ne!(new_id, s.launch);
    f.with(|a| {
        let new = a.cards.iter().find(|c| c["id"] == new_id.as_str()).expect("the copy exists").clone();
        for k in ["name", "desc", "due", "idList", "idLabels", "idMembers"] {
            assert_eq!(new[k], old[k], "{k}");
        }
        let cl = a.checklists.iter().find(|c| c["idCard"] == new_id.as_str()).expect("its checklist");
        assert_eq!(cl["name"], "Steps");
        let states: Vec<(&str, &str)> = cl["checkItems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap(), i["state"].as_str().unwrap()))
            .collect();
        assert_eq!(states, vec![("write notes", "complete"), ("tag release", "incomplete")]);
        assert_eq!(new["customFieldItems"][0]["value"], json!({"number": "5"}));
        let comment = a
            .actions
            .iter()
            .find(|x| x["data"]["card"]["id"] == new_id.as_str() && x["type"] == "commentCard")
            .unwrap();
        let text = comment["data"]["text"].as_str().unwrap();
        assert!(text.contains("Looks good to me") && text.contains("Ada Lovelace"), "{text}");
        let att = &new["attachments"][0];
        assert_eq!(att["name"], "spec v2.pdf");
        assert_eq!(a.files[att["id"].as_str().unwrap()], SPEC, "the attachment's bytes uploaded again");
        let writes = &a.seen[writes_before..];
        assert!(writes.iter().all(|r| r.method != "DELETE"), "no DELETE");
        for r in writes.iter().filter(|r| r.method == "PUT") {
            assert!(r.path.starts_with(&format!("/1/cards/{new_id}/customField/")), "PUT only on the new card: {r:?}");
        }
        assert!(writes.iter().all(|r| r.method != "POST" || !r.path.contains(&s.plan)), "other cards untouched");
    });
}

#[tokio::test]
async fn restore_through_the_library_says_what_trello_cannot_create() {
    let f = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let text = format!(
        "[vault]\ncatalog = \"sqlite://x.db\"\nstore = \"blobs\"\n\n{}key_file = \"key\"\ntoken_file = \"token\"\n",
        config(&f, "")
    );
    let cfg = daybook::config::Config::parse(&text, dir.path().to_path_buf()).unwrap();
    let c = daybook::connectors::build(&cfg.orgs[0].sources[0]).unwrap();
    let (board, list) = f.with(|a| {
        let b = a.board("Roadmap", None);
        (b.clone(), a.list(&b, "Done"))
    });
    let e = c.restorable(&format!("board:{board}/members")).unwrap_err();
    assert!(e.contains("cannot create members"), "{e}");
    assert!(c.restorable("boards").is_err() && c.restorable(&format!("board:{board}/custom-fields")).is_err());
    let record = json!({"id": list, "idBoard": board, "name": "Done", "closed": false});
    let r = c.restore(&format!("board:{board}/lists"), &record, vec![]).await.unwrap();
    f.with(|a| {
        assert_eq!(a.lists.iter().filter(|l| l["name"] == "Done").count(), 2, "a copy, the original untouched");
        assert!(a.lists.iter().any(|l| l["id"] == r.new_id.as_str()));
        assert!(a.seen.iter().all(|r| r.method == "POST" && r.authorized), "{:?}", a.seen);
    });
}

/// Every data type's snapshots: name -> the cycles it has one for.
fn snapshot_cycles(env: &Env) -> std::collections::BTreeMap<String, Vec<i64>> {
    let mut out: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for s in env.json(&["snapshots"]).as_array().unwrap() {
        out.entry(s["data_type"].as_str().unwrap().to_string()).or_default().push(s["cycle"].as_i64().unwrap());
    }
    out
}

fn deleted_ids(env: &Env) -> Vec<String> {
    env.json(&["recover"]).as_array().unwrap().iter().map(|d| d["source_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn cards_made_in_one_second_are_all_backed_up() {
    let f = Fake::start();
    f.with(|a| {
        let b = a.board("Imported", None);
        let l = a.list(&b, "All");
        // A board copy or import: 1,500 cards in one second, more than a page holds.
        a.in_one_second(|a| {
            for i in 0..1500 {
                a.card(&l, &format!("card {i}"));
            }
        });
    });
    let env = block(env(&f, ""));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}\n{:?}", failed(&report));
    assert_eq!(type_of(&report, "Imported/cards")["stats"]["live"], 1500);
    f.with(|a| {
        let pages = a.requests("GET", "/cards/all");
        assert!(
            pages.iter().any(|p| p.q("limit") == Some("5000")),
            "a full page of one second is asked for larger: {pages:?}"
        );
    });
    // The id listing of an incremental cycle pages the same way: nothing is marked deleted.
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    let cards = type_of(&report, "Imported/cards");
    assert_eq!((cards["stats"]["full_read"].as_bool(), cards["stats"]["deleted"].as_i64()), (Some(false), Some(0)));
    assert!(deleted_ids(&env).is_empty());
}

#[test]
fn cards_and_comments_made_in_the_second_of_a_page_boundary_are_not_marked_deleted() {
    let f = Fake::start();
    // 99 cards and comments, then three of each made in one second: the next cycle's first
    // page (the newest 1000) ends inside that second.
    let (list, thread, cards, comments) = f.with(|a| {
        let b = a.board("Big", None);
        let l = a.list(&b, "All");
        let thread = a.card(&l, "the thread");
        for i in 0..98 {
            a.card(&l, &format!("old {i}"));
            a.comment(&thread, &format!("old {i}"));
        }
        a.comment(&thread, "old 98");
        let cards: Vec<String> = a.in_one_second(|a| (0..3).map(|i| a.card(&l, &format!("same second {i}"))).collect());
        let comments: Vec<String> =
            a.in_one_second(|a| (0..3).map(|i| a.comment(&thread, &format!("same second {i}"))).collect());
        (l, thread, cards, comments)
    });
    let env = block(env(&f, ""));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    assert_eq!(type_of(&report, "Big/cards")["stats"]["live"], 102);
    assert_eq!(type_of(&report, "Big/comments")["stats"]["live"], 102);
    f.with(|a| {
        for i in 0..998 {
            let c = a.card(&list, &format!("new {i}"));
            a.edit_card(&c, |_| {});
            a.comment(&thread, &format!("new {i}"));
        }
    });
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}\n{:?}", failed(&report));
    for ty in ["Big/cards", "Big/comments"] {
        let t = type_of(&report, ty);
        assert_eq!((t["stats"]["live"].as_i64(), t["stats"]["deleted"].as_i64()), (Some(1100), Some(0)), "{ty}: {t}");
    }
    assert!(deleted_ids(&env).is_empty(), "nothing marked deleted: {:?}", deleted_ids(&env));
    assert_eq!(content(&env, &cards[0])["data"]["name"], "same second 0");
    assert_eq!(content(&env, &comments[0])["data"]["data"]["text"], "same second 0");
    assert_eq!(content(&env, &thread)["data"]["comments"].as_array().unwrap().len(), 1100);
}

#[test]
fn comments_copied_with_a_card_are_backed_up() {
    let f = Fake::start();
    let (s, copy) = f.with(|a| {
        let s = seed(a);
        let todo = a.lists[0]["id"].as_str().unwrap().to_string();
        let copy = a.copy_card(&s.launch, &todo);
        (s, copy)
    });
    let env = block(env(&f, ""));
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    assert_eq!(type_of(&report, "Roadmap/comments")["stats"]["live"], 2, "the comment and its copy");
    let on_copy = &content(&env, &copy)["data"]["comments"];
    assert_eq!(on_copy[0]["text"], "Looks good to me", "the copied card keeps its comments: {on_copy}");
    // Incrementally too: a new copy's comments come with the changes, none is lost.
    let copy2 = f.with(|a| {
        let todo = a.lists[0]["id"].as_str().unwrap().to_string();
        a.copy_card(&s.launch, &todo)
    });
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    let comments = type_of(&report, "Roadmap/comments");
    assert_eq!((comments["stats"]["added"].as_i64(), comments["stats"]["deleted"].as_i64()), (Some(1), Some(0)));
    assert_eq!(content(&env, &copy2)["data"]["comments"][0]["text"], "Looks good to me");
    f.with(|a| {
        for r in a.requests("GET", "/actions") {
            assert!(r.q("filter").unwrap_or_default().contains("copyCommentCard"), "{r:?}");
        }
    });
}

#[test]
fn a_403_says_what_trello_said() {
    let f = Fake::start();
    f.with(|a| {
        seed(a);
        let body = json!({"error": "API_TOO_MANY_CARDS_REQUESTED", "message": "Requested too many cards"});
        a.rule(Method::GET, "/cards/all", None, 0, None, Act::Json(403, body));
    });
    let env = block(env(&f, ""));
    let (ok, report, _) = backup(&env);
    assert!(!ok);
    let bad = failed(&report);
    assert_eq!(bad.len(), 2, "the two boards' cards: {bad:?}");
    for e in &bad {
        assert!(e.contains("API_TOO_MANY_CARDS_REQUESTED: Requested too many cards") && e.contains("403"), "{e}");
        assert!(!e.contains("credentials") && !e.contains("TRELLO_TOKEN"), "not a credentials problem: {e}");
    }
    assert_eq!(type_of(&report, "Roadmap/lists")["stats"]["live"], 2, "the rest completes");
}

#[test]
fn a_failing_read_shows_no_record_content() {
    let f = Fake::start();
    let (secret, echoed) = ("SECRET-LABEL-NAME-8d2f", "SECRET-ECHOED-NAME-41c7");
    f.with(|a| {
        seed(a);
        let road = a.boards[0]["id"].as_str().unwrap().to_string();
        // A label without an id (not Trello's shape), and an error answer that quotes a record.
        a.labels.push(json!({"idBoard": road, "name": secret, "color": "red"}));
        let body = json!({"message": "invalid value for fields", "echo": {"name": echoed, "desc": "x".repeat(400)}});
        a.rule(Method::GET, "/lists", None, 0, None, Act::Json(400, body));
    });
    let env = block(env(&f, ""));
    let o = env.run(&["backup", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let labels = type_of(&report, "Roadmap/labels")["error"].as_str().unwrap().to_string();
    assert!(labels.contains("an object without an id"), "{labels}");
    let lists = type_of(&report, "Roadmap/lists")["error"].as_str().unwrap().to_string();
    assert!(lists.contains("HTTP 400") && lists.contains("invalid value for fields"), "the app's words: {lists}");
    for s in [secret, echoed] {
        assert!(!stdout.contains(s) && !stderr.contains(s), "record content in the output:\n{stdout}\n{stderr}");
    }
}

#[test]
fn an_attachment_longer_or_shorter_than_listed_is_not_stored() {
    for (listed, says) in [(SPEC.len() + 5, "gave"), (SPEC.len() - 5, "longer than")] {
        let f = Fake::start();
        f.with(|a| {
            let s = seed(a);
            a.card_mut(&s.launch)["attachments"][0]["bytes"] = listed.into();
        });
        let env = block(env(&f, ""));
        let (ok, report, _) = backup(&env);
        assert!(!ok);
        let bad = failed(&report);
        assert!(bad.len() == 1 && bad[0].contains(says) && bad[0].contains("not stored"), "{listed}: {bad:?}");
        assert!(!env.latest().contains_key("Roadmap/cards"), "no snapshot of cards without their files");
    }
}

#[test]
fn a_second_board_of_the_same_name_changes_nothing_of_the_first() {
    let f = Fake::start();
    f.with(|a| {
        let b = a.board("Ops", None);
        let l = a.list(&b, "Inbox");
        a.card(&l, "Rotate keys");
    });
    let env = block(env(&f, ""));
    assert!(backup(&env).0);
    f.with(|a| {
        let b = a.board("Ops", None);
        let l = a.list(&b, "Inbox");
        a.card(&l, "Renew certificates");
    });
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}");
    let first = type_of(&report, "Ops/cards");
    assert_eq!((first["stats"]["live"].as_i64(), first["stats"]["added"].as_i64()), (Some(1), Some(0)), "{first}");
    assert_eq!(snapshot_cycles(&env)["Ops/cards"], vec![1, 2], "the first board's cards keep their history");
    let second: Vec<&str> = report["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["data_type"].as_str().unwrap())
        .filter(|t| t.starts_with("Ops (") && t.ends_with("/cards"))
        .collect();
    assert_eq!(second.len(), 1, "the newer board is told apart by its short link: {second:?}");
    assert!(deleted_ids(&env).is_empty());
}

/// Needs the engine's half of issue 7 (a data type's display name follows its key).
#[test]
fn renaming_a_board_and_a_list_keeps_their_history() {
    let f = Fake::start();
    let s = f.with(seed);
    let env = block(env(&f, ""));
    assert!(backup(&env).0);
    let before = env.json(&["history", &s.launch]);
    let todo = f.with(|a| {
        a.boards[0]["name"] = "Roadmap 2027".into();
        let todo = a.lists[0]["id"].as_str().unwrap().to_string();
        a.lists[0]["name"] = "Next".into();
        a.edit_card(&s.launch, |c| c["name"] = "Launch, renamed board".into());
        todo
    });
    let (ok, report, err) = backup(&env);
    assert!(ok, "{err}\n{:?}", failed(&report));
    for kind in ["cards", "lists", "comments", "labels", "checklists", "members", "custom-fields"] {
        assert_eq!(type_of(&report, &format!("Roadmap 2027/{kind}"))["stats"]["deleted"], 0, "{kind}");
    }
    let cycles = snapshot_cycles(&env);
    assert!(!cycles.keys().any(|t| t.starts_with("Roadmap/")), "one data type, under its new name: {cycles:?}");
    assert_eq!(cycles["Roadmap 2027/cards"], vec![1, 2], "its cycles continue");
    assert_eq!(cycles["Roadmap 2027/lists"], vec![1, 2]);

    let after = env.json(&["history", &s.launch]);
    assert_eq!(after["record"]["sid"], before["record"]["sid"], "the same record");
    assert_eq!(after["record"]["data_type"], "Roadmap 2027/cards");
    let versions: Vec<(i64, bool)> = after["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["deleted"].as_bool().unwrap()))
        .collect();
    assert_eq!(versions.len(), 2, "its versions continue: {after}");
    assert!(versions.iter().all(|(_, deleted)| !deleted), "{after}");
    let list = env.json(&["show", &todo]);
    assert_eq!(list["content"]["data"]["name"], "Next", "the renamed list is a new version of the same record");
    assert!(deleted_ids(&env).is_empty(), "no record marked deleted: {:?}", deleted_ids(&env));
}
