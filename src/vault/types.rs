//! Data types, as the vault keeps them: found by a keyed hash of their stable key, with their
//! key, name, hierarchy path and SID seed sealed with the org's key.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::catalog::{TypeOp, TypeRecord};
use super::read::{TypeId, TypeInfo};
use super::{Org, Vault};

/// A data type as a source offers it now.
#[derive(Debug, Clone, Copy)]
pub struct TypeIdentity<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub path: &'a [String],
    /// Keys it may be stored under by an earlier release.
    pub former: &'a [String],
}

#[derive(Serialize, Deserialize)]
struct TypeMeta {
    key: String,
    name: String,
    path: Vec<String>,
    /// What its records' SIDs derive from: its key when first seen, kept across renames.
    seed: String,
}

const META_AAD: &[u8] = b"daybook type v1";

impl Vault {
    pub(crate) fn type_key_id(org: &Org, key: &str) -> Vec<u8> {
        let mut h = org.keys.hasher();
        h.update(b"type\0");
        h.update(key.as_bytes());
        h.finalize().as_bytes()[..16].to_vec()
    }

    fn seal_meta(org: &Org, m: &TypeMeta) -> Result<Vec<u8>> {
        Ok(org.keys.seal.seal(META_AAD, &serde_json::to_vec(m)?))
    }

    fn open_meta(org: &Org, r: &TypeRecord) -> Result<TypeMeta> {
        let plain = org.keys.seal.open(META_AAD, &r.meta).with_context(|| {
            format!("org {}: data type #{} does not open with the org's key (altered?)", org.sid, r.id)
        })?;
        Ok(serde_json::from_slice(&plain)?)
    }

    pub(crate) fn type_info_of(org: &Org, r: &TypeRecord) -> Result<TypeInfo> {
        let m = Self::open_meta(org, r)?;
        Ok(TypeInfo {
            id: TypeId(r.id),
            org: r.org.clone(),
            source: r.source.clone(),
            key: m.key,
            name: m.name,
            path: m.path,
            seed: m.seed,
        })
    }

    /// A source's data types the vault knows.
    pub async fn types_of(&self, org: &Org, source: &str) -> Result<Vec<TypeInfo>> {
        let mut v: Vec<TypeInfo> = self
            .catalog
            .type_records(Some(org.id), Some(source))
            .await?
            .iter()
            .map(|r| Self::type_info_of(org, r))
            .collect::<Result<_>>()?;
        v.sort_by(|a, b| (&a.name, &a.key).cmp(&(&b.name, &b.key)));
        Ok(v)
    }

    /// Brings a source's data types in line with what it offers now: new ones are added, known
    /// ones take their current name and path, and one stored under a former key (an earlier
    /// release's name for it) moves to its stable key with its history. Returns the types of
    /// `found`, in its order.
    pub async fn sync_types(&self, org: &Org, source: &str, found: &[TypeIdentity<'_>]) -> Result<Vec<TypeInfo>> {
        let known = self.catalog.type_records(Some(org.id), Some(source)).await?;
        let mut known: Vec<(TypeRecord, TypeMeta)> =
            known.into_iter().map(|r| Self::open_meta(org, &r).map(|m| (r, m))).collect::<Result<_>>()?;
        let mut ops = Vec::new();
        // Per found type: the index of its known row, or the index of its insert among the ops.
        let mut plan: Vec<Result<usize, usize>> = Vec::new();
        let mut inserts = 0;
        for (i, t) in found.iter().enumerate() {
            if found[..i].iter().any(|o| o.key == t.key) {
                bail!("the source offers the data type {} twice", t.key);
            }
            let mut at = known.iter().position(|(_, m)| m.key == t.key);
            if at.is_none() {
                at = t
                    .former
                    .iter()
                    .filter(|f| !found.iter().any(|o| o.key == f.as_str()))
                    .find_map(|f| known.iter().position(|(_, m)| &m.key == f));
                if let Some(j) = at {
                    tracing::info!(
                        "data type {:?} of {source} is now known by its stable key {}",
                        known[j].1.key,
                        t.key
                    );
                }
            }
            match at {
                Some(j) => {
                    let (r, m) = &mut known[j];
                    if m.key != t.key || m.name != t.name || m.path != t.path {
                        m.key = t.key.to_string();
                        m.name = t.name.to_string();
                        m.path = t.path.to_vec();
                        ops.push(TypeOp::Update {
                            id: r.id,
                            key_id: Self::type_key_id(org, t.key),
                            meta: Self::seal_meta(org, m)?,
                        });
                    }
                    plan.push(Ok(j));
                }
                None => {
                    let m = TypeMeta {
                        key: t.key.to_string(),
                        name: t.name.to_string(),
                        path: t.path.to_vec(),
                        seed: t.key.to_string(),
                    };
                    ops.push(TypeOp::Insert { key_id: Self::type_key_id(org, t.key), meta: Self::seal_meta(org, &m)? });
                    plan.push(Err(inserts));
                    inserts += 1;
                }
            }
        }
        let ids = self.catalog.apply_type_ops(org.id, source, ops).await?;
        plan.into_iter()
            .zip(found)
            .map(|(p, t)| {
                let (id, seed) = match p {
                    Ok(j) => (known[j].0.id, known[j].1.seed.clone()),
                    Err(n) => (ids[n], t.key.to_string()),
                };
                Ok(TypeInfo {
                    id: TypeId(id),
                    org: org.sid.clone(),
                    source: source.to_string(),
                    key: t.key.to_string(),
                    name: t.name.to_string(),
                    path: t.path.to_vec(),
                    seed,
                })
            })
            .collect()
    }

    /// Where a data type's reads stand: its change cursor, and when its last whole read began.
    pub async fn type_progress(&self, ty: TypeId) -> Result<(Option<String>, Option<String>)> {
        self.catalog.type_progress(ty.0).await
    }

    /// A record's key in a data type: its SID is the base32 of it.
    pub fn record_key(org: &Org, ty: &TypeInfo, id: &str) -> super::state::Key {
        ty.record_key(&org.keys.ids, id)
    }
}
