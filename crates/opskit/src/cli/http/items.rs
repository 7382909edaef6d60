//! HTTPie/xh-compatible request items: `Header:Value`, `name==value`, `field=value`,
//! `field:=json`, `field@path`, and the file-reading variants.
//!
//! An item is split at the first unescaped separator; when several separators start at that
//! position the longest wins (`a:=1` is raw JSON, not a header). A backslash makes the next
//! character literal (`a\=b=c` is the field `a=b` with value `c`).

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

/// One parsed request item.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `Name:Value` — a request header.
    Header { name: String, value: String },
    /// `Name:` — remove a header (one set by a profile or a default).
    UnsetHeader { name: String },
    /// `Name;` — send the header with an empty value.
    EmptyHeader { name: String },
    /// `name==value` — a query-string parameter.
    Query { name: String, value: String },
    /// `field=value` — a JSON string field (or a form field with `--form`).
    Data { name: String, value: String },
    /// `field:=json` — a raw JSON field.
    Json { name: String, value: Value },
    /// `field@path[;type=mime]` — a file part; switches the body to multipart.
    File {
        name: String,
        path: PathBuf,
        mime: Option<String>,
    },
    /// `@path` or `@-` — the whole request body from a file or stdin.
    RawBody { path: PathBuf },
}

/// A request item that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The item as typed.
    pub item: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad request item `{}`: {}", self.item, self.reason)
    }
}

impl std::error::Error for ItemError {}

/// How to write each kind of item, for hints.
pub const ITEM_SYNTAX: &str = "items are Header:Value, Header: (remove), Header; (empty), \
name==value (query), field=value (JSON string), field:=json (raw JSON), field@path (file), \
field=@path / field:=@path (value from a file), @path or @- (whole body); escape a separator \
with a backslash";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    JsonFile,   // :=@
    QueryFile,  // ==@
    DataFile,   // =@
    HeaderFile, // :@
    Query,      // ==
    Json,       // :=
    Data,       // =
    Header,     // :
    Empty,      // ;
    File,       // @
}

const SEPARATORS: &[(&str, Sep)] = &[
    (":=@", Sep::JsonFile),
    ("==@", Sep::QueryFile),
    ("=@", Sep::DataFile),
    (":@", Sep::HeaderFile),
    ("==", Sep::Query),
    (":=", Sep::Json),
    ("=", Sep::Data),
    (":", Sep::Header),
    (";", Sep::Empty),
    ("@", Sep::File),
];

const SEP_CHARS: &[char] = &[':', '=', '@', ';', '\\'];

/// Parses one item. File contents are not read here (see [`Item::File`], [`load`]).
pub fn parse(raw: &str) -> Result<Item, ItemError> {
    let err = |reason: &str| ItemError {
        item: raw.to_owned(),
        reason: reason.to_owned(),
    };
    // Split into (unescaped key, separator, raw rest). Only escapes in the key matter for finding
    // the separator; the value keeps everything after the separator with escapes resolved.
    let chars: Vec<char> = raw.chars().collect();
    let mut key = String::new();
    let mut i = 0;
    let mut found: Option<(Sep, usize)> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() && SEP_CHARS.contains(&chars[i + 1]) {
            key.push(chars[i + 1]);
            i += 2;
            continue;
        }
        let rest: String = chars[i..].iter().collect();
        if let Some((s, sep)) = SEPARATORS.iter().find(|(s, _)| rest.starts_with(s)) {
            // `;` only means "empty header" at the very end (`X-Empty;`).
            if *sep == Sep::Empty && i + 1 != chars.len() {
                key.push(c);
                i += 1;
                continue;
            }
            found = Some((*sep, i + s.chars().count()));
            break;
        }
        key.push(c);
        i += 1;
    }
    let Some((sep, value_start)) = found else {
        return Err(err(
            "no separator found (expected one of `:` `==` `=` `:=` `@`)",
        ));
    };
    let value = unescape(&chars[value_start..]);
    if key.is_empty() {
        return match sep {
            Sep::File if !value.is_empty() => Ok(Item::RawBody {
                path: PathBuf::from(value),
            }),
            Sep::File => Err(err("`@` needs a file name (or `@-` for stdin)")),
            _ => Err(err("the name before the separator is empty")),
        };
    }
    match sep {
        Sep::Header | Sep::HeaderFile | Sep::Empty => check_header_name(&key).map_err(err)?,
        _ => {}
    }
    Ok(match sep {
        Sep::Header if value.is_empty() => Item::UnsetHeader { name: key },
        Sep::Header => Item::Header {
            name: key,
            value: check_header_value(value).map_err(err)?,
        },
        Sep::Empty => Item::EmptyHeader { name: key },
        Sep::Query => Item::Query { name: key, value },
        Sep::Data => Item::Data { name: key, value },
        Sep::Json => Item::Json {
            value: serde_json::from_str(&value)
                .map_err(|e| err(&format!("the value after `:=` is not valid JSON ({e})")))?,
            name: key,
        },
        Sep::File => {
            if value.is_empty() {
                return Err(err("`field@path` needs a file path after `@`"));
            }
            let (path, mime) = match value.rsplit_once(";type=") {
                Some((p, m)) => (p.to_owned(), Some(m.to_owned())),
                None => (value, None),
            };
            Item::File {
                name: key,
                path: PathBuf::from(path),
                mime,
            }
        }
        Sep::HeaderFile => Item::Header {
            name: key,
            value: check_header_value(read_text(raw, &value)?.trim_end().to_owned())
                .map_err(err)?,
        },
        Sep::QueryFile => Item::Query {
            name: key,
            value: read_text(raw, &value)?,
        },
        Sep::DataFile => Item::Data {
            name: key,
            value: read_text(raw, &value)?,
        },
        Sep::JsonFile => {
            let text = read_text(raw, &value)?;
            Item::Json {
                value: serde_json::from_str(&text).map_err(|e| {
                    err(&format!(
                        "the file `{value}` does not hold valid JSON ({e})"
                    ))
                })?,
                name: key,
            }
        }
    })
}

/// Parses every item, stopping at the first bad one.
pub fn parse_all<S: AsRef<str>>(raw: &[S]) -> Result<Vec<Item>, ItemError> {
    raw.iter().map(|s| parse(s.as_ref())).collect()
}

fn unescape(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() && SEP_CHARS.contains(&chars[i + 1]) {
            out.push(chars[i + 1]);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn read_text(item: &str, path: &str) -> Result<String, ItemError> {
    std::fs::read_to_string(path).map_err(|e| ItemError {
        item: item.to_owned(),
        reason: format!("cannot read `{path}`: {e}"),
    })
}

fn check_header_name(name: &str) -> Result<(), &'static str> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.chars().all(token) {
        Ok(())
    } else {
        Err("a header name may hold only letters, digits and !#$%&'*+-.^_`|~")
    }
}

fn check_header_value(value: String) -> Result<String, &'static str> {
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        Err("a header value may not hold a line break or NUL")
    } else {
        Ok(value.trim_start().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Item {
        parse(s).unwrap()
    }

    #[test]
    fn each_separator() {
        assert_eq!(
            p("Accept:application/json"),
            Item::Header {
                name: "Accept".into(),
                value: "application/json".into()
            }
        );
        assert_eq!(
            p("X-Trace: abc"),
            Item::Header {
                name: "X-Trace".into(),
                value: "abc".into()
            }
        );
        assert_eq!(
            p("Accept:"),
            Item::UnsetHeader {
                name: "Accept".into()
            }
        );
        assert_eq!(
            p("X-Empty;"),
            Item::EmptyHeader {
                name: "X-Empty".into()
            }
        );
        assert_eq!(
            p("q==a b"),
            Item::Query {
                name: "q".into(),
                value: "a b".into()
            }
        );
        assert_eq!(
            p("name=web01"),
            Item::Data {
                name: "name".into(),
                value: "web01".into()
            }
        );
        assert_eq!(
            p("port:=8080"),
            Item::Json {
                name: "port".into(),
                value: json!(8080)
            }
        );
        assert_eq!(
            p("tags:=[\"a\",{\"b\":1}]"),
            Item::Json {
                name: "tags".into(),
                value: json!(["a", {"b": 1}])
            }
        );
        assert_eq!(
            p("cert@/tmp/c.pem;type=application/x-pem-file"),
            Item::File {
                name: "cert".into(),
                path: "/tmp/c.pem".into(),
                mime: Some("application/x-pem-file".into())
            }
        );
        assert_eq!(
            p("@body.json"),
            Item::RawBody {
                path: "body.json".into()
            }
        );
        assert_eq!(p("@-"), Item::RawBody { path: "-".into() });
    }

    #[test]
    fn first_separator_wins_and_longest_at_that_position() {
        assert_eq!(
            p("time=12:30"),
            Item::Data {
                name: "time".into(),
                value: "12:30".into()
            }
        );
        assert_eq!(
            p("Host:example.com:8080"),
            Item::Header {
                name: "Host".into(),
                value: "example.com:8080".into()
            }
        );
        assert_eq!(
            p("url==http://x/?a=b"),
            Item::Query {
                name: "url".into(),
                value: "http://x/?a=b".into()
            }
        );
        assert_eq!(
            p("Cookie:a=1;b=2"),
            Item::Header {
                name: "Cookie".into(),
                value: "a=1;b=2".into()
            }
        );
    }

    #[test]
    fn backslash_escapes_separators() {
        assert_eq!(
            p(r"a\=b=c"),
            Item::Data {
                name: "a=b".into(),
                value: "c".into()
            }
        );
        assert_eq!(
            p(r"email=me\@x"),
            Item::Data {
                name: "email".into(),
                value: "me@x".into()
            }
        );
        assert_eq!(
            p(r"path\:x==1"),
            Item::Query {
                name: "path:x".into(),
                value: "1".into()
            }
        );
        assert_eq!(
            p(r"win=C:\dir"),
            Item::Data {
                name: "win".into(),
                value: r"C:\dir".into()
            }
        );
    }

    #[test]
    fn file_value_variants() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v.json");
        std::fs::write(&f, "{\"x\": [1, 2]}").unwrap();
        let path = f.display().to_string();
        assert_eq!(
            p(&format!("cfg:={}", format_args!("@{path}"))),
            Item::Json {
                name: "cfg".into(),
                value: json!({"x": [1, 2]})
            }
        );
        assert_eq!(
            p(&format!("text=@{path}")),
            Item::Data {
                name: "text".into(),
                value: "{\"x\": [1, 2]}".into()
            }
        );
    }

    #[test]
    fn errors_name_the_item() {
        let e = parse("justaword").unwrap_err();
        assert_eq!(e.item, "justaword");
        assert!(e.to_string().contains("no separator"), "{e}");
        let e = parse("n:={bad").unwrap_err();
        assert!(e.to_string().contains("`n:={bad`"), "{e}");
        assert!(e.reason.contains("not valid JSON"));
        assert!(parse("=x").unwrap_err().reason.contains("empty"));
        assert!(
            parse("Bad Header:x")
                .unwrap_err()
                .reason
                .contains("header name")
        );
        assert!(
            parse("v=@/no/such/file")
                .unwrap_err()
                .reason
                .contains("cannot read")
        );
    }
}
