use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use daybook::commands;
use daybook::engine::Filter;
use daybook::engine::restore::{RecoverFilter, RestoreRequest};

/// Daily, encrypted, versioned backups of cloud apps' data.
///
/// The vault passphrase comes from DAYBOOK_PASSPHRASE (or is asked on a terminal).
#[derive(Parser)]
#[command(name = "daybook", version)]
struct Cli {
    /// Config file (TOML; see config.example.toml).
    #[arg(long, global = true, env = "DAYBOOK_CONFIG", default_value = "daybook.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the vault (blob store and catalog) named in the config.
    Init,
    /// Run one backup cycle of every configured source. Exit status 1 if a data type failed.
    ///
    /// With --now, ask the running daemon instead (through its job queue): refused within 5
    /// minutes of a source's last backup, saying when it can run.
    Backup {
        /// Queue the backup for the running daemon rather than run it here.
        #[arg(long)]
        now: bool,
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Only this source (its name).
        #[arg(long)]
        source: Option<String>,
        /// Commit deletions even beyond engine.max_deleted_share (when records really were
        /// deleted in bulk at the source).
        #[arg(long)]
        allow_deletions: bool,
        /// Do not bring the mirrors up to date after the backup commits.
        #[arg(long)]
        no_mirror: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Bring the mirrors (Google Sheets + Drive, local folders) up to date with the latest
    /// snapshots, writing only what changed. Exit status 1 if a data type failed.
    Mirror {
        #[command(subcommand)]
        action: Option<MirrorAction>,
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Only this mirror (its name).
        #[arg(long)]
        target: Option<String>,
        /// Write the mirrors again from the vault, as if never written.
        #[arg(long)]
        rebuild: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List snapshots per org, source, data type and cycle, with counts and sizes.
    Snapshots {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every version of one record, with capture times.
    History {
        /// The record's SID (or its id at the source, when that names one record).
        sid: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A record as it was at a time (default: now).
    Show {
        /// The record's SID (or its id at the source, when that names one record).
        sid: String,
        /// YYYY-MM-DD (end of that day in the org's timezone), an RFC 3339 time, or cycle:N.
        #[arg(long)]
        at: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Records added, changed and deleted in a data type between two times.
    Diff {
        /// The data type: TYPE, SOURCE/TYPE or ORG/SOURCE/TYPE.
        #[arg(long = "type")]
        data_type: String,
        /// YYYY-MM-DD, an RFC 3339 time, or cycle:N.
        #[arg(long)]
        from: String,
        /// YYYY-MM-DD, an RFC 3339 time, or cycle:N.
        #[arg(long)]
        to: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The backup log: each data type's and source's outcome per cycle, errors in full.
    Log {
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Only this cycle.
        #[arg(long)]
        cycle: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List records deleted at the source: last known content, last seen, deletion noticed.
    Recover {
        /// Only this source (its name).
        #[arg(long)]
        source: Option<String>,
        /// Only this data type.
        #[arg(long = "type")]
        data_type: Option<String>,
        /// Only records whose last content holds this text (any case).
        #[arg(long)]
        search: Option<String>,
        /// Only deletions noticed since: YYYY-MM-DD (start of that day), an RFC 3339 time, or cycle:N.
        #[arg(long)]
        since: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a copy of a stored record (and its files) in its app. Never overwrites or
    /// deletes anything there; prints the copy's new id.
    Restore {
        /// The record's SID (or its id at the source, when that names one record).
        sid: String,
        /// The version to copy (default: the last one with content).
        #[arg(long)]
        version: Option<i64>,
        /// Show what would be created, and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Make another copy of a version that was already restored.
        #[arg(long)]
        again: bool,
        /// Ask the running daemon to do it (a restore job); prints the job's id.
        #[arg(long)]
        queue: bool,
        /// With --queue: who is emailed when it ends (default: the org's admin_email).
        #[arg(long, requires = "queue")]
        email: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write an org's data as it was at a time to a folder, as plain files: per data type its
    /// records as JSON lines and the files they refer to.
    Export {
        /// The org (its SID).
        #[arg(long)]
        org: String,
        /// YYYY-MM-DD (end of that day in the org's timezone), an RFC 3339 time, or cycle:N
        /// (default: the latest snapshots).
        #[arg(long)]
        at: Option<String>,
        /// The folder to write into (created; must be empty if it exists).
        #[arg(long)]
        to: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify the catalog against the store. Exit status 0 only if all is well.
    Check {
        /// Also decrypt and verify every blob.
        #[arg(long)]
        read_data: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Say for each cycle whether retention keeps its snapshots and why, then forget the others
    /// (their data stays until `prune`).
    Forget {
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Only say what would be forgotten.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove what no snapshot needs (packs, files) and repack mostly unused packs. Safe to
    /// interrupt: the vault stays whole at every point.
    Prune {
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Erase one org for good: its key, catalog rows and stored objects. Others are untouched.
    EraseOrg {
        /// The org's SID.
        org: String,
        /// The org's SID again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Run the daemon: the schedule of every org, the job workers, and the HTTP server
    /// (/healthz, /metrics) on daemon.listen. SIGTERM finishes or parks running jobs; SIGHUP
    /// reloads the config (a bad one is refused and the old one kept).
    Daemon {
        /// Log one JSON object a line (for a log collector) instead of text.
        #[arg(long)]
        log_json: bool,
    },
    /// Per org: the next scheduled run, what is running, the last result; and the daemons
    /// running on the catalog. Needs no passphrase.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Downloadable zip archives of an org's data: quoted, built, linked, downloaded, deleted.
    Archive {
        #[command(subcommand)]
        action: ArchiveAction,
    },
    /// Archive charges and accrued storage of an org.
    Billing {
        /// The org (its SID).
        #[arg(long)]
        org: String,
        /// Only this month: YYYY-MM.
        #[arg(long)]
        month: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The daemon's job logs: what each job read, what changed, how long, what failed and why.
    Logs {
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Only this job (its id, as `status` and `backup --now` show it).
        #[arg(long)]
        job: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve archive downloads (the links archives are sent with point here), the dashboard
    /// and its API over HTTP; archives ordered on the dashboard are built by this process.
    Serve {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// The dashboard's users: an org's admins, and operators who see every org. Passwords come
    /// from DAYBOOK_USER_PASSWORD or are asked on a terminal.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// API tokens for scripts, one org each (Authorization: Bearer TOKEN on /api/v1).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Serve only the dashboard and API (for benchmarks and trying the pages).
    #[command(hide = true)]
    Web {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Run the main job end to end on a sample account, offline.
    Demo {
        /// Folder for the demo (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user (at least 12 characters of password).
    Add {
        /// The org an admin belongs to (its SID); none for an operator.
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        email: String,
        /// admin (one org) or operator (every org).
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// List users (of one org, or all).
    List {
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and end their sessions.
    Remove {
        #[arg(long)]
        email: String,
    },
    /// Set a new password; the user's sessions end.
    ResetPassword {
        #[arg(long)]
        email: String,
        /// Also remove their second factor (a lost phone): they enroll again on the Account page.
        #[arg(long)]
        clear_second_factor: bool,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token for an org and print it, once; only its hash is kept.
    Create {
        /// The org (its SID).
        #[arg(long)]
        org: String,
        /// What it is for (named in the audit log).
        #[arg(long, default_value = "script")]
        name: String,
    },
}

#[derive(Subcommand)]
enum MirrorAction {
    /// Per mirror and data type: the cycle mirrored, when, requests, cells, errors.
    Status {
        /// Only this org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sign in for a google mirror whose credentials are an OAuth client (installed-app
    /// flow with a localhost redirect); the token is kept in its token_cache.
    Login {
        /// The mirror's org (its SID).
        #[arg(long)]
        org: Option<String>,
        /// The mirror's name.
        #[arg(long)]
        target: Option<String>,
    },
}

#[derive(Subcommand)]
enum ArchiveAction {
    /// The price of an archive, from the catalog, before anything is built: versions, files,
    /// bytes, parts.
    Quote {
        /// The org (its SID).
        #[arg(long)]
        org: String,
        /// YYYY-MM-DD (end of that day in the org's timezone), an RFC 3339 time, or cycle:N
        /// (default: the latest snapshots).
        #[arg(long)]
        at: Option<String>,
        /// Every version up to then (deleted records' last versions included), not only the
        /// snapshot's.
        #[arg(long)]
        history: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the quote, ask (or take --yes), build the archive and send its link.
    Create {
        /// The org (its SID).
        #[arg(long)]
        org: String,
        /// The archive's name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// YYYY-MM-DD (end of that day in the org's timezone), an RFC 3339 time, or cycle:N
        /// (default: the latest snapshots).
        #[arg(long)]
        at: Option<String>,
        /// Every version up to then (deleted records' last versions included), not only the
        /// snapshot's.
        #[arg(long)]
        history: bool,
        /// Names Windows' Explorer can extract (`:` as U+FF1A, ...); also archive.windows_safe_names.
        #[arg(long)]
        windows_safe: bool,
        /// Email the link (or the failure) to this address.
        #[arg(long)]
        email: Option<String>,
        /// Accept the price without asking.
        #[arg(long)]
        yes: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// An org's archives: name, description, status, versions, files, size, link, date, price.
    List {
        /// The org (its SID).
        #[arg(long)]
        org: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One archive, with its parts and any failure.
    Show {
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rename an archive (and change its description).
    Rename {
        id: i64,
        #[arg(long)]
        name: String,
        /// The new description ("" removes it).
        #[arg(long)]
        description: Option<String>,
    },
    /// A fresh signed download link per part; nothing is rebuilt.
    Link {
        id: i64,
        /// How long it works: 7d, 12h, 30m (default: archive.link_days).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Every link to the archive stops working.
    Revoke { id: i64 },
    /// Write the archive to a file (several parts: PATH's stem with .partN.zip).
    Download {
        id: i64,
        #[arg(long)]
        to: PathBuf,
    },
    /// Delete the archive: links stop, stored parts go, storage stops accruing.
    Delete { id: i64 },
}

fn main() -> ExitCode {
    // glibc gives each thread that allocates under contention an arena of its own (up to 8
    // a core) and rarely hands their memory back: with two, a mirror of 200,000 records
    // peaks at 151 MiB instead of 241. Set before the runtime starts its threads.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; no thread allocates concurrently yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let log = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DAYBOOK_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr);
    if matches!(cli.command, Command::Daemon { log_json: true }) {
        // One JSON object a line, for a log collector.
        log.json().init();
    } else {
        // Colour codes only for a person at a terminal, never into a journal or a file.
        log.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
    let cfg = cli.config.as_path();
    let r = match cli.command {
        Command::Init => commands::init::run(cfg).await.map(|_| true),
        Command::Backup { now: true, org, source, allow_deletions, no_mirror, json } => {
            commands::backup::now(cfg, Filter { org, source, allow_deletions }, !no_mirror, json).await.map(|_| true)
        }
        Command::Backup { now: false, org, source, allow_deletions, no_mirror, json } => {
            commands::backup::run(cfg, Filter { org, source, allow_deletions }, !no_mirror, json).await
        }
        Command::Mirror { action: None, org, target, rebuild, json } => {
            commands::mirror::run(cfg, &daybook::mirror::Options { org, target, rebuild, now: None }, json).await
        }
        Command::Mirror { action: Some(MirrorAction::Status { org, json }), .. } => {
            commands::mirror::status(cfg, org.as_deref(), json).await.map(|_| true)
        }
        Command::Mirror { action: Some(MirrorAction::Login { org, target }), .. } => {
            commands::mirror::login(cfg, org.as_deref(), target.as_deref()).await.map(|_| true)
        }
        Command::Snapshots { json } => commands::snapshots::run(cfg, json).await.map(|_| true),
        Command::History { sid, json } => commands::history::run(cfg, &sid, json).await.map(|_| true),
        Command::Show { sid, at, json } => commands::show::run(cfg, &sid, at.as_deref(), json).await.map(|_| true),
        Command::Diff { data_type, from, to, json } => {
            commands::diff::run(cfg, &data_type, &from, &to, json).await.map(|_| true)
        }
        Command::Log { org, cycle, json } => commands::log::run(cfg, org.as_deref(), cycle, json).await.map(|_| true),
        Command::Recover { source, data_type, search, since, json } => {
            let f = RecoverFilter { source, data_type, search, since, ..Default::default() };
            commands::recover::run(cfg, &f, json).await.map(|_| true)
        }
        Command::Restore { sid, version, dry_run, again, queue, email, json } => {
            let req = RestoreRequest { sid: &sid, version, dry_run, again };
            if queue {
                commands::restore::queue(cfg, &req, email.as_deref(), json).await.map(|_| true)
            } else {
                commands::restore::run(cfg, &req, json).await.map(|_| true)
            }
        }
        Command::Export { org, at, to, json } => {
            commands::export::run(cfg, &org, at.as_deref(), &to, json).await.map(|_| true)
        }
        Command::Check { read_data, json } => commands::check::run(cfg, read_data, json).await,
        Command::Forget { org, dry_run, json } => {
            commands::forget::run(cfg, org.as_deref(), dry_run, json).await.map(|_| true)
        }
        Command::Prune { org, dry_run, json } => {
            commands::prune::run(cfg, org.as_deref(), dry_run, json).await.map(|_| true)
        }
        Command::EraseOrg { org, confirm } => commands::erase::run(cfg, &org, confirm.as_deref()).await.map(|_| true),
        Command::Daemon { .. } => {
            let r = commands::daemon::run(cfg).await;
            if r.is_ok() {
                // Stopped, its jobs finished or parked: a read still blocked in a source (a
                // hung mount, a pipe) must not hold the exit past systemd's TimeoutStopSec,
                // as waiting for the runtime's blocking threads would.
                std::process::exit(0);
            }
            r.map(|_| true)
        }
        Command::Status { json } => commands::status::run(cfg, json).await.map(|_| true),
        Command::Logs { org, job, json } => commands::logs::run(cfg, org.as_deref(), job, json).await.map(|_| true),
        Command::Archive { action } => run_archive(cfg, action).await,
        Command::Billing { org, month, json } => {
            commands::billing::run(cfg, &org, month.as_deref(), json).await.map(|_| true)
        }
        Command::Serve { listen } => commands::serve::run(cfg, listen).await.map(|_| true),
        Command::User { action: UserAction::Add { org, email, role } } => {
            commands::user::add(cfg, org.as_deref(), &email, &role).await.map(|_| true)
        }
        Command::User { action: UserAction::List { org, json } } => {
            commands::user::list(cfg, org.as_deref(), json).await.map(|_| true)
        }
        Command::User { action: UserAction::Remove { email } } => {
            commands::user::remove(cfg, &email).await.map(|_| true)
        }
        Command::User { action: UserAction::ResetPassword { email, clear_second_factor } } => {
            commands::user::reset_password(cfg, &email, clear_second_factor).await.map(|_| true)
        }
        Command::Token { action: TokenAction::Create { org, name } } => {
            commands::user::create_token(cfg, &org, &name).await.map(|_| true)
        }
        Command::Web { listen } => commands::web::run(cfg, listen).await.map(|_| true),
        Command::Demo { dir } => commands::demo::run(dir).await.map(|_| true),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_archive(cfg: &std::path::Path, action: ArchiveAction) -> anyhow::Result<bool> {
    use commands::archive as a;
    match action {
        ArchiveAction::Quote { org, at, history, json } => a::quote(cfg, &org, at.as_deref(), history, json).await,
        ArchiveAction::Create { org, name, description, at, history, windows_safe, email, yes, json } => {
            let args = a::CreateArgs {
                org: &org,
                name: &name,
                description: description.as_deref(),
                at: at.as_deref(),
                history,
                windows_safe,
                email: email.as_deref(),
                yes,
                json,
            };
            return a::create(cfg, &args).await;
        }
        ArchiveAction::List { org, json } => a::list(cfg, &org, json).await,
        ArchiveAction::Show { id, json } => a::show(cfg, id, json).await,
        ArchiveAction::Rename { id, name, description } => a::rename(cfg, id, &name, description.as_deref()).await,
        ArchiveAction::Link { id, expires } => a::link(cfg, id, expires.as_deref()).await,
        ArchiveAction::Revoke { id } => a::revoke(cfg, id).await,
        ArchiveAction::Download { id, to } => a::download(cfg, id, &to).await,
        ArchiveAction::Delete { id } => a::delete(cfg, id).await,
    }
    .map(|_| true)
}
