//! Which containers (workspaces, bases, boards, spaces, lists, tables) a source backs up:
//! `include` and `exclude` in its config name them by id or by name, or by a path of names
//! ("Sales/Leads"). Empty `include` keeps everything visible; `exclude` wins over `include`.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Scope {
    /// Whether a container is kept, given every name it answers to: its id, its name and
    /// its path of names. Names compare without regard to case.
    pub fn keeps(&self, names: &[&str]) -> bool {
        let hit = |list: &[String]| list.iter().any(|want| names.iter().any(|n| n.eq_ignore_ascii_case(want)));
        (self.include.is_empty() || hit(&self.include)) && !hit(&self.exclude)
    }

    /// Whether a container is kept as an ancestor: it may hold an included descendant, so
    /// only `exclude` can drop it.
    pub fn keeps_parent(&self, names: &[&str]) -> bool {
        !self.exclude.iter().any(|want| names.iter().any(|n| n.eq_ignore_ascii_case(want)))
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn include_and_exclude() {
        let s = Scope { include: vec!["Sales/Leads".into(), "t9".into()], exclude: vec!["archive".into()] };
        assert!(s.keeps(&["t1", "Leads", "sales/leads"]));
        assert!(s.keeps(&["t9", "Other"]));
        assert!(!s.keeps(&["t2", "Deals", "Sales/Deals"]));
        assert!(!Scope { include: vec![], exclude: vec!["Archive".into()] }.keeps(&["x", "archive"]));
        assert!(Scope::default().keeps(&["anything"]));
        assert!(s.keeps_parent(&["Sales"]) && !s.keeps_parent(&["Archive"]));
    }
}
