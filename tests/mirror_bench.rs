//! The mirror benchmark (not a test: `bash bench/mirror.sh` runs it, ignored otherwise). On the
//! shared workload (4 x 50,000 records), mirror day 1, then day 2 with 1% churn, into the local
//! Google of fake_google/, and print requests and cells beside what a full rewrite would send.

mod common;
mod fake_google;

use common::{Backend, Env};
use serde_json::json;

/// Runs daybook with `args`; its stdout, and the peak memory (MiB) of that process alone,
/// from GNU time. Not from this process's wait4 or RUSAGE_CHILDREN: std spawns with vfork,
/// and the kernel then counts this process's own high-water memory (the local Google holds
/// every cell) into the child's, which is what an earlier 422 MiB figure was.
fn run_measured(env: &Env, args: &[&str]) -> (serde_json::Value, f64) {
    let c = env.cmd(args);
    let peak = env.path().join("peak.txt");
    let mut t = std::process::Command::new("/usr/bin/time");
    t.arg("-f").arg("%M").arg("-o").arg(&peak).arg(c.get_program()).args(c.get_args());
    t.current_dir(c.get_current_dir().unwrap());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    let o = t.output().expect("/usr/bin/time (apt-get install time)");
    assert!(o.status.success(), "daybook {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    let kib: f64 = std::fs::read_to_string(&peak).unwrap().trim().parse().unwrap();
    (serde_json::from_slice(&o.stdout).unwrap(), kib / 1024.0)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: bash bench/mirror.sh"]
async fn mirror_benchmark() {
    use rsa::pkcs8::EncodePrivateKey;
    let data = std::env::var("BENCH_WORKLOAD").expect("BENCH_WORKLOAD: a folder made by workload.py generate --days 2");
    let script = std::env::var("BENCH_WORKLOAD_PY").unwrap_or("../shared/bench/workload.py".into());
    let env = Env::new(Backend::Sqlite).await;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let fake = fake_google::Fake::start(rsa::RsaPublicKey::from(&private));
    let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
    let key = json!({"type": "service_account", "private_key": pem, "client_email": fake_google::SA_EMAIL, "token_uri": format!("{}token", fake.url)});
    std::fs::write(env.path().join("sa.json"), key.to_string()).unwrap();
    let wpm = 300;
    fake.with(|a| a.writes_per_minute = wpm);
    let root = fake.with(|a| a.root.clone());
    env.write_config(&format!(
        "[[orgs]]\nsid = \"acme\"\nname = \"Acme\"\n\n[[orgs.sources]]\nname = \"export\"\nkind = \"jsonl\"\npath = \"export\"\n\n\
         [[orgs.mirrors]]\nname = \"drive\"\nkind = \"google\"\ncredentials = \"sa.json\"\nfolder_id = \"{root}\"\n\
         drive_root_url = \"{u}\"\nsheets_root_url = \"{u}\"\nwrites_per_minute = {wpm}\n",
        u = fake.url
    ));
    env.ok(&["init"]);
    for day in [1, 2] {
        let st = std::process::Command::new("python3")
            .args([&script, "materialize", "--data", &data, "--day", &day.to_string(), "--to"])
            .arg(env.export())
            .status()
            .unwrap();
        assert!(st.success());
        env.ok(&["backup", "--no-mirror"]);
        let before = fake.with(|a| (a.writes(), a.cells_written, a.seen.len()));
        let t = std::time::Instant::now();
        let (r, peak) = run_measured(&env, &["mirror", "--json"]);
        let secs = t.elapsed().as_secs_f64();
        let (writes, cells, requests) =
            fake.with(|a| (a.writes() - before.0, a.cells_written - before.1, a.seen.len() - before.2));
        // What a tool that clears and rewrites would send: every cell of every data tab, in
        // requests of 2 MB, plus a clear per sheet.
        let (full_cells, full_requests) = fake.with(|a| {
            let mut cells = 0;
            let mut reqs = 0;
            for s in a.sheets.values() {
                let t = &s.tabs[0];
                let bytes: usize = t.cells.iter().flatten().map(|c| c.to_string().len() + 1).sum();
                cells += t.rows() * t.cols;
                reqs += 1 + bytes.div_ceil(2_000_000);
            }
            (cells, reqs)
        });
        let types = r["targets"][0]["types"].as_array().unwrap();
        let changed = types.iter().filter(|t| t["status"] == "written").count();
        let sheet_writes: Vec<u64> =
            types.iter().filter(|t| t["status"] == "written").map(|t| t["write_requests"].as_u64().unwrap()).collect();
        println!("day {day}: {requests} requests ({writes} writes), {cells} cells written, {secs:.1} s");
        println!(
            "day {day}: a full rewrite: {full_requests} sheet requests, {full_cells} cells; this run wrote {:.2}% of its cells",
            100.0 * cells as f64 / full_cells as f64
        );
        println!("day {day}: data types written {changed} of {}, write requests each {sheet_writes:?}", types.len());
        if day == 1 {
            println!(
                "day 1: the least Google's 60 writes a minute per user allows for {writes} writes: {:.1} s",
                writes as f64
            );
        }
        println!("peak memory of day {day}'s mirror process: {peak:.0} MiB");
    }
}
