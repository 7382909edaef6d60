//! `opskit vault kv` and `vault:` secrets against a stand-in for HashiCorp Vault on 127.0.0.1:0
//! that follows Vault's published API (api-docs/secret/kv/kv-v1 and kv-v2,
//! system/internal-ui-mounts, sdk/logical/response_util.go): the full response envelope,
//! `{"errors": [...]}` on every error (`[]` on 404), 403 `permission denied` for a missing or
//! wrong token (`X-Vault-Token` or `Authorization: Bearer`), `X-Vault-Namespace` as a path
//! prefix, `LIST` and `?list=true`, KV v2's `{"data": …}` write wrapper (400 `no data provided`
//! without it), versions and soft deletes (404 with metadata), the warning 404 for a v1-style path
//! on a v2 mount, and `sys/internal/ui/mounts/PATH` (403 for a path under no mount). Requests a
//! real Vault would reject, or that a KV client should never send, are recorded and fail the test.
//!
//! The same server has `/protected`, an API that wants `Authorization: Bearer <the token stored
//! at secret/github>`, for the `vault:` reference tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

const ROOT: &str = "hvs.opskit-root-token-0000";
/// May read `secret/data/github` and look up the `secret/` mount; nothing else.
const LIMITED: &str = "hvs.opskit-limited-token-1111";
/// The API token stored in Vault at secret/github, field `token`.
const API_TOKEN: &str = "gh-token-from-vault-7f3a9c";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kv {
    V1,
    V2,
}

#[derive(Clone)]
struct Version {
    data: Map<String, Value>,
    created: String,
    deleted: Option<String>,
}

#[derive(Default)]
struct State {
    /// Mount path (with namespace prefix, ending in `/`) → KV version.
    mounts: Vec<(String, Kv)>,
    /// KV v1: full path → data.
    v1: BTreeMap<String, Map<String, Value>>,
    /// KV v2: (mount, path under the mount) → versions, oldest first.
    v2: BTreeMap<(String, String), Vec<Version>>,
    /// Reads of a secret (GET of a v1 path or v2 data/ path) by full path.
    reads: HashMap<String, u64>,
    /// Namespaces seen in X-Vault-Namespace.
    namespaces: Vec<String>,
    /// Authorization headers /protected received.
    protected_hits: u64,
    /// Requests a real Vault would reject or a KV client should not send.
    violations: Vec<String>,
    clock: u64,
}

struct Fixture {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Fixture {
    fn start() -> Fixture {
        let state = Arc::new(Mutex::new(State {
            mounts: vec![
                ("secret/".into(), Kv::V2),
                ("kv/".into(), Kv::V1),
                ("team/secret/".into(), Kv::V2),
            ],
            ..State::default()
        }));
        {
            let mut s = state.lock().unwrap();
            let mut data = Map::new();
            data.insert("token".into(), json!(API_TOKEN));
            data.insert("user".into(), json!("deploy-bot"));
            s.v2.insert(
                ("secret/".into(), "github".into()),
                vec![Version {
                    data,
                    created: "2026-11-30T10:00:00.000000Z".into(),
                    deleted: None,
                }],
            );
            let mut other = Map::new();
            other.insert("password".into(), json!("not-for-limited"));
            s.v2.insert(
                ("secret/".into(), "other".into()),
                vec![Version {
                    data: other,
                    created: "2026-11-30T10:00:00.000000Z".into(),
                    deleted: None,
                }],
            );
        }
        let st = state.clone();
        let addr = crate::support::api_stand_in(move |method, uri, headers, body| {
            let mut s = st.lock().unwrap();
            handle(&mut s, &method, &uri, &headers, &body)
        });
        Fixture {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn reads(&self, path: &str) -> u64 {
        *self.state.lock().unwrap().reads.get(path).unwrap_or(&0)
    }

    fn assert_clean(&self) {
        let s = self.state.lock().unwrap();
        assert!(
            s.violations.is_empty(),
            "requests Vault would reject: {:#?}",
            s.violations
        );
    }
}

/// Vault's response envelope.
fn envelope(data: Value, warnings: Option<Vec<&str>>) -> Value {
    json!({
        "request_id": "3c7e7f04-0b7e-4f5c-9d55-6c0c0f1e2a11",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": null,
        "mount_type": "kv",
    })
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn errors(status: StatusCode, errs: &[&str]) -> Response {
    reply(status, json!({ "errors": errs }))
}

fn denied() -> Response {
    // current servers send the multierror text (hashicorp/vault#17246)
    errors(
        StatusCode::FORBIDDEN,
        &["1 error occurred:\n\t* permission denied\n\n"],
    )
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn handle(
    s: &mut State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if uri.path() == "/protected" {
        s.protected_hits += 1;
        return if header("authorization") == Some(&format!("Bearer {API_TOKEN}")) {
            reply(StatusCode::OK, json!({"ok": true, "who": "deploy-bot"}))
        } else {
            reply(StatusCode::UNAUTHORIZED, json!({"message": "bad token"}))
        };
    }
    let Some(rest) = uri.path().strip_prefix("/v1/") else {
        s.violations.push(format!("{method} {uri}: not under /v1/"));
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    let token = header("x-vault-token").map(str::to_owned).or_else(|| {
        header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
    });
    let token = match token.as_deref() {
        Some(ROOT) => ROOT,
        Some(LIMITED) => LIMITED,
        _ => return denied(),
    };
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let list = method.as_str() == "LIST"
        || (method == Method::GET && query.get("list").map(String::as_str) == Some("true"));
    // the namespace is a path prefix
    let ns = header("x-vault-namespace")
        .map(|n| format!("{}/", n.trim_matches('/')))
        .filter(|n| n != "/");
    if let Some(n) = &ns {
        s.namespaces.push(n.clone());
    }
    let path = percent_decode(rest);
    let full = format!("{}{path}", ns.clone().unwrap_or_default());
    if let Some(asked) = path.strip_prefix("sys/internal/ui/mounts/") {
        if method != Method::GET {
            return errors(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]);
        }
        let asked_full = format!("{}{asked}/", ns.clone().unwrap_or_default());
        let found = s
            .mounts
            .iter()
            .find(|(m, _)| asked_full.starts_with(m.as_str()))
            .cloned();
        return match found {
            Some((m, kv)) if token == ROOT || m == "secret/" => {
                let shown = m.strip_prefix(ns.as_deref().unwrap_or("")).unwrap_or(&m);
                let options = match kv {
                    Kv::V2 => json!({"version": "2"}),
                    Kv::V1 => json!({"version": ""}),
                };
                reply(
                    StatusCode::OK,
                    envelope(
                        json!({"path": shown, "type": "kv", "description": "", "options": options,
                            "accessor": "kv_1234", "config": {}, "local": false, "seal_wrap": false,
                            "external_entropy_access": false, "running_plugin_version": "", "uuid": "u"}),
                        None,
                    ),
                )
            }
            _ => errors(
                StatusCode::FORBIDDEN,
                &[&format!(
                    "preflight capability check returned 403, please ensure client's policies grant access to path \"{asked}/\""
                )],
            ),
        };
    }
    let Some((mount, kv)) = s
        .mounts
        .iter()
        .find(|(m, _)| full.starts_with(m.as_str()))
        .cloned()
    else {
        return errors(
            StatusCode::NOT_FOUND,
            &[&format!(
                "no handler for route \"{full}\". route entry not found."
            )],
        );
    };
    let under = full[mount.len()..].to_owned();
    if token == LIMITED && !(full == "secret/data/github" && method == Method::GET) {
        return denied();
    }
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => Some(v),
            Err(_) => {
                s.violations
                    .push(format!("{method} {full}: body is not JSON"));
                return errors(StatusCode::BAD_REQUEST, &["failed to parse JSON input"]);
            }
        }
    };
    let writing = matches!(method.as_str(), "PUT" | "POST");
    match kv {
        Kv::V1 => {
            if list {
                let prefix = under.trim_end_matches('/');
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                let keys = child_keys(s.v1.keys().filter_map(|k| k.strip_prefix(&mount)), &prefix);
                return list_answer(keys);
            }
            if method == Method::GET {
                *s.reads.entry(full.clone()).or_default() += 1;
                return match s.v1.get(&full) {
                    Some(d) => reply(StatusCode::OK, envelope(Value::Object(d.clone()), None)),
                    None => errors(StatusCode::NOT_FOUND, &[]),
                };
            }
            if writing {
                let Some(Value::Object(map)) = body_json else {
                    return errors(StatusCode::BAD_REQUEST, &["missing data fields"]);
                };
                s.v1.insert(full, map);
                return no_content();
            }
            if method == Method::DELETE {
                s.v1.remove(&full);
                return no_content();
            }
            errors(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"])
        }
        Kv::V2 => {
            let (op, name) = under.split_once('/').unwrap_or((under.as_str(), ""));
            let key = (mount.clone(), name.trim_end_matches('/').to_owned());
            match (op, method.as_str()) {
                ("metadata", _) if list => {
                    let prefix = if name.trim_end_matches('/').is_empty() {
                        String::new()
                    } else {
                        format!("{}/", name.trim_end_matches('/'))
                    };
                    let keys = child_keys(
                        s.v2.keys()
                            .filter(|(m, _)| *m == mount)
                            .map(|(_, p)| p.as_str()),
                        &prefix,
                    );
                    list_answer(keys)
                }
                ("data", "GET") => {
                    *s.reads.entry(full.clone()).or_default() += 1;
                    let Some(versions) = s.v2.get(&key) else {
                        return errors(StatusCode::NOT_FOUND, &[]);
                    };
                    let n = match query.get("version").map(|v| v.parse::<usize>()) {
                        Some(Ok(0)) | None => versions.len(),
                        Some(Ok(n)) => n,
                        Some(Err(_)) => {
                            return errors(StatusCode::BAD_REQUEST, &["invalid version"]);
                        }
                    };
                    let Some(v) = versions.get(n.wrapping_sub(1)) else {
                        return errors(StatusCode::NOT_FOUND, &[]);
                    };
                    let meta = version_meta(v, n);
                    match &v.deleted {
                        None => reply(
                            StatusCode::OK,
                            envelope(json!({"data": v.data, "metadata": meta}), None),
                        ),
                        Some(_) => reply(
                            StatusCode::NOT_FOUND,
                            envelope(json!({"data": null, "metadata": meta}), None),
                        ),
                    }
                }
                ("data", "PUT" | "POST") => {
                    let Some(Value::Object(b)) = &body_json else {
                        return errors(StatusCode::BAD_REQUEST, &["no data provided"]);
                    };
                    let Some(Value::Object(data)) = b.get("data") else {
                        s.violations
                            .push(format!("{method} {full}: no data wrapper"));
                        return errors(StatusCode::BAD_REQUEST, &["no data provided"]);
                    };
                    if b.keys().any(|k| k != "data" && k != "options") {
                        s.violations
                            .push(format!("{method} {full}: unknown keys {b:?}"));
                    }
                    s.clock += 1;
                    let v = Version {
                        data: data.clone(),
                        created: format!("2026-11-30T12:00:{:02}.000000Z", s.clock % 60),
                        deleted: None,
                    };
                    let versions = s.v2.entry(key).or_default();
                    versions.push(v.clone());
                    let n = versions.len();
                    reply(StatusCode::OK, envelope(version_meta(&v, n), None))
                }
                ("data", "DELETE") => {
                    s.clock += 1;
                    let when = format!("2026-11-30T13:00:{:02}.000000Z", s.clock % 60);
                    match s.v2.get_mut(&key).and_then(|vs| vs.last_mut()) {
                        Some(v) => {
                            v.deleted.get_or_insert(when);
                            no_content()
                        }
                        None => no_content(),
                    }
                }
                ("delete", "PUT" | "POST") => {
                    let versions: Vec<usize> = body_json
                        .as_ref()
                        .and_then(|b| b.get("versions"))
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_u64)
                                .map(|n| n as usize)
                                .collect()
                        })
                        .unwrap_or_default();
                    if versions.is_empty() {
                        return errors(StatusCode::BAD_REQUEST, &["No version number provided"]);
                    }
                    s.clock += 1;
                    let when = format!("2026-11-30T13:00:{:02}.000000Z", s.clock % 60);
                    if let Some(vs) = s.v2.get_mut(&key) {
                        for n in versions {
                            if let Some(v) = vs.get_mut(n.wrapping_sub(1)) {
                                v.deleted.get_or_insert(when.clone());
                            }
                        }
                    }
                    no_content()
                }
                ("metadata", "GET") => {
                    let Some(versions) = s.v2.get(&key) else {
                        return errors(StatusCode::NOT_FOUND, &[]);
                    };
                    let mut vs = Map::new();
                    for (i, v) in versions.iter().enumerate() {
                        vs.insert(
                            (i + 1).to_string(),
                            json!({"created_time": v.created,
                                "deletion_time": v.deleted.clone().unwrap_or_default(),
                                "destroyed": false}),
                        );
                    }
                    reply(
                        StatusCode::OK,
                        envelope(
                            json!({"cas_required": false, "created_time": versions[0].created,
                                "current_version": versions.len(), "delete_version_after": "0s",
                                "max_versions": 0, "oldest_version": 0,
                                "updated_time": versions[versions.len() - 1].created,
                                "custom_metadata": null, "versions": vs}),
                            None,
                        ),
                    )
                }
                (
                    "data" | "metadata" | "delete" | "undelete" | "destroy" | "config" | "subkeys",
                    _,
                ) => errors(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
                _ => {
                    // a v1-style path on a v2 mount [V-KVP backend.go]
                    s.violations
                        .push(format!("{method} {full}: v1-style path on a KV v2 mount"));
                    reply(
                        StatusCode::NOT_FOUND,
                        envelope(
                            Value::Null,
                            Some(vec![
                                "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.",
                            ]),
                        ),
                    )
                }
            }
        }
    }
}

fn version_meta(v: &Version, n: usize) -> Value {
    json!({"created_time": v.created, "custom_metadata": null,
        "deletion_time": v.deleted.clone().unwrap_or_default(), "destroyed": false, "version": n})
}

/// The direct children of `prefix` among `paths` (folders with a trailing `/`).
fn child_keys<'a>(paths: impl Iterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = paths
        .filter_map(|p| p.strip_prefix(prefix))
        .map(|rest| match rest.split_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => rest.to_owned(),
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn list_answer(keys: Vec<String>) -> Response {
    if keys.is_empty() {
        errors(StatusCode::NOT_FOUND, &[])
    } else {
        reply(StatusCode::OK, envelope(json!({ "keys": keys }), None))
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- tests

/// `opskit` with Vault's environment pointing at the fixture and nothing of the user's.
fn opskit(fx: &Fixture, home: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("VAULT_ADDR", &fx.url)
        .env("VAULT_TOKEN", ROOT)
        .env_remove("VAULT_NAMESPACE")
        .env_remove("VAULT_CACERT")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("OPSKIT_CONFIG", home.join("no-config.toml"))
        .timeout(Duration::from_secs(60));
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and returns (exit code, stdout, stderr).
fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn vault_kv_v2_put_get_list_metadata_delete() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let pw = home.path().join("db-password.txt");
    std::fs::write(&pw, "s3cr3t pass\n").unwrap();
    // put: one value from a file, one from stdin
    let out = run_ok(
        opskit(&fx, home.path())
            .args(["vault", "kv", "put", "secret/myapp/db"])
            .arg(format!("password=@{}", pw.display()))
            .arg("api_key=-")
            .args(["--output", "json"])
            .write_stdin("key-from-stdin"),
    );
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["path"], "secret/data/myapp/db");
    assert_eq!(rows[0]["version"], 1);
    assert_eq!(rows[0]["kv_version"], 2);
    // get: JSON with data and metadata
    let got: Value = serde_json::from_str(&run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "get",
        "secret/myapp/db",
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(got["data"]["password"], "s3cr3t pass\n");
    assert_eq!(got["data"]["api_key"], "key-from-stdin");
    assert_eq!(got["metadata"]["version"], 1);
    // --field: the exact bytes (no newline added when piped)
    let field = run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "get",
        "secret/myapp/db",
        "--field",
        "password",
    ]));
    assert_eq!(field, "s3cr3t pass\n");
    // CSV rows of key,value
    let csv = run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "get",
        "secret/myapp/db",
        "--output",
        "csv",
    ]));
    assert!(csv.starts_with("key,value\n"), "{csv}");
    assert!(csv.contains("api_key,key-from-stdin\n"), "{csv}");
    // list: the folder and the top
    let list = run_ok(
        opskit(&fx, home.path()).args(["vault", "kv", "list", "secret/", "--output", "csv"]),
    );
    assert_eq!(list, "key\ngithub\nmyapp/\nother\n");
    let list = run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "list",
        "secret/myapp",
        "--output",
        "csv",
    ]));
    assert_eq!(list, "key\ndb\n");
    // an empty folder is an empty list (Vault answers 404)
    let list = run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "list",
        "secret/nothing/",
        "--output",
        "json",
    ]));
    assert_eq!(list.trim(), "[]");
    // a second version, then a soft delete of the latest
    let v2 = home.path().join("v2.txt");
    std::fs::write(&v2, "second").unwrap();
    run_ok(
        opskit(&fx, home.path())
            .args(["vault", "kv", "put", "secret/myapp/db"])
            .arg(format!("password=@{}", v2.display())),
    );
    run_ok(opskit(&fx, home.path()).args(["vault", "kv", "delete", "secret/myapp/db"]));
    let (code, _, err) =
        run(opskit(&fx, home.path()).args(["vault", "kv", "get", "secret/myapp/db"]));
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("version 2 of secret/data/myapp/db was deleted at 2026-"),
        "{err}"
    );
    // the first version is still there
    let field = run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "get",
        "secret/myapp/db",
        "--version",
        "1",
        "--field",
        "api_key",
    ]));
    assert_eq!(field, "key-from-stdin");
    // metadata: one row per version, the deleted one with its time
    let meta = run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "metadata",
        "secret/myapp/db",
        "--output",
        "csv",
    ]));
    let lines: Vec<&str> = meta.lines().collect();
    assert_eq!(
        lines[0],
        "version,current,created_time,deletion_time,destroyed"
    );
    assert!(
        lines[1].starts_with("1,false,2026-") && lines[1].ends_with(",,false"),
        "{meta}"
    );
    assert!(
        lines[2].starts_with("2,true,2026-") && lines[2].contains(",2026-11-30T13:"),
        "{meta}"
    );
    let meta: Value = serde_json::from_str(&run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "metadata",
        "secret/myapp/db",
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(meta["current_version"], 2);
    // deleting given versions
    run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "delete",
        "secret/myapp/db",
        "--versions",
        "1",
    ]));
    let (code, _, err) = run(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "get",
        "secret/myapp/db",
        "--version",
        "1",
    ]));
    assert_eq!(code, 8, "{err}");
    // a secret that never was: 404, exit 8
    let (code, _, err) = run(opskit(&fx, home.path()).args(["vault", "kv", "get", "secret/nope"]));
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("no secret at secret/data/nope"), "{err}");
    fx.assert_clean();
}

#[test]
fn vault_kv_v1_put_get_list_delete() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("token.txt");
    std::fs::write(&f, "v1-value").unwrap();
    let out = run_ok(
        opskit(&fx, home.path())
            .args(["vault", "kv", "put", "kv/team/app"])
            .arg(format!("token=@{}", f.display()))
            .arg("note=-")
            .args(["--output", "json"])
            .write_stdin("from stdin"),
    );
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["path"], "kv/team/app");
    assert_eq!(rows[0]["kv_version"], 1);
    assert_eq!(rows[0]["version"], Value::Null);
    // stored as the raw map, no data wrapper
    {
        let s = fx.state.lock().unwrap();
        let stored = s.v1.get("kv/team/app").unwrap();
        assert_eq!(stored.get("token"), Some(&json!("v1-value")));
        assert_eq!(stored.get("note"), Some(&json!("from stdin")));
    }
    let got: Value = serde_json::from_str(&run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "get",
        "kv/team/app",
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(got["data"]["token"], "v1-value");
    assert_eq!(got["kv_version"], 1);
    assert_eq!(got["metadata"], Value::Null);
    let list =
        run_ok(opskit(&fx, home.path()).args(["vault", "kv", "list", "kv/", "--output", "csv"]));
    assert_eq!(list, "key\nteam/\n");
    let list = run_ok(
        opskit(&fx, home.path()).args(["vault", "kv", "list", "kv/team", "--output", "ndjson"]),
    );
    assert_eq!(list, "{\"key\":\"app\"}\n");
    // KV v1 keeps no metadata or versions
    let (code, _, err) =
        run(opskit(&fx, home.path()).args(["vault", "kv", "metadata", "kv/team/app"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("kv/ is a KV v1 mount"), "{err}");
    run_ok(opskit(&fx, home.path()).args(["vault", "kv", "delete", "kv/team/app"]));
    let (code, _, err) = run(opskit(&fx, home.path()).args(["vault", "kv", "get", "kv/team/app"]));
    assert_eq!(code, 8, "{err}");
    fx.assert_clean();
}

#[test]
fn vault_kv_put_refuses_a_value_on_the_command_line() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = run(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "put",
        "secret/app",
        "password=hunter2",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("not taken from the command line")
            && err.contains("password=@FILE")
            && err.contains("password=-"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the value is not echoed: {err}");
    // nothing was written
    assert!(
        !fx.state
            .lock()
            .unwrap()
            .v2
            .contains_key(&("secret/".into(), "app".into()))
    );
    // two keys from stdin: refused too
    let (code, _, err) = run(opskit(&fx, home.path())
        .args(["vault", "kv", "put", "secret/app", "a=-", "b=-"])
        .write_stdin("x"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only one key can read stdin"), "{err}");
    fx.assert_clean();
}

#[test]
fn vault_namespace_header_is_sent() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("v.txt");
    std::fs::write(&f, "in-team").unwrap();
    run_ok(
        opskit(&fx, home.path())
            .env("VAULT_NAMESPACE", "team")
            .args(["vault", "kv", "put", "secret/ns-app"])
            .arg(format!("v=@{}", f.display())),
    );
    assert!(
        fx.state
            .lock()
            .unwrap()
            .namespaces
            .iter()
            .all(|n| n == "team/")
    );
    assert!(!fx.state.lock().unwrap().namespaces.is_empty());
    // stored under the namespace's mount
    assert!(
        fx.state
            .lock()
            .unwrap()
            .v2
            .contains_key(&("team/secret/".into(), "ns-app".into()))
    );
    let v = run_ok(
        opskit(&fx, home.path())
            .env("VAULT_NAMESPACE", "team")
            .args(["vault", "kv", "get", "secret/ns-app", "--field", "v"]),
    );
    assert_eq!(v, "in-team");
    // --namespace too; without one the secret is not in the root namespace
    let v = run_ok(opskit(&fx, home.path()).args([
        "vault",
        "kv",
        "get",
        "secret/ns-app",
        "--field",
        "v",
        "--namespace",
        "team",
    ]));
    assert_eq!(v, "in-team");
    let (code, _, err) =
        run(opskit(&fx, home.path()).args(["vault", "kv", "get", "secret/ns-app"]));
    assert_eq!(code, 8, "{err}");
    fx.assert_clean();
}

#[test]
fn vault_403_and_missing_token_errors() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    // a token whose policy does not allow the path: exit 7, Vault's text cleaned
    let (code, _, err) = run(opskit(&fx, home.path()).env("VAULT_TOKEN", LIMITED).args([
        "vault",
        "kv",
        "get",
        "secret/other",
    ]));
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("error: Vault refused (HTTP 403): read secret/data/other: permission denied"),
        "{err}"
    );
    assert!(
        !err.contains("occurred"),
        "the multierror wrapping is cleaned: {err}"
    );
    assert!(!err.contains(LIMITED), "{err}");
    // a path under no mount: Vault's preflight 403
    let (code, _, err) = run(opskit(&fx, home.path()).args(["vault", "kv", "get", "nomount/x"]));
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("preflight capability check returned 403"),
        "{err}"
    );
    // no token at all: a usage error before any request
    let (code, _, err) = run(opskit(&fx, home.path()).env_remove("VAULT_TOKEN").args([
        "vault",
        "kv",
        "get",
        "secret/github",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no Vault token") && err.contains("VAULT_TOKEN"),
        "{err}"
    );
    // ~/.vault-token (what `vault login` writes) is used when VAULT_TOKEN is unset
    std::fs::write(home.path().join(".vault-token"), format!("{ROOT}\n")).unwrap();
    let v = run_ok(opskit(&fx, home.path()).env_remove("VAULT_TOKEN").args([
        "vault",
        "kv",
        "get",
        "secret/github",
        "--field",
        "user",
    ]));
    assert_eq!(v, "deploy-bot");
    // the fixture refuses what Vault refuses: no token → 403, a v2 write without {"data": …} → 400
    let (code, out, _) = run(opskit(&fx, home.path()).args([
        "get",
        &format!("{}/v1/secret/data/github", fx.url),
        "--check-status",
    ]));
    assert_eq!(code, 4);
    assert!(out.contains("permission denied"), "{out}");
    let (code, out, _) = run(opskit(&fx, home.path()).args([
        "put",
        &format!("{}/v1/secret/data/raw", fx.url),
        &format!("X-Vault-Token:{ROOT}"),
        "password=x",
        "--check-status",
    ]));
    assert_eq!(code, 4);
    assert!(out.contains("no data provided"), "{out}");
    fx.state.lock().unwrap().violations.clear();
}

#[test]
fn vault_reference_as_bearer_is_sent_and_never_shown() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    for reference in [
        "vault:secret/data/github#token",
        "vault:secret/github#token",
    ] {
        let before = fx.reads("secret/data/github");
        let (code, out, err) = run(opskit(&fx, home.path()).args([
            "http",
            "GET",
            &format!("{}/protected", fx.url),
            "--bearer",
            reference,
            "-v",
            "--check-status",
        ]));
        assert_eq!(code, 0, "{reference}: {err}");
        assert!(out.contains("deploy-bot"), "{out}");
        assert!(
            !out.contains(API_TOKEN) && !err.contains(API_TOKEN),
            "the token is shown:\n{out}\n{err}"
        );
        assert!(
            !out.contains(ROOT) && !err.contains(ROOT),
            "the Vault token is shown:\n{out}\n{err}"
        );
        assert!(
            out.to_lowercase().contains("authorization: <redacted>")
                || err.to_lowercase().contains("authorization: <redacted>"),
            "-v shows the header redacted:\n{out}\n{err}"
        );
        assert_eq!(
            fx.reads("secret/data/github") - before,
            1,
            "{reference}: fetched once"
        );
    }
    fx.assert_clean();
}

#[test]
fn vault_reference_in_a_profile() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.api]\nbase_url = \"{}\"\n[profiles.api.auth]\ntype = \"bearer\"\ntoken = \"vault:secret/github#token\"\n",
            fx.url
        ),
    )
    .unwrap();
    let out = run_ok(opskit(&fx, home.path()).env("OPSKIT_CONFIG", &cfg).args([
        "get",
        "/protected",
        "--profile",
        "api",
        "--check-status",
    ]));
    assert!(out.contains("deploy-bot"), "{out}");
    assert_eq!(fx.reads("secret/data/github"), 1);
    fx.assert_clean();
}

#[test]
fn vault_reference_errors_are_clear() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let target = format!("{}/protected", fx.url);
    let hits = || fx.state.lock().unwrap().protected_hits;
    // a field the secret does not have: named, with the fields it has (never their values)
    let (code, _, err) = run(opskit(&fx, home.path()).args([
        "http",
        "GET",
        &target,
        "--bearer",
        "vault:secret/github#tokn",
    ]));
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "vault:secret/github#tokn: the secret has no field `tokn` (its fields: token, user)"
        ),
        "{err}"
    );
    assert!(!err.contains(API_TOKEN), "{err}");
    // 403: the Vault token may not read the path
    let (code, _, err) = run(opskit(&fx, home.path()).env("VAULT_TOKEN", LIMITED).args([
        "http",
        "GET",
        &target,
        "--bearer",
        "vault:secret/other#password",
    ]));
    assert_ne!(code, 0);
    assert!(
        err.contains("vault:secret/other#password") && err.contains("permission denied"),
        "{err}"
    );
    // no VAULT_ADDR
    let (code, _, err) = run(opskit(&fx, home.path()).env_remove("VAULT_ADDR").args([
        "http",
        "GET",
        &target,
        "--bearer",
        "vault:secret/github#token",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("VAULT_ADDR is not set"), "{err}");
    // Vault unreachable
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, _, err) = run(opskit(&fx, home.path()).env("VAULT_ADDR", &dead).args([
        "http",
        "GET",
        &target,
        "--bearer",
        "vault:secret/github#token",
        "--retries",
        "0",
    ]));
    assert_ne!(code, 0);
    assert!(
        err.contains("vault:secret/github#token: cannot reach Vault"),
        "{err}"
    );
    // a malformed reference: a usage error before anything is sent
    let (code, _, err) = run(opskit(&fx, home.path()).args([
        "http",
        "GET",
        &target,
        "--bearer",
        "vault:secret/github",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("vault:MOUNT/PATH#FIELD"), "{err}");
    // the protected API never saw a request without the right token
    assert_eq!(hits(), 0);
    // the same reference through a command's --token (secret_arg): a usage error naming it
    let (code, _, err) = run(opskit(&fx, home.path())
        .env("GITHUB_API_URL", &fx.url)
        .args([
            "github",
            "api",
            "rate_limit",
            "--token",
            "vault:secret/github#nope",
            "--no-cache",
        ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no field `nope`"), "{err}");
    fx.assert_clean();
}

#[test]
fn vault_reference_in_monitor_checks_is_fetched_once() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("monitor.toml");
    let mut text = String::new();
    for name in ["api-one", "api-two", "api-three"] {
        text.push_str(&format!(
            "[[monitor]]\nname = \"{name}\"\nkind = \"http\"\ntarget = \"{}/protected\"\nbearer = \"vault:secret/github#token\"\nconditions = [\".status == 200\"]\n\n",
            fx.url
        ));
    }
    std::fs::write(&file, text).unwrap();
    let out = run_ok(opskit(&fx, home.path()).args([
        "monitor",
        "check",
        "-c",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]));
    assert!(!out.contains(API_TOKEN), "{out}");
    assert_eq!(fx.state.lock().unwrap().protected_hits, 3);
    assert_eq!(
        fx.reads("secret/data/github"),
        1,
        "three monitors, one path: fetched once per run"
    );
    fx.assert_clean();
}

#[test]
fn vault_kv_takes_address_and_token_from_a_profile() {
    let fx = Fixture::start();
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.vault]\nbase_url = \"{}\"\n[profiles.vault.auth]\ntype = \"bearer\"\ntoken = \"env:MY_VAULT_TOKEN\"\n",
            fx.url
        ),
    )
    .unwrap();
    let table = run_ok(
        opskit(&fx, home.path())
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env("MY_VAULT_TOKEN", ROOT)
            .env("OPSKIT_CONFIG", &cfg)
            .args([
                "vault",
                "kv",
                "get",
                "secret/github",
                "--profile",
                "vault",
                "--output",
                "table",
            ]),
    );
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("key") && l.contains("value")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("user") && l.contains("deploy-bot")),
        "{table}"
    );
    // no profile, no VAULT_ADDR: a usage error that says what to set
    let (code, _, err) = run(opskit(&fx, home.path()).env_remove("VAULT_ADDR").args([
        "vault",
        "kv",
        "get",
        "secret/github",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("VAULT_ADDR"), "{err}");
    fx.assert_clean();
}
