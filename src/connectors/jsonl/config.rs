use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// Folder with records/<data type>.jsonl and attachments/.
    pub path: String,
    /// The field that holds each record's id.
    #[serde(default = "default_id_field")]
    pub id_field: String,
}

fn default_id_field() -> String {
    "id".into()
}
