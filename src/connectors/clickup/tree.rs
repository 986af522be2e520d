//! The hierarchy the token sees (Workspace > Space > Folder > List, and Folderless Lists
//! under a Space), walked once a cycle at `discover`, with the config's scope applied.

use serde_json::Value;

use super::client::{Api, id_str, str_of};
use crate::connectors::SourceError;
use crate::connectors::scope::Scope;

/// What the scope says of one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judge {
    /// Backed up: named by `include` (itself or an ancestor), or `include` is empty.
    Included,
    /// Walked through because something below it may be included.
    Traversed,
    /// Named by `exclude` (itself or an ancestor).
    Excluded,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub name: String,
    /// Names joined by "/" from the workspace down.
    pub path: String,
    pub raw: Value,
    pub judge: Judge,
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub node: Node,
    pub lists: Vec<Node>,
}

#[derive(Debug, Clone)]
pub struct Space {
    pub node: Node,
    pub folders: Vec<Folder>,
    /// Folderless lists.
    pub lists: Vec<Node>,
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub node: Node,
    pub spaces: Vec<Space>,
    /// Why its hierarchy could not be read: each of its data types fails with it.
    pub error: Option<SourceError>,
}

impl Folder {
    pub fn keeps_any(&self) -> bool {
        self.node.judge == Judge::Included || self.lists.iter().any(|l| l.judge == Judge::Included)
    }
}

impl Space {
    pub fn keeps_any(&self) -> bool {
        self.node.judge == Judge::Included
            || self.folders.iter().any(Folder::keeps_any)
            || self.lists.iter().any(|l| l.judge == Judge::Included)
    }

    /// Every list of the space (in folders or not) that is backed up, with where it is.
    pub fn kept_lists(&self) -> impl Iterator<Item = &Node> {
        self.folders.iter().flat_map(|f| f.lists.iter()).chain(self.lists.iter()).filter(|l| l.judge == Judge::Included)
    }
}

impl Workspace {
    pub fn keeps_any(&self) -> bool {
        self.node.judge == Judge::Included || self.spaces.iter().any(Space::keeps_any)
    }

    pub fn kept_lists(&self) -> impl Iterator<Item = &Node> {
        self.spaces.iter().flat_map(Space::kept_lists)
    }
}

fn judge(scope: &Scope, names: &[&str], parent: Judge) -> Judge {
    if parent == Judge::Excluded || !scope.keeps_parent(names) {
        Judge::Excluded
    } else if parent == Judge::Included || scope.keeps(names) {
        Judge::Included
    } else {
        Judge::Traversed
    }
}

fn make_node(
    raw: Value,
    parent_path: Option<&str>,
    extra_paths: &[String],
    scope: &Scope,
    parent: Judge,
) -> Option<Node> {
    let id = id_str(&raw)?;
    let name = str_of(&raw["name"]);
    let path = match parent_path {
        Some(p) => format!("{p}/{name}"),
        None => name.clone(),
    };
    let mut names: Vec<&str> = vec![&id, &name, &path];
    names.extend(extra_paths.iter().map(String::as_str));
    let judge = judge(scope, &names, parent);
    Some(Node { id, name, path, raw, judge })
}

/// Active and archived containers of one kind, each once.
async fn both<'a, F, Fut>(get: F) -> Result<Vec<Value>, SourceError>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>, SourceError>> + 'a,
{
    let mut all = get(false).await?;
    let mut seen: std::collections::HashSet<String> = all.iter().filter_map(id_str).collect();
    for v in get(true).await? {
        if id_str(&v).is_some_and(|id| seen.insert(id)) {
            all.push(v);
        }
    }
    Ok(all)
}

/// Walks every workspace the token sees. Only `GET /team` failing fails the walk; a
/// workspace whose hierarchy cannot be read carries its error to its data types.
pub async fn walk(api: &Api<'_>, scope: &Scope) -> Result<Vec<Workspace>, SourceError> {
    let mut out = Vec::new();
    for raw in api.teams().await? {
        let Some(node) = make_node(raw, None, &[], scope, Judge::Traversed) else { continue };
        let mut ws = Workspace { node, spaces: Vec::new(), error: None };
        if ws.node.judge != Judge::Excluded {
            match walk_workspace(api, scope, &ws.node).await {
                Ok(spaces) => ws.spaces = spaces,
                Err(e) => {
                    ws.error =
                        Some(e.about(format!("reading the hierarchy of workspace {:?} ({})", ws.node.name, ws.node.id)))
                }
            }
        }
        out.push(ws);
    }
    Ok(out)
}

async fn walk_workspace(api: &Api<'_>, scope: &Scope, ws: &Node) -> Result<Vec<Space>, SourceError> {
    let mut spaces = Vec::new();
    for raw in both(|a| api.spaces(&ws.id, a)).await? {
        let Some(node) = make_node(raw, Some(&ws.path), &[], scope, ws.judge) else { continue };
        let mut space = Space { node, folders: Vec::new(), lists: Vec::new() };
        if space.node.judge != Judge::Excluded {
            let sp = &space.node;
            for raw in both(|a| api.folders(&sp.id, a)).await? {
                let short = [format!("{}/{}", sp.name, str_of(&raw["name"]))];
                let Some(fnode) = make_node(raw, Some(&sp.path), &short, scope, sp.judge) else { continue };
                let mut folder = Folder { node: fnode, lists: Vec::new() };
                if folder.node.judge != Judge::Excluded {
                    let f = &folder.node;
                    for raw in both(|a| api.lists("folder", &f.id, a)).await? {
                        let short = [format!("{}/{}/{}", sp.name, f.name, str_of(&raw["name"]))];
                        folder.lists.extend(make_node(raw, Some(&f.path), &short, scope, f.judge));
                    }
                }
                space.folders.push(folder);
            }
            for raw in both(|a| api.lists("space", &sp.id, a)).await? {
                let short = [format!("{}/{}", sp.name, str_of(&raw["name"]))];
                space.lists.extend(make_node(raw, Some(&sp.path), &short, scope, sp.judge));
            }
        }
        spaces.push(space);
    }
    Ok(spaces)
}
