use anyhow::Result;
use std::path::Path;

use crate::util::human_bytes;
use crate::vault::check;

pub async fn run(config: &Path, read_data: bool, json: bool) -> Result<bool> {
    let (_, vault) = super::open(config).await?;
    let rep = check::check(&vault, read_data).await?;
    if json {
        super::print_json(&rep)?;
        return Ok(rep.ok());
    }
    println!(
        "checked {} packs, {} blobs{}",
        rep.packs,
        rep.blobs,
        if read_data { format!(", read and verified {}", human_bytes(rep.bytes_read)) } else { String::new() }
    );
    for n in &rep.notes {
        println!("note: {n}");
    }
    for p in &rep.problems {
        println!("PROBLEM: {p}");
    }
    if rep.ok() {
        println!("no problems found");
    } else {
        println!("{} problems found", rep.problems.len());
    }
    Ok(rep.ok())
}
