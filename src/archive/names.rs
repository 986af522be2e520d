//! Names inside an archive. The layout's names are `<SID>_<Version>` and `<UID>: <File
//! name>`; a file name comes from an app, so it is made one safe path component first, and
//! names are kept unique. With `windows_safe`, names are also ones Explorer can extract.

use std::collections::HashSet;

/// Windows' reserved device names (any extension, any case).
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Longest name component kept (bytes): file systems take 255.
const MAX: usize = 200;

/// One path component that cannot leave its folder: no `/`, `\`, NUL or control characters,
/// not `.` or `..`, not empty, at most `MAX` bytes.
pub fn safe_component(name: &str) -> String {
    let s: String = name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let mut s = s.trim().to_string();
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    match s.as_str() {
        "" | "." | ".." => "_".into(),
        _ => s,
    }
}

/// A component made extractable on Windows: `:` becomes the fullwidth colon, the other
/// forbidden characters their fullwidth forms, trailing dots and spaces go, and a reserved
/// device name gets a `_` after its stem.
pub fn windows_component(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c {
            ':' => '\u{FF1A}',
            '<' => '\u{FF1C}',
            '>' => '\u{FF1E}',
            '"' => '\u{FF02}',
            '|' => '\u{FF5C}',
            '?' => '\u{FF1F}',
            '*' => '\u{FF0A}',
            c => c,
        })
        .collect();
    let mut s = mapped.trim_end_matches(['.', ' ']).to_string();
    if s.is_empty() {
        s = "_".into();
    }
    let stem = s.split('.').next().unwrap_or_default().trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        s.insert(stem.len(), '_');
    }
    s
}

/// Makes the archive's names, unique within it (case-insensitively, as Windows and macOS
/// compare them).
pub struct Namer {
    windows: bool,
    taken: HashSet<String>,
}

impl Namer {
    pub fn new(windows: bool) -> Namer {
        Namer { windows, taken: HashSet::new() }
    }

    fn finish(&self, s: String) -> String {
        if self.windows { windows_component(&s) } else { s }
    }

    /// `<SID>_<Version>`: both daybook's, already safe.
    pub fn version(&self, sid: &str, version: u32) -> String {
        format!("{sid}_{version}")
    }

    /// `<UID>: <File name>`, unique: a name met twice gets ` (2)`, ` (3)`... before its
    /// extension.
    pub fn file(&mut self, uid: &str, name: &str) -> String {
        let base = self.finish(format!("{uid}: {}", safe_component(name)));
        let mut candidate = base.clone();
        let mut n = 1;
        while !self.taken.insert(candidate.to_lowercase()) {
            n += 1;
            candidate = match base.rfind('.') {
                Some(dot) if dot > uid.len() + 2 => format!("{} ({n}){}", &base[..dot], &base[dot..]),
                _ => format!("{base} ({n})"),
            };
        }
        candidate
    }
}

/// A download's file name: `<Type>_<Org name>_<timestamp>.zip`, safe for a
/// Content-Disposition header and every file system: ASCII letters, digits, `-`, `_`, `.`.
pub fn download_name(kind: &str, org_name: &str, timestamp: &str, part: Option<i64>) -> String {
    let clean = |s: &str| -> String {
        let t: String =
            s.chars().map(|c| if c.is_ascii_alphanumeric() || "-.".contains(c) { c } else { '-' }).collect();
        let t = t.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
        let t = t.trim_matches('.').to_string();
        if t.is_empty() { "org".into() } else { t.chars().take(60).collect() }
    };
    let part = part.map(|p| format!("_part{p}")).unwrap_or_default();
    format!("{}_{}_{}{part}.zip", clean(kind), clean(org_name), clean(timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_leaves_the_folder() {
        for evil in ["../../etc/passwd", "a/b\\c", "..", ".", "", "x\u{0}y", "tab\there", "\u{1b}[31mred"] {
            let s = safe_component(evil);
            assert!(!s.contains('/') && !s.contains('\\') && !s.chars().any(char::is_control), "{evil:?} -> {s:?}");
            assert!(s != ".." && s != "." && !s.is_empty());
        }
        assert_eq!(safe_component("Roadmap Q3.pdf"), "Roadmap Q3.pdf");
        assert!(safe_component(&"é".repeat(300)).len() <= MAX);
    }

    #[test]
    fn windows_names() {
        assert_eq!(windows_component("u1: a<b>c?.txt"), "u1\u{FF1A} a\u{FF1C}b\u{FF1E}c\u{FF1F}.txt");
        assert_eq!(windows_component("CON.txt"), "CON_.txt");
        assert_eq!(windows_component("com1"), "com1_");
        assert_eq!(windows_component("notes. . "), "notes");
        assert_eq!(windows_component("CONSOLE.txt"), "CONSOLE.txt");
    }

    #[test]
    fn names_stay_unique() {
        let mut n = Namer::new(false);
        assert_eq!(n.file("u1", "a.pdf"), "u1: a.pdf");
        assert_eq!(n.file("u1", "a.pdf"), "u1: a (2).pdf");
        assert_eq!(n.file("u1", "A.PDF"), "u1: A (3).PDF", "names differing in case only are one on Windows and macOS");
        let mut w = Namer::new(true);
        assert_eq!(w.file("u1", "x:y"), "u1\u{FF1A} x\u{FF1A}y");
    }

    #[test]
    fn download_names_are_plain() {
        assert_eq!(
            download_name("Archive", "Acme \"Inc.\"; rm -rf /", "2026-12-01T10-00-00Z", None),
            "Archive_Acme-Inc.-rm-rf_2026-12-01T10-00-00Z.zip"
        );
        assert_eq!(download_name("Archive", "Ünïcode", "t", Some(2)), "Archive_n-code_t_part2.zip");
    }
}
