//! What a user meets first: config errors, passphrases, packing.

mod common;

use common::{Backend, Env, task};

#[tokio::test]
async fn wrong_passphrase_is_a_clear_error() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_records("tasks", &[task(1, "a")]);
    env.ok(&["init"]);
    let o = env.cmd(&["snapshots"]).env("DAYBOOK_PASSPHRASE", "not the passphrase").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(!err.contains("panicked"));
    assert!(!err.contains("not the passphrase"), "the passphrase never reaches an error");
    let o = env.cmd(&["backup"]).env_remove("DAYBOOK_PASSPHRASE").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("DAYBOOK_PASSPHRASE"));
}

#[tokio::test]
async fn init_twice_is_refused() {
    let env = Env::new(Backend::Sqlite).await;
    env.ok(&["init"]);
    let o = env.run(&["init"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
}

#[tokio::test]
async fn config_errors_name_the_line_and_the_fix() {
    let env = Env::new(Backend::Sqlite).await;
    env.write_config("[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n\n[[orgs.sources]]\nname = \"x\"\nkind = \"trelo\"\npath = \"export\"\n");
    let o = env.run(&["init"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("config line 11: unknown source kind \"trelo\" (known: jsonl, nocodb, trello, clickup)"),
        "{err}"
    );

    env.write_config("[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n\n[[orgs.sources]]\nname = \"x\"\nkind = \"nocodb\"\ntokn_env = \"T\"\n");
    let err = String::from_utf8_lossy(&env.run(&["init"]).stderr).to_string();
    assert!(err.contains("config line 11") && err.contains("tokn_env") && err.contains("token_env"), "{err}");

    env.write_config("[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\ntimezone = \"Mars/Olympus\"\n");
    let err = String::from_utf8_lossy(&env.run(&["init"]).stderr).to_string();
    assert!(err.contains("config line 8: unknown timezone \"Mars/Olympus\""), "{err}");

    env.write_config("[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n\n[[orgs.sources]]\nname = \"x\"\nkind = \"jsonl\"\npaht = \"export\"\n");
    let err = String::from_utf8_lossy(&env.run(&["init"]).stderr).to_string();
    assert!(err.contains("config line 11") && err.contains("paht"), "{err}");

    let o = env.cmd(&["snapshots"]).env("DAYBOOK_CONFIG", env.path().join("nope.toml")).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.toml"));
}

#[tokio::test]
async fn many_records_are_packed_into_few_objects() {
    let env = Env::new(Backend::Sqlite).await;
    let tasks: Vec<_> = (0..20_000).map(|n| task(n, "a record of moderate length, like a real task title")).collect();
    env.write_records("tasks", &tasks);
    env.ok(&["init"]);
    env.ok(&["backup"]);
    assert_eq!(env.latest()["tasks"].1, 20_000);
    let n = env.store_files().len();
    assert!(n < 10, "20,000 records became {n} objects in the store");
}

#[tokio::test]
async fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_daybook"))
        .args(["demo", "--dir"])
        .arg(dir.path().join("d"))
        .env_remove("DAYBOOK_PASSPHRASE")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("== day 2: second backup"));
    assert!(out.contains("title on day 1:") && out.contains("renamed on day 2"));
    assert!(out.contains("no problems"));
    // Running it again in the same folder starts over cleanly.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_daybook"))
        .args(["demo", "--dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[test]
fn config_example_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let cfg = daybook::config::Config::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!cfg.orgs.is_empty(), "the example shows at least one org");
    assert!(cfg.orgs.iter().all(|o| !o.sources.is_empty()));
}

#[test]
fn help_lists_every_command() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_daybook")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "init",
        "backup",
        "snapshots",
        "history",
        "show",
        "diff",
        "log",
        "recover",
        "restore",
        "export",
        "check",
        "erase-org",
        "demo",
        "mirror",
        "daemon",
        "status",
        "logs",
        "archive",
        "billing",
        "serve",
    ] {
        assert!(
            help.contains(&format!("  {cmd} ")) || help.contains(&format!("  {cmd}\n")),
            "--help lacks {cmd}: {help}"
        );
    }
}

#[test]
fn readme_shows_each_commands_help_as_it_is() {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for cmd in [
        &[][..],
        &["init"],
        &["backup"],
        &["snapshots"],
        &["history"],
        &["show"],
        &["diff"],
        &["log"],
        &["recover"],
        &["restore"],
        &["export"],
        &["forget"],
        &["prune"],
        &["check"],
        &["erase-org"],
        &["user"],
        &["token"],
        &["demo"],
        &["daemon"],
        &["status"],
        &["logs"],
        &["archive"],
        &["archive", "quote"],
        &["archive", "create"],
        &["archive", "list"],
        &["archive", "show"],
        &["archive", "rename"],
        &["archive", "link"],
        &["archive", "revoke"],
        &["archive", "download"],
        &["archive", "delete"],
        &["billing"],
        &["serve"],
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_daybook"))
            .args(cmd)
            .arg("--help")
            .env_remove("DAYBOOK_CONFIG")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(
            readme.contains(help.trim_end()),
            "README.md lacks the current `daybook {} --help`:\n{help}",
            cmd.join(" ")
        );
    }
}
