//! Integrity: the catalog against the store, and (with read_data) every byte of every
//! pack decrypted and checked against the ids the catalog holds.

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sqlx::Row;
use std::collections::{HashMap, HashSet};

use super::Vault;
use super::pack;

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub packs: u64,
    pub blobs: u64,
    pub bytes_read: u64,
    /// Damage or loss: check fails.
    pub problems: Vec<String>,
    /// Harmless leftovers (packs of an interrupted backup, removed by the next one).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A blob's place in its pack: chunk offset and length, offset and length inside the chunk.
type Loc = (i64, i64, i64, i64);

struct PackRow {
    id: i64,
    org_id: i64,
    size: i64,
}

pub async fn check(vault: &Vault, read_data: bool) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    let pool = &vault.catalog.pool;
    let orgs: HashMap<i64, String> =
        sqlx::query("SELECT id, sid FROM orgs").fetch_all(pool).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut packs: HashMap<String, PackRow> = HashMap::new();
    for r in sqlx::query("SELECT id, org_id, name, size FROM packs").fetch_all(pool).await? {
        packs.insert(r.get(2), PackRow { id: r.get(0), org_id: r.get(1), size: r.get(3) });
    }
    rep.packs = packs.len() as u64;

    let in_store = vault.stored_packs().await?;
    let orphans = in_store.keys().filter(|n| !packs.contains_key(*n)).count();
    if orphans > 0 {
        rep.notes.push(format!("{orphans} packs in the store are not in the catalog (left by an interrupted backup; the next backup removes them)"));
    }

    let mut damaged: Vec<(i64, Vec<u8>, String)> = Vec::new();
    let mut missing_packs: Vec<(i64, String)> = Vec::new();
    for (name, p) in &packs {
        match in_store.get(name) {
            None => missing_packs.push((p.id, format!("pack {name} is missing from the store"))),
            Some((_, size)) if *size != p.size as u64 => missing_packs
                .push((p.id, format!("pack {name} has {size} bytes in the store, {} in the catalog", p.size))),
            _ => {}
        }
    }
    for (pack_id, why) in &missing_packs {
        rep.problems.push(why.clone());
        for r in sqlx::query("SELECT org_id, id FROM blobs WHERE pack_id = $1").bind(pack_id).fetch_all(pool).await? {
            damaged.push((r.get(0), r.get(1), why.clone()));
        }
    }

    // Every version and file must point at a blob the catalog knows: a lookup per version,
    // so on SQLite with a page cache that holds the blob table.
    let mut conn = pool.acquire().await?;
    if !vault.catalog.postgres {
        sqlx::query("PRAGMA cache_size = -262144").execute(&mut *conn).await?;
    }
    let dangling = sqlx::query(
        "SELECT v.sid, v.version FROM versions v JOIN types t ON t.id = v.type_id \
         LEFT JOIN blobs b ON b.org_id = t.org_id AND b.id = v.blob_id WHERE v.blob_id IS NOT NULL AND b.id IS NULL",
    )
    .fetch_all(&mut *conn)
    .await;
    if !vault.catalog.postgres {
        sqlx::query("PRAGMA cache_size = -16384").execute(&mut *conn).await?;
    }
    drop(conn);
    for r in dangling? {
        rep.problems.push(format!(
            "record {} version {} points at a blob the catalog does not have",
            r.get::<String, _>(0),
            r.get::<i64, _>(1)
        ));
    }
    rep.blobs = sqlx::query("SELECT COUNT(*) FROM blobs").fetch_one(pool).await?.get::<i64, _>(0) as u64;
    let file_pieces: HashSet<(i64, Vec<u8>)> = sqlx::query("SELECT org_id, id FROM blobs WHERE kind = $1")
        .bind(pack::BlobKind::FilePiece as i64)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for r in sqlx::query("SELECT org_id, uid, pieces FROM files").fetch_all(pool).await? {
        let pieces: Vec<u8> = r.get(2);
        if pieces.chunks(16).any(|p| !file_pieces.contains(&(r.get(0), p.to_vec()))) {
            rep.problems.push(format!("file {} has pieces the catalog does not have", r.get::<String, _>(1)));
        }
    }
    // The newest snapshot of each data type must match its current versions.
    for r in sqlx::query(
        "SELECT t.source, t.name, s.live, (SELECT COUNT(*) FROM versions v WHERE v.type_id = t.id AND v.to_cycle IS NULL AND v.deleted = 0) \
         FROM types t JOIN snapshots s ON s.type_id = t.id WHERE s.cycle_id = (SELECT MAX(cycle_id) FROM snapshots WHERE type_id = t.id)",
    )
    .fetch_all(pool)
    .await?
    {
        let (live, now): (i64, i64) = (r.get(2), r.get(3));
        if live != now {
            rep.problems.push(format!("{}/{}: last snapshot says {live} live records, the catalog has {now}", r.get::<String, _>(0), r.get::<String, _>(1)));
        }
    }

    // Each data type's compact current state must agree with its versions. (Two grouped
    // queries: as correlated subqueries SQLite reads every state blob to measure it.)
    let sizes: HashMap<i64, i64> = sqlx::query("SELECT type_id, SUM(LENGTH(entries)) FROM type_state GROUP BY type_id")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for r in sqlx::query(
        "SELECT t.id, t.source, t.name, COUNT(*) FROM versions v JOIN types t ON t.id = v.type_id \
         WHERE v.to_cycle IS NULL GROUP BY t.id, t.source, t.name",
    )
    .fetch_all(pool)
    .await?
    {
        let (type_id, current): (i64, i64) = (r.get(0), r.get(3));
        let Some(bytes) = sizes.get(&type_id) else { continue };
        let listed = bytes / super::catalog::STATE_ENTRY as i64;
        if listed != current {
            rep.problems.push(format!(
                "{}/{}: the current-state rows list {listed} records, the versions {current}",
                r.get::<String, _>(1),
                r.get::<String, _>(2),
            ));
        }
    }

    if read_data {
        // Where the catalog says each blob is, by pack, in one pass over the table.
        let mut expected: HashMap<i64, HashMap<[u8; 16], Loc>> = HashMap::new();
        let mut rows = sqlx::query("SELECT pack_id, id, chunk_off, chunk_len, inner_off, len FROM blobs").fetch(pool);
        while let Some(r) = rows.try_next().await? {
            let id: [u8; 16] = r.get::<Vec<u8>, _>(1).try_into().unwrap_or_default();
            expected.entry(r.get(0)).or_default().insert(id, (r.get(2), r.get(3), r.get(4), r.get(5)));
        }
        drop(rows);
        // Packs are read and verified two at a time, on both cores.
        let mut jobs = Vec::new();
        for (name, p) in &packs {
            let Some((path, _)) = in_store.get(name) else { continue };
            let Some(org_sid) = orgs.get(&p.org_id) else {
                rep.problems.push(format!("pack {name} belongs to no org"));
                continue;
            };
            let org = vault.existing_org(org_sid).await?.expect("org listed above");
            jobs.push((name.clone(), p.id, p.org_id, path.clone(), org));
        }
        let mut verified = futures::stream::iter(jobs)
            .map(|(name, pack_id, org_id, path, org)| async move {
                let bytes = vault.store.get(&path).await?.bytes().await?;
                let len = bytes.len() as u64;
                let expect = name.clone();
                let (name_ok, verdict) = tokio::task::spawn_blocking(move || {
                    (blake3::hash(&bytes).to_hex().as_str() == expect, pack::verify(&org.keys, &bytes))
                })
                .await?;
                anyhow::Ok((name, pack_id, org_id, len, name_ok, verdict))
            })
            .buffer_unordered(2);
        while let Some(done) = verified.next().await {
            let (name, pack_id, org_id, len, name_ok, verdict) = done?;
            rep.bytes_read += len;
            let expected = expected.remove(&pack_id).unwrap_or_default();
            if !name_ok {
                rep.problems.push(format!("pack {name}: its bytes do not match its name (altered in the store)"));
            }
            match verdict {
                Err(e) => {
                    let why = format!("pack {name}: {e}");
                    rep.problems.push(why.clone());
                    for id in expected.keys() {
                        damaged.push((org_id, id.to_vec(), why.clone()));
                    }
                }
                Ok((entries, bad)) => {
                    let bad_ids: HashSet<[u8; 16]> = bad.iter().map(|(id, _)| *id).collect();
                    for (id, why) in bad {
                        damaged.push((org_id, id.to_vec(), format!("pack {name}: {why}")));
                    }
                    let present: HashMap<[u8; 16], Loc> = entries
                        .iter()
                        .map(|e| (e.id, (e.chunk_off as i64, e.chunk_len as i64, e.inner_off as i64, e.len as i64)))
                        .collect();
                    for (id, loc) in &expected {
                        if present.get(id) != Some(loc) && !bad_ids.contains(id) {
                            damaged.push((
                                org_id,
                                id.to_vec(),
                                format!("pack {name} does not hold blob {} where the catalog says", hex::encode(id)),
                            ));
                        }
                    }
                }
            }
        }
    }

    // Name what each damaged blob affects: record versions and files.
    for (org_id, id, why) in damaged {
        let org = orgs.get(&org_id).cloned().unwrap_or_default();
        let versions = sqlx::query("SELECT v.sid, v.version FROM versions v JOIN types t ON t.id = v.type_id WHERE t.org_id = $1 AND v.blob_id = $2")
            .bind(org_id)
            .bind(id.clone())
            .fetch_all(pool)
            .await?;
        for v in versions {
            rep.problems.push(format!(
                "org {org}: record {} version {} is damaged ({why})",
                v.get::<String, _>(0),
                v.get::<i64, _>(1)
            ));
        }
        for f in sqlx::query("SELECT uid, pieces FROM files WHERE org_id = $1").bind(org_id).fetch_all(pool).await? {
            let pieces: Vec<u8> = f.get(1);
            if pieces.chunks(16).any(|p| p == id.as_slice()) {
                rep.problems.push(format!("org {org}: file {} is damaged ({why})", f.get::<String, _>(0)));
            }
        }
    }
    rep.problems.dedup();
    Ok(rep)
}
