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
    Backup {
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
    /// Erase one org for good: its key, catalog rows and stored objects. Others are untouched.
    EraseOrg {
        /// The org's SID.
        org: String,
        /// The org's SID again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
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

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DAYBOOK_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a journal or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let cfg = cli.config.as_path();
    let r = match cli.command {
        Command::Init => commands::init::run(cfg).await.map(|_| true),
        Command::Backup { org, source, allow_deletions, no_mirror, json } => {
            commands::backup::run(cfg, Filter { org, source, allow_deletions }, !no_mirror, json).await
        }
        Command::Mirror { action: None, org, target, rebuild, json } => {
            commands::mirror::run(cfg, &daybook::mirror::Options { org, target, rebuild }, json).await
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
        Command::Restore { sid, version, dry_run, again, json } => {
            let req = RestoreRequest { sid: &sid, version, dry_run, again };
            commands::restore::run(cfg, &req, json).await.map(|_| true)
        }
        Command::Export { org, at, to, json } => {
            commands::export::run(cfg, &org, at.as_deref(), &to, json).await.map(|_| true)
        }
        Command::Check { read_data, json } => commands::check::run(cfg, read_data, json).await,
        Command::EraseOrg { org, confirm } => commands::erase::run(cfg, &org, confirm.as_deref()).await.map(|_| true),
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
