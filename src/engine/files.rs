//! A record's files into the vault: streamed from the connector in pieces of 1 MiB (never a
//! whole file in memory), each piece stored once per org, the file once per org; a file whose
//! fingerprint did not change since the data type last fetched it is not fetched again.

use anyhow::{Result, anyhow};
use tokio::io::AsyncReadExt;

use super::backup::TypeJob;
use super::delta::Delta;
use crate::connectors::{FileRef, Record};
use crate::vault::crypto::IdKey;
use crate::vault::pack::FILE_PIECE;
use crate::vault::read::StoredFile;
use crate::vault::state::{CachedFile, RawHash};
use crate::vault::write::TypeWriter;

/// Keyed hash of a record's text and its files' fingerprints; None when a file has no
/// fingerprint (then only its bytes can tell whether it changed).
pub fn raw_hash(ids: &IdKey, rec: &Record) -> Option<RawHash> {
    let mut h = ids.hasher();
    h.update(rec.json.as_bytes());
    for f in &rec.files {
        h.update(b"\0");
        h.update(f.key.as_bytes());
        h.update(b"\0");
        h.update(f.fingerprint.as_ref()?.as_bytes());
    }
    Some(h.finalize().as_bytes()[..6].try_into().expect("6 bytes"))
}

/// Stores a file (or finds it stored) and says what the record keeps of it, and whether it
/// was fetched.
pub async fn store(
    job: &TypeJob<'_>,
    w: &mut TypeWriter<'_>,
    delta: &mut Delta,
    f: &FileRef,
) -> Result<(StoredFile, bool)> {
    if let (Some(fpr), Some(cached)) = (&f.fingerprint, delta.cached_file(&f.key))
        && *fpr == cached.fingerprint
        && let Some(size) = w.file(&cached.uid)
    {
        let uid = cached.uid.clone();
        return Ok((StoredFile { key: f.key.clone(), name: f.name.clone(), size, uid }, false));
    }
    let mut reader = job.connector.fetch_file(f).await.map_err(|e| anyhow!("{e}"))?;
    let mut whole = job.org.keys.hasher();
    let mut pieces = Vec::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; FILE_PIECE];
    loop {
        let mut n = 0;
        while n < buf.len() {
            let k = reader.read(&mut buf[n..]).await?;
            if k == 0 {
                break;
            }
            n += k;
        }
        if n == 0 && !pieces.is_empty() {
            break;
        }
        let piece = &buf[..n];
        whole.update(piece);
        size += n as u64;
        let id = job.org.keys.blob_id(piece);
        let r = match w.piece(&id) {
            Some(r) => r,
            None => w.put_piece(piece).await?,
        };
        pieces.push(r);
        if n < buf.len() {
            break;
        }
    }
    let uid = hex::encode(&whole.finalize().as_bytes()[..16]);
    w.add_file(&uid, size, &pieces);
    if let Some(fpr) = &f.fingerprint {
        delta.cache_file(&f.key, CachedFile { fingerprint: fpr.clone(), uid: uid.clone() });
    }
    Ok((StoredFile { key: f.key.clone(), name: f.name.clone(), size, uid }, true))
}
