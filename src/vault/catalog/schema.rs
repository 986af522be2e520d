//! Catalog tables. One text for both SQLite and PostgreSQL; `{pk}` and `{blob}` differ.
//!
//! A record's versions each carry the cycle range in which they were current
//! (`from_cycle`, `to_cycle`), so a snapshot costs rows only for what changed, and the state
//! at any cycle is "versions whose range holds that cycle". `type_state` holds each data
//! type's current versions in a few compact rows (derivable from `versions`, rewritten in the
//! same transaction), so a cycle starts with one read instead of one row per record.

/// 1: the first release. 2: data types known by a stable key with a name, a path and a SID
/// seed; a sealed backup log; records found by their id at the source through an index.
pub const SCHEMA_VERSION: i64 = 2;

/// Every table, for what is done to all of them.
pub const TABLES: &[&str] = &[
    "meta",
    "orgs",
    "cycles",
    "types",
    "records",
    "versions",
    "type_state",
    "snapshots",
    "packs",
    "blobs",
    "files",
    "file_cache",
    "cycle_log",
    "restores",
    "locks",
    "mirror_state",
];

const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
    id {pk}, sid TEXT NOT NULL UNIQUE, name TEXT NOT NULL, store_id TEXT NOT NULL,
    wrapped_key {blob} NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cycles (
    id {pk}, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS types (
    id {pk}, org_id BIGINT NOT NULL, source TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
    path TEXT NOT NULL, seed TEXT NOT NULL, cursor TEXT, last_full_cycle BIGINT, UNIQUE (org_id, source, key));
CREATE TABLE IF NOT EXISTS records (
    sid TEXT PRIMARY KEY, type_id BIGINT NOT NULL, source_id TEXT NOT NULL, first_cycle BIGINT NOT NULL){norowid};
CREATE INDEX IF NOT EXISTS records_source_id ON records (source_id);
CREATE TABLE IF NOT EXISTS versions (
    sid TEXT NOT NULL, version BIGINT NOT NULL, type_id BIGINT NOT NULL,
    from_cycle BIGINT NOT NULL, to_cycle BIGINT, deleted BIGINT NOT NULL,
    blob_id {blob}, size BIGINT NOT NULL,
    PRIMARY KEY (sid, version)){norowid};
CREATE INDEX IF NOT EXISTS versions_current ON versions (type_id, sid, deleted) WHERE to_cycle IS NULL;
CREATE INDEX IF NOT EXISTS versions_from ON versions (type_id, from_cycle);
CREATE TABLE IF NOT EXISTS type_state (
    type_id BIGINT NOT NULL, part BIGINT NOT NULL, entries {blob} NOT NULL, PRIMARY KEY (type_id, part)){norowid};
CREATE TABLE IF NOT EXISTS snapshots (
    type_id BIGINT NOT NULL, cycle_id BIGINT NOT NULL, taken_at TEXT NOT NULL, full_read BIGINT NOT NULL,
    listed BIGINT NOT NULL, live BIGINT NOT NULL, added BIGINT NOT NULL, changed BIGINT NOT NULL,
    deleted BIGINT NOT NULL, drift BIGINT NOT NULL, stored_bytes BIGINT NOT NULL,
    PRIMARY KEY (type_id, cycle_id)){norowid};
CREATE TABLE IF NOT EXISTS packs (
    id {pk}, org_id BIGINT NOT NULL, name TEXT NOT NULL UNIQUE, size BIGINT NOT NULL, cycle_id BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    org_id BIGINT NOT NULL, id {blob} NOT NULL, pack_id BIGINT NOT NULL, kind BIGINT NOT NULL,
    chunk_off BIGINT NOT NULL, chunk_len BIGINT NOT NULL, inner_off BIGINT NOT NULL, len BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)){norowid};
CREATE TABLE IF NOT EXISTS files (
    org_id BIGINT NOT NULL, uid TEXT NOT NULL, size BIGINT NOT NULL, pieces {blob} NOT NULL,
    PRIMARY KEY (org_id, uid)){norowid};
CREATE TABLE IF NOT EXISTS file_cache (
    type_id BIGINT NOT NULL, file_key TEXT NOT NULL, fingerprint TEXT NOT NULL, uid TEXT NOT NULL,
    PRIMARY KEY (type_id, file_key)){norowid};
CREATE TABLE IF NOT EXISTS cycle_log (
    id {pk}, cycle_id BIGINT NOT NULL, at TEXT NOT NULL, level TEXT NOT NULL, org TEXT NOT NULL,
    source TEXT NOT NULL, type_id BIGINT, summary TEXT NOT NULL, detail {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS restores (
    id {pk}, at TEXT NOT NULL, type_id BIGINT NOT NULL, sid TEXT NOT NULL, version BIGINT NOT NULL,
    new_id TEXT NOT NULL, files BIGINT NOT NULL, notes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, heartbeat TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mirror_state (
    org_id BIGINT NOT NULL, target TEXT NOT NULL, type_id BIGINT NOT NULL, cycle BIGINT,
    mirrored_at TEXT, attempted_at TEXT NOT NULL, requests BIGINT NOT NULL, cells BIGINT NOT NULL,
    error {blob}, state {blob}, PRIMARY KEY (org_id, target, type_id)){norowid};
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
    v.extend(statements(postgres));
    v
}

pub fn statements(postgres: bool) -> Vec<String> {
    split(DDL, postgres)
}

/// A DDL text made into statements for one database (the mirror's tables use it).
pub fn split_ddl(ddl: &str, postgres: bool) -> Vec<String> {
    split(ddl, postgres)
}

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
