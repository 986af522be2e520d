//! One org erased for good, the other untouched.

mod common;

use common::{Backend, Env, task};
use serde_json::json;

both_backends!(erasing_one_org_leaves_the_other_whole);

async fn erasing_one_org_leaves_the_other_whole(b: Backend) {
    let env = Env::new(b).await;
    env.write_config(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n\n\
         [[orgs]]\nsid = \"globex\"\nname = \"Globex\"\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"globex\"\n",
    );
    env.write_records("tasks", &[task(1, "acme task"), task(2, "acme task two")]);
    std::fs::create_dir_all(env.path().join("globex/records")).unwrap();
    std::fs::write(env.path().join("globex/records/deals.jsonl"), "{\"id\":\"d1\",\"v\":1}\n{\"id\":\"d2\",\"v\":2}\n")
        .unwrap();
    env.ok(&["init"]);
    env.ok(&["backup"]);
    let data_dirs = || {
        let orgs: std::collections::BTreeSet<String> = env
            .store_objects()
            .into_iter()
            .filter_map(|(name, _)| Some(name.strip_prefix("data/")?.split('/').next()?.to_string()))
            .collect();
        orgs.len()
    };
    assert_eq!(data_dirs(), 2, "each org packs apart");

    let o = env.run(&["erase-org", "acme"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--confirm acme"));
    assert!(env.ok(&["erase-org", "acme", "--confirm", "acme"]).contains("2 records"));

    assert_eq!(data_dirs(), 1, "the erased org's objects are gone");
    assert!(!env.run(&["history", "t1"]).status.success(), "the erased org's records are gone");
    let snaps = env.json(&["snapshots"]);
    assert!(snaps.as_array().unwrap().iter().all(|s| s["org"] == "globex"));
    assert_eq!(env.json(&["show", "d2"])["content"]["data"]["v"], 2, "the other org reads as before");
    assert_eq!(env.json(&["check", "--read-data"])["problems"], json!([]));
}
