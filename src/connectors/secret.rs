//! Credentials named in a source's config: an environment variable, or a file. They are
//! read when a connector first talks to its app (so checking a config needs none), held in
//! memory that is wiped on drop, and never written to the catalog, a log or an error.

use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

use super::SourceError;

/// Where one credential comes from: `<name>_env` (default given by the connector) or
/// `<name>_file` in the source's config.
#[derive(Debug, Clone)]
pub struct SecretRef {
    what: String,
    key: String,
    env: String,
    file: Option<PathBuf>,
}

impl SecretRef {
    /// `what` names it in messages ("Trello token"); `key` is its config key stem ("token").
    pub fn new(what: &str, key: &str, env: Option<&str>, default_env: &str, file: Option<&Path>) -> SecretRef {
        SecretRef {
            what: what.into(),
            key: key.into(),
            env: env.unwrap_or(default_env).into(),
            file: file.map(Path::to_path_buf),
        }
    }

    /// Where the credential is read from, for messages ("check NOCODB_TOKEN").
    pub fn hint(&self) -> String {
        match &self.file {
            Some(f) => format!("the {} in {}", self.what, f.display()),
            None => format!("the {} in ${}", self.what, self.env),
        }
    }

    pub fn read(&self) -> Result<Zeroizing<String>, SourceError> {
        let value = match &self.file {
            Some(f) => Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                SourceError::Config(format!("cannot read the {} from {}: {e}", self.what, f.display()))
            })?),
            None => Zeroizing::new(std::env::var(&self.env).map_err(|_| {
                SourceError::Config(format!(
                    "the {} is not set: export {} (or name a file with the source's {}_file)",
                    self.what, self.env, self.key
                ))
            })?),
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(SourceError::Config(format!("the {} from {} is empty", self.what, self.hint())));
        }
        Ok(Zeroizing::new(trimmed.to_string()))
    }
}
