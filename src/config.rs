//! The daybook config file (TOML). Relative paths in it are relative to the file's folder,
//! so a config and its data can be moved together.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

use crate::engine::retention::Retention;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub vault: VaultConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub orgs: Vec<OrgConfig>,
    /// `daybook daemon`: workers, leases, where it listens.
    #[serde(default)]
    pub daemon: crate::daemon::config::DaemonConfig,
    #[serde(default)]
    pub archive: crate::archive::config::ArchiveConfig,
    #[serde(default)]
    pub pricing: crate::archive::config::PricingConfig,
    pub email: Option<crate::email::EmailConfig>,
    /// The admins' dashboard and API (served by `daybook serve` and `daybook daemon`).
    #[serde(default)]
    pub web: WebConfig,
    /// Folder of the config file; relative paths resolve against it.
    #[serde(skip)]
    pub base: PathBuf,
    #[serde(skip)]
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `sqlite://path` or `postgres://...`
    pub catalog: String,
    /// A folder for the blob store.
    pub store: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Sources that can read only what changed are still read whole at least this often
    /// (days), and what their change feed missed is reported as drift. 0: always whole.
    #[serde(default = "default_full_every_days")]
    pub full_every_days: u32,
    /// A data type whose read would delete more than this share of its records (0 to 1) is
    /// not committed: an export that broke off halfway must not read as mass deletion.
    #[serde(default = "default_max_deleted_share")]
    pub max_deleted_share: f64,
}

fn default_max_deleted_share() -> f64 {
    0.5
}

fn default_full_every_days() -> u32 {
    7
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { full_every_days: default_full_every_days(), max_deleted_share: default_max_deleted_share() }
    }
}

/// `[web]`: sessions and the sign-in limiter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The dashboard is reached over HTTPS (through a TLS proxy): session cookies get `Secure`.
    pub behind_tls: bool,
    /// Take the client's address from X-Forwarded-For (set only behind a proxy that writes it).
    pub trust_forwarded_for: bool,
    /// A session ends this many hours after sign-in, or after `idle_minutes` without a request.
    pub session_hours: u32,
    pub idle_minutes: u32,
    /// Failed sign-ins allowed within `limit_window_minutes`, per account and per address.
    pub failures_per_account: u32,
    pub failures_per_address: u32,
    pub limit_window_minutes: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            behind_tls: false,
            trust_forwarded_for: false,
            session_hours: 12,
            idle_minutes: 60,
            failures_per_account: 5,
            failures_per_address: 20,
            limit_window_minutes: 15,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    pub sid: Spanned<String>,
    pub name: String,
    #[serde(default = "default_timezone")]
    pub timezone: Spanned<String>,
    /// Who hears of a failed cycle (by email, when `[email]` is set).
    #[serde(default)]
    pub admin_email: Option<String>,
    /// When the daemon runs the org's cycle.
    #[serde(default)]
    pub schedule: crate::daemon::config::ScheduleConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Where the org's latest snapshots are mirrored (Google Sheets + Drive, a folder).
    #[serde(default)]
    pub mirrors: Vec<MirrorConfig>,
    /// Which snapshots `forget` keeps (none: every one); a source's own `retention` wins.
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// A mirror target's common keys (name, kind) and its kind's keys: the same shape as a
/// source's, parsed the same way by its registry (`mirror::check_config`).
pub type MirrorConfig = SourceConfig;

fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "UTC".to_string())
}

/// A source's (or a mirror's) common keys; the rest belongs to its connector (or target
/// kind), which parses it. It carries
/// what a connector needs of the whole config: its line (for errors) and the config's folder
/// (for relative paths).
#[derive(Debug, Clone, Deserialize)]
pub struct SourceConfig {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(flatten)]
    pub options: toml::Table,
    /// The config line of its `kind` key.
    #[serde(skip)]
    pub line: usize,
    #[serde(skip)]
    pub base: PathBuf,
    /// The source's own retention (its `retention` table), taken out of `options`.
    #[serde(skip)]
    pub retention: Option<Retention>,
}

impl SourceConfig {
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read config {} (pass --config PATH or set DAYBOOK_CONFIG; \
                 config.example.toml shows every option)",
                path.display()
            )
        })?;
        let base = path
            .parent()
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Self::parse(&text, base).with_context(|| format!("config {}", path.display()))
    }

    pub fn parse(text: &str, base: PathBuf) -> Result<Config> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        cfg.base = base;
        cfg.text = text.to_string();
        for i in 0..cfg.orgs.len() {
            for j in 0..cfg.orgs[i].sources.len() {
                let line = cfg.line_of(cfg.orgs[i].sources[j].kind.span().start);
                let src = &mut cfg.orgs[i].sources[j];
                src.line = line;
                src.base = cfg.base.clone();
                if let Some(r) = src.options.remove("retention") {
                    let r: Retention = r.try_into().map_err(|e| {
                        anyhow::anyhow!("config line {line}: source {:?}: retention: {e}", src.name.get_ref())
                    })?;
                    r.check()
                        .map_err(|e| anyhow::anyhow!("config line {line}: source {:?}: {e}", src.name.get_ref()))?;
                    src.retention = Some(r);
                }
            }
            for j in 0..cfg.orgs[i].mirrors.len() {
                let line = cfg.line_of(cfg.orgs[i].mirrors[j].kind.span().start);
                let m = &mut cfg.orgs[i].mirrors[j];
                m.line = line;
                m.base = cfg.base.clone();
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Line number (1-based) of a byte offset in the config text.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    fn validate(&self) -> Result<()> {
        self.pricing.validate()?;
        if self.archive.part_bytes < 1 << 20 {
            bail!("config: archive.part_bytes must be at least 1048576 (1 MiB)");
        }
        let w = &self.web;
        if w.session_hours == 0 || w.idle_minutes == 0 || w.limit_window_minutes == 0 {
            bail!("config: web.session_hours, web.idle_minutes and web.limit_window_minutes must be at least 1");
        }
        if w.failures_per_account == 0 || w.failures_per_address == 0 {
            bail!("config: web.failures_per_account and web.failures_per_address must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.engine.max_deleted_share) {
            bail!("config: engine.max_deleted_share must be between 0 and 1 (a share of a data type's records)");
        }
        let mut seen = std::collections::HashSet::new();
        for org in &self.orgs {
            let sid = org.sid.get_ref();
            if !crate::util::is_safe_sid(sid) {
                bail!(
                    "config line {}: org sid {sid:?} must be 1-64 characters of a-z, 0-9, '-' or '_'",
                    self.line_of(org.sid.span().start)
                );
            }
            if !seen.insert(sid.clone()) {
                bail!("config line {}: org sid {sid:?} is used twice", self.line_of(org.sid.span().start));
            }
            if org.timezone.get_ref().parse::<chrono_tz::Tz>().is_err() {
                bail!(
                    "config line {}: unknown timezone {:?} (use an IANA name such as \"Europe/Dublin\" or \"UTC\")",
                    self.line_of(org.timezone.span().start),
                    org.timezone.get_ref()
                );
            }
            if let Some(r) = &org.retention {
                r.check().map_err(|e| anyhow::anyhow!("config: org {sid:?}: retention: {e}"))?;
            }
            let mut names = std::collections::HashSet::new();
            for src in &org.sources {
                let name = src.name.get_ref();
                if !crate::util::is_safe_sid(name) {
                    bail!(
                        "config line {}: source name {name:?} must be 1-64 characters of a-z, 0-9, '-' or '_'",
                        self.line_of(src.name.span().start)
                    );
                }
                if !names.insert(name.clone()) {
                    bail!(
                        "config line {}: source name {name:?} is used twice in org {sid:?}",
                        self.line_of(src.name.span().start)
                    );
                }
            }
            let mut mirrors = std::collections::HashSet::new();
            for m in &org.mirrors {
                let name = m.name.get_ref();
                if !crate::util::is_safe_sid(name) {
                    bail!(
                        "config line {}: mirror name {name:?} must be 1-64 characters of a-z, 0-9, '-' or '_'",
                        self.line_of(m.name.span().start)
                    );
                }
                if !mirrors.insert(name.clone()) {
                    bail!(
                        "config line {}: mirror name {name:?} is used twice in org {sid:?}",
                        self.line_of(m.name.span().start)
                    );
                }
            }
        }
        crate::daemon::config::validate(self)
    }
}

impl OrgConfig {
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.get_ref().parse().unwrap_or(chrono_tz::UTC)
    }
}
