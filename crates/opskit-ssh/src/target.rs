//! Targets: `[user@]host[:port]` or a `Host` alias from `~/.ssh/config`.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::known_hosts::wildcard_match;

/// A host to connect to, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target as the user wrote it (used as the label in output).
    pub label: String,
    /// Host name or address to connect to.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `IdentityFile`s from the ssh config for this host.
    pub identity_files: Vec<PathBuf>,
    /// Directives from the ssh config that apply to this host and that we do not implement but
    /// that do not change where we connect (e.g. `ServerAliveInterval`): `(file:line, directive)`.
    pub ignored_directives: Vec<String>,
    /// Jump hosts (`ProxyJump`, `-J`), in order: the first is reached directly, each next one
    /// through a `direct-tcpip` channel of the one before, and this target through the last.
    /// Empty: connect directly. Each hop's host key is checked like a direct connection's.
    pub jump: Vec<Target>,
}

/// Defaults for parts a target does not give.
#[derive(Debug, Clone, Default)]
pub struct TargetDefaults {
    /// `-u/--user`: overrides the config's `User` (but not `user@` in the target).
    pub user: Option<String>,
    /// `-p/--port`: overrides the config's `Port` (but not `:port` in the target).
    pub port: Option<u16>,
    /// `-J HOST[,HOST2]`: the jump hosts of every target, instead of the config's `ProxyJump`
    /// (`Some(empty)` for `-J none`: connect directly). As with OpenSSH, `user` and `port` above
    /// do not apply to the jump hosts: they take theirs from the spec or the ssh config.
    pub jump: Option<Vec<String>>,
}

/// Most hops a chain of jump hosts may have (a `ProxyJump` loop ends here with an error).
pub const MAX_JUMPS: usize = 8;

/// Splits a `ProxyJump` / `-J` value: `[user@]host[:port]` or `ssh://[user@]host[:port]`,
/// comma-separated; `none` is no jump host.
pub fn parse_jump_list(value: &str) -> Result<Vec<String>, Error> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|hop| {
            let hop = hop.trim();
            let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
            let hop = hop.strip_suffix('/').unwrap_or(hop);
            if hop.is_empty() {
                return Err(Error::BadTarget {
                    target: value.to_string(),
                    reason: "empty jump host in the list".into(),
                });
            }
            parse_spec(hop)?;
            Ok(hop.to_string())
        })
        .collect()
}

/// Directives that decide where or how we connect; when one applies to a host we refuse rather
/// than silently connect somewhere else.
const REFUSED: &[&str] = &[
    "proxycommand",
    "hostkeyalias",
    "match",
    "canonicalizehostname",
    "localcommand",
    "remotecommand",
    "certificatefile",
    "userknownhostsfile",
    "globalknownhostsfile",
];

/// How deep `Include`s may nest (OpenSSH's limit).
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Debug, Clone)]
struct Block {
    /// Every one of these `Host` pattern lists must match (an `Include` inside a `Host` block
    /// applies the included file's own `Host` blocks only to hosts of the enclosing one).
    conditions: Vec<Vec<String>>,
    options: Vec<Opt>,
}

#[derive(Debug, Clone)]
struct Opt {
    path: PathBuf,
    line: usize,
    key: String,
    value: String,
}

/// A parsed ssh client config (`~/.ssh/config` with its `Include`s, or `-F FILE`).
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

impl SshConfig {
    /// Loads `path`; a missing file is an empty config. Relative `Include` paths are taken from
    /// `~/.ssh`, as OpenSSH does for a user's config.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        match std::fs::read_to_string(&path) {
            Ok(t) => Self::parse(path, &t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// `~/.ssh/config` (empty when there is no home directory or no file).
    pub fn load_default() -> Result<Self, Error> {
        match dirs::home_dir() {
            Some(h) => Self::load(h.join(".ssh").join("config")),
            None => Ok(Self::default()),
        }
    }

    /// `ssh -F FILE`: this file instead of `~/.ssh/config` (it must exist), or no config at all
    /// for `none`.
    pub fn load_file(path: &Path) -> Result<Self, Error> {
        if path.as_os_str() == "none" {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path.to_path_buf(), &text)
    }

    /// Parses config text that came from `path`, following its `Include`s.
    pub fn parse(path: PathBuf, text: &str) -> Result<Self, Error> {
        let include_dir = dirs::home_dir()
            .map(|h| h.join(".ssh"))
            .or_else(|| path.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let mut cfg = Self::default();
        cfg.parse_into(&path, text, &[], &include_dir, 0)?;
        Ok(cfg)
    }

    /// Adds the blocks of one file; `base` are the `Host` conditions in force where it was
    /// included (none at the top).
    fn parse_into(
        &mut self,
        path: &Path,
        text: &str,
        base: &[Vec<String>],
        include_dir: &Path,
        depth: usize,
    ) -> Result<(), Error> {
        // Options before the first Host line apply to every host the enclosing context matches.
        self.blocks.push(Block {
            conditions: base.to_vec(),
            options: Vec::new(),
        });
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = split_option(line).ok_or_else(|| Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("expected `Keyword value`, got {line:?}"),
            })?;
            let key = key.to_ascii_lowercase();
            if key == "host" {
                let mut conditions = base.to_vec();
                conditions.push(value.split_whitespace().map(str::to_string).collect());
                self.blocks.push(Block {
                    conditions,
                    options: Vec::new(),
                });
            } else if key == "include" {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(Error::Parse {
                        path: path.to_path_buf(),
                        line: i + 1,
                        reason: format!(
                            "Include nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)"
                        ),
                    });
                }
                let here = self
                    .blocks
                    .last()
                    .map(|b| b.conditions.clone())
                    .unwrap_or_default();
                for word in value.split_whitespace() {
                    let pattern = expand_tilde(&unquote(word));
                    let pattern = if pattern.is_absolute() {
                        pattern
                    } else {
                        include_dir.join(pattern)
                    };
                    for file in glob(&pattern) {
                        if file.is_dir() {
                            continue;
                        }
                        let text =
                            std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
                        self.parse_into(&file, &text, &here, include_dir, depth + 1)?;
                    }
                }
                // What follows the Include belongs to the block it was written in again.
                self.blocks.push(Block {
                    conditions: here,
                    options: Vec::new(),
                });
            } else if let Some(b) = self.blocks.last_mut() {
                b.options.push(Opt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    key,
                    value: unquote(value),
                });
            }
        }
        Ok(())
    }

    /// Resolves a target string against this config and the defaults.
    pub fn resolve(&self, spec: &str, defaults: &TargetDefaults) -> Result<Target, Error> {
        let mut t = self.resolve_one(spec, defaults)?;
        let hops = match (&defaults.jump, t.jump_spec.take()) {
            (Some(list), _) => list.clone(),
            (None, Some((path, line, value))) => {
                parse_jump_list(&value).map_err(|e| Error::Parse {
                    path,
                    line,
                    reason: format!("bad ProxyJump: {e}"),
                })?
            }
            (None, None) => Vec::new(),
        };
        let mut target = t.target;
        target.jump = self.resolve_chain(&hops, &mut vec![spec.to_string()])?;
        Ok(target)
    }

    /// The jump hosts `hops`, each resolved against this config (its own `ProxyJump` first, as
    /// OpenSSH's `ssh -J` does), flattened into one chain.
    fn resolve_chain(&self, hops: &[String], seen: &mut Vec<String>) -> Result<Vec<Target>, Error> {
        let mut chain = Vec::new();
        for hop in hops {
            if seen.len() > MAX_JUMPS {
                return Err(Error::BadTarget {
                    target: seen.join(" -> "),
                    reason: format!("more than {MAX_JUMPS} jump hosts (a ProxyJump loop?)"),
                });
            }
            seen.push(hop.clone());
            let mut r = self.resolve_one(hop, &TargetDefaults::default())?;
            if let Some((path, line, value)) = r.jump_spec.take() {
                let inner = parse_jump_list(&value).map_err(|e| Error::Parse {
                    path,
                    line,
                    reason: format!("bad ProxyJump: {e}"),
                })?;
                chain.extend(self.resolve_chain(&inner, seen)?);
            }
            chain.push(r.target);
            if chain.len() > MAX_JUMPS {
                return Err(Error::BadTarget {
                    target: seen.join(" -> "),
                    reason: format!("more than {MAX_JUMPS} jump hosts (a ProxyJump loop?)"),
                });
            }
        }
        Ok(chain)
    }

    /// One host from the config, with its `ProxyJump` value (file, line, value) not yet followed.
    fn resolve_one(&self, spec: &str, defaults: &TargetDefaults) -> Result<Resolved, Error> {
        let (user, host, port) = parse_spec(spec)?;
        let mut jump_spec: Option<(PathBuf, usize, String)> = None;
        let mut host_name: Option<String> = None;
        let mut cfg_user: Option<String> = None;
        let mut cfg_port: Option<u16> = None;
        let mut identity_files = Vec::new();
        let mut ignored = Vec::new();
        for block in &self.blocks {
            if !block.conditions.iter().all(|p| host_matches(p, &host)) {
                continue;
            }
            for Opt {
                path,
                line,
                key,
                value,
            } in &block.options
            {
                let refuse = |directive: &str| Error::Unsupported {
                    path: path.clone(),
                    line: *line,
                    directive: directive.to_string(),
                    host: host.clone(),
                };
                match key.as_str() {
                    "hostname" => {
                        if host_name.is_none() {
                            host_name = Some(value.replace("%h", &host));
                        }
                    }
                    "user" => {
                        if cfg_user.is_none() {
                            cfg_user = Some(value.clone());
                        }
                    }
                    "port" => {
                        if cfg_port.is_none() {
                            cfg_port = Some(value.parse().map_err(|_| Error::Parse {
                                path: path.clone(),
                                line: *line,
                                reason: format!("bad Port {value:?}"),
                            })?);
                        }
                    }
                    "identityfile" => identity_files.push(expand_tilde(value)),
                    "proxyjump" => {
                        if jump_spec.is_none() {
                            jump_spec = Some((path.clone(), *line, value.clone()));
                        }
                    }
                    "proxycommand" if value.eq_ignore_ascii_case("none") => {}
                    k if REFUSED.contains(&k) => return Err(refuse(k)),
                    k => ignored.push(format!("{}:{line}: {k}", path.display())),
                }
            }
        }
        let user = user
            .or_else(|| defaults.user.clone())
            .or(cfg_user)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".to_string());
        let port = port.or(defaults.port).or(cfg_port).unwrap_or(22);
        Ok(Resolved {
            target: Target {
                label: spec.to_string(),
                host: host_name.unwrap_or(host),
                port,
                user,
                identity_files,
                ignored_directives: ignored,
                jump: Vec::new(),
            },
            jump_spec,
        })
    }
}

struct Resolved {
    target: Target,
    jump_spec: Option<(PathBuf, usize, String)>,
}

fn split_option(line: &str) -> Option<(&str, &str)> {
    let idx = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let (k, rest) = line.split_at(idx);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    if k.is_empty() || rest.is_empty() {
        return None;
    }
    Some((k, rest))
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

fn host_matches(patterns: &[String], host: &str) -> bool {
    let mut positive = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard_match(neg, host) {
                return false;
            }
        } else if wildcard_match(p, host) {
            positive = true;
        }
    }
    positive
}

/// The files matching `pattern`, sorted, as glob(3) gives them: `*` and `?` match within one
/// path component and not a leading `.`; a pattern without wildcards is the path itself when it
/// exists. No match is no file (OpenSSH ignores an `Include` that matches nothing).
fn glob(pattern: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    let mut found: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = match comp {
            Component::Normal(p) => p.to_string_lossy().to_string(),
            other => {
                for f in &mut found {
                    f.push(other.as_os_str());
                }
                continue;
            }
        };
        if !part.contains(['*', '?']) {
            for f in &mut found {
                f.push(&part);
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let read_from = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(read_from) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| {
                    (!n.starts_with('.') || part.starts_with('.')) && wildcard_match(&part, n)
                })
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| !p.as_os_str().is_empty() && p.exists());
    found
}

/// Expands a leading `~/` to the home directory.
pub fn expand_tilde(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = dirs::home_dir()
    {
        return home.join(rest);
    }
    PathBuf::from(p)
}

/// Splits `[user@]host[:port]` (IPv6 as `[::1]:22` or bare `::1`).
pub fn parse_spec(spec: &str) -> Result<(Option<String>, String, Option<u16>), Error> {
    let bad = |reason: &str| Error::BadTarget {
        target: spec.to_string(),
        reason: reason.to_string(),
    };
    if spec.is_empty() {
        return Err(bad("empty target"));
    }
    if spec.chars().any(char::is_whitespace) {
        return Err(bad("targets cannot contain spaces"));
    }
    let (user, rest) = match spec.rsplit_once('@') {
        Some(("", _)) => return Err(bad("empty user before '@'")),
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, spec),
    };
    let parse_port = |p: &str| -> Result<u16, Error> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad("port must be a number from 1 to 65535")),
            Ok(n) => Ok(n),
        }
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("missing ']' after an IPv6 address"))?;
        match after {
            "" => (h.to_string(), None),
            a => match a.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(parse_port(p)?)),
                None => return Err(bad("expected ':port' after ']'")),
            },
        }
    } else if rest.matches(':').count() > 1 {
        (rest.to_string(), None)
    } else if let Some((h, p)) = rest.split_once(':') {
        (h.to_string(), Some(parse_port(p)?))
    } else {
        (rest.to_string(), None)
    };
    if host.is_empty() {
        return Err(bad("empty host name"));
    }
    Ok((user, host, port))
}

/// Reads a hosts file: one target per line, `#` comments and blank lines ignored; every host of
/// every `[group]` ([`crate::HostsFile`] selects groups).
pub fn read_hosts_file(path: &Path) -> Result<Vec<String>, Error> {
    Ok(crate::HostsFile::load(path)?.all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("bob@h:2222").ok(),
            Some((Some("bob".into()), "h".into(), Some(2222)))
        );
        assert_eq!(parse_spec("h").ok(), Some((None, "h".into(), None)));
        assert_eq!(
            parse_spec("[::1]:22").ok(),
            Some((None, "::1".into(), Some(22)))
        );
        assert!(parse_spec("h:0").is_err());
        assert!(parse_spec("h:x").is_err());
        assert!(parse_spec("@h").is_err());
    }

    #[test]
    fn config_alias_and_precedence() {
        let cfg = SshConfig::parse(
            "cfg".into(),
            "Host web1\n  HostName 127.0.0.1\n  Port 2200\n  User deploy\n  IdentityFile /k\n  ServerAliveInterval 5\nHost jump*\n  ProxyJump bastion\nHost *\n  User nobody\n",
        )
        .unwrap();
        let t = cfg.resolve("web1", &TargetDefaults::default()).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("127.0.0.1", 2200, "deploy")
        );
        assert_eq!(t.identity_files, vec![PathBuf::from("/k")]);
        assert_eq!(t.ignored_directives.len(), 1);
        let t = cfg
            .resolve(
                "root@web1:22",
                &TargetDefaults {
                    user: Some("x".into()),
                    port: Some(1),
                    jump: None,
                },
            )
            .unwrap();
        assert_eq!((t.port, t.user.as_str()), (22, "root"));
        let t = cfg
            .resolve(
                "web1",
                &TargetDefaults {
                    user: Some("x".into()),
                    port: Some(1),
                    jump: None,
                },
            )
            .unwrap();
        assert_eq!((t.port, t.user.as_str()), (1, "x"));
        let t = cfg.resolve("jumpy", &TargetDefaults::default()).unwrap();
        assert_eq!(t.jump.len(), 1);
        assert_eq!(
            (t.jump[0].label.as_str(), t.jump[0].user.as_str()),
            ("bastion", "nobody")
        );
        let t = cfg.resolve("other", &TargetDefaults::default()).unwrap();
        assert_eq!(t.user, "nobody");
    }

    #[test]
    fn proxy_jump_chains_command_line_and_loops() {
        let cfg = SshConfig::parse(
            "cfg".into(),
            "Host inner\n  HostName 10.0.0.9\n  ProxyJump ssh://ops@bastion2:2222,mid\nHost mid\n  HostName 10.0.0.5\n  User m\n  ProxyJump outer\nHost loop1\n  ProxyJump loop2\nHost loop2\n  ProxyJump loop1\nHost direct\n  ProxyJump none\n",
        )
        .unwrap();
        let none = TargetDefaults::default();
        let t = cfg.resolve("inner", &none).unwrap();
        let hops: Vec<(&str, &str, u16)> = t
            .jump
            .iter()
            .map(|h| (h.label.as_str(), h.host.as_str(), h.port))
            .collect();
        // mid's own ProxyJump (outer) comes before mid
        assert_eq!(
            hops,
            [
                ("ops@bastion2:2222", "bastion2", 2222),
                ("outer", "outer", 22),
                ("mid", "10.0.0.5", 22)
            ]
        );
        assert_eq!(t.jump[0].user, "ops");
        assert!(cfg.resolve("direct", &none).unwrap().jump.is_empty());
        // -J replaces the config's ProxyJump; -u/-p do not apply to jump hosts
        let cli = TargetDefaults {
            user: Some("u".into()),
            port: Some(2),
            jump: Some(parse_jump_list("b1:7,root@b2").unwrap()),
        };
        let t = cfg.resolve("inner", &cli).unwrap();
        assert_eq!((t.user.as_str(), t.port), ("u", 2));
        let hops: Vec<(&str, u16, &str)> = t
            .jump
            .iter()
            .map(|h| (h.host.as_str(), h.port, h.label.as_str()))
            .collect();
        assert_eq!(hops, [("b1", 7, "b1:7"), ("b2", 22, "root@b2")]);
        assert_eq!(t.jump[1].user, "root");
        let err = cfg.resolve("loop1", &none).unwrap_err();
        assert!(err.to_string().contains("loop"), "{err}");
        assert!(parse_jump_list("a,,b").is_err());
        assert!(parse_jump_list("a:x").is_err());
        assert!(parse_jump_list("None").unwrap().is_empty());
        let bad = SshConfig::parse("cfg".into(), "Host x\n  ProxyJump a:0\n").unwrap();
        let err = bad.resolve("x", &none).unwrap_err();
        assert!(err.to_string().contains("cfg:2"), "{err}");
    }

    #[test]
    fn include_globs_nested_hosts_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(
            d.join("conf.d/10-web.conf"),
            "Host web\n  HostName 10.0.0.1\n  Port 2201\n",
        )
        .unwrap();
        std::fs::write(
            d.join("conf.d/20-db.conf"),
            "Host db\n  HostName 10.0.0.2\n",
        )
        .unwrap();
        std::fs::write(d.join("conf.d/.hidden.conf"), "Host web\n  Port 1\n").unwrap();
        // Included inside `Host prod-*`: its lines apply only to hosts matching both.
        std::fs::write(d.join("prod"), "User produser\nHost *-db\n  Port 5432\n").unwrap();
        let text = format!(
            "Include {d}/conf.d/*.conf {d}/missing-*.conf\nHost prod-*\n  Include {d}/prod\n  ServerAliveInterval 5\nHost *\n  User nobody\n  Port 22\n",
            d = d.display()
        );
        let cfg = SshConfig::parse(d.join("config"), &text).unwrap();
        let none = TargetDefaults::default();
        let t = cfg.resolve("web", &none).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str()),
            ("10.0.0.1", 2201, "nobody")
        );
        let t = cfg.resolve("db", &none).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("10.0.0.2", 22));
        let t = cfg.resolve("prod-db", &none).unwrap();
        assert_eq!((t.port, t.user.as_str()), (5432, "produser"));
        // the line after the Include still belongs to `Host prod-*`
        assert_eq!(t.ignored_directives.len(), 1, "{:?}", t.ignored_directives);
        let t = cfg.resolve("other-db", &none).unwrap();
        assert_eq!((t.port, t.user.as_str()), (22, "nobody"));
        assert!(t.ignored_directives.is_empty());
    }

    #[test]
    fn include_loops_are_an_error_and_dash_f_none_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let me = dir.path().join("self");
        std::fs::write(&me, format!("Include {}\n", me.display())).unwrap();
        let err = SshConfig::load_file(&me).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        let none = SshConfig::load_file(Path::new("none")).unwrap();
        let t = none.resolve("web", &TargetDefaults::default()).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("web", 22));
        assert!(SshConfig::load_file(&dir.path().join("missing")).is_err());
    }
}
