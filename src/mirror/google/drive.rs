//! Drive v3 through google-drive3: the org's tagged files listed at once, folders and sheets
//! created with their tags (a folder or a sheet is an upload with empty content: the crate
//! has no metadata-only create), file contents uploaded (multipart up to 5 MB, resumable
//! in chunks beyond), renames and trashing.

use anyhow::Result;
use google_drive3::DriveHub;
use google_drive3::api::File;
use std::collections::HashMap;
use std::path::Path;

use super::auth::{Connector, SCOPE};
use super::call::{GoogleError, Shared, classify};

pub const FOLDER: &str = "application/vnd.google-apps.folder";
pub const SHEET: &str = "application/vnd.google-apps.spreadsheet";
/// Files up to this size go in one multipart request; larger ones resumable.
pub const MULTIPART_MAX: u64 = 5 * 1024 * 1024;

/// A file daybook made, as a listing shows it.
#[derive(Debug, Clone)]
pub struct DFile {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub parents: Vec<String>,
    pub props: HashMap<String, String>,
    pub md5: Option<String>,
    pub size: Option<i64>,
}

impl DFile {
    fn of(f: File) -> DFile {
        DFile {
            id: f.id.unwrap_or_default(),
            name: f.name.unwrap_or_default(),
            mime: f.mime_type.unwrap_or_default(),
            parents: f.parents.unwrap_or_default(),
            props: f.app_properties.unwrap_or_default(),
            md5: f.md5_checksum,
            size: f.size,
        }
    }

    pub fn prop(&self, k: &str) -> Option<&str> {
        self.props.get(k).map(String::as_str)
    }
}

/// Content to upload: nothing (a folder, a new sheet), or a file on disk.
pub enum Media<'a> {
    Empty,
    File(&'a Path, &'a str),
}

pub struct Drive {
    pub hub: DriveHub<Connector>,
}

const FIELDS: &str = "id,name,mimeType,parents,appProperties,md5Checksum,size";

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

impl Drive {
    /// Every file and folder tagged with this org, not trashed, across all drives.
    pub async fn list_org(&self, shared: &Shared, org: &str) -> Result<Vec<DFile>, GoogleError> {
        let q = format!("appProperties has {{ key='daybook_org' and value='{}' }} and trashed = false", quote(org));
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut d = shared.delegate();
            let mut call = self
                .hub
                .files()
                .list()
                .q(&q)
                .page_size(1000)
                .supports_all_drives(true)
                .include_items_from_all_drives(true)
                .corpora("allDrives")
                .param("fields", &format!("nextPageToken,files({FIELDS})"))
                .add_scope(SCOPE)
                .delegate(&mut d);
            if let Some(p) = &page {
                call = call.page_token(p);
            }
            let (_, list) = call.doit().await.map_err(|e| classify("listing the mirror's files in Drive", e))?;
            out.extend(list.files.unwrap_or_default().into_iter().map(DFile::of));
            match list.next_page_token {
                Some(p) if !p.is_empty() => page = Some(p),
                _ => return Ok(out),
            }
        }
    }

    /// Whether a folder the config names is there (and not trashed).
    pub async fn root(&self, shared: &Shared, id: &str) -> Result<DFile, GoogleError> {
        let mut d = shared.delegate();
        let (_, f) = self
            .hub
            .files()
            .get(id)
            .supports_all_drives(true)
            .param("fields", &format!("{FIELDS},trashed"))
            .add_scope(SCOPE)
            .delegate(&mut d)
            .doit()
            .await
            .map_err(|e| classify(&format!("the Drive folder {id} (folder_id)"), e))?;
        if f.trashed == Some(true) {
            return Err(GoogleError::Other {
                what: format!("the Drive folder {id} (folder_id)"),
                detail: "it is in the trash: restore it or name another folder".into(),
            });
        }
        Ok(DFile::of(f))
    }

    pub async fn create(
        &self,
        shared: &Shared,
        name: &str,
        parent: &str,
        mime: &str,
        props: HashMap<String, String>,
        media: Media<'_>,
    ) -> Result<DFile, GoogleError> {
        let what = format!("creating {name:?} in Drive");
        let req = File {
            name: Some(name.to_string()),
            parents: Some(vec![parent.to_string()]),
            mime_type: Some(mime.to_string()),
            app_properties: Some(props),
            ..Default::default()
        };
        let mut tries = 0;
        loop {
            shared.pace().await;
            let mut d = shared.delegate();
            let call = self
                .hub
                .files()
                .create(req.clone())
                .supports_all_drives(true)
                .param("fields", FIELDS)
                .add_scope(SCOPE)
                .delegate(&mut d);
            let r = match &media {
                Media::Empty => call.upload(std::io::Cursor::new(Vec::new()), octet()).await,
                Media::File(p, m) => {
                    let (f, size) = open(p).map_err(|e| other(&what, e))?;
                    if size <= MULTIPART_MAX {
                        call.upload(f, mime_of(m)).await
                    } else {
                        call.upload_resumable(f, mime_of(m)).await
                    }
                }
            };
            match r {
                Ok((_, f)) => return Ok(DFile::of(f)),
                Err(e) => {
                    let e = classify(&what, e);
                    if !again(&e, &mut tries) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// New content for a file daybook made (its CSV, a changed attachment).
    pub async fn update_media(&self, shared: &Shared, id: &str, path: &Path, mime: &str) -> Result<DFile, GoogleError> {
        let what = format!("uploading {} to Drive", path.file_name().unwrap_or_default().to_string_lossy());
        let mut tries = 0;
        loop {
            shared.pace().await;
            let (f, size) = open(path).map_err(|e| other(&what, e))?;
            let mut d = shared.delegate();
            let call = self
                .hub
                .files()
                .update(File::default(), id)
                .supports_all_drives(true)
                .param("fields", FIELDS)
                .add_scope(SCOPE)
                .delegate(&mut d);
            let r = if size <= MULTIPART_MAX {
                call.upload(f, mime_of(mime)).await
            } else {
                call.upload_resumable(f, mime_of(mime)).await
            };
            match r {
                Ok((_, f)) => return Ok(DFile::of(f)),
                Err(e) => {
                    let e = classify(&what, e);
                    if !again(&e, &mut tries) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Renames a file or folder, or trashes it.
    pub async fn patch(&self, shared: &Shared, id: &str, name: Option<&str>, trash: bool) -> Result<(), GoogleError> {
        shared.pace().await;
        let mut d = shared.delegate();
        let req = File { name: name.map(str::to_string), trashed: trash.then_some(true), ..Default::default() };
        self.hub
            .files()
            .update(req, id)
            .supports_all_drives(true)
            .param("fields", "id")
            .add_scope(SCOPE)
            .delegate(&mut d)
            .doit_without_upload()
            .await
            .map_err(|e| classify(&format!("updating Drive file {id}"), e))?;
        Ok(())
    }
}

/// Whether a whole upload is tried again: the hub already retried what it could, but a
/// resumable upload whose chunk failed starts over, a bounded number of times.
fn again(e: &GoogleError, tries: &mut u32) -> bool {
    *tries += 1;
    *tries < 4 && e.code().is_some_and(|c| c == 429 || (500..600).contains(&c))
}

fn open(p: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let f = std::fs::File::open(p)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

fn other(what: &str, e: std::io::Error) -> GoogleError {
    GoogleError::Other { what: what.into(), detail: e.to_string() }
}

fn octet() -> mime::Mime {
    mime::APPLICATION_OCTET_STREAM
}

fn mime_of(m: &str) -> mime::Mime {
    m.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM)
}
