//! `opskit jira issue …` against a stand-in for Jira on 127.0.0.1:0 that follows Jira's published
//! reference (Cloud REST API v3: Basic email:api_token, ADF in description and comment bodies,
//! `/search/jql` paged with `nextPageToken`/`isLast` and only `id` unless `fields` is given, 400
//! for unbounded JQL, transitions by id with 204, the `{"errorMessages":[],"errors":{}}` error
//! body; Data Center REST API v2: Bearer personal access token, plain-string rich text, `/search`
//! paged with `startAt`/`total`) and records every request the real API would reject: each test
//! fails on any such request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

const EMAIL: &str = "ops@example.com";
const TOKEN: &str = "ATATT3xFfGF0opskitTestToken";
const PAT: &str = "NjE4OTc2ODQ2NzM5Oopskit-pat";
/// Issues per search page at most, whatever maxResults asks (Jira may return fewer).
const SERVER_PAGE: usize = 50;

#[derive(Default)]
struct State {
    base: String,
    data_center: bool,
    /// Oldest first.
    issues: Vec<Value>,
    /// (issue key, comment as stored).
    comments: Vec<(String, Value)>,
    requests: u64,
    creates: u64,
    transition_posts: u64,
    violations: Vec<String>,
    /// The next create makes the issue but answers 502 (a lost answer).
    lose_next_create: bool,
    /// The next this many requests are answered 429 with Retry-After: 1 [J-RL].
    throttle: u32,
}

struct Fixture {
    url: String,
    state: Arc<Mutex<State>>,
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Fixture {
    /// `seed` issues OPS-1..OPS-seed (created long ago), Cloud or Data Center.
    fn start(data_center: bool, seed: u64) -> Fixture {
        let state = Arc::new(Mutex::new(State {
            data_center,
            ..State::default()
        }));
        {
            let mut s = state.lock().unwrap();
            for n in 1..=seed {
                let issue = new_issue(
                    &s,
                    n,
                    &format!("Seeded issue {n}"),
                    "Task",
                    json!(["seed"]),
                    1_700_000_000 + n,
                );
                s.issues.push(issue);
            }
        }
        let st = state.clone();
        let addr = crate::support::api_stand_in(move |method, uri, headers, body| {
            handle(&st, method, uri, headers, body)
        });
        let url = format!("http://{addr}");
        state.lock().unwrap().base = url.clone();
        Fixture { url, state }
    }

    fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }

    fn issue(&self, key: &str) -> Value {
        let s = self.state.lock().unwrap();
        s.issues.iter().find(|i| i["key"] == key).unwrap().clone()
    }

    fn assert_clean(&self) {
        let s = self.state.lock().unwrap();
        assert!(
            s.violations.is_empty(),
            "requests Jira would reject: {:#?}",
            s.violations
        );
    }
}

fn iso(epoch: u64) -> String {
    // days → civil date (Howard Hinnant's algorithm), as Jira writes it: 2026-11-30T10:00:00.000+0000
    let (d, s) = ((epoch / 86_400) as i64, epoch % 86_400);
    let z = d + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000+0000",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn new_issue(s: &State, n: u64, summary: &str, kind: &str, labels: Value, created: u64) -> Value {
    json!({
        "id": (10_000 + n).to_string(),
        "key": format!("OPS-{n}"),
        "self": format!("{}/rest/api/{}/issue/{}", s.base, if s.data_center { 2 } else { 3 }, 10_000 + n),
        "created_epoch": created,
        "fields": {
            "summary": summary,
            "project": {"key": "OPS", "id": "10000", "name": "Operations"},
            "issuetype": {"name": kind, "id": "10001"},
            "status": {"name": "To Do", "id": "1", "statusCategory": {"key": "new", "name": "To Do"}},
            "priority": {"name": "Medium", "id": "3"},
            "assignee": null,
            "reporter": {"displayName": "Ops Bot", "accountId": "5b10ac8d82e05b22cc7d4ef5"},
            "labels": labels,
            "created": iso(created),
            "updated": iso(created),
            "description": null,
        }
    })
}

fn error(status: StatusCode, messages: &[&str], errors: Value) -> Response {
    json_answer(status, json!({"errorMessages": messages, "errors": errors}))
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

/// Whether `v` is an ADF document as Jira Cloud takes it [J-ADF].
fn is_adf(v: &Value) -> bool {
    fn node_ok(n: &Value) -> bool {
        match n.get("type").and_then(Value::as_str) {
            Some("text") => n
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty()),
            Some("hardBreak") => true,
            Some("paragraph") => n
                .get("content")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().all(node_ok)),
            _ => false,
        }
    }
    v.get("type") == Some(&json!("doc"))
        && v.get("version") == Some(&json!(1))
        && v.get("content")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().all(node_ok))
}

fn handle(
    st: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap();
    s.requests += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let good = if s.data_center {
        auth == format!("Bearer {PAT}")
    } else {
        auth == format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"))
        )
    };
    if !good {
        return error(
            StatusCode::UNAUTHORIZED,
            &["You are not authenticated. Authentication required to perform this operation."],
            json!({}),
        );
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            &["Rate limit exceeded."],
            json!({}),
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        r.headers_mut().insert(
            "ratelimit-reason",
            HeaderValue::from_static("jira-burst-based"),
        );
        return r;
    }
    let prefix = if s.data_center {
        "/rest/api/2/"
    } else {
        "/rest/api/3/"
    };
    let Some(path) = uri.path().strip_prefix(prefix) else {
        s.violations
            .push(format!("{method} {uri}: not under {prefix}"));
        return error(StatusCode::NOT_FOUND, &["Not Found"], json!({}));
    };
    let q: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if method == Method::POST {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/json") {
            s.violations.push(format!("POST with Content-Type {ct:?}"));
        }
    }
    let segs: Vec<&str> = path.split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["issue"]) => create(&mut s, &body),
        ("GET", ["issue", key]) => match find(&s, key) {
            Some(i) => {
                let fields = q
                    .iter()
                    .find(|(k, _)| k == "fields")
                    .map(|(_, v)| v.clone());
                json_answer(StatusCode::OK, shown(&i, fields.as_deref(), true))
            }
            None => missing(),
        },
        ("GET", ["search", "jql"]) if !s.data_center => search(&mut s, &q, true),
        ("GET", ["search"]) if s.data_center => search(&mut s, &q, false),
        ("POST", ["issue", key, "comment"]) => comment(&mut s, key, &body),
        ("GET", ["issue", key, "transitions"]) => match find(&s, key) {
            Some(i) => json_answer(StatusCode::OK, json!({"transitions": transitions_of(&i)})),
            None => missing(),
        },
        ("POST", ["issue", key, "transitions"]) => transition(&mut s, key, &body),
        _ => {
            s.violations
                .push(format!("{method} {uri}: no such endpoint"));
            error(StatusCode::NOT_FOUND, &["Not Found"], json!({}))
        }
    }
}

fn find(s: &State, key: &str) -> Option<Value> {
    s.issues
        .iter()
        .find(|i| i["key"] == key || i["id"] == key)
        .cloned()
}

fn missing() -> Response {
    error(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        json!({}),
    )
}

/// The issue as Jira shows it: `fields` only those asked for (all, or none on a search without
/// `fields` [J-OAS]).
fn shown(i: &Value, fields: Option<&str>, all_by_default: bool) -> Value {
    let mut out = json!({"id": i["id"], "key": i["key"], "self": i["self"]});
    let wanted: Option<Vec<&str>> = fields.map(|f| f.split(',').collect());
    let f = i["fields"].as_object().unwrap();
    let picked: serde_json::Map<String, Value> = f
        .iter()
        .filter(|(k, _)| match &wanted {
            Some(w) => w.contains(&k.as_str()) || w.contains(&"*all"),
            None => all_by_default,
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !picked.is_empty() || all_by_default {
        out["fields"] = Value::Object(picked);
    }
    out
}

fn create(s: &mut State, body: &Bytes) -> Response {
    s.creates += 1;
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        s.violations.push("create body is not JSON".into());
        return error(
            StatusCode::BAD_REQUEST,
            &["Unexpected character"],
            json!({}),
        );
    };
    let f = &req["fields"];
    let mut errors = serde_json::Map::new();
    if f["project"]["key"] != "OPS" && f["project"]["id"] != "10000" {
        errors.insert("project".into(), json!("valid project is required"));
    }
    let summary = f["summary"].as_str().unwrap_or("");
    if summary.trim().is_empty() {
        errors.insert(
            "summary".into(),
            json!("You must specify a summary of the issue."),
        );
    }
    let kind = f["issuetype"]["name"].as_str().unwrap_or("");
    if !["Task", "Bug", "Incident"].contains(&kind) {
        errors.insert("issuetype".into(), json!("Specify a valid issue type"));
    }
    if let Some(d) = f.get("description") {
        if s.data_center && !d.is_string() {
            s.violations
                .push(format!("Data Center description not a string: {d}"));
            errors.insert(
                "description".into(),
                json!("Operation value must be a string"),
            );
        }
        if !s.data_center && !is_adf(d) {
            s.violations.push(format!("description not ADF: {d}"));
            errors.insert(
                "description".into(),
                json!("Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
            );
        }
    }
    if let Some(l) = f.get("labels")
        && !l.as_array().is_some_and(|a| {
            a.iter()
                .all(|x| x.as_str().is_some_and(|t| !t.contains(' ')))
        })
    {
        s.violations.push(format!("labels {l}"));
    }
    for k in f
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if ![
            "project",
            "summary",
            "issuetype",
            "description",
            "priority",
            "labels",
        ]
        .contains(&k.as_str())
        {
            s.violations.push(format!("unexpected field {k} in create"));
        }
    }
    if !errors.is_empty() {
        return error(StatusCode::BAD_REQUEST, &[], Value::Object(errors));
    }
    let n = s.issues.len() as u64 + 1;
    let mut issue = new_issue(
        s,
        n,
        summary,
        kind,
        f.get("labels").cloned().unwrap_or(json!([])),
        now_epoch(),
    );
    issue["fields"]["description"] = f.get("description").cloned().unwrap_or(Value::Null);
    if let Some(p) = f["priority"]["name"].as_str() {
        issue["fields"]["priority"] = json!({"name": p});
    }
    s.issues.push(issue.clone());
    if std::mem::take(&mut s.lose_next_create) {
        return (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response();
    }
    json_answer(
        StatusCode::CREATED,
        json!({"id": issue["id"], "key": issue["key"], "self": issue["self"]}),
    )
}

/// A tiny JQL: clauses joined by AND, then an optional ORDER BY (created DESC or ASC).
fn matches_jql(s: &State, jql: &str) -> Result<(Vec<Value>, bool), String> {
    let lower = jql.to_ascii_lowercase();
    let (where_part, order) = match lower.find("order by") {
        Some(p) => (&jql[..p], lower[p + 8..].trim().to_owned()),
        None => (jql, String::new()),
    };
    if where_part.trim().is_empty() {
        return Err("unbounded".into());
    }
    let mut out: Vec<Value> = s.issues.clone();
    for clause in where_part.split(" AND ") {
        let clause = clause.trim();
        let unq = |v: &str| v.trim().trim_matches('"').replace("\\\"", "\"");
        if let Some(v) = clause.strip_prefix("project = ") {
            let v = unq(v);
            out.retain(|i| i["fields"]["project"]["key"] == v.as_str());
        } else if let Some(v) = clause.strip_prefix("summary ~ ") {
            let words: Vec<String> = unq(v)
                .to_lowercase()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            out.retain(|i| {
                let sum = i["fields"]["summary"].as_str().unwrap().to_lowercase();
                words.iter().all(|w| sum.contains(w.as_str()))
            });
        } else if let Some(v) = clause.strip_prefix("created >= ") {
            let v = unq(v);
            let mins: u64 = v
                .strip_prefix('-')
                .and_then(|m| m.strip_suffix('m'))
                .and_then(|m| m.parse().ok())
                .ok_or(format!("bad date {v}"))?;
            let since = now_epoch() - mins * 60;
            out.retain(|i| i["created_epoch"].as_u64().unwrap() >= since);
        } else if let Some(v) = clause.strip_prefix("labels = ") {
            let v = unq(v);
            out.retain(|i| {
                i["fields"]["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l == v.as_str())
            });
        } else if let Some(v) = clause.strip_prefix("status = ") {
            let v = unq(v);
            out.retain(|i| i["fields"]["status"]["name"] == v.as_str());
        } else {
            return Err(format!(
                "Error in the JQL Query: Expecting operator but got '{}'. (line 1, character 1)",
                clause.split_whitespace().nth(1).unwrap_or(clause)
            ));
        }
    }
    match order.as_str() {
        "" | "created asc" => {}
        "created desc" => out.reverse(),
        other => return Err(format!("Error in the JQL Query: cannot order by {other}")),
    }
    Ok((out, true))
}

fn search(s: &mut State, q: &[(String, String)], cloud: bool) -> Response {
    let allowed: &[&str] = if cloud {
        &[
            "jql",
            "nextPageToken",
            "maxResults",
            "fields",
            "expand",
            "properties",
            "fieldsByKeys",
            "failFast",
            "reconcileIssues",
        ]
    } else {
        &[
            "jql",
            "startAt",
            "maxResults",
            "fields",
            "expand",
            "validateQuery",
        ]
    };
    for (k, _) in q {
        if !allowed.contains(&k.as_str()) {
            s.violations.push(format!("unknown search parameter {k}"));
        }
    }
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let jql = get("jql").unwrap_or_default();
    let (all, _) = match matches_jql(s, &jql) {
        Ok(r) => r,
        Err(e) if e == "unbounded" => {
            s.violations.push(format!("unbounded JQL {jql:?}"));
            return error(
                StatusCode::BAD_REQUEST,
                &[
                    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
                ],
                json!({}),
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, &[&e], json!({})),
    };
    let max: usize = get("maxResults").and_then(|m| m.parse().ok()).unwrap_or(50);
    let size = max.clamp(1, SERVER_PAGE);
    let start: usize = if cloud {
        match get("nextPageToken") {
            None => 0,
            Some(t) => match t.strip_prefix("tok-").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => {
                    s.violations
                        .push(format!("nextPageToken {t:?} was never given"));
                    return error(
                        StatusCode::BAD_REQUEST,
                        &["Invalid nextPageToken"],
                        json!({}),
                    );
                }
            },
        }
    } else {
        get("startAt").and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let fields = get("fields");
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(size)
        .map(|i| shown(i, fields.as_deref(), !cloud))
        .collect();
    let end = start + page.len();
    if cloud {
        let mut body = json!({"issues": page, "isLast": end >= all.len()});
        if end < all.len() {
            body["nextPageToken"] = json!(format!("tok-{end}"));
        }
        json_answer(StatusCode::OK, body)
    } else {
        json_answer(
            StatusCode::OK,
            json!({"startAt": start, "maxResults": size, "total": all.len(), "issues": page}),
        )
    }
}

fn comment(s: &mut State, key: &str, body: &Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        s.violations.push("comment body is not JSON".into());
        return error(
            StatusCode::BAD_REQUEST,
            &["Unexpected character"],
            json!({}),
        );
    };
    let b = &req["body"];
    let ok = if s.data_center {
        b.is_string()
    } else {
        is_adf(b)
    };
    if !ok {
        s.violations.push(format!("comment body {b}"));
        return error(
            StatusCode::BAD_REQUEST,
            &[],
            json!({"comment": "Comment body can not be empty!"}),
        );
    }
    let Some(issue) = find(s, key) else {
        return missing();
    };
    let id = (10_000 + s.comments.len()).to_string();
    let c = json!({
        "id": id,
        "self": format!("{}/rest/api/3/issue/{}/comment/{id}", s.base, issue["id"].as_str().unwrap()),
        "author": {"displayName": "Ops Bot", "accountId": "5b10ac8d82e05b22cc7d4ef5"},
        "body": b,
        "created": iso(now_epoch()),
        "updated": iso(now_epoch()),
    });
    s.comments.push((key.to_owned(), c.clone()));
    json_answer(StatusCode::CREATED, c)
}

fn transitions_of(i: &Value) -> Value {
    let status = i["fields"]["status"]["name"].as_str().unwrap();
    let all = [
        ("11", "Start Progress", "In Progress", "3"),
        ("21", "Stop Progress", "To Do", "1"),
        ("31", "Close", "Done", "10001"),
    ];
    Value::Array(
        all.iter()
            .filter(|(_, _, to, _)| *to != status)
            .map(|(id, name, to, sid)| {
                json!({"id": id, "name": name, "to": {"id": sid, "name": to}, "hasScreen": false, "isGlobal": true, "isInitial": false, "isAvailable": true, "isConditional": false})
            })
            .collect(),
    )
}

fn transition(s: &mut State, key: &str, body: &Bytes) -> Response {
    s.transition_posts += 1;
    let Some(issue) = find(s, key) else {
        return missing();
    };
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let id = req["transition"]["id"].as_str().unwrap_or("");
    let Some(t) = transitions_of(&issue)
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
    else {
        s.violations
            .push(format!("transition id {id:?} not available"));
        return error(
            StatusCode::BAD_REQUEST,
            &["Transition id 'x' is not valid for this issue."],
            json!({}),
        );
    };
    let i = s.issues.iter_mut().find(|i| i["key"] == key).unwrap();
    let cat = if t["to"]["name"] == "Done" {
        "done"
    } else {
        "indeterminate"
    };
    i["fields"]["status"] =
        json!({"name": t["to"]["name"], "id": t["to"]["id"], "statusCategory": {"key": cat}});
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------- tests

fn opskit(fx: &Fixture) -> Command {
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("JIRA_URL", &fx.url)
        .env("JIRA_EMAIL", EMAIL)
        .env("JIRA_API_TOKEN", TOKEN)
        .env_remove("JIRA_AUTH_TYPE")
        .env_remove("JIRA_API_VERSION")
        .env("OPSKIT_CONFIG", "/nonexistent/opskit-test-config.toml")
        .timeout(Duration::from_secs(60));
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_rows(c: &mut Command) -> Vec<Value> {
    serde_json::from_str(&run_ok(c.args(["--output", "json"]))).unwrap()
}

#[test]
fn jira_issue_create_with_adf_then_get() {
    let fx = Fixture::start(false, 2);
    // the seeds' create_jira_ticket
    let rows = json_rows(opskit(&fx).args([
        "jira",
        "issue",
        "create",
        "--project",
        "OPS",
        "--type",
        "Incident",
        "--summary",
        "[ALERT] db-prod-02 - high CPU",
        "--description",
        "Host: db-prod-02\nCPU above 95% for 10 minutes\n\nSee the dashboard.",
        "--priority",
        "High",
        "--label",
        "auto-created",
        "--label",
        "monitoring-alert",
    ]));
    assert_eq!(rows[0]["key"], "OPS-3");
    assert_eq!(rows[0]["id"], "10003");
    assert_eq!(rows[0]["url"], format!("{}/browse/OPS-3", fx.url));
    let stored = fx.issue("OPS-3");
    assert_eq!(
        stored["fields"]["description"],
        opskit_notify::adf::from_plain_text(
            "Host: db-prod-02\nCPU above 95% for 10 minutes\n\nSee the dashboard."
        )
    );
    assert_eq!(
        stored["fields"]["labels"],
        json!(["auto-created", "monitoring-alert"])
    );
    assert_eq!(stored["fields"]["priority"]["name"], "High");

    let rows = json_rows(opskit(&fx).args(["jira", "issue", "get", "OPS-3"]));
    let r = &rows[0];
    assert_eq!(r["summary"], "[ALERT] db-prod-02 - high CPU");
    assert_eq!(r["type"], "Incident");
    assert_eq!(r["status"], "To Do");
    assert_eq!(r["labels"], "auto-created,monitoring-alert");
    assert_eq!(r["reporter"], "Ops Bot");
    assert_eq!(
        r["description"],
        "Host: db-prod-02\nCPU above 95% for 10 minutes\n\nSee the dashboard."
    );
    // a bad label never leaves
    let before = fx.requests();
    let out = opskit(&fx)
        .args([
            "jira",
            "issue",
            "create",
            "--project",
            "OPS",
            "--type",
            "Task",
            "--summary",
            "x",
            "--label",
            "two words",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fx.requests(), before);
    fx.assert_clean();
}

#[test]
fn jira_create_after_a_lost_answer_creates_exactly_one() {
    let fx = Fixture::start(false, 3);
    fx.state.lock().unwrap().lose_next_create = true;
    let out = opskit(&fx)
        .args([
            "jira",
            "issue",
            "create",
            "--project",
            "OPS",
            "--type",
            "Task",
            "--summary",
            "disk full on web01",
            "--label",
            "ops",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["key"], "OPS-4");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("found by a search, not created twice"),
        "{err}"
    );
    let s = fx.state.lock().unwrap();
    assert_eq!(s.creates, 1, "found, not sent again");
    assert_eq!(
        s.issues
            .iter()
            .filter(|i| i["fields"]["summary"] == "disk full on web01")
            .count(),
        1
    );
    drop(s);
    fx.assert_clean();
}

#[test]
fn jira_search_follows_every_page_token() {
    let fx = Fixture::start(false, 120);
    let csv = run_ok(opskit(&fx).args([
        "jira",
        "issue",
        "search",
        "project = OPS ORDER BY created DESC",
        "--output",
        "csv",
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "key,type,status,priority,assignee,summary,labels,created,updated"
    );
    let keys: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let want: Vec<String> = (1..=120).rev().map(|n| format!("OPS-{n}")).collect();
    assert_eq!(keys, want);
    assert_eq!(
        lines[1],
        "OPS-120,Task,To Do,Medium,,Seeded issue 120,seed,2023-11-14T22:15:20.000+0000,2023-11-14T22:15:20.000+0000"
    );
    assert_eq!(fx.requests(), 3, "120 issues at 50 a page: three pages");
    // --limit stops early
    let rows =
        json_rows(opskit(&fx).args(["jira", "issue", "search", "project = OPS", "--limit", "70"]));
    assert_eq!(rows.len(), 70);
    assert_eq!(rows[69]["key"], "OPS-70");
    // an empty JQL never leaves; a bad one is Jira's message, exit 2
    let before = fx.requests();
    let out = opskit(&fx)
        .args(["jira", "issue", "search", " "])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fx.requests(), before);
    let out = opskit(&fx)
        .args(["jira", "issue", "search", "project == OPS"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Jira Bad Request (HTTP 400): Error in the JQL Query"),
        "{err}"
    );
    fx.assert_clean();
}

#[test]
fn jira_comment_and_transition_by_name() {
    let fx = Fixture::start(false, 1);
    let rows = json_rows(opskit(&fx).args([
        "jira",
        "issue",
        "comment",
        "OPS-1",
        "--body",
        "Restarted nginx.\n\nWatching it.",
    ]));
    assert_eq!(rows[0]["author"], "Ops Bot");
    assert!(
        rows[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/browse/OPS-1?focusedCommentId=10000")
    );
    {
        let s = fx.state.lock().unwrap();
        assert_eq!(s.comments.len(), 1);
        assert_eq!(
            s.comments[0].1["body"],
            opskit_notify::adf::from_plain_text("Restarted nginx.\n\nWatching it.")
        );
    }
    // by the status it leads to ("Done") or by its own name, any case
    let rows =
        json_rows(opskit(&fx).args(["jira", "issue", "transition", "OPS-1", "--to", "done"]));
    assert_eq!(rows[0]["transition"], "Close");
    assert_eq!(rows[0]["status"], "Done");
    assert_eq!(fx.issue("OPS-1")["fields"]["status"]["name"], "Done");
    run_ok(opskit(&fx).args([
        "jira",
        "issue",
        "transition",
        "OPS-1",
        "--to",
        "Start Progress",
    ]));
    assert_eq!(fx.issue("OPS-1")["fields"]["status"]["name"], "In Progress");
    // an unknown name: the list of what there is, and no transition sent
    let posts = fx.state.lock().unwrap().transition_posts;
    let out = opskit(&fx)
        .args(["jira", "issue", "transition", "OPS-1", "--to", "Resolved"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OPS-1: no transition named \"Resolved\"; available: \"Stop Progress\" (→ To Do), \"Close\" (→ Done)"),
        "{err}"
    );
    assert_eq!(fx.state.lock().unwrap().transition_posts, posts);
    fx.assert_clean();
}

#[test]
fn jira_errors_are_shown_from_the_error_collection() {
    let fx = Fixture::start(false, 1);
    let out = opskit(&fx)
        .args(["jira", "issue", "get", "OPS-999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Jira Not Found (HTTP 404): Issue does not exist or you do not have permission to see it."),
        "{err}"
    );
    // field errors: {"errorMessages":[],"errors":{"issuetype":…}}
    let out = opskit(&fx)
        .args([
            "jira",
            "issue",
            "create",
            "--project",
            "OPS",
            "--type",
            "Story",
            "--summary",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(HTTP 400): issuetype: Specify a valid issue type"),
        "{err}"
    );
    // a wrong token: 401, a hint, the token never shown
    let out = opskit(&fx)
        .env("JIRA_API_TOKEN", "wrong-token")
        .args(["jira", "issue", "get", "OPS-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("You are not authenticated") && err.contains("check the token"),
        "{err}"
    );
    assert!(!err.contains("wrong-token"));
    // no token, no email: usage errors before any request
    let before = fx.requests();
    let out = opskit(&fx)
        .env_remove("JIRA_API_TOKEN")
        .args(["jira", "issue", "get", "OPS-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Jira API token"));
    let out = opskit(&fx)
        .env_remove("JIRA_EMAIL")
        .args(["jira", "issue", "get", "OPS-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JIRA_EMAIL"));
    assert_eq!(fx.requests(), before);
    fx.assert_clean();
}

#[test]
fn jira_data_center_with_a_personal_access_token() {
    let fx = Fixture::start(true, 60);
    let rows = json_rows(
        opskit(&fx)
            .env("JIRA_API_TOKEN", PAT)
            .env_remove("JIRA_EMAIL")
            .args([
                "jira",
                "issue",
                "create",
                "--auth-type",
                "bearer",
                "--project",
                "OPS",
                "--type",
                "Bug",
                "--summary",
                "login page 500",
                "--description",
                "since 10:00",
            ]),
    );
    assert_eq!(rows[0]["key"], "OPS-61");
    // REST API v2: the description is a plain string there
    assert_eq!(fx.issue("OPS-61")["fields"]["description"], "since 10:00");
    // search pages with startAt/total
    let rows = json_rows(
        opskit(&fx)
            .env("JIRA_API_TOKEN", PAT)
            .env("JIRA_AUTH_TYPE", "bearer")
            .args(["jira", "issue", "search", "project = OPS"]),
    );
    assert_eq!(rows.len(), 61);
    assert_eq!(rows[60]["summary"], "login page 500");
    run_ok(
        opskit(&fx)
            .env("JIRA_API_TOKEN", PAT)
            .env("JIRA_AUTH_TYPE", "bearer")
            .args(["jira", "issue", "comment", "OPS-61", "--body", "fixed"]),
    );
    assert_eq!(fx.state.lock().unwrap().comments[0].1["body"], "fixed");
    fx.assert_clean();
}

#[test]
fn jira_429_is_waited_out_and_a_create_is_sent_once() {
    let fx = Fixture::start(false, 1);
    // Jira did not act on a 429: the create is sent again after Retry-After, once
    fx.state.lock().unwrap().throttle = 1;
    let rows = json_rows(opskit(&fx).args([
        "jira",
        "issue",
        "create",
        "--project",
        "OPS",
        "--type",
        "Task",
        "--summary",
        "after a 429",
    ]));
    assert_eq!(rows[0]["key"], "OPS-2");
    {
        let s = fx.state.lock().unwrap();
        assert_eq!(s.creates, 1);
        assert_eq!(s.issues.len(), 2);
    }
    // a read too
    fx.state.lock().unwrap().throttle = 1;
    let rows = json_rows(opskit(&fx).args(["jira", "issue", "get", "OPS-2"]));
    assert_eq!(rows[0]["summary"], "after a 429");
    fx.assert_clean();
}
