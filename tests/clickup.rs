//! The ClickUp connector against a local ClickUp (tests/fake_clickup) that follows the
//! public API v2 reference, driven through the real `daybook` binary.
#![recursion_limit = "256"]

mod common;
mod fake_clickup;

use common::{Backend, Env, PASS};
use fake_clickup::{Answer, Fake, Fault, TOKEN, World};
use serde_json::{Value, json};

/// 2024-01-01: when the seeded tasks last changed, well before any cycle's cursor.
const OLD: i64 = 1_704_067_200_000;
const CONTRACT: &[u8] = b"%PDF-1.7 signed contract \x00\x01\x02 with binary bytes";

/// A fake ClickUp seeded by `world`, and a vault whose config points at it (with `extra`
/// keys for the source).
async fn setup(b: Backend, extra: &str, world: impl FnOnce(&mut World)) -> (Fake, Env) {
    let fake = Fake::start().await;
    fake.with(world);
    let env = Env::new(b).await;
    config(&env, &fake, extra);
    (fake, env)
}

fn config(env: &Env, fake: &Fake, extra: &str) {
    env.write_config(&format!(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc.\"\n\n[[orgs.sources]]\nname = \"clickup\"\nkind = \"clickup\"\n\
         base_url = \"{}\"\nrequests_per_minute = 60000\ngive_up_after_seconds = 20\n{extra}",
        fake.base
    ));
    env.ok(&["init"]);
}

/// Workspace Acme (9001) > space Sales (790) > folder Pipeline (457) > list Leads (124),
/// and the folderless list Inbox (125). Tasks: t1 (fields, tags, attachment, comments), t2
/// closed, t3 archived, t4 a subtask of t1, t5 in Inbox.
fn seed(w: &mut World) {
    w.team("9001", "Acme");
    w.space("9001", "790", "Sales");
    w.folder("790", "457", "Pipeline");
    w.list_in("folder", "457", "124", "Leads");
    w.list_in("space", "790", "125", "Inbox");
    let stage = json!({
        "id": "f-stage", "name": "Stage", "type": "drop_down", "date_created": "1621915186877", "hide_from_guests": false, "required": false,
        "type_config": {"sorting": "manual", "new_drop_down": true, "options": [
            {"id": "opt-new-0000", "name": "New", "color": "#b5bcc2", "orderindex": 0},
            {"id": "opt-won-1111", "name": "Won", "color": "#2ecd6f", "orderindex": 1}
        ]}
    });
    let note = json!({"id": "f-note", "name": "Note", "type": "short_text", "type_config": {}, "date_created": "1621915186877", "hide_from_guests": false, "required": false});
    w.fields.insert("124".into(), vec![stage.clone(), note.clone()]);
    w.fields.insert("125".into(), vec![note.clone()]);
    w.views.insert(
        "team/9001".into(),
        vec![json!({"id": "3c-105", "name": "Everything", "type": "list", "parent": {"id": "9001", "type": 7}})],
    );
    w.views.insert(
        "list/124".into(),
        vec![json!({"id": "3c-107", "name": "Board", "type": "board", "parent": {"id": "124", "type": 6}})],
    );
    w.task("124", "t1", "Call Bob", OLD);
    w.edit("t1", |t| {
        t["status"] =
            json!({"id": "p1_prog", "status": "in progress", "color": "#4194f6", "orderindex": 1, "type": "custom"});
        t["priority"] = json!({"color": "#ffcc00", "id": "2", "orderindex": "2", "priority": "high"});
        t["due_date"] = json!("1767225600000");
        t["tags"] = json!([{"name": "urgent", "tag_fg": "#fff", "tag_bg": "#f00", "creator": 183}]);
        let mut s = stage.clone();
        s["value"] = json!(1);
        let mut n = note.clone();
        n["value"] = json!("prefers mornings");
        t["custom_fields"] = json!([s, n]);
    });
    w.task_mut("t1")["date_updated"] = json!(OLD.to_string());
    w.attach("t1", "att-1.pdf", "contract.pdf", CONTRACT);
    w.task("124", "t2", "Send quote", OLD);
    w.task_mut("t2")["status"] = json!({"status": "complete", "type": "closed", "orderindex": 2, "color": "#6bc950"});
    w.task("124", "t3", "Old lead", OLD);
    w.task_mut("t3")["archived"] = json!(true);
    w.task("124", "t4", "Find Bob's number", OLD);
    w.task_mut("t4")["parent"] = json!("t1");
    w.task("125", "t5", "Triage mail", OLD);
    w.comment("t1", "c1", "Bob is out until Monday", OLD);
    w.comment("t1", "c2", "Called, no answer", OLD + 1000);
    w.comments.get_mut("t1").unwrap()[1]["reply_count"] = json!("1");
    w.replies.insert(
        "c2".into(),
        vec![json!({"id": "c3", "comment": [{"text": "Try again Friday"}], "comment_text": "Try again Friday", "user": {"id": 183, "username": "Ada Admin"}, "date": (OLD + 2000).to_string(), "reactions": []})],
    );
}

struct Run {
    ok: bool,
    report: Value,
    stderr: String,
}

async fn backup(env: &Env) -> Run {
    let mut cmd = env.cmd(&["backup", "--json"]);
    cmd.env("CLICKUP_TOKEN", TOKEN);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the token never appears in output");
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    Run { ok: out.status.success(), report, stderr }
}

impl Run {
    fn ty(&self, name: &str) -> &Value {
        self.report["types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["data_type"] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", self.report))
    }
    fn stats(&self, name: &str) -> (i64, i64, i64, i64) {
        let s = &self.ty(name)["stats"];
        let g = |k: &str| s[k].as_i64().unwrap();
        (g("live"), g("added"), g("changed"), g("deleted"))
    }
    fn error(&self, name: &str) -> String {
        self.ty(name)["error"].as_str().unwrap_or_default().to_string()
    }
    fn failed(&self) -> Vec<String> {
        self.report["types"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !t["error"].is_null())
            .map(|t| t["data_type"].as_str().unwrap().to_string())
            .collect()
    }
    fn deleted(&self) -> i64 {
        self.report["types"].as_array().unwrap().iter().map(|t| t["stats"]["deleted"].as_i64().unwrap()).sum()
    }
}

fn content(env: &Env, id: &str) -> Value {
    env.json(&["show", id])["content"].clone()
}

async fn file_bytes(env: &Env, uid: &str) -> Vec<u8> {
    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = daybook::vault::Vault::open(&cfg, PASS).await.unwrap();
    common::read_file(&vault, "acme", uid).await
}

both_backends!(backs_up_every_data_type_with_attachments_and_says_what_it_saw);

async fn backs_up_every_data_type_with_attachments_and_says_what_it_saw(b: Backend) {
    let (fake, env) = setup(b, "", seed).await;
    let r = backup(&env).await;
    assert!(r.ok, "{}\n{}", r.report, r.stderr);
    let live: Vec<(String, i64)> = [
        "workspaces",
        "Acme/spaces",
        "Acme/folders",
        "Acme/lists",
        "Acme/fields",
        "Acme/views",
        "Acme/tasks",
        "Acme/comments",
    ]
    .iter()
    .map(|t| (t.to_string(), r.stats(t).0))
    .collect();
    let want: Vec<(String, i64)> = [
        ("workspaces", 1),
        ("Acme/spaces", 1),
        ("Acme/folders", 1),
        ("Acme/lists", 2),
        ("Acme/fields", 2),
        ("Acme/views", 2),
        ("Acme/tasks", 5),
        ("Acme/comments", 3),
    ]
    .iter()
    .map(|(t, n)| (t.to_string(), *n))
    .collect();
    assert_eq!(live, want, "closed, archived and subtasks are all backed up; comment replies too");

    let src = &r.report["sources"][0];
    let visible: Vec<&str> = src["visible"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        visible,
        vec!["workspace Acme (9001)", "space Acme/Sales (790)"],
        "the cycle log names what the token sees"
    );
    assert!(src["requests"].as_u64().unwrap() > 10);

    let t1 = content(&env, "t1");
    assert_eq!(t1["data"]["name"], "Call Bob");
    assert_eq!(t1["data"]["custom_fields"][1]["value"], "prefers mornings", "custom field values are part of the task");
    assert_eq!(t1["files"][0]["name"], "contract.pdf");
    assert_eq!(t1["files"][0]["size"], CONTRACT.len());
    assert_eq!(
        file_bytes(&env, t1["files"][0]["uid"].as_str().unwrap()).await,
        CONTRACT,
        "attachment bytes are in the vault"
    );
    assert_eq!(content(&env, "t3")["data"]["archived"], true);
    assert_eq!(content(&env, "c3")["data"]["parent_comment_id"], "c2");
    assert_eq!(content(&env, "c1")["data"]["task_id"], "t1");
    assert_eq!(content(&env, "f-stage")["data"]["type"], "drop_down");

    fake.with(|w| {
        for q in w.log.iter().filter(|q| q.host == "api") {
            assert_eq!(q.auth.as_deref(), Some(TOKEN), "the token goes in the Authorization header");
            assert!(!q.query.values().any(|v| v.contains(TOKEN)), "never in a URL");
        }
        let files: Vec<_> = w.log.iter().filter(|q| q.host == "files").collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].auth, None, "the token is not sent to the attachment host");
        let pages = w.requests("GET", "/list/124/task");
        assert!(pages.iter().all(|q| q.q("include_closed") == Some("true") && q.q("subtasks") == Some("true")));
        assert!(pages.iter().any(|q| q.q("archived") == Some("true")), "archived tasks are asked for");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_cycles_ask_only_for_changes_and_notice_deletions() {
    let (fake, env) = setup(Backend::Sqlite, "", seed).await;
    assert!(backup(&env).await.ok);

    // Nothing changed: listings only, no task fetched again, no file downloaded again.
    fake.clear_log();
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks"), (5, 0, 0, 0));
    assert_eq!(r.ty("Acme/tasks")["stats"]["full_read"], false);
    fake.with(|w| {
        assert_eq!(
            w.requests("GET", "/task/t").iter().filter(|q| !q.path.ends_with("/comment")).count(),
            0,
            "no task is fetched whole"
        );
        let feed: Vec<_> =
            w.requests("GET", "/list/").into_iter().filter(|q| q.q("date_updated_gt").is_some()).collect();
        assert_eq!(feed.len(), 4, "one change request per list and archive state");
        let since: i64 = feed[0].q("date_updated_gt").unwrap().parse().unwrap();
        assert!(
            since > OLD && since < chrono::Utc::now().timestamp_millis() - 299_000,
            "the cursor minus the overlap window"
        );
        assert!(w.log.iter().all(|q| q.host == "api"), "the attachment is not downloaded again");
    });

    // One task edited, one deleted, one comment added.
    fake.with(|w| {
        w.edit("t5", |t| t["name"] = json!("Triage mail (done)"));
        w.remove_task("t2");
        w.comment("t5", "c9", "Inbox zero", OLD + 5000);
    });
    fake.clear_log();
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks"), (4, 0, 1, 1));
    assert_eq!(r.stats("Acme/comments"), (4, 1, 0, 0));
    fake.with(|w| {
        let fetched: Vec<String> = w
            .requests("GET", "/task/")
            .iter()
            .filter(|q| !q.path.ends_with("/comment"))
            .map(|q| q.path.clone())
            .collect();
        // The changed task, and the deleted one, asked for by id to confirm it is gone.
        assert_eq!(fetched, vec!["/task/t5", "/task/t2"], "only the changed and the deleted task are fetched");
    });
    assert_eq!(content(&env, "t5")["data"]["name"], "Triage mail (done)");
    let gone = env.json(&["show", "t2"]);
    assert!(gone["deleted_since"].is_string(), "the deletion is noticed: {gone}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_past_100_tasks() {
    let (fake, env) = setup(Backend::Sqlite, "attachments = false\ncomments = false\n", |w| {
        seed(w);
        for i in 0..250 {
            w.task("125", &format!("bulk{i}"), &format!("Bulk task {i}"), OLD);
        }
        for i in 0..30 {
            w.task("125", &format!("arch{i}"), &format!("Archived {i}"), OLD);
            w.task_mut(&format!("arch{i}"))["archived"] = json!(true);
        }
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks").0, 5 + 250 + 30);
    fake.with(|w| {
        let pages: Vec<(String, String)> = w
            .requests("GET", "/list/125/task")
            .iter()
            .map(|q| (q.q("archived").unwrap().to_string(), q.q("page").unwrap().to_string()))
            .collect();
        let want: Vec<(String, String)> = [("false", "0"), ("false", "1"), ("false", "2"), ("true", "0")]
            .iter()
            .map(|(a, p)| (a.to_string(), p.to_string()))
            .collect();
        assert_eq!(pages, want, "pages until last_page, active then archived");
    });
    assert_eq!(content(&env, "bulk249")["data"]["name"], "Bulk task 249");
}

#[tokio::test(flavor = "multi_thread")]
async fn scope_includes_and_excludes_workspaces_folders_and_lists() {
    let (fake, env) = setup(Backend::Sqlite, "include = [\"Acme\"]\nexclude = [\"Sales/Pipeline\", \"9002\"]\n", |w| {
        seed(w);
        w.team("9002", "Personal");
        w.space("9002", "800", "Home");
        w.list_in("space", "800", "801", "Chores");
        w.task("801", "h1", "Fix the sink", OLD);
        w.team("9003", "Side project");
        w.space("9003", "900", "Ideas");
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    let types: Vec<&str> =
        r.report["types"].as_array().unwrap().iter().map(|t| t["data_type"].as_str().unwrap()).collect();
    assert!(types.iter().all(|t| !t.starts_with("Personal/") && !t.starts_with("Side project/")), "{types:?}");
    assert_eq!(r.stats("Acme/tasks").0, 1, "only the Inbox list's task: the Pipeline folder is excluded");
    assert_eq!(r.stats("Acme/lists").0, 1);
    assert_eq!(r.stats("Acme/folders").0, 0);
    assert_eq!(r.stats("workspaces").0, 1);
    let skipped: Vec<&str> =
        r.report["sources"][0]["skipped"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for left_out in ["workspace Personal (9002)", "workspace Side project (9003)", "folder Acme/Sales/Pipeline (457)"] {
        assert!(skipped.contains(&left_out), "{left_out} in {skipped:?}");
    }
    fake.with(|w| {
        assert!(w.requests("GET", "/team/9002").is_empty(), "an excluded workspace is not walked");
        assert!(w.requests("GET", "/list/124").is_empty(), "an excluded folder's lists are not read");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_fails_clearly_and_deletes_nothing() {
    let (fake, env) = setup(Backend::Sqlite, "", seed).await;
    assert!(backup(&env).await.ok);
    let before = env.latest();

    fake.with(|w| w.token = "pk_someone_else".into());
    let r = backup(&env).await;
    assert!(!r.ok, "exit status 1");
    assert!(r.stderr.contains("CLICKUP_TOKEN") && r.stderr.contains("401"), "{}", r.stderr);
    assert_eq!(r.deleted(), 0);
    assert_eq!(env.latest(), before, "no snapshot was taken, nothing marked deleted");
    assert!(env.json(&["show", "t1"])["deleted_since"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_completes_and_honours_x_ratelimit_reset() {
    let (fake, env) = setup(Backend::Sqlite, "", |w| {
        seed(w);
        w.per_second = Some(8);
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks").0, 5);
    fake.with(|w| assert!(w.limited.len() >= 3, "a storm of 429s: {}", w.limited.len()));
    assert_waited_for_reset(&fake, "");
}

/// No request after a 429 came before the X-RateLimit-Reset it was told (on ClickUp's clock).
fn assert_waited_for_reset(fake: &Fake, context: &str) {
    fake.with(|w| {
        for &(hit, reset) in &w.limited {
            if let Some(next) = w.log[hit + 1..].iter().find(|q| q.host == "api") {
                assert!(
                    next.at_ms >= reset * 1000,
                    "{context}{} came {} ms before X-RateLimit-Reset on ClickUp's clock",
                    next.path,
                    reset * 1000 - next.at_ms
                );
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_in_the_middle_of_paging_is_retried_and_the_listing_completes() {
    let (fake, env) = setup(Backend::Sqlite, "attachments = false\ncomments = false\n", |w| {
        seed(w);
        for i in 0..150 {
            w.task("125", &format!("bulk{i}"), &format!("Bulk task {i}"), OLD);
        }
        w.faults.push(Fault::new("GET", "/list/125/task", Some(("page", "1")), 2, Answer::Status(500)));
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks").0, 155);
    fake.with(|w| {
        let page1 = w.requests("GET", "/list/125/task").iter().filter(|q| q.q("page") == Some("1")).count();
        assert_eq!(page1, 3, "two 500s, then the page");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_json_body_leaves_that_type_uncommitted() {
    let (fake, env) = setup(Backend::Sqlite, "", seed).await;
    assert!(backup(&env).await.ok);
    fake.with(|w| {
        w.remove_task("t5");
        w.faults.push(Fault::new("GET", "/list/124/task", Some(("archived", "false")), 1, Answer::Truncated));
    });
    let r = backup(&env).await;
    assert!(!r.ok);
    assert_eq!(r.failed(), vec!["Acme/tasks"]);
    assert!(r.error("Acme/tasks").contains("not the JSON expected"), "{}", r.error("Acme/tasks"));
    let latest = env.latest();
    assert_eq!(latest["Acme/tasks"].0, 1, "the tasks' last snapshot is kept");
    assert_eq!(latest["Acme/lists"].0, 2, "the other types complete");
    assert!(env.json(&["show", "t5"])["deleted_since"].is_null(), "nothing deleted from an incomplete read");
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks").3, 1, "the next whole cycle notices the deletion");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_changes_while_being_paged_is_caught_next_cycle() {
    let (fake, env) = setup(Backend::Sqlite, "comments = false\n", |w| {
        seed(w);
        for i in 0..150 {
            w.task("125", &format!("p{i}"), &format!("Paged task {i}"), OLD);
        }
        let mut fired = false;
        w.hooks.push(Box::new(move |q, w| {
            if !fired && q.path == "/list/125/task" && q.q("page") == Some("1") {
                fired = true;
                // p0, on the page already read, is edited while page 1 is being read.
                w.edit("p0", |t| t["name"] = json!("Renamed mid-read"));
            }
        }));
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks").0, 155, "no task lost or doubled");
    assert_eq!(content(&env, "p0")["data"]["name"], "Paged task 0");
    fake.clear_log();
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks"), (155, 0, 1, 0));
    assert_eq!(
        content(&env, "p0")["data"]["name"],
        "Renamed mid-read",
        "the change made during the read is in the next cycle's changes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_deleted_while_the_listing_pages_is_the_only_deletion() {
    let (fake, env) = setup(Backend::Sqlite, "comments = false\n", |w| {
        seed(w);
        for i in 0..150 {
            w.task("125", &format!("p{i}"), &format!("Paged task {i}"), OLD);
        }
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks").0, 155);
    fake.with(|w| {
        let mut fired = false;
        w.hooks.push(Box::new(move |q, w| {
            // p0 goes while the id listing (no date filter) reads page 1: p100 moves onto
            // page 0, already read, and the listing never shows it.
            if !fired && q.path == "/list/125/task" && q.q("page") == Some("1") && q.q("date_updated_gt").is_none() {
                fired = true;
                w.remove_task("p0");
            }
        }));
    });
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    // p0 was listed before it went; p100, skipped, was asked for by id and kept.
    assert_eq!(r.stats("Acme/tasks"), (155, 0, 0, 0), "no task is marked deleted for a shifted page");
    assert!(env.json(&["recover"]).as_array().unwrap().is_empty(), "no phantom deletion");
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/tasks"), (154, 0, 0, 1), "the next cycle notices p0 gone, and nothing else");
    let deleted = env.json(&["recover", "--type", "Acme/tasks"]);
    let ids: Vec<&str> = deleted.as_array().unwrap().iter().map(|d| d["source_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["p0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_of_a_task_skipped_by_a_shifted_page_are_not_marked_deleted() {
    let (fake, env) = setup(Backend::Sqlite, "", |w| {
        seed(w);
        for i in 0..150 {
            w.task("125", &format!("p{i}"), &format!("Paged task {i}"), OLD);
        }
        w.comment("p100", "k1", "keep me", OLD);
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    env.sid("Acme/comments", "k1"); // p100's comment is backed up
    fake.with(|w| {
        let mut n = 0;
        w.hooks.push(Box::new(move |q, w| {
            // Both listings of this cycle (the tasks' and the comment read's) lose a task
            // from page 0 while they read page 1: each skips one task, p100 or p101.
            if q.path == "/list/125/task" && q.q("page") == Some("1") && q.q("date_updated_gt").is_none() && n < 2 {
                w.remove_task(&format!("p{n}"));
                n += 1;
            }
        }));
    });
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    let phantom: Vec<String> = env
        .json(&["recover"])
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_id"].as_str().unwrap().to_string())
        .filter(|id| !["p0", "p1"].contains(&id.as_str()))
        .collect();
    assert!(phantom.is_empty(), "records marked deleted though they exist: {phantom:?}");
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    let mut gone: Vec<String> = env
        .json(&["recover"])
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_id"].as_str().unwrap().to_string())
        .collect();
    gone.sort();
    assert_eq!(gone, ["p0", "p1"], "exactly the deleted tasks");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attachment_whose_download_fails_is_retried_then_fails_its_type_only() {
    let (fake, env) = setup(Backend::Sqlite, "", |w| {
        seed(w);
        w.faults.push(Fault::new("GET", "/att-1.pdf/contract.pdf", None, 2, Answer::Status(503)));
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "two 503s are retried: {}", r.stderr);
    let uid = content(&env, "t1")["files"][0]["uid"].as_str().unwrap().to_string();
    assert_eq!(file_bytes(&env, &uid).await, CONTRACT);

    // A new attachment whose link is dead: the tasks are not committed, the rest is.
    fake.with(|w| {
        w.attach("t5", "att-2.png", "screenshot.png", b"png bytes");
        w.edit("t5", |_| {});
        w.files.remove("/att-2.png/screenshot.png");
    });
    let r = backup(&env).await;
    assert!(!r.ok);
    assert_eq!(r.failed(), vec!["Acme/tasks"]);
    let e = r.error("Acme/tasks");
    assert!(e.contains("screenshot.png") && e.contains("404"), "{e}");
    assert_eq!(r.deleted(), 0);
    fake.with(|w| w.files.insert("/att-2.png/screenshot.png".into(), b"png bytes".to_vec()));
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(content(&env, "t5")["files"][0]["name"], "screenshot.png");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_that_disappears_between_listing_and_reading() {
    let (fake, env) = setup(Backend::Sqlite, "", seed).await;
    assert!(backup(&env).await.ok);
    fake.with(|w| {
        let mut fired = false;
        w.hooks.push(Box::new(move |q, w| {
            if !fired && q.path.starts_with("/list/124/") {
                fired = true;
                w.remove_list("124");
            }
        }));
    });
    let r = backup(&env).await;
    assert!(!r.ok);
    let e = r.error("Acme/tasks");
    assert!(e.contains("Acme/Sales/Pipeline/Leads") && e.contains("404"), "{e}");
    assert!(r.failed().contains(&"Acme/fields".to_string()));
    for ok in ["workspaces", "Acme/spaces", "Acme/lists"] {
        assert!(r.ty(ok)["error"].is_null(), "{ok} completes");
    }
    assert_eq!(r.deleted(), 0, "nothing deleted");
    assert!(env.json(&["show", "t1"])["deleted_since"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_creates_a_copy_with_its_fields_and_attachment_and_changes_nothing() {
    let fake = Fake::start().await;
    fake.with(seed);
    let env = Env::new(Backend::Sqlite).await;
    std::fs::write(env.path().join("token.txt"), format!("{TOKEN}\n")).unwrap();
    config(&env, &fake, "token_file = \"token.txt\"\n");
    assert!(backup(&env).await.ok);
    fake.clear_log();

    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let conn = daybook::connectors::build(&cfg.orgs[0].sources[0]).unwrap();
    assert!(conn.restorable("9001-tasks").is_ok());
    let no = conn.restorable("9001-fields").unwrap_err();
    assert!(no.contains("cannot create custom field"), "{no}");

    // A comment comes back on its task, as a new comment.
    let comment = content(&env, "c1");
    let c = conn.restore("9001-comments", &comment, vec![]).await.unwrap();

    // The task was deleted: it comes back as a new task in its list.
    fake.with(|w| w.remove_task("t1"));
    let stored = content(&env, "t1");
    let uid = stored["files"][0]["uid"].as_str().unwrap();
    let files = vec![daybook::connectors::RestoreFile {
        key: uid.into(),
        name: "contract.pdf".into(),
        bytes: file_bytes(&env, uid).await,
    }];
    let done = conn.restore("9001-tasks", &stored, files).await.unwrap();
    assert_eq!(done.files_uploaded, 1);
    assert!(!done.notes.is_empty());

    fake.with(|w| {
        assert_eq!(w.created_tasks.len(), 1);
        let (list, body) = &w.created_tasks[0];
        assert_eq!(list, "124");
        assert_eq!(body["name"], "Call Bob");
        assert_eq!(body["markdown_content"], "**Call Bob**: details");
        assert_eq!(body["status"], "in progress");
        assert_eq!(body["priority"], 2);
        assert_eq!(body["due_date"], 1767225600000_i64);
        assert_eq!(body["tags"], json!(["urgent"]));
        let mut fields = body["custom_fields"].as_array().unwrap().clone();
        fields.sort_by_key(|f| f["id"].as_str().unwrap().to_string());
        assert_eq!(
            fields,
            vec![
                json!({"id": "f-note", "value": "prefers mornings"}),
                json!({"id": "f-stage", "value": "opt-won-1111"})
            ]
        );
        let new_id = w.tasks.last().unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(done.new_id, new_id);
        assert_eq!(
            w.uploads,
            vec![(new_id, "contract.pdf".to_string(), CONTRACT.to_vec())],
            "the attachment bytes are uploaded to the copy"
        );
        assert_eq!(w.created_comments.len(), 1);
        let (task, body) = &w.created_comments[0];
        assert_eq!(task, "t1");
        assert!(body["comment_text"].as_str().unwrap().starts_with("Bob is out until Monday"));
        assert!(body["comment_text"].as_str().unwrap().contains("Ada Admin"));
        assert!(!c.new_id.is_empty());
        assert!(w.log.iter().all(|q| q.method == "GET" || q.method == "POST"), "no PUT or DELETE");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_past_25_comments() {
    let (fake, env) = setup(Backend::Sqlite, "attachments = false\n", |w| {
        seed(w);
        for i in 0..60 {
            w.comment("t5", &format!("k{i}"), &format!("Comment {i}"), OLD + i * 1000);
        }
    })
    .await;
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme/comments").0, 3 + 60);
    assert_eq!(content(&env, "k0")["data"]["comment_text"], "Comment 0", "the oldest comment too");
    fake.with(|w| {
        let pages: Vec<Option<String>> =
            w.requests("GET", "/task/t5/comment").iter().map(|q| q.q("start_id").map(str::to_string)).collect();
        assert_eq!(
            pages,
            vec![None, Some("k35".into()), Some("k10".into())],
            "start/start_id of the oldest comment so far"
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_the_token_was_not_given_fails_alone_and_says_so() {
    let (_fake, env) = setup(Backend::Sqlite, "", |w| {
        seed(w);
        w.team("9002", "Personal");
        w.space("9002", "800", "Home");
        w.not_authorized.push("9002".into());
    })
    .await;
    let r = backup(&env).await;
    assert!(!r.ok, "exit status 1");
    let e = r.error("Personal/tasks");
    assert!(e.contains("OAUTH_027: Team not authorized"), "what ClickUp said: {e}");
    assert!(!e.contains("credentials") && !e.contains("CLICKUP_TOKEN"), "the token itself is fine: {e}");
    assert!(r.failed().iter().all(|t| t.starts_with("Personal/")), "{:?}", r.failed());
    assert_eq!(r.stats("Acme/tasks").0, 5, "the other workspace is backed up");
}

#[tokio::test(flavor = "multi_thread")]
async fn x_ratelimit_reset_is_read_against_clickups_own_clock() {
    for skew_ms in [3_600_000_i64, -3_600_000] {
        let (fake, env) = setup(Backend::Sqlite, "attachments = false\n", |w| {
            seed(w);
            w.per_second = Some(8);
            w.skew_ms = skew_ms;
        })
        .await;
        let r = backup(&env).await;
        assert!(r.ok, "ClickUp's clock {skew_ms} ms off: {}", r.stderr);
        fake.with(|w| assert!(!w.limited.is_empty(), "a storm of 429s"));
        assert_waited_for_reset(&fake, &format!("clock {skew_ms} ms off: "));
    }
}

/// Needs the engine's half of issue 7 (a data type's display name follows its key).
#[tokio::test(flavor = "multi_thread")]
async fn renaming_a_workspace_and_a_list_keeps_their_history() {
    let (fake, env) = setup(Backend::Sqlite, "", seed).await;
    assert!(backup(&env).await.ok);
    let before = env.json(&["history", "t1"]);
    fake.with(|w| {
        w.teams[0]["name"] = json!("Acme Corp");
        w.lists.iter_mut().find(|(_, _, l)| l["id"] == "124").unwrap().2["name"] = json!("Prospects");
        w.edit("t1", |t| t["name"] = json!("Call Bob again"));
    });
    let r = backup(&env).await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stats("Acme Corp/tasks"), (5, 0, 1, 0));
    assert_eq!(r.stats("Acme Corp/lists"), (2, 0, 1, 0), "the renamed list is a changed record");
    let mut names: Vec<String> = env
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["data_type"].as_str().unwrap().ends_with("/tasks"))
        .map(|s| format!("{} {}", s["data_type"].as_str().unwrap(), s["cycle"]))
        .collect();
    names.sort();
    assert_eq!(names, ["Acme Corp/tasks 1", "Acme Corp/tasks 2"], "one data type, its new name, its cycles continuing");
    let after = env.json(&["history", "t1"]);
    assert_eq!(after["record"]["sid"], before["record"]["sid"]);
    assert_eq!(after["record"]["data_type"], "Acme Corp/tasks");
    assert_eq!(after["versions"].as_array().unwrap().len(), 2, "{after}");
    assert_eq!(content(&env, "124")["data"]["name"], "Prospects");
    assert!(env.json(&["recover"]).as_array().unwrap().is_empty(), "nothing marked deleted");
}
