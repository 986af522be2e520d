//! What `forget` keeps: each source's cycles, judged by its retention (the source's own, else
//! its org's) in the org's timezone; a data type keeps the snapshots of its source's kept
//! cycles, and its newest one whatever the policy says (a data type the source no longer
//! offers still keeps its last state, for recovery).

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use super::retention::{self, Decision};
use crate::config::Config;
use crate::vault::Vault;
use crate::vault::prune::Keep;

#[derive(Debug, Serialize)]
pub struct SourcePlan {
    pub org: String,
    pub source: String,
    /// None: no retention is configured, every snapshot is kept.
    pub retention: Option<retention::Retention>,
    /// Newest first.
    pub cycles: Vec<Decision>,
}

#[derive(Debug, Serialize)]
pub struct OrgPlan {
    pub org: String,
    pub sources: Vec<SourcePlan>,
    #[serde(skip)]
    pub keep: Keep,
    /// Snapshots (data type x cycle) that would go.
    pub forgotten_snapshots: u64,
}

pub async fn plan(vault: &Vault, cfg: &Config, org: Option<&str>) -> Result<Vec<OrgPlan>> {
    let mut out = Vec::new();
    for o in &cfg.orgs {
        let sid = o.sid.get_ref();
        if org.is_some_and(|w| w != sid) || vault.existing_org(sid).await?.is_none() {
            continue;
        }
        let tz: chrono_tz::Tz = o.timezone.get_ref().parse().unwrap_or(chrono_tz::UTC);
        let types = vault.types(Some(sid)).await?;
        let mut plan = OrgPlan { org: sid.clone(), sources: Vec::new(), keep: Keep::new(), forgotten_snapshots: 0 };
        let mut sources: Vec<String> = types.iter().map(|t| t.source.clone()).collect();
        sources.dedup();
        for source in sources {
            let policy = o
                .sources
                .iter()
                .find(|s| s.name.get_ref() == &source)
                .and_then(|s| s.retention.clone())
                .or(o.retention.clone());
            let mut by_type = Vec::new();
            let mut cycles: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
            for t in types.iter().filter(|t| t.source == source) {
                let snaps = vault.snapshots(Some(t.id)).await?;
                for s in &snaps {
                    let e = cycles.entry(s.cycle.0).or_insert(s.taken_at);
                    *e = (*e).min(s.taken_at);
                }
                by_type.push((t.id.0, snaps));
            }
            let list: Vec<(i64, DateTime<Utc>)> = cycles.into_iter().collect();
            let decisions = match &policy {
                Some(p) => retention::plan(&list, tz, p)?,
                None => list
                    .iter()
                    .rev()
                    .map(|(c, t)| Decision {
                        cycle: *c,
                        taken_at: *t,
                        keep: true,
                        reasons: vec!["no retention".into()],
                    })
                    .collect(),
            };
            let kept: BTreeSet<i64> = decisions.iter().filter(|d| d.keep).map(|d| d.cycle).collect();
            for (ty, snaps) in by_type {
                let mut k: BTreeSet<i64> = snaps.iter().map(|s| s.cycle.0).filter(|c| kept.contains(c)).collect();
                if let Some(last) = snaps.last() {
                    k.insert(last.cycle.0);
                }
                plan.forgotten_snapshots += (snaps.len() - k.len()) as u64;
                plan.keep.insert(ty, k);
            }
            plan.sources.push(SourcePlan { org: sid.clone(), source, retention: policy, cycles: decisions });
        }
        out.push(plan);
    }
    Ok(out)
}
