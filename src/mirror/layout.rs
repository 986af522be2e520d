//! Where a data type goes in a mirror, and what its rows look like: names made safe for
//! Drive, Windows, macOS and A1 ranges; columns in a stable order; cells as a sheet takes
//! them and as a CSV keeps them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::vault::read::{RecordVersion, TypeInfo};

/// Google's most characters a cell holds.
pub const CELL_CHARS: usize = 50_000;
/// What replaces the end of a longer value in a sheet (the CSV keeps it whole).
pub const TRUNCATED: &str = " … [truncated: the whole value is in the CSV beside this sheet]";
/// Bytes of a name: well under every file system's 255 and Drive's limits, with room for " (n)".
const NAME_BYTES: usize = 180;

/// The columns daybook adds after the app's fields.
pub const SID: &str = "daybook_sid";
pub const OURS: [&str; 3] = [SID, "version", "captured_at"];
/// The first column: the record's id at its source.
pub const ID: &str = "id";

/// Where a data type's sheet, CSV and files go, under the target's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Folder names, each safe: org name, source name, the app's hierarchy.
    pub dirs: Vec<String>,
    /// The sheet's name (and the CSV's stem), safe.
    pub name: String,
}

impl Place {
    /// The sheet's name as the data type's `name` minus the part of it that repeats the end
    /// of its `path` (Trello's "Roadmap/cards" under [Marketing, Roadmap] is "cards"; NocoDB's
    /// "CRM/contacts" under [CRM] is "contacts"; a jsonl file's "tasks" under [] stays).
    pub fn of(org_name: &str, ty: &TypeInfo) -> Place {
        let mut dirs = vec![safe_name(org_name), safe_name(&ty.source)];
        dirs.extend(ty.path.iter().map(|p| safe_name(p)));
        Place { dirs, name: safe_name(sheet_name(&ty.name, &ty.path)) }
    }

    pub fn csv_name(&self) -> String {
        format!("{}.csv", self.name)
    }

    /// "Acme Inc./trello/Marketing/Roadmap/cards", for messages.
    pub fn shown(&self) -> String {
        let mut v = self.dirs.clone();
        v.push(self.name.clone());
        v.join("/")
    }
}

/// Every data type's place, each its own: two data types that would share a folder and a
/// name (two boards of one name in a workspace, names that differ only in case or in
/// characters made safe) never write each other's sheet or CSV. The one known longest keeps
/// its name (types go in the order of their ids, which never change); the others get " (2)",
/// " (3)" after theirs.
pub fn places(org_name: &str, types: &[TypeInfo]) -> HashMap<i64, Place> {
    let mut sorted: Vec<&TypeInfo> = types.iter().collect();
    sorted.sort_by_key(|t| t.id.0);
    let mut taken: HashMap<Vec<String>, HashSet<String>> = HashMap::new();
    let mut out = HashMap::new();
    for t in sorted {
        let mut p = Place::of(org_name, t);
        let names = taken.entry(p.dirs.iter().map(|d| d.to_lowercase()).collect()).or_default();
        let base = p.name.clone();
        let mut n = 2;
        while names.contains(&p.name.to_lowercase()) {
            p.name = format!("{base} ({n})");
            n += 1;
        }
        names.insert(p.name.to_lowercase());
        out.insert(t.id.0, p);
    }
    out
}

fn sheet_name<'a>(name: &'a str, path: &[String]) -> &'a str {
    for k in (1..=path.len()).rev() {
        let prefix = path[path.len() - k..].join("/") + "/";
        if let Some(rest) = name.strip_prefix(&prefix).filter(|r| !r.is_empty()) {
            return rest;
        }
    }
    name
}

/// A name from an app made safe as a file or folder name on Drive, Windows and macOS, and as
/// a sheet's title in an A1 range: no `/`, `\`, control characters or characters Windows
/// forbids, no trailing dot or space, no reserved device name, never empty, `.` or `..`.
pub fn safe_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '[' | ']' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    out = out.trim_start().trim_end_matches(['.', ' ']).to_string();
    if out.len() > NAME_BYTES {
        let mut cut = NAME_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out = out.trim_end_matches(['.', ' ']).to_string();
    }
    if out.is_empty() || out == "." || out == ".." {
        return "_".into();
    }
    let stem = out.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0');
    if reserved { format!("_{out}") } else { out }
}

/// `name` made safe, and unique among `taken` (compared without case, as Windows and macOS
/// do): "same.txt", then "same (2).txt", "same (3).txt". The result is added to `taken`.
pub fn unique_name(name: &str, taken: &mut HashSet<String>) -> String {
    let safe = safe_name(name);
    let (stem, ext) = match safe.rfind('.') {
        Some(i) if i > 0 => (&safe[..i], &safe[i..]),
        _ => (safe.as_str(), ""),
    };
    let mut candidate = safe.clone();
    let mut n = 2;
    while taken.contains(&candidate.to_lowercase()) {
        candidate = format!("{stem} ({n}){ext}");
        n += 1;
    }
    taken.insert(candidate.to_lowercase());
    candidate
}

/// The app's fields of a record (its top-level keys), without the ones daybook's columns use.
pub fn fields(data: &Value) -> Vec<String> {
    match data {
        Value::Object(m) => m.keys().filter(|k| k.as_str() != ID).map(|k| app_column(k)).collect(),
        _ => vec!["value".into()],
    }
}

/// An app field named like one of daybook's columns gets a suffix.
fn app_column(k: &str) -> String {
    if OURS.contains(&k) { format!("{k} (app)") } else { k.to_string() }
}

/// The header: the id, the app's fields sorted, then daybook's columns.
pub fn header(app_fields: &BTreeSet<String>) -> Vec<String> {
    let mut h = vec![ID.to_string()];
    h.extend(app_fields.iter().cloned());
    h.extend(OURS.iter().map(|s| s.to_string()));
    h
}

/// A cell's value: a sheet gets strings, numbers and booleans (never null: the client drops
/// nulls from arrays and shifts the cells left), nested values as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Cell {
    pub fn of(v: &Value) -> Cell {
        match v {
            Value::Null => Cell::Text(String::new()),
            Value::Bool(b) => Cell::Bool(*b),
            // Sheets holds numbers as doubles: an id of 16 digits would lose its last ones.
            Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() < 1e15) => Cell::Number(n.clone()),
            Value::Number(n) => Cell::Text(n.to_string()),
            Value::String(s) => Cell::Text(s.clone()),
            other => Cell::Text(other.to_string()),
        }
    }

    /// The whole value as text (for CSV).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Cell::Text(s) => s.as_str().into(),
            Cell::Number(n) => n.to_string().into(),
            Cell::Bool(b) => b.to_string().into(),
        }
    }

    /// As a sheet takes it: RAW JSON, longer text cut with a visible marker.
    pub fn sheet_value(&self) -> Value {
        match self {
            Cell::Text(s) if s.chars().count() > CELL_CHARS => {
                let keep = CELL_CHARS - TRUNCATED.chars().count();
                let cut = s.char_indices().nth(keep).map(|(i, _)| i).unwrap_or(s.len());
                Value::String(format!("{}{TRUNCATED}", &s[..cut]))
            }
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Number(n) => Value::Number(n.clone()),
            Cell::Bool(b) => Value::Bool(*b),
        }
    }
}

/// One live record as a row of a data type's sheet.
#[derive(Debug, Clone)]
pub struct Row {
    pub sid: String,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn of(r: &RecordVersion, header: &[String]) -> Row {
        let data = &r.content.data;
        let cells = header
            .iter()
            .map(|col| match col.as_str() {
                ID => Cell::Text(r.source_id.clone()),
                SID => Cell::Text(r.sid.clone()),
                "version" => Cell::Number(r.version.into()),
                "captured_at" => Cell::Text(r.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                field => match data {
                    Value::Object(m) => {
                        let key = field.strip_suffix(" (app)").filter(|k| OURS.contains(k)).unwrap_or(field);
                        m.get(key).map(Cell::of).unwrap_or(Cell::Text(String::new()))
                    }
                    other if field == "value" => Cell::of(other),
                    _ => Cell::Text(String::new()),
                },
            })
            .collect();
        Row { sid: r.sid.clone(), cells }
    }
}

/// CSV text of rows under a header: every value whole.
pub struct CsvOut<W: std::io::Write> {
    w: csv::Writer<W>,
}

impl<W: std::io::Write> CsvOut<W> {
    pub fn new(out: W, header: &[String]) -> anyhow::Result<Self> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(header)?;
        Ok(CsvOut { w })
    }

    pub fn row(&mut self, r: &Row) -> anyhow::Result<()> {
        self.w.write_record(r.cells.iter().map(|c| c.text().into_owned()))?;
        Ok(())
    }

    pub fn plain(&mut self, cells: &[String]) -> anyhow::Result<()> {
        self.w.write_record(cells)?;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<W> {
        self.w.into_inner().map_err(|e| anyhow::anyhow!("writing CSV: {}", e.error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(name: &str, path: &[&str]) -> TypeInfo {
        ty_of(1, name, path)
    }

    fn ty_of(id: i64, name: &str, path: &[&str]) -> TypeInfo {
        TypeInfo {
            id: crate::vault::read::TypeId(id),
            org: "acme".into(),
            source: "trello".into(),
            key: "k".into(),
            name: name.into(),
            path: path.iter().map(|s| s.to_string()).collect(),
            seed: "k".into(),
        }
    }

    #[test]
    fn sheets_are_named_after_the_kind_inside_the_apps_hierarchy() {
        let p = Place::of("Acme Inc.", &ty("Roadmap/cards", &["Marketing", "Roadmap"]));
        assert_eq!(p.dirs, ["Acme Inc", "trello", "Marketing", "Roadmap"]);
        assert_eq!(p.name, "cards");
        assert_eq!(Place::of("A", &ty("CRM/contacts", &["CRM"])).name, "contacts");
        assert_eq!(Place::of("A", &ty("tasks", &[])).name, "tasks");
        assert_eq!(Place::of("A", &ty("Ops/Sprint 4/tasks", &["Ops", "Sprint 4"])).name, "tasks");
        // A name that does not repeat its path keeps all of itself, made safe.
        assert_eq!(Place::of("A", &ty("a/b", &["x"])).name, "a_b");
    }

    #[test]
    fn data_types_that_would_share_a_name_get_their_own() {
        let types = [
            ty_of(7, "Roadmap/cards", &["Marketing", "Roadmap"]),
            ty_of(3, "Roadmap/cards", &["Marketing", "Roadmap"]),
            ty_of(4, "Roadmap/lists", &["Marketing", "Roadmap"]),
            ty_of(5, "roadmap/Cards", &["marketing", "roadmap"]),
            ty_of(6, "a:b", &[]),
            ty_of(8, "a_b", &[]),
            ty_of(9, "Roadmap/cards", &["Sales", "Roadmap"]),
        ];
        let p = places("Acme", &types);
        let name = |id: i64| p[&id].name.as_str();
        // The oldest keeps its name, whatever order the types came in.
        assert_eq!([name(3), name(5), name(7), name(4)], ["cards", "Cards (2)", "cards (3)", "lists"]);
        assert_eq!([name(6), name(8)], ["a_b", "a_b (2)"]);
        assert_eq!(name(9), "cards", "another folder: no clash");
        assert_eq!(places("Acme", &types), p, "the same every time");
    }

    #[test]
    fn names_are_safe_everywhere() {
        assert_eq!(safe_name("a/b\\c:d*e?f\"g<h>i|j"), "a_b_c_d_e_f_g_h_i_j");
        assert_eq!(safe_name("tab\there\n"), "tab_here_");
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name(""), "_");
        assert_eq!(safe_name("  notes. . "), "notes");
        assert_eq!(safe_name("CON"), "_CON");
        assert_eq!(safe_name("com1.txt"), "_com1.txt");
        assert_eq!(safe_name("COM0"), "COM0");
        assert_eq!(safe_name("Sheet [1]"), "Sheet _1_");
        let long = "é".repeat(200);
        assert!(safe_name(&long).len() <= NAME_BYTES && safe_name(&long).chars().all(|c| c == 'é'));
    }

    #[test]
    fn two_files_of_one_name_never_overwrite_each_other() {
        let mut taken = HashSet::new();
        assert_eq!(unique_name("same.txt", &mut taken), "same.txt");
        assert_eq!(unique_name("same.txt", &mut taken), "same (2).txt");
        assert_eq!(unique_name("SAME.txt", &mut taken), "SAME (3).txt");
        assert_eq!(unique_name("a/b", &mut taken), "a_b");
        assert_eq!(unique_name(".env", &mut taken), ".env");
    }

    #[test]
    fn cells_stay_text_and_fit() {
        assert_eq!(Cell::of(&serde_json::json!("=HYPERLINK(\"x\")")).sheet_value(), "=HYPERLINK(\"x\")");
        assert_eq!(Cell::of(&Value::Null).sheet_value(), "");
        assert_eq!(Cell::of(&serde_json::json!(12345678901234567u64)).sheet_value(), "12345678901234567");
        assert_eq!(Cell::of(&serde_json::json!({"a": [1]})).sheet_value(), "{\"a\":[1]}");
        let big = Cell::Text("x".repeat(CELL_CHARS + 10));
        let v = big.sheet_value();
        assert_eq!(v.as_str().unwrap().chars().count(), CELL_CHARS);
        assert!(v.as_str().unwrap().ends_with(TRUNCATED));
        assert_eq!(big.text().len(), CELL_CHARS + 10);
    }
}
