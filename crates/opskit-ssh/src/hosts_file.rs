//! Hosts files: one target per line, optionally in groups as Ansible INI inventories write them:
//! hosts before any section are ungrouped, `[web]` starts a group, a host may be in several
//! groups, and `[prod:children]` lists groups whose hosts belong to `prod`. `all` and
//! `ungrouped` are the implicit groups Ansible has too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Error;

/// A parsed hosts file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    path: PathBuf,
    /// Every host in file order (first appearance), ungrouped ones included.
    hosts: Vec<String>,
    ungrouped: Vec<String>,
    /// Group name → its own hosts in file order.
    groups: BTreeMap<String, Vec<String>>,
    /// Group name → child groups (`[name:children]`).
    children: BTreeMap<String, Vec<String>>,
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|h| h == item) {
        list.push(item.to_string());
    }
}

fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

impl HostsFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, &text)
    }

    /// Parses hosts-file text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let mut file = Self {
            path: path.to_path_buf(),
            ..Self::default()
        };
        let err = |line: usize, reason: String| Error::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        };
        enum Section {
            Ungrouped,
            Group(String),
            Children(String),
        }
        let mut section = Section::Ungrouped;
        // (parent, child, line) of every `[parent:children]` entry, checked at the end
        let mut child_refs: Vec<(String, String, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split(['#', ';']).next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            // `[::1]:22` is a host (an IPv6 address), not a section
            let ipv6 = line
                .strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .is_some_and(|inside| inside.matches(':').count() >= 2);
            if let Some(inner) = line.strip_prefix('[').filter(|_| !ipv6) {
                let Some(name) = inner.strip_suffix(']') else {
                    return Err(err(n, format!("expected `[group]`, got {line:?}")));
                };
                let (name, kind) = match name.split_once(':') {
                    Some((g, k)) => (g.trim(), Some(k.trim())),
                    None => (name.trim(), None),
                };
                if !valid_group_name(name) {
                    return Err(err(
                        n,
                        format!("bad group name {name:?} (letters, digits, `_`, `-`, `.`)"),
                    ));
                }
                if name == "all" || name == "ungrouped" {
                    return Err(err(
                        n,
                        format!(
                            "`{name}` is the implicit group of every host / of hosts before any section; it cannot be a section"
                        ),
                    ));
                }
                section = match kind {
                    None => {
                        file.groups.entry(name.to_string()).or_default();
                        Section::Group(name.to_string())
                    }
                    Some("children") => {
                        file.groups.entry(name.to_string()).or_default();
                        file.children.entry(name.to_string()).or_default();
                        Section::Children(name.to_string())
                    }
                    Some("vars") => {
                        return Err(err(
                            n,
                            format!(
                                "[{name}:vars] sections are not supported by opskit ssh; put connection settings (User, Port, IdentityFile) in the ssh config"
                            ),
                        ));
                    }
                    Some(other) => {
                        return Err(err(
                            n,
                            format!(
                                "unknown section kind `[{name}:{other}]` (only `[group]` and `[group:children]`)"
                            ),
                        ));
                    }
                };
                continue;
            }
            let mut words = line.split_whitespace();
            let word = words.next().unwrap_or_default();
            if words.next().is_some() {
                return Err(err(
                    n,
                    format!(
                        "{line:?}: host variables (like `ansible_host=…`) are not supported by opskit ssh; write [user@]host[:port] or a Host alias of the ssh config"
                    ),
                ));
            }
            match &section {
                Section::Children(parent) => {
                    if !valid_group_name(word) {
                        return Err(err(n, format!("bad child group name {word:?}")));
                    }
                    if let Some(list) = file.children.get_mut(parent) {
                        push_unique(list, word);
                    }
                    child_refs.push((parent.clone(), word.to_string(), n));
                }
                Section::Ungrouped | Section::Group(_) => {
                    if word.contains('[') && !word.starts_with('[') && !word.contains("@[") {
                        return Err(err(
                            n,
                            format!(
                                "{word:?}: host ranges (`web[01:20]`) are not supported by opskit ssh; list the hosts one per line"
                            ),
                        ));
                    }
                    crate::target::parse_spec(word).map_err(|e| err(n, e.to_string()))?;
                    push_unique(&mut file.hosts, word);
                    match &section {
                        Section::Group(g) => {
                            if let Some(list) = file.groups.get_mut(g) {
                                push_unique(list, word);
                            }
                        }
                        _ => push_unique(&mut file.ungrouped, word),
                    }
                }
            }
        }
        for (parent, kid, line) in child_refs {
            if !file.groups.contains_key(&kid) {
                return Err(err(
                    line,
                    format!("[{parent}:children] names `{kid}`, which is no group of this file"),
                ));
            }
        }
        Ok(file)
    }

    /// Every host of the file, in file order.
    pub fn all(&self) -> Vec<String> {
        self.hosts.clone()
    }

    /// The group names (sorted), `all` and `ungrouped` not included.
    pub fn group_names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// The hosts of the named groups (a union: each host once, in file order). An unknown group
    /// is an error that lists the groups there are.
    pub fn select(&self, names: &[String]) -> Result<Vec<String>, Error> {
        let mut wanted: Vec<String> = Vec::new();
        for name in names {
            match name.as_str() {
                "all" => wanted.extend(self.hosts.iter().cloned()),
                "ungrouped" => wanted.extend(self.ungrouped.iter().cloned()),
                _ if self.groups.contains_key(name) => {
                    let mut stack = vec![name.clone()];
                    let mut seen: Vec<String> = Vec::new();
                    while let Some(g) = stack.pop() {
                        if seen.contains(&g) {
                            continue; // a children loop: every group once
                        }
                        if let Some(hosts) = self.groups.get(&g) {
                            wanted.extend(hosts.iter().cloned());
                        }
                        if let Some(kids) = self.children.get(&g) {
                            stack.extend(kids.iter().cloned());
                        }
                        seen.push(g);
                    }
                }
                _ => {
                    return Err(Error::UnknownGroup {
                        path: self.path.clone(),
                        group: name.clone(),
                        groups: self.group_names(),
                    });
                }
            }
        }
        Ok(self
            .hosts
            .iter()
            .filter(|h| wanted.contains(h))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostsFile, Error> {
        HostsFile::parse(Path::new("hosts"), text)
    }

    #[test]
    fn groups_union_children_and_implicit_groups() {
        let f = parse(
            "# fleet\nbastion\n[web]\nweb1\nweb2 # front\n[db]\ndb1\nweb2\n[prod:children]\nweb\ndb\n[web]\nweb3\n",
        )
        .unwrap();
        let sel = |g: &[&str]| {
            f.select(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap()
        };
        assert_eq!(f.all(), ["bastion", "web1", "web2", "db1", "web3"]);
        assert_eq!(sel(&["web"]), ["web1", "web2", "web3"]);
        assert_eq!(sel(&["db", "web"]), ["web1", "web2", "db1", "web3"]);
        assert_eq!(sel(&["prod"]), ["web1", "web2", "db1", "web3"]);
        assert_eq!(sel(&["ungrouped"]), ["bastion"]);
        assert_eq!(sel(&["all"]), f.all());
        assert_eq!(f.group_names(), ["db", "prod", "web"]);
        let err = f.select(&["nope".into()]).unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("db, prod, web"),
            "{err}"
        );
    }

    #[test]
    fn plain_files_and_what_is_refused() {
        let f = parse("h1\n\nh2:2222\nh1\n[::1]:22\nu@[::1]\n").unwrap();
        assert_eq!(f.all(), ["h1", "h2:2222", "[::1]:22", "u@[::1]"]);
        assert!(f.group_names().is_empty());
        for (bad, why) in [
            ("[web:vars]\nx=1\n", "not supported"),
            ("[web\nh\n", "expected `[group]`"),
            ("web1 ansible_host=10.0.0.1\n", "host variables"),
            ("web[01:10]\n", "host ranges"),
            ("[p:children]\nmissing\n", "no group"),
            ("[all]\nh\n", "implicit"),
            ("h:0\n", "port"),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        // a loop of children groups ends
        let f = parse("[a:children]\nb\n[b:children]\na\n[a]\nh\n").unwrap();
        assert_eq!(f.select(&["b".into()]).unwrap(), ["h"]);
    }
}
