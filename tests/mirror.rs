//! The mirror, through the binary: into a local folder, and into Google Sheets + Drive as the
//! local server in fake_google/ plays them by Google's documentation.

mod common;
mod fake_google;

use common::{Backend, Env, task};
use fake_google::{Fake, SA_EMAIL};
use serde_json::{Value, json};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

fn key_pair() -> (String, rsa::RsaPublicKey) {
    use rsa::pkcs8::EncodePrivateKey;
    let mut rng = rand::thread_rng();
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
    (pem, rsa::RsaPublicKey::from(&private))
}

struct G {
    env: Env,
    fake: Fake,
}

const ORG: &str = "[[orgs]]\nsid = \"acme\"\nname = \"Acme Inc\"\ntimezone = \"Europe/Dublin\"\n\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n";

async fn google(b: Backend, extra: &str) -> G {
    let env = Env::new(b).await;
    let (pem, public) = key_pair();
    let fake = Fake::start(public);
    let key = json!({"type": "service_account", "project_id": "daybook-test", "private_key_id": "k1",
        "private_key": pem, "client_email": SA_EMAIL, "client_id": "1",
        "token_uri": format!("{}token", fake.url)});
    std::fs::write(env.path().join("sa.json"), key.to_string()).unwrap();
    let root = fake.with(|a| a.root.clone());
    env.write_config(&format!(
        "{ORG}\n[[orgs.mirrors]]\nname = \"drive\"\nkind = \"google\"\ncredentials = \"sa.json\"\nfolder_id = \"{root}\"\n\
         drive_root_url = \"{u}\"\nsheets_root_url = \"{u}\"\nwrites_per_minute = 300\nfirst_retry_seconds = 0.05\n{extra}",
        u = fake.url
    ));
    fake.with(|a| a.writes_per_minute = 300);
    G { env, fake }
}

fn day1(env: &Env) {
    let mut tasks: Vec<Value> = (0..40).map(|n| task(n, "first day")).collect();
    tasks.push(json!({"id": "t-formula", "title": "=HYPERLINK(\"http://x\",\"y\")", "status": "+1+1", "n": -1}));
    env.write_records("tasks", &tasks);
    env.write_records(
        "comments",
        &(0..10).map(|n| json!({"id": format!("c{n}"), "text": "hello", "tags": ["a", n]})).collect::<Vec<_>>(),
    );
    env.write_attachment("same.txt", b"first same");
    env.write_attachment("big.bin", &vec![7u8; 9 * 1024 * 1024 + 5]);
}

/// Day 2: t3 edited, t5 deleted, t100 added (with a new field); comments untouched.
fn day2(env: &Env) {
    let mut tasks: Vec<Value> =
        (0..40).filter(|n| *n != 5).map(|n| task(n, if n == 3 { "edited" } else { "first day" })).collect();
    tasks.push(json!({"id": "t-formula", "title": "=HYPERLINK(\"http://x\",\"y\")", "status": "+1+1", "n": -1}));
    tasks.push(json!({"id": "t100", "title": "new", "status": "open", "n": 100, "priority": "high"}));
    env.write_records("tasks", &tasks);
}

fn sheet_rows(fake: &Fake, path: &[&str]) -> Vec<Vec<String>> {
    fake.with(|a| {
        let s = a.sheet_at(path).unwrap_or_else(|| panic!("no sheet at {path:?}"));
        let t = &s.tabs[0];
        (0..t.rows()).map(|r| t.row_text(r)).collect()
    })
}

fn col_of(rows: &[Vec<String>], name: &str) -> usize {
    rows[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]))
}

fn row_of<'a>(rows: &'a [Vec<String>], id: &str) -> Option<&'a Vec<String>> {
    rows.iter().skip(1).find(|r| r[0] == id)
}

async fn first_mirror_and_a_day_of_changes(b: Backend) {
    let g = google(b, "").await;
    let env = &g.env;
    day1(env);
    env.ok(&["init"]);
    let out = env.ok(&["backup"]);
    assert!(out.contains("mirror drive (google)"), "backup mirrors after it commits: {out}");
    let tasks = sheet_rows(&g.fake, &["Acme Inc", "export", "tasks"]);
    assert_eq!(tasks.len(), 42, "a header and one row per live record");
    assert_eq!(&tasks[0][..2], ["id", "n"]);
    assert_eq!(&tasks[0][tasks[0].len() - 3..], ["daybook_sid", "version", "captured_at"]);
    let f = row_of(&tasks, "t-formula").unwrap();
    assert_eq!(f[col_of(&tasks, "title")], "=HYPERLINK(\"http://x\",\"y\")", "a formula stays text");
    assert_eq!(f[col_of(&tasks, "status")], "+1+1");
    g.fake.with(|a| {
        assert!(a.input_options.iter().all(|o| o == "RAW"), "values are written RAW: {:?}", a.input_options);
        let s = a.sheet_at(&["Acme Inc", "export", "tasks"]).unwrap();
        assert!(s.tabs.iter().all(|t| t.cells.iter().flatten().all(|c| c.get("formula").is_none())));
        assert_eq!(s.tabs[0].frozen, 1, "the header row is frozen");
        assert_eq!(s.tabs.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(), ["tasks", "Deleted", "About"]);
        let about: Vec<String> =
            s.tab("About").unwrap().cells.iter().map(|r| r[1].as_str().unwrap_or("").to_string()).collect();
        assert!(about.iter().any(|c| c == "cycle 1"), "About names the snapshot: {about:?}");
        let csv = a.at(&["Acme Inc", "export", "tasks.csv"]).expect("the CSV beside the sheet");
        assert_eq!(String::from_utf8_lossy(&csv.content).lines().count(), 42);
        let files = a.at(&["Acme Inc", "export", "files"]).expect("files/");
        let names: Vec<&str> = a.live().filter(|f| f.parents.contains(&files.id)).map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let big = a.live().find(|f| f.name == "big.bin").unwrap();
        assert_eq!(big.content.len(), 9 * 1024 * 1024 + 5, "a file over 5 MB arrives whole");
        assert!(a.largest_chunk > 0 && a.largest_chunk % (256 * 1024) == 0, "resumable chunks of 256 KiB multiples");
        assert!(
            a.live().filter(|f| f.id != a.root).all(|f| f.props.get("daybook_org").map(String::as_str) == Some("acme"))
        );
    });
    let writes1 = g.fake.with(|a| a.writes());

    day2(env);
    let before = g.fake.with(|a| (a.writes(), a.cells_written));
    let r = env.json(&["backup"]);
    let (writes, cells) = g.fake.with(|a| (a.writes() - before.0, a.cells_written - before.1));
    let m = &r["mirror"]["targets"][0];
    let by = |name: &str| m["types"].as_array().unwrap().iter().find(|t| t["data_type"] == name).unwrap().clone();
    assert_eq!(by("comments")["status"], "unchanged");
    assert_eq!(by("comments")["requests"], 0, "an unchanged data type sends nothing");
    assert_eq!(by("tasks")["rows_written"], 2);
    assert_eq!(by("tasks")["rows_deleted"], 1);
    assert!(by("tasks")["write_requests"].as_u64().unwrap() <= 4, "{}", by("tasks"));
    assert!(writes < writes1 / 2, "day 2 took {writes} writes, day 1 {writes1}");
    assert!(cells < 60, "day 2 wrote {cells} cells: the changed rows, a new column, the tabs");
    let tasks = sheet_rows(&g.fake, &["Acme Inc", "export", "tasks"]);
    assert_eq!(tasks.len(), 42);
    assert!(row_of(&tasks, "t5").is_none(), "the deleted record's row is gone");
    assert_eq!(row_of(&tasks, "t3").unwrap()[col_of(&tasks, "title")], "edited");
    assert_eq!(row_of(&tasks, "t100").unwrap()[col_of(&tasks, "priority")], "high");
    let deleted =
        g.fake.with(|a| a.sheet_at(&["Acme Inc", "export", "tasks"]).unwrap().tab("Deleted").unwrap().row_text(1));
    assert_eq!(deleted[0], "t5");
    let st = env.json(&["mirror", "status"]);
    let t = st.as_array().unwrap().iter().find(|s| s["data_type"] == "tasks").unwrap();
    assert_eq!((t["cycle"].as_i64(), t["latest"].as_i64()), (Some(2), Some(2)));
    assert!(t["error"].is_null());
}

/// Records leave the Deleted tab 30 days after their deletion was noticed, on the first
/// mirror after that, although no new snapshot came; until then nothing is sent.
async fn the_deleted_tab_forgets_after_30_days(b: Backend) {
    use daybook::mirror::{Options, run};
    let g = google(b, "").await;
    let env = &g.env;
    day1(env);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    day2(env);
    env.ok(&["backup"]);
    let deleted_ids = || {
        g.fake.with(|a| {
            let t = a.sheet_at(&["Acme Inc", "export", "tasks"]).unwrap().tab("Deleted").unwrap().clone();
            (1..t.rows()).map(|r| t.row_text(r)[0].clone()).filter(|id| !id.is_empty()).collect::<Vec<_>>()
        })
    };
    assert_eq!(deleted_ids(), ["t5"]);
    let cfg = daybook::config::Config::load(&env.path().join("daybook.toml")).unwrap();
    let vault = daybook::vault::Vault::open(&cfg, common::PASS).await.unwrap();
    let at = |days: i64| Options { now: Some(chrono::Utc::now() + chrono::Duration::days(days)), ..Default::default() };
    let tasks =
        |r: &daybook::mirror::Report| r.targets[0].types.iter().find(|t| t.data_type == "tasks").unwrap().clone();

    let r = run(&vault, &cfg, &at(29)).await.unwrap();
    assert_eq!((tasks(&r).status, r.targets[0].requests), ("unchanged", 0), "29 days on, nothing to send");
    assert_eq!(deleted_ids(), ["t5"]);

    let r = run(&vault, &cfg, &at(31)).await.unwrap();
    assert_eq!(r.failed(), 0, "{r:?}");
    assert_eq!(tasks(&r).status, "written");
    assert!(deleted_ids().is_empty(), "31 days on, t5 has left the Deleted tab: {:?}", deleted_ids());
    let comments = r.targets[0].types.iter().find(|t| t.data_type == "comments").unwrap();
    assert_eq!(comments.requests, 0, "a data type without deletions is not written");
    assert_eq!(sheet_rows(&g.fake, &["Acme Inc", "export", "tasks"]).len(), 42, "the rows are untouched");

    let r = run(&vault, &cfg, &at(32)).await.unwrap();
    assert_eq!((tasks(&r).status, r.targets[0].requests), ("unchanged", 0), "and then nothing again");
}

async fn a_readers_column_stays_with_its_record(b: Backend) {
    let g = google(b, "").await;
    day1(&g.env);
    g.env.ok(&["init"]);
    g.env.ok(&["backup"]);
    // A reader writes notes in a column right of daybook's.
    let note_col = g.fake.with(|a| {
        let id = a.at(&["Acme Inc", "export", "tasks"]).unwrap().id.clone();
        let t = &mut a.sheets.get_mut(&id).unwrap().tabs[0];
        t.cols += 1;
        for (i, row) in t.cells.iter_mut().enumerate() {
            row.push(json!(format!("note for {}", row[0].as_str().unwrap_or(if i == 0 { "header" } else { "" }))));
        }
        t.cols - 1
    });
    day2(&g.env);
    g.env.ok(&["backup"]);
    let rows = sheet_rows(&g.fake, &["Acme Inc", "export", "tasks"]);
    for r in rows.iter().skip(1).filter(|r| r[0] != "t100") {
        assert_eq!(r[note_col + 1], format!("note for {}", r[0]), "a note moves with its row and its new column");
    }
}

async fn a_renamed_org_renames_folders_and_a_deleted_sheet_comes_back(b: Backend) {
    let g = google(b, "").await;
    day1(&g.env);
    g.env.ok(&["init"]);
    g.env.ok(&["backup"]);
    let (org_folder, sheets) = g.fake.with(|a| (a.at(&["Acme Inc"]).unwrap().id.clone(), a.sheets.len()));
    let cfg = std::fs::read_to_string(g.env.path().join("daybook.toml")).unwrap();
    std::fs::write(g.env.path().join("daybook.toml"), cfg.replace("name = \"Acme Inc\"", "name = \"Acme Group\""))
        .unwrap();
    // A person deletes the comments sheet.
    g.fake.with(|a| {
        let id = a.at(&["Acme Inc", "export", "comments"]).unwrap().id.clone();
        a.files.iter_mut().find(|f| f.id == id).unwrap().trashed = true;
    });
    g.env.ok(&["mirror"]);
    g.fake.with(|a| {
        assert!(a.at(&["Acme Inc"]).is_none());
        assert_eq!(a.at(&["Acme Group"]).unwrap().id, org_folder, "the folder is renamed, not made anew");
        assert_eq!(a.sheets.len(), sheets + 1, "only the deleted sheet is made again");
        let c = a.sheet_at(&["Acme Group", "export", "comments"]).expect("the deleted sheet is rebuilt");
        assert_eq!(c.tabs[0].rows(), 11);
        let names: Vec<&str> = a
            .live()
            .filter(|f| f.props.get("daybook_role").map(String::as_str) == Some("sheet"))
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names.len(), 3, "no duplicate sheet: {names:?}");
    });
}

async fn a_data_type_over_the_cell_limit_continues(b: Backend) {
    let g = google(b, "max_cells = 1000\n").await;
    g.fake.with(|a| a.max_cells = 1000);
    g.env.write_records("tasks", &(0..150).map(|n| task(n, "x")).collect::<Vec<_>>());
    g.env.ok(&["init"]);
    g.env.ok(&["backup"]);
    g.fake.with(|a| {
        let one = a.sheet_at(&["Acme Inc", "export", "tasks"]).unwrap();
        let two = a.sheet_at(&["Acme Inc", "export", "tasks (2)"]).expect("the rest continues in a second spreadsheet");
        assert!(one.cells() <= 1000 && two.cells() <= 1000);
        let rows = one.tabs[0].rows() - 1 + two.tabs[0].rows() - 1;
        assert_eq!(rows, 150, "every record once");
        let about: Vec<String> = one
            .tab("About")
            .unwrap()
            .cells
            .iter()
            .flat_map(|r| r.iter().map(|c| c.as_str().unwrap_or("").to_string()))
            .collect();
        assert!(about.iter().any(|c| c.contains("tasks (2)")), "{about:?}");
    });
}

async fn a_429_storm_and_a_500_mid_batch_are_ridden_out(b: Backend) {
    let g = google(b, "").await;
    day1(&g.env);
    g.env.ok(&["init"]);
    g.env.ok(&["backup", "--no-mirror"]);
    g.fake.with(|a| {
        for _ in 0..4 {
            a.script.push_back((429, Some(0)));
        }
        a.script.push_back((500, None));
    });
    g.env.ok(&["mirror"]);
    g.fake.with(|a| {
        assert!(a.script.is_empty());
        assert_eq!(a.seen.iter().filter(|s| s.status == 429).count(), 4);
        assert_eq!(a.sheet_at(&["Acme Inc", "export", "tasks"]).unwrap().tabs[0].rows(), 42);
    });
    // A storm that outlasts the bound fails the mirror, with Google's words, and says so.
    let g = google(b, "give_up_after_seconds = 1\n").await;
    day1(&g.env);
    g.env.ok(&["init"]);
    g.fake.with(|a| a.script.extend(std::iter::repeat_n((429, Some(1)), 100)));
    let o = g.env.run(&["backup"]);
    assert_eq!(o.status.code(), Some(1), "a failed mirror fails the backup command");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("429"), "{err}");
    assert_eq!(g.env.latest()["tasks"].1, 41, "the backup itself is committed");
    let st = g.env.json(&["mirror", "status"]);
    assert!(st.as_array().unwrap().iter().all(|s| s["error"].is_string() && s["cycle"].is_null()), "{st}");
    let log = g.env.json(&["log"]);
    assert!(log.to_string().contains("mirror drive"), "the failure is in the backup log: {log}");
}

/// A target that cannot be reached at all (its root folder is gone) fails every data type in
/// `mirror status`, which keeps the cycle the target last held.
async fn a_target_out_of_reach_shows_in_status(b: Backend) {
    let g = google(b, "").await;
    day1(&g.env);
    g.env.ok(&["init"]);
    g.env.ok(&["backup"]);
    let cfg = g.env.path().join("daybook.toml");
    let root = g.fake.with(|a| a.root.clone());
    let text = std::fs::read_to_string(&cfg).unwrap().replace(&root, "a-folder-that-is-gone");
    std::fs::write(&cfg, text).unwrap();
    let o = g.env.run(&["mirror"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let st = g.env.json(&["mirror", "status"]);
    let rows = st.as_array().unwrap();
    assert!(rows.len() >= 3, "{st}");
    for r in rows {
        assert!(r["error"].as_str().is_some_and(|e| e.contains("a-folder-that-is-gone")), "{r}");
        assert!(r["cycle"].is_i64() && r["mirrored_at"].is_string(), "what the target holds is kept: {r}");
    }
}

async fn a_service_account_without_storage_is_told_both_ways_out(b: Backend) {
    let g = google(b, "").await;
    g.fake.with(|a| a.shared_drive = false);
    day1(&g.env);
    g.env.ok(&["init"]);
    let o = g.env.run(&["backup"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("storageQuotaExceeded") && err.contains("shared drive") && err.contains("mirror login"),
        "{err}"
    );
}

async fn a_crash_mid_mirror_leaves_no_duplicate(b: Backend) {
    for fault in ["mirror-values-written:2", "mirror-sheet-created:2", "mirror-file-written:1", "mirror-type-done:1"] {
        let g = google(b, "").await;
        day1(&g.env);
        g.env.ok(&["init"]);
        g.env.ok(&["backup", "--no-mirror"]);
        let o = g.env.cmd(&["mirror"]).env("DAYBOOK_FAULT", fault).output().unwrap();
        assert_eq!(o.status.signal(), Some(9), "{fault}: {}", String::from_utf8_lossy(&o.stderr));
        g.env.ok(&["mirror"]);
        g.fake.with(|a| {
            let mut tags: Vec<(String, String, String)> = a
                .live()
                .filter(|f| f.props.contains_key("daybook_role") && f.props["daybook_role"] != "folder")
                .map(|f| {
                    let p = |k: &str| f.props.get(k).cloned().unwrap_or_default();
                    (p("daybook_role"), p("daybook_type"), p("daybook_part") + &p("daybook_file"))
                })
                .collect();
            let n = tags.len();
            tags.sort();
            tags.dedup();
            assert_eq!(tags.len(), n, "{fault}: a file made twice");
            let folders: Vec<(String, Vec<String>)> = a
                .live()
                .filter(|f| f.mime == fake_google::FOLDER)
                .map(|f| (f.name.clone(), f.parents.clone()))
                .collect();
            let mut d = folders.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), folders.len(), "{fault}: a folder made twice");
            // Every spreadsheet is set up whole, even one made just before the crash: its
            // data tab named and frozen, and the first part's Deleted and About tabs.
            for f in a.live().filter(|f| f.mime == fake_google::SHEET) {
                let s = &a.sheets[&f.id];
                let titles: Vec<&str> = s.tabs.iter().map(|t| t.title.as_str()).collect();
                assert_eq!(s.tabs[0].frozen, 1, "{fault}: {} {titles:?}", f.name);
                assert!(f.name.starts_with(titles[0]), "{fault}: the data tab of {} is {titles:?}", f.name);
                if f.props.get("daybook_part").map(String::as_str) == Some("1") {
                    assert_eq!(titles[1..], ["Deleted", "About"], "{fault}: {}", f.name);
                }
            }
        });
        let rows = sheet_rows(&g.fake, &["Acme Inc", "export", "tasks"]);
        let mut sids: Vec<&String> = rows.iter().skip(1).map(|r| &r[col_of(&rows, "daybook_sid")]).collect();
        assert_eq!(sids.len(), 41, "{fault}");
        sids.sort();
        sids.dedup();
        assert_eq!(sids.len(), 41, "{fault}: a row written twice");
    }
}

// The folder target.

fn folder_env_config(env: &Env) -> PathBuf {
    env.write_config(&format!("{ORG}\n[[orgs.mirrors]]\nname = \"local\"\nkind = \"folder\"\npath = \"mirror\"\n"));
    env.path().join("mirror")
}

fn csv_rows(p: &std::path::Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(p).unwrap();
    let mut out = vec![r.headers().unwrap().iter().map(String::from).collect::<Vec<_>>()];
    out.extend(r.records().map(|x| x.unwrap().iter().map(String::from).collect()));
    out
}

async fn the_folder_target(b: Backend) {
    let env = Env::new(b).await;
    let root = folder_env_config(&env);
    day1(&env);
    env.write_attachment("sub-same.txt", b"x");
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let dir = root.join("Acme Inc/export");
    let rows = csv_rows(&dir.join("tasks.csv"));
    assert_eq!(rows.len(), 42);
    assert_eq!(row_of(&rows, "t-formula").unwrap()[col_of(&rows, "title")], "=HYPERLINK(\"http://x\",\"y\")");
    assert_eq!(std::fs::read(dir.join("files/same.txt")).unwrap(), b"first same");
    assert_eq!(std::fs::metadata(dir.join("files/big.bin")).unwrap().len(), 9 * 1024 * 1024 + 5);
    let mtime = std::fs::metadata(dir.join("comments.csv")).unwrap().modified().unwrap();
    day2(&env);
    let r = env.json(&["backup"]);
    let types = r["mirror"]["targets"][0]["types"].as_array().unwrap().clone();
    assert!(types.iter().any(|t| t["data_type"] == "comments" && t["status"] == "unchanged"));
    assert_eq!(
        std::fs::metadata(dir.join("comments.csv")).unwrap().modified().unwrap(),
        mtime,
        "unchanged: not written"
    );
    let rows = csv_rows(&dir.join("tasks.csv"));
    assert_eq!(rows.len(), 42);
    assert!(row_of(&rows, "t5").is_none());
    assert_eq!(row_of(&rows, "t100").unwrap()[col_of(&rows, "priority")], "high");
    assert!(csv_rows(&dir.join("tasks (deleted).csv")).iter().any(|r| r[0] == "t5"));
    // Renamed org: the folder moves; a removed file goes; --rebuild writes it again.
    let cfg = std::fs::read_to_string(env.path().join("daybook.toml")).unwrap();
    std::fs::write(env.path().join("daybook.toml"), cfg.replace("name = \"Acme Inc\"", "name = \"Acme: Group?\""))
        .unwrap();
    std::fs::remove_file(env.export().join("attachments/same.txt")).unwrap();
    env.ok(&["backup"]);
    let new = root.join("Acme_ Group_/export");
    assert!(!root.join("Acme Inc").exists(), "renamed, not copied");
    assert!(new.join("tasks.csv").exists());
    assert!(!new.join("files/same.txt").exists(), "a file gone from the snapshot is gone from the mirror");
    std::fs::remove_file(new.join("tasks.csv")).unwrap();
    env.ok(&["mirror"]);
    assert_eq!(csv_rows(&new.join("tasks.csv")).len(), 42, "a lost CSV is written again");
    std::fs::remove_dir_all(&root).unwrap();
    env.ok(&["mirror", "--rebuild"]);
    assert_eq!(csv_rows(&new.join("comments.csv")).len(), 11);
}

async fn the_folder_target_after_a_crash(b: Backend) {
    let env = Env::new(b).await;
    let root = folder_env_config(&env);
    day1(&env);
    env.ok(&["init"]);
    env.ok(&["backup", "--no-mirror"]);
    let o = env.cmd(&["mirror"]).env("DAYBOOK_FAULT", "mirror-file-written:1").output().unwrap();
    assert_eq!(o.status.signal(), Some(9));
    env.ok(&["mirror"]);
    let files: Vec<String> = std::fs::read_dir(root.join("Acme Inc/export/files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 2, "each file once, no temporary left: {files:?}");
}

async fn config_errors_name_the_line(b: Backend) {
    let env = Env::new(b).await;
    env.write_config(&format!("{ORG}\n[[orgs.mirrors]]\nname = \"x\"\nkind = \"gdrive\"\n"));
    let o = env.run(&["mirror"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config line 17: unknown mirror kind \"gdrive\" (known: folder, google)"), "{err}");
    env.write_config(&format!("{ORG}\n[[orgs.mirrors]]\nname = \"x\"\nkind = \"google\"\ncredentials = \"c.json\"\n"));
    let err = String::from_utf8_lossy(&env.run(&["mirror"]).stderr).into_owned();
    assert!(err.contains("config line 17") && err.contains("folder_id"), "{err}");
}

both_backends!(first_mirror_and_a_day_of_changes, a_crash_mid_mirror_leaves_no_duplicate, the_folder_target,);

mod single {
    use super::*;
    #[tokio::test(flavor = "multi_thread")]
    async fn deleted_tab_ages() {
        the_deleted_tab_forgets_after_30_days(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn readers_columns() {
        a_readers_column_stays_with_its_record(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn renamed_and_deleted() {
        a_renamed_org_renames_folders_and_a_deleted_sheet_comes_back(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn cell_limit() {
        a_data_type_over_the_cell_limit_continues(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn out_of_reach() {
        a_target_out_of_reach_shows_in_status(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn storms() {
        a_429_storm_and_a_500_mid_batch_are_ridden_out(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn storage_quota() {
        a_service_account_without_storage_is_told_both_ways_out(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn folder_crash() {
        the_folder_target_after_a_crash(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread")]
    async fn config_errors() {
        config_errors_name_the_line(Backend::Sqlite).await
    }
}
