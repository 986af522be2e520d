use anyhow::Result;
use std::path::Path;

use crate::connectors;
use crate::engine::restore::{self, RestoreRequest};

pub async fn run(config: &Path, req: &RestoreRequest<'_>, json: bool) -> Result<()> {
    let (cfg, vault) = super::open(config).await?;
    let out = restore::restore(&vault, &cfg, req, &connectors::build).await?;
    if json {
        return super::print_json(&out);
    }
    let r = &out.record;
    let files = out.files.iter().map(|(n, s)| format!("{n} ({s} bytes)")).collect::<Vec<_>>().join(", ");
    match &out.restored {
        None => {
            println!(
                "dry run: would create a copy of {} version {} in {}/{}:",
                r.sid, out.version, r.source, r.data_type
            );
            println!("{}", serde_json::to_string_pretty(&out.content)?);
            if !files.is_empty() {
                println!("with files: {files}");
            }
            println!("nothing was written");
        }
        Some(done) => {
            println!(
                "restored {} version {} as a new record in {}/{}: new id {}",
                r.sid, out.version, r.source, r.data_type, done.new_id
            );
            println!("{} of {} files uploaded again", done.files_uploaded, out.files.len());
            for n in &done.notes {
                println!("note: {n}");
            }
        }
    }
    Ok(())
}
