//! Catalog tables. One text for both SQLite and PostgreSQL; `{pk}` and `{blob}` differ.
//!
//! Schema 3 keeps no row per record or per version: a data type's records live in its state
//! pages (sealed, in the packs), and the catalog holds per cycle one snapshot row per data
//! type naming its pages, per pack one row with its chunk table, per file one row with its
//! pieces. Nothing an app said is in the clear: data type keys, names and paths, restore ids
//! and notes, and the log's messages are sealed with their org's key.

/// 1: the first release. 2: data types known by a stable key; a sealed backup log.
/// 3: records and versions in sealed state pages; no plain ids or names.
/// 4: tables for archives, the daemon's jobs and the web's users (3 to 4 only adds tables:
/// every `CREATE ... IF NOT EXISTS` of the DDL runs again). 5: users remember their last
/// TOTP step. 6: state pages may be of the compact kind (`DBS2`), which a daybook of schema
/// 5 cannot read; no table changes, so an older daybook is told to upgrade rather than
/// finding pages it calls damaged.
pub const SCHEMA_VERSION: i64 = 6;

/// Every table, for what is done to all of them.
pub const TABLES: &[&str] = &[
    "meta",
    "orgs",
    "cycles",
    "types",
    "snapshots",
    "packs",
    "files",
    "cycle_log",
    "restores",
    "locks",
    "mirror_state",
    "jobs",
    "job_log",
    "due_runs",
    "daemons",
    "archives",
    "archive_parts",
    "archive_links",
    "archive_charges",
    "users",
    "sessions",
    "login_attempts",
    "tokens",
    "audit",
];

const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    id {pk}, sid TEXT NOT NULL UNIQUE, name TEXT NOT NULL, store_id TEXT NOT NULL,
    wrapped_key {blob} NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cycles (
    id {pk}, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS types (
    id {pk}, org_id BIGINT NOT NULL, source TEXT NOT NULL, key_id {blob} NOT NULL, meta {blob} NOT NULL,
    cursor TEXT, last_full_cycle BIGINT, UNIQUE (org_id, source, key_id));
CREATE TABLE IF NOT EXISTS snapshots (
    type_id BIGINT NOT NULL, cycle_id BIGINT NOT NULL, taken_at TEXT NOT NULL, full_read BIGINT NOT NULL,
    listed BIGINT NOT NULL, live BIGINT NOT NULL, added BIGINT NOT NULL, changed BIGINT NOT NULL,
    deleted BIGINT NOT NULL, drift BIGINT NOT NULL, stored_bytes BIGINT NOT NULL,
    delta {blob}, checkpoint {blob}, PRIMARY KEY (type_id, cycle_id)){norowid};
CREATE TABLE IF NOT EXISTS packs (
    id {pk}, org_id BIGINT NOT NULL, pid BIGINT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL, cycle_id BIGINT NOT NULL, chunks {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    org_id BIGINT NOT NULL, uid TEXT NOT NULL, size BIGINT NOT NULL, pieces {blob} NOT NULL,
    PRIMARY KEY (org_id, uid)){norowid};
CREATE TABLE IF NOT EXISTS cycle_log (
    id {pk}, cycle_id BIGINT NOT NULL, at TEXT NOT NULL, level TEXT NOT NULL, org TEXT NOT NULL,
    source TEXT NOT NULL, type_id BIGINT, summary TEXT NOT NULL, detail {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS restores (
    id {pk}, at TEXT NOT NULL, type_id BIGINT NOT NULL, sid TEXT NOT NULL, version BIGINT NOT NULL,
    files BIGINT NOT NULL, sealed {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS restores_sid ON restores (sid);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, heartbeat TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mirror_state (
    org_id BIGINT NOT NULL, target TEXT NOT NULL, type_id BIGINT NOT NULL, cycle BIGINT,
    mirrored_at TEXT, attempted_at TEXT NOT NULL, requests BIGINT NOT NULL, cells BIGINT NOT NULL,
    error {blob}, state {blob}, PRIMARY KEY (org_id, target, type_id)){norowid};
CREATE TABLE IF NOT EXISTS jobs (
    id {pk}, kind TEXT NOT NULL, org TEXT, source TEXT, args TEXT NOT NULL, state TEXT NOT NULL,
    manual BIGINT NOT NULL, attempts BIGINT NOT NULL, max_attempts BIGINT NOT NULL, run_after TEXT NOT NULL,
    created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, holder TEXT, lease_until TEXT, outcome TEXT);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_after);
CREATE INDEX IF NOT EXISTS jobs_org ON jobs (org, kind);
CREATE TABLE IF NOT EXISTS job_log (
    id {pk}, job_id BIGINT NOT NULL, at TEXT NOT NULL, level TEXT NOT NULL, org TEXT, summary TEXT NOT NULL,
    detail {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS job_log_job ON job_log (job_id);
CREATE TABLE IF NOT EXISTS due_runs (
    org TEXT NOT NULL, local_date TEXT NOT NULL, due_at TEXT NOT NULL, job_id BIGINT,
    PRIMARY KEY (org, local_date)){norowid};
CREATE TABLE IF NOT EXISTS daemons (holder TEXT PRIMARY KEY, started_at TEXT NOT NULL, heartbeat TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS archives (
    id {pk}, org_id BIGINT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, finished_at TEXT,
    deleted_at TEXT, at_cycle BIGINT, history BIGINT NOT NULL, windows_safe BIGINT NOT NULL,
    versions BIGINT NOT NULL, files BIGINT NOT NULL, content_bytes BIGINT NOT NULL,
    stored_bytes BIGINT NOT NULL, parts BIGINT NOT NULL, quoted_micros BIGINT NOT NULL,
    generation BIGINT NOT NULL, lease TEXT NOT NULL, sealed {blob} NOT NULL, error {blob});
CREATE TABLE IF NOT EXISTS archive_parts (
    archive_id BIGINT NOT NULL, part BIGINT NOT NULL, size BIGINT NOT NULL, chunk_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (archive_id, part)){norowid};
CREATE TABLE IF NOT EXISTS archive_links (
    id {pk}, archive_id BIGINT NOT NULL, part BIGINT NOT NULL, generation BIGINT NOT NULL,
    created_at TEXT NOT NULL, expires_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS archive_charges (
    id {pk}, org_id BIGINT NOT NULL, archive_id BIGINT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
    amount_micros BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id {pk}, org_id BIGINT, email TEXT NOT NULL UNIQUE, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    totp {blob}, totp_pending {blob}, created_at TEXT NOT NULL, totp_step BIGINT);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, user_id BIGINT NOT NULL, created_at TEXT NOT NULL, seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS login_attempts (id {pk}, subject TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS login_attempts_subject ON login_attempts (subject, at);
CREATE TABLE IF NOT EXISTS tokens (
    id {pk}, org_id BIGINT NOT NULL, token_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, created_at TEXT NOT NULL,
    used_at TEXT);
CREATE TABLE IF NOT EXISTS audit (
    id {pk}, org_id BIGINT, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS audit_org ON audit (org_id, id);
"#;

/// From schema 1 to 2, in one transaction. The old backup log is kept aside as `cycle_log_v1`
/// until the vault, which holds the keys, has sealed it into the new one.
const V1_TO_V2: &str = r#"
CREATE TABLE types_v2 (
    id {pk}, org_id BIGINT NOT NULL, source TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
    path TEXT NOT NULL, seed TEXT NOT NULL, cursor TEXT, last_full_cycle BIGINT, UNIQUE (org_id, source, key));
INSERT INTO types_v2 (id, org_id, source, key, name, path, seed, cursor, last_full_cycle)
    SELECT id, org_id, source, name, name, '[]', name, cursor, last_full_cycle FROM types;
DROP TABLE types;
ALTER TABLE types_v2 RENAME TO types;
ALTER TABLE cycle_log RENAME TO cycle_log_v1;
CREATE INDEX IF NOT EXISTS records_source_id ON records (source_id);
CREATE TABLE cycle_log (
    id {pk}, cycle_id BIGINT NOT NULL, at TEXT NOT NULL, level TEXT NOT NULL, org TEXT NOT NULL,
    source TEXT NOT NULL, type_id BIGINT, summary TEXT NOT NULL, detail {blob} NOT NULL);
"#;

pub fn v1_to_v2(postgres: bool) -> Vec<String> {
    let mut v = split(V1_TO_V2, postgres);
    if postgres {
        // Rows were copied with their ids: the identity must continue after them.
        v.push(
            "SELECT setval(pg_get_serial_sequence('types', 'id'), COALESCE((SELECT MAX(id) FROM types), 0) + 1, false)"
                .into(),
        );
    }
    v
}

/// From schema 2 to 3, once the vault has written the state pages and filled the `*_v3`
/// tables (same shapes as the DDL's): the old tables go and the new take their names.
pub fn v2_to_v3_tables(postgres: bool) -> Vec<String> {
    split(
        r#"
CREATE TABLE types_v3 (
    id {pk}, org_id BIGINT NOT NULL, source TEXT NOT NULL, key_id {blob} NOT NULL, meta {blob} NOT NULL,
    cursor TEXT, last_full_cycle BIGINT, UNIQUE (org_id, source, key_id));
CREATE TABLE snapshots_v3 (
    type_id BIGINT NOT NULL, cycle_id BIGINT NOT NULL, taken_at TEXT NOT NULL, full_read BIGINT NOT NULL,
    listed BIGINT NOT NULL, live BIGINT NOT NULL, added BIGINT NOT NULL, changed BIGINT NOT NULL,
    deleted BIGINT NOT NULL, drift BIGINT NOT NULL, stored_bytes BIGINT NOT NULL,
    delta {blob}, checkpoint {blob}, PRIMARY KEY (type_id, cycle_id)){norowid};
CREATE TABLE packs_v3 (
    id {pk}, org_id BIGINT NOT NULL, pid BIGINT NOT NULL UNIQUE, name TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL, cycle_id BIGINT NOT NULL, chunks {blob} NOT NULL);
CREATE TABLE files_v3 (
    org_id BIGINT NOT NULL, uid TEXT NOT NULL, size BIGINT NOT NULL, pieces {blob} NOT NULL,
    PRIMARY KEY (org_id, uid)){norowid};
CREATE TABLE restores_v3 (
    id {pk}, at TEXT NOT NULL, type_id BIGINT NOT NULL, sid TEXT NOT NULL, version BIGINT NOT NULL,
    files BIGINT NOT NULL, sealed {blob} NOT NULL)
"#,
        postgres,
    )
}

pub fn v2_to_v3_swap(postgres: bool) -> Vec<String> {
    let mut v = split(
        r#"
DROP TABLE versions; DROP TABLE records; DROP TABLE type_state; DROP TABLE blobs; DROP TABLE file_cache;
DROP TABLE types; DROP TABLE snapshots; DROP TABLE packs; DROP TABLE files; DROP TABLE restores;
ALTER TABLE types_v3 RENAME TO types; ALTER TABLE snapshots_v3 RENAME TO snapshots;
ALTER TABLE packs_v3 RENAME TO packs; ALTER TABLE files_v3 RENAME TO files;
ALTER TABLE restores_v3 RENAME TO restores;
CREATE INDEX IF NOT EXISTS restores_sid ON restores (sid)
"#,
        postgres,
    );
    // Tables schema 3 has that schema 2 had not.
    v.extend(statements(postgres));
    if postgres {
        for t in ["types", "packs", "restores"] {
            v.push(format!(
                "SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
            ));
        }
    }
    v
}

pub fn statements(postgres: bool) -> Vec<String> {
    split(DDL, postgres)
}

/// A DDL text made into statements for one database (the mirror's tables use it).
fn split(ddl: &str, postgres: bool) -> Vec<String> {
    // SQLite keeps tables with a natural key clustered on it (no rowid, no second index):
    // the catalog is about a third smaller.
    let (pk, blob, norowid) = if postgres {
        ("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA", "")
    } else {
        ("INTEGER PRIMARY KEY", "BLOB", " WITHOUT ROWID")
    };
    ddl.replace("{pk}", pk)
        .replace("{blob}", blob)
        .replace("{norowid}", norowid)
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_names_every_table() {
        let made: Vec<String> = super::statements(false)
            .iter()
            .filter_map(|s| s.strip_prefix("CREATE TABLE IF NOT EXISTS ")?.split([' ', '(']).next().map(str::to_string))
            .collect();
        assert_eq!(made, super::TABLES);
    }
}
