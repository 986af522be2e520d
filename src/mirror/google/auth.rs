//! Google credentials: a service-account key (the JWT flow, against the key's `token_uri`)
//! or an OAuth client (the installed-app flow with a localhost redirect, `daybook mirror
//! login`), whose token is cached in a file only the daemon's user reads.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::authenticator_delegate::{DefaultInstalledFlowDelegate, InstalledFlowDelegate};

pub type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
pub type Auth = Authenticator<Connector>;

/// The one scope every call asks for: Drive's full scope reaches both Drive and Sheets, and a
/// single scope set is a single token grant.
pub const SCOPE: &str = "https://www.googleapis.com/auth/drive";

enum Credentials {
    ServiceAccount(Box<yup_oauth2::ServiceAccountKey>),
    OAuthClient(Box<yup_oauth2::ApplicationSecret>),
}

fn read(path: &Path) -> Result<Credentials> {
    let text = std::fs::read(path).with_context(|| format!("cannot read Google credentials {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|_| anyhow::anyhow!("Google credentials {} are not JSON", path.display()))?;
    if v.get("type").and_then(|t| t.as_str()) == Some("service_account") {
        let key: yup_oauth2::ServiceAccountKey = serde_json::from_value(v)
            .map_err(|e| anyhow::anyhow!("Google credentials {}: not a service-account key ({e})", path.display()))?;
        return Ok(Credentials::ServiceAccount(Box::new(key)));
    }
    for k in ["installed", "web"] {
        if let Some(s) = v.get(k) {
            let s: yup_oauth2::ApplicationSecret = serde_json::from_value(s.clone())
                .map_err(|e| anyhow::anyhow!("Google credentials {}: OAuth client \"{k}\": {e}", path.display()))?;
            return Ok(Credentials::OAuthClient(Box::new(s)));
        }
    }
    bail!(
        "Google credentials {}: neither a service-account key (\"type\": \"service_account\") nor an OAuth client \
         (\"installed\": ...); download one from the Google Cloud console",
        path.display()
    )
}

pub fn connector() -> Result<Connector> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .context("loading the system's root certificates")?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build())
}

fn client() -> Result<yup_oauth2::client::CustomHyperClientBuilder<Connector>> {
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector()?);
    Ok(yup_oauth2::client::CustomHyperClientBuilder::from(c))
}

/// The authenticator of a target. An OAuth client needs a token from `daybook mirror login`
/// first: without one this fails at once rather than wait for a browser.
pub async fn authenticator(credentials: &Path, token_cache: &Path) -> Result<Auth> {
    match read(credentials)? {
        Credentials::ServiceAccount(key) => {
            Ok(yup_oauth2::ServiceAccountAuthenticator::with_client(*key, client()?).build().await?)
        }
        Credentials::OAuthClient(secret) => {
            if !token_cache.exists() {
                bail!(
                    "Google credentials {} are an OAuth client and no token is cached in {}: run `daybook mirror login`",
                    credentials.display(),
                    token_cache.display()
                );
            }
            restrict(token_cache)?;
            Ok(yup_oauth2::InstalledFlowAuthenticator::with_client(
                *secret,
                yup_oauth2::InstalledFlowReturnMethod::HTTPRedirect,
                client()?,
            )
            .persist_tokens_to_disk(token_cache)
            .flow_delegate(Box::new(NoBrowser))
            .build()
            .await?)
        }
    }
}

/// A token cache is for its owner alone.
fn restrict(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} readable by this user only", p.display()))
}

/// Outside `login`, a refresh token that no longer works must not start a sign-in.
struct NoBrowser;

impl InstalledFlowDelegate for NoBrowser {
    fn present_user_url<'a>(
        &'a self,
        _url: &'a str,
        _need_code: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async { Err("the cached Google token no longer works: run `daybook mirror login`".to_string()) })
    }
}

/// `daybook mirror login`: the installed-app flow; prints the address to open and waits for
/// Google's redirect to a local port.
pub async fn login(credentials: &Path, token_cache: &Path) -> Result<PathBuf> {
    let Credentials::OAuthClient(secret) = read(credentials)? else {
        bail!("Google credentials {} are a service-account key: it needs no login", credentials.display());
    };
    if let Some(dir) = token_cache.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let auth = yup_oauth2::InstalledFlowAuthenticator::with_client(
        *secret,
        yup_oauth2::InstalledFlowReturnMethod::HTTPRedirect,
        client()?,
    )
    .persist_tokens_to_disk(token_cache)
    .flow_delegate(Box::new(DefaultInstalledFlowDelegate))
    .build()
    .await?;
    auth.token(&[SCOPE]).await.context("signing in to Google")?;
    restrict(token_cache)?;
    Ok(token_cache.to_path_buf())
}
