//! The catalog holds no record ids at the source, file or attachment names, data type names or
//! record content in the clear: those are in the sealed packs only (issue 8). Searched for in
//! the SQLite files and in every PostgreSQL table's rows.

mod common;

use common::{Backend, Env, catalog_bytes, contains};
use serde_json::json;

both_backends!(nothing_an_app_said_is_in_the_clear);

async fn nothing_an_app_said_is_in_the_clear(b: Backend) {
    let env = Env::new(b).await;
    let tasks = |title: &str| {
        vec![
            json!({"id": "ZEBRA-ID-4417", "title": title, "note": "ZEBRA-TEXT-5530"}),
            json!({"id": "ZEBRA-ID-GONE", "title": "soon deleted"}),
        ]
    };
    env.write_records("zebratasks", &tasks("first"));
    env.write_attachment("ZEBRA-FILE-9921.pdf", b"%PDF zebra bytes");
    env.ok(&["init"]);
    env.ok(&["backup"]);
    // A second day: an edit, a deletion, a new file.
    env.write_records("zebratasks", &tasks("second")[..1]);
    env.write_attachment("ZEBRA-FILE-2002.png", b"PNG zebra bytes");
    env.ok(&["backup"]);
    // Everything reads back through the read API...
    let shown = env.json(&["show", "ZEBRA-ID-4417"]);
    assert_eq!(shown["content"]["data"]["note"], "ZEBRA-TEXT-5530");
    assert_eq!(shown["record"]["data_type"], "zebratasks");
    let gone = env.json(&["recover"]);
    assert_eq!(gone[0]["source_id"], "ZEBRA-ID-GONE", "{gone}");
    let files = env.json(&["show", "ZEBRA-FILE-9921.pdf"]);
    assert_eq!(files["content"]["files"][0]["name"], "ZEBRA-FILE-9921.pdf");
    // ...and none of it is in the catalog.
    let bytes = catalog_bytes(&env).await;
    for secret in [
        "ZEBRA-ID-4417",
        "ZEBRA-ID-GONE",
        "ZEBRA-TEXT-5530",
        "ZEBRA-FILE-9921",
        "ZEBRA-FILE-2002",
        "zebratasks",
        "soon deleted",
    ] {
        assert!(!contains(&bytes, secret), "{secret:?} is in the catalog in the clear");
    }
}
