//! `opskit github` against a stand-in for the GitHub REST API on 127.0.0.1:0 that follows
//! GitHub's published reference (docs.github.com/rest: Link paging with per_page kept, pull
//! requests mixed into /issues with a `pull_request` key, x-ratelimit-* headers on every answer,
//! 304 on If-None-Match not counted against the quota, error documents) and records every request
//! the real API would reject: each test fails on any such request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_opskitTestToken000000000000000000000";
const REPO_ID: u64 = 1_296_269;
const QUOTA: u64 = 5000;

#[derive(Default)]
struct State {
    base: String,
    /// Newest first: what GET /issues returns by default (sort=created, direction=desc).
    issues: Vec<Value>,
    /// Requests that counted against the quota (every answer but a 304).
    used: u64,
    /// 304 answers (free).
    not_modified: u64,
    /// Requests the real API would reject.
    violations: Vec<String>,
    /// The next POST creates the issue but answers 502 (a lost answer).
    lose_next_create_answer: bool,
    posts: u64,
    /// The next counted answer says the quota is used up until this many seconds from now.
    exhaust_for: Option<u64>,
    /// Until when (Unix seconds) the quota is used up: a request before then is refused.
    exhausted_until: Option<u64>,
}

struct Fixture {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Fixture {
    /// `issues` items, numbered `issues` down to 1 (newest first), every fifth a pull request.
    fn start(issues: u64) -> Fixture {
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut s = state.lock().unwrap();
            s.issues = (1..=issues)
                .rev()
                .map(|n| item(n, n.is_multiple_of(5)))
                .collect();
        }
        let st = state.clone();
        let addr = crate::support::api_stand_in(move |method, uri, headers, body| {
            handle(&st, method, uri, headers, body)
        });
        let url = format!("http://{addr}");
        state.lock().unwrap().base = url.clone();
        Fixture { url, state }
    }

    fn used(&self) -> u64 {
        self.state.lock().unwrap().used
    }

    /// Fails the test if any request was one the real API rejects.
    fn assert_clean(&self) {
        let s = self.state.lock().unwrap();
        assert!(
            s.violations.is_empty(),
            "requests GitHub would reject: {:#?}",
            s.violations
        );
    }
}

fn item(n: u64, pr: bool) -> Value {
    let t = |h: u64| {
        format!(
            "2026-{:02}-{:02}T{:02}:00:00Z",
            1 + n % 12,
            1 + n % 28,
            h % 24
        )
    };
    let mut v = json!({
        "id": 1_000_000 + n,
        "node_id": format!("I_kw{n}"),
        "number": n,
        "title": format!("Issue {n}, with a comma"),
        "body": format!("body of {n}"),
        "state": "open",
        "state_reason": null,
        "locked": false,
        "labels": if n.is_multiple_of(3) { json!([{"id": 1, "name": "bug", "color": "d73a4a"}]) } else { json!([]) },
        "assignee": null,
        "assignees": [],
        "user": {"login": format!("user{}", n % 7), "id": n % 7},
        "milestone": null,
        "comments": n % 4,
        "created_at": t(n),
        "updated_at": t(n + 1),
        "closed_at": null,
        "html_url": format!("https://github.com/octo/hello/issues/{n}"),
        "url": format!("https://api.github.com/repos/octo/hello/issues/{n}"),
    });
    if pr {
        v["pull_request"] = json!({
            "url": format!("https://api.github.com/repos/octo/hello/pulls/{n}"),
            "html_url": format!("https://github.com/octo/hello/pull/{n}"),
            "diff_url": format!("https://github.com/octo/hello/pull/{n}.diff"),
            "patch_url": format!("https://github.com/octo/hello/pull/{n}.patch"),
        });
        v["html_url"] = json!(format!("https://github.com/octo/hello/pull/{n}"));
    }
    v
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn reset_epoch() -> u64 {
    now_epoch() + 3600
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()}),
    )
}

/// One answer with the headers GitHub puts on every answer; `etag` for GETs that have one.
fn answer(
    s: &mut State,
    status: StatusCode,
    body: Value,
    extra: Vec<(&'static str, String)>,
    if_none_match: Option<&str>,
    cacheable: bool,
) -> Response {
    let text = body.to_string();
    let etag = format!("W/\"{:016x}\"", fxhash(&text));
    let not_modified =
        cacheable && status == StatusCode::OK && if_none_match == Some(etag.as_str());
    if not_modified {
        s.not_modified += 1;
    } else {
        s.used += 1;
    }
    let mut remaining = QUOTA.saturating_sub(s.used);
    let mut reset = reset_epoch();
    if !not_modified && let Some(secs) = s.exhaust_for.take() {
        reset = now_epoch() + secs;
        remaining = 0;
        s.exhausted_until = Some(reset);
    }
    let mut headers = vec![
        ("x-ratelimit-limit", QUOTA.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-used", s.used.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".into()),
        ("x-github-api-version-selected", "2022-11-28".into()),
    ];
    if cacheable && status == StatusCode::OK {
        headers.push(("etag", etag));
        headers.push(("vary", "Accept, Authorization, Cookie".into()));
        headers.push(("cache-control", "private, max-age=60, s-maxage=60".into()));
    }
    headers.extend(extra);
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (status, text).into_response();
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        r
    };
    for (k, v) in headers {
        if not_modified && k == "link" {
            continue;
        }
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && s.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}

fn handle(
    st: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap();
    // a used-up primary quota: GitHub answers 403 until the reset [GH-RL]
    if let Some(until) = s.exhausted_until {
        if now_epoch() < until {
            s.violations
                .push(format!("{method} {uri}: sent before the quota reset"));
            let (status, body) = error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
            );
            let mut r = answer(&mut s, status, body, vec![], None, false);
            r.headers_mut()
                .insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            return r;
        }
        s.exhausted_until = None;
    }
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let reject = |s: &mut State, status: StatusCode, why: String| {
        s.violations.push(format!("{method} {uri}: {why}"));
        let (status, body) = error(status, &why);
        answer(s, status, body, vec![], None, false)
    };
    // request headers GitHub checks [GH-START, GH-AUTH, GH-VER]
    if h("user-agent").is_none_or(|u| u.trim().is_empty()) {
        return reject(
            &mut s,
            StatusCode::FORBIDDEN,
            "a User-Agent header is required".into(),
        );
    }
    if let Some(v) = h("x-github-api-version")
        && !["2022-11-28", "2026-03-10"].contains(&v.as_str())
    {
        return reject(
            &mut s,
            StatusCode::BAD_REQUEST,
            format!("unsupported API version {v}"),
        );
    }
    if let Some(a) = h("accept")
        && !(a.contains("application/vnd.github")
            || a.contains("application/json")
            || a.contains("*/*"))
    {
        s.violations.push(format!(
            "{method} {uri}: Accept {a} is not a GitHub media type"
        ));
    }
    match h("authorization") {
        None => {}
        Some(a) => {
            let token = a
                .strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "));
            if token != Some(TOKEN) {
                s.used += 1;
                let (status, body) = error(StatusCode::UNAUTHORIZED, "Bad credentials");
                return answer(&mut s, status, body, vec![], None, false);
            }
        }
    }
    let path = uri.path().to_owned();
    if path.ends_with('/') {
        return reject(
            &mut s,
            StatusCode::NOT_FOUND,
            "a trailing slash is Not Found".into(),
        );
    }
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let inm = h("if-none-match");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["repos", "octo", "limited", "issues"]) => {
            // the primary quota is used up until an hour from now
            let (status, body) = error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
            );
            let mut r = answer(&mut s, status, body, vec![], None, false);
            r.headers_mut()
                .insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            r
        }
        ("GET", ["repos", "octo", "hello", "issues"]) | ("GET", ["repositories", _, "issues"]) => {
            if segs[0] == "repositories" && segs[1] != REPO_ID.to_string() {
                let (status, body) = error(StatusCode::NOT_FOUND, "Not Found");
                return answer(&mut s, status, body, vec![], None, false);
            }
            list_issues(&mut s, &q, inm.as_deref())
        }
        ("GET", ["repos", "octo", "hello"]) => {
            let body = json!({"id": REPO_ID, "full_name": "octo/hello", "private": false});
            answer(&mut s, StatusCode::OK, body, vec![], inm.as_deref(), true)
        }
        ("GET", ["users", "octo"]) => {
            let body = json!({"login": "octo", "type": "Organization"});
            answer(&mut s, StatusCode::OK, body, vec![], inm.as_deref(), true)
        }
        ("GET", ["orgs", "octo", "repos"]) => {
            let body = json!([
                {"full_name": "octo/hello", "private": false, "fork": false, "archived": false, "language": "Rust", "stargazers_count": 42, "default_branch": "main", "pushed_at": "2026-11-01T00:00:00Z", "html_url": "https://github.com/octo/hello"},
                {"full_name": "octo/infra", "private": true, "fork": false, "archived": true, "language": null, "stargazers_count": 0, "default_branch": "main", "pushed_at": "2025-01-01T00:00:00Z", "html_url": "https://github.com/octo/infra"}
            ]);
            answer(&mut s, StatusCode::OK, body, vec![], inm.as_deref(), true)
        }
        ("POST", ["repos", "octo", "hello", "issues"]) => create_issue(&mut s, &headers, &body),
        ("GET", _) => {
            let (status, body) = error(StatusCode::NOT_FOUND, "Not Found");
            answer(&mut s, status, body, vec![], None, false)
        }
        // an unsupported method is a 404 at GitHub too, but no client of ours should send one
        _ => reject(
            &mut s,
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {method}"),
        ),
    }
}

fn list_issues(s: &mut State, q: &HashMap<String, String>, inm: Option<&str>) -> Response {
    for k in q.keys() {
        if ![
            "milestone",
            "state",
            "assignee",
            "type",
            "creator",
            "mentioned",
            "labels",
            "sort",
            "direction",
            "since",
            "per_page",
            "page",
        ]
        .contains(&k.as_str())
        {
            s.violations
                .push(format!("unknown parameter {k} of list repository issues"));
        }
    }
    let state = q.get("state").map_or("open", String::as_str);
    if !["open", "closed", "all"].contains(&state) {
        s.violations.push(format!("state={state}"));
        let (status, body) = error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
        return answer(s, status, body, vec![], None, false);
    }
    if let Some(since) = q.get("since")
        && !is_iso8601(since)
    {
        s.violations
            .push(format!("since={since} is not YYYY-MM-DDTHH:MM:SSZ"));
        let (status, body) = error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
        return answer(s, status, body, vec![], None, false);
    }
    if let Some(d) = q.get("direction")
        && !["asc", "desc"].contains(&d.as_str())
    {
        s.violations.push(format!("direction={d}"));
    }
    if let Some(v) = q.get("sort")
        && !["created", "updated", "comments"].contains(&v.as_str())
    {
        s.violations.push(format!("sort={v}"));
    }
    let per_page: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let labels: Vec<&str> = q
        .get("labels")
        .map(|l| l.split(',').collect())
        .unwrap_or_default();
    let mut all: Vec<Value> = s
        .issues
        .iter()
        .filter(|i| state == "all" || i["state"] == state)
        .filter(|i| {
            labels.iter().all(|l| {
                i["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["name"] == *l)
            })
        })
        .filter(|i| {
            q.get("since")
                .is_none_or(|since| i["updated_at"].as_str().unwrap() >= since.as_str())
        })
        .cloned()
        .collect();
    if q.get("direction").map(String::as_str) == Some("asc") {
        all.reverse();
    }
    let pages = all.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    // links in GitHub's form: /repositories/{id}/issues, per_page and the filters kept
    let link_to = |p: usize| {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| *k != "page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("page".into(), p.to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("<{}/repositories/{REPO_ID}/issues?{query}>", s.base)
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link_to(page - 1)));
    }
    if page < pages {
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
        links.push(format!("{}; rel=\"last\"", link_to(pages)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link_to(1)));
    }
    let extra = if links.is_empty() {
        vec![]
    } else {
        vec![("link", links.join(", "))]
    };
    answer(s, StatusCode::OK, Value::Array(items), extra, inm, true)
}

fn create_issue(s: &mut State, headers: &HeaderMap, body: &Bytes) -> Response {
    s.posts += 1;
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        s.violations.push(format!("POST with Content-Type {ct:?}"));
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        s.violations.push("POST body is not a JSON object".into());
        let (status, body) = error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
        return answer(s, status, body, vec![], None, false);
    };
    let Some(title) = req.get("title").and_then(Value::as_str) else {
        s.violations.push("POST without a title".into());
        let mut b = error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed").1;
        b["errors"] = json!([{"resource": "Issue", "field": "title", "code": "missing_field"}]);
        return answer(s, StatusCode::UNPROCESSABLE_ENTITY, b, vec![], None, false);
    };
    for k in req.keys() {
        if ![
            "title",
            "body",
            "assignee",
            "milestone",
            "labels",
            "assignees",
            "type",
        ]
        .contains(&k.as_str())
        {
            s.violations
                .push(format!("unknown field {k} in create issue"));
        }
    }
    if let Some(l) = req.get("labels")
        && !l.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        s.violations
            .push(format!("labels must be an array of names: {l}"));
    }
    let number = s
        .issues
        .iter()
        .map(|i| i["number"].as_u64().unwrap())
        .max()
        .unwrap_or(0)
        + 1;
    let mut issue = item(number, false);
    issue["title"] = json!(title);
    issue["body"] = req.get("body").cloned().unwrap_or(Value::Null);
    issue["labels"] = json!(
        req.get("labels")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|n| json!({"name": n})).collect::<Vec<_>>())
            .unwrap_or_default()
    );
    s.issues.insert(0, issue.clone());
    if std::mem::take(&mut s.lose_next_create_answer) {
        let (status, body) = error(StatusCode::BAD_GATEWAY, "Server Error");
        return answer(s, status, body, vec![], None, false);
    }
    let location = format!("https://api.github.com/repos/octo/hello/issues/{number}");
    answer(
        s,
        StatusCode::CREATED,
        issue,
        vec![("location", location)],
        None,
        false,
    )
}

// ---------------------------------------------------------------- tests

fn opskit(fx: &Fixture, cache: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("GITHUB_API_URL", &fx.url)
        .env("GH_TOKEN", TOKEN)
        .env_remove("GITHUB_TOKEN")
        .env("XDG_CACHE_HOME", cache)
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

#[test]
fn github_issues_export_skips_prs_in_order_and_rerun_spends_no_quota() {
    let fx = Fixture::start(250);
    let cache = tempfile::tempdir().unwrap();
    let csv = run_ok(opskit(&fx, cache.path()).args([
        "github",
        "issues",
        "octo/hello",
        "--output",
        "csv",
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "number,title,state,user,labels,assignees,comments,created_at,updated_at,closed_at,url"
    );
    // exactly the issues (every fifth item is a pull request), newest first, as GitHub orders them
    let numbers: Vec<u64> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let want: Vec<u64> = (1..=250u64)
        .rev()
        .filter(|n| !n.is_multiple_of(5))
        .collect();
    assert_eq!(numbers, want);
    assert_eq!(
        lines[1],
        "249,\"Issue 249, with a comma\",open,user4,bug,,1,2026-10-26T09:00:00Z,2026-10-26T10:00:00Z,,https://github.com/octo/hello/issues/249"
    );
    assert_eq!(fx.used(), 3, "250 items at 100 a page: 3 requests");

    // a re-run with the warm cache asks with If-None-Match: three 304s, no quota spent
    let again = run_ok(opskit(&fx, cache.path()).args([
        "github",
        "issues",
        "octo/hello",
        "--output",
        "csv",
    ]));
    assert_eq!(again, csv);
    assert_eq!(fx.used(), 3, "the re-run spent quota");
    assert_eq!(fx.state.lock().unwrap().not_modified, 3);

    // --no-cache asks for everything again
    run_ok(opskit(&fx, cache.path()).args([
        "github",
        "issues",
        "octo/hello",
        "--no-cache",
        "--output",
        "csv",
    ]));
    assert_eq!(fx.used(), 6);
    fx.assert_clean();
}

#[test]
fn github_issues_filters_and_prs_on_request() {
    let fx = Fixture::start(250);
    let cache = tempfile::tempdir().unwrap();
    let rows: Vec<Value> = serde_json::from_str(&run_ok(opskit(&fx, cache.path()).args([
        "github",
        "issues",
        "octo/hello",
        "--include-prs",
        "--state",
        "all",
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(rows.len(), 250);
    assert_eq!(rows[0]["number"], 250);
    assert_eq!(rows[0]["pull_request"], true);
    assert_eq!(rows[1]["pull_request"], false);
    // labels and since go to GitHub, in its formats
    let rows: Vec<Value> = serde_json::from_str(&run_ok(opskit(&fx, cache.path()).args([
        "github",
        "issues",
        "octo/hello",
        "--label",
        "bug",
        "--since",
        "2026-10-01",
        "--output",
        "json",
    ])))
    .unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["labels"], "bug");
        assert!(
            r["updated_at"].as_str().unwrap() >= "2026-10-01T00:00:00Z",
            "{r}"
        );
        assert_ne!(r["number"].as_u64().unwrap() % 5, 0, "a pull request: {r}");
    }
    // a bad repository name and a bad time never reach GitHub
    let used = fx.used();
    let out = opskit(&fx, cache.path())
        .args(["github", "issues", "octo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OWNER/REPO"));
    let out = opskit(&fx, cache.path())
        .args(["github", "issues", "octo/hello", "--since", "last week"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fx.used(), used);
    fx.assert_clean();
}

#[test]
fn github_issue_create_after_a_lost_answer_creates_exactly_one() {
    let fx = Fixture::start(3);
    let cache = tempfile::tempdir().unwrap();
    fx.state.lock().unwrap().lose_next_create_answer = true;
    let out = run_ok(opskit(&fx, cache.path()).args([
        "github",
        "issue",
        "create",
        "octo/hello",
        "--title",
        "disk full on web01",
        "--body",
        "92% used",
        "--label",
        "ops",
        "--output",
        "json",
    ]));
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created[0]["number"], 4);
    assert_eq!(created[0]["title"], "disk full on web01");
    {
        let s = fx.state.lock().unwrap();
        assert_eq!(s.posts, 1, "the issue was found, not sent again");
        assert_eq!(
            s.issues
                .iter()
                .filter(|i| i["title"] == "disk full on web01")
                .count(),
            1
        );
        assert!(
            s.issues[0]["body"]
                .as_str()
                .unwrap()
                .starts_with("92% used\n\n<!-- opskit-idempotency-key: ")
        );
    }
    // the same idempotency key twice: the second run finds the first issue
    for _ in 0..2 {
        run_ok(opskit(&fx, cache.path()).args([
            "github",
            "issue",
            "create",
            "octo/hello",
            "--title",
            "cert expires",
            "--idempotency-key",
            "alert-42",
        ]));
    }
    let s = fx.state.lock().unwrap();
    assert_eq!(
        s.issues
            .iter()
            .filter(|i| i["title"] == "cert expires")
            .count(),
        1
    );
    assert_eq!(s.posts, 2);
    drop(s);
    fx.assert_clean();
}

#[test]
fn github_rate_limit_says_when_the_quota_resets() {
    let fx = Fixture::start(1);
    let cache = tempfile::tempdir().unwrap();
    let out = opskit(&fx, cache.path())
        .args(["github", "issues", "octo/limited"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GitHub rate limit used up"), "{err}");
    assert!(
        err.contains("it resets at 20") && (err.contains("(in 59m") || err.contains("(in 60m")),
        "{err}"
    );
    // a refused token: exit 1 and a hint about the token
    let out = opskit(&fx, cache.path())
        .env("GH_TOKEN", "ghp_wrong")
        .args(["github", "issues", "octo/hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Bad credentials") && err.contains("check the token"),
        "{err}"
    );
    assert!(
        !err.contains("ghp_wrong"),
        "the token is never printed: {err}"
    );
    fx.assert_clean();
}

#[test]
fn github_api_and_repos_follow_every_page() {
    let fx = Fixture::start(150);
    let cache = tempfile::tempdir().unwrap();
    // any endpoint: every page, raw items (pull requests included)
    let items: Vec<Value> = serde_json::from_str(&run_ok(opskit(&fx, cache.path()).args([
        "github",
        "api",
        "repos/octo/hello/issues?per_page=50",
    ])))
    .unwrap();
    assert_eq!(items.len(), 150);
    assert!(items[0]["pull_request"].is_object());
    // an endpoint that returns one object
    let repo: Vec<Value> = serde_json::from_str(&run_ok(opskit(&fx, cache.path()).args([
        "github",
        "api",
        "/repos/octo/hello",
    ])))
    .unwrap();
    assert_eq!(repo[0]["full_name"], "octo/hello");
    // an organisation's repositories
    let csv =
        run_ok(opskit(&fx, cache.path()).args(["github", "repos", "octo", "--output", "csv"]));
    assert_eq!(
        csv,
        "full_name,private,fork,archived,language,stars,default_branch,pushed_at,url\n\
         octo/hello,false,false,false,Rust,42,main,2026-11-01T00:00:00Z,https://github.com/octo/hello\n\
         octo/infra,true,false,true,,0,main,2025-01-01T00:00:00Z,https://github.com/octo/infra\n"
    );
    fx.assert_clean();
}

#[test]
fn github_waits_for_a_quota_that_resets_soon_and_stops_for_a_later_one() {
    let fx = Fixture::start(250);
    let cache = tempfile::tempdir().unwrap();
    // the first page uses the quota up for 3 s: the next page waits for the reset, and says so
    // (the reset is in whole epoch seconds, so 2 s could leave a wait under the 1 s that the
    // notice is printed from)
    fx.state.lock().unwrap().exhaust_for = Some(3);
    let out = opskit(&fx, cache.path())
        .args([
            "github",
            "issues",
            "octo/hello",
            "--no-cache",
            "--output",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 201);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("waiting") && err.contains("quota"), "{err}");
    fx.assert_clean();

    // used up for an hour: no waiting an hour, an error that says when it resets
    fx.state.lock().unwrap().exhaust_for = Some(3600);
    let out = opskit(&fx, cache.path())
        .args([
            "github",
            "issues",
            "octo/hello",
            "--no-cache",
            "--output",
            "csv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rate limit used up; it resets at"), "{err}");
    // the first page was written before the stop
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 81);
    fx.assert_clean();
}
