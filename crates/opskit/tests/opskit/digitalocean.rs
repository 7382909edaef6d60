//! `opskit do` against a stand-in for the DigitalOcean API v2 on 127.0.0.1:0 that follows its
//! published reference (digitalocean/openapi: Bearer auth, `{"droplets"}`/`{"droplet"}` roots,
//! `links.pages.next` with full URLs and `meta.total`, per_page at most 200, `tag_name` not
//! combined with `name`, action POSTs answered 201 `in-progress` and moving to `completed` or
//! `errored`, 422 for a second action while one is pending, `ratelimit-*` headers on every
//! answer, `{"id","message"}` error bodies) and records every request the real API would reject:
//! each test fails on any such request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const TOKEN: &str = "dop_v1_opskitTestToken0000000000000000000000000000000000000000";
const QUOTA: u64 = 5000;
/// A droplet whose actions end `errored`.
const ERRORING: u64 = 1013;
/// A droplet whose actions never finish.
const STUCK: u64 = 1021;

struct ActionState {
    action: Value,
    /// Reads of the action still answered `in-progress`.
    polls_left: u32,
    outcome: &'static str,
}

#[derive(Default)]
struct State {
    base: String,
    droplets: Vec<Value>,
    actions: HashMap<u64, ActionState>,
    /// droplet id → its pending action.
    pending: HashMap<u64, u64>,
    next_action: u64,
    /// Every request received.
    requests: u64,
    /// Bodies of the action POSTs.
    posts: Vec<Value>,
    /// Reads of /v2/actions/{id}.
    action_reads: u64,
    violations: Vec<String>,
    /// The next answer says the quota is used up until this many seconds from now.
    exhaust_for: Option<u64>,
    /// Until when (Unix seconds) the quota is used up: a request before then is a 429.
    exhausted_until: Option<u64>,
    /// The next this many requests hit the burst limit: 429 with retry-after: 1.
    throttle: u32,
}

struct Fixture {
    url: String,
    state: Arc<Mutex<State>>,
}

impl Fixture {
    /// `n` droplets, ids 1001.., the even ones tagged `production`, the odd ones `staging`.
    fn start(n: u64) -> Fixture {
        let state = Arc::new(Mutex::new(State {
            next_action: 36_804_745,
            ..State::default()
        }));
        state.lock().unwrap().droplets = (1..=n).map(|i| droplet(1000 + i)).collect();
        let st = state.clone();
        let addr = crate::support::api_stand_in(move |method, uri, headers, body| {
            handle(&st, method, uri, headers, body)
        });
        let url = format!("http://{addr}/v2");
        state.lock().unwrap().base = url.clone();
        Fixture { url, state }
    }

    fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }

    fn assert_clean(&self) {
        let s = self.state.lock().unwrap();
        assert!(
            s.violations.is_empty(),
            "requests DigitalOcean would reject: {:#?}",
            s.violations
        );
    }
}

fn droplet(id: u64) -> Value {
    let n = id - 1000;
    json!({
        "id": id,
        "name": format!("web-{n:03}"),
        "memory": 2048,
        "vcpus": 2,
        "disk": 50,
        "locked": false,
        "status": if n.is_multiple_of(7) { "off" } else { "active" },
        "kernel": null,
        "created_at": format!("2026-{:02}-{:02}T16:29:21Z", 1 + n % 12, 1 + n % 28),
        "features": ["monitoring", "private_networking"],
        "backup_ids": [],
        "next_backup_window": null,
        "snapshot_ids": [],
        "image": {"id": 6918990, "name": "24.04 (LTS) x64", "distribution": "Ubuntu", "slug": "ubuntu-24-04-x64", "public": true},
        "volume_ids": [],
        "size": {"slug": "s-2vcpu-2gb", "memory": 2048, "vcpus": 2, "disk": 50},
        "size_slug": "s-2vcpu-2gb",
        "networks": {
            "v4": [
                {"ip_address": format!("10.110.0.{}", n % 250), "netmask": "255.255.240.0", "gateway": "10.110.0.1", "type": "private"},
                {"ip_address": format!("203.0.113.{}", n % 250), "netmask": "255.255.255.0", "gateway": "203.0.113.1", "type": "public"}
            ],
            "v6": [{"ip_address": "2604:a880:800:10::1", "netmask": 64, "gateway": "2604:a880:800:10::1", "type": "public"}]
        },
        "region": {"name": "Frankfurt 1", "slug": "fra1", "features": [], "available": true, "sizes": []},
        "tags": if n.is_multiple_of(2) { json!(["production", "web"]) } else { json!(["staging"]) },
        "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
    })
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_iso() -> String {
    let t = now_epoch();
    let (d, s) = (t / 86_400, t % 86_400);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = d as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// An answer with the headers DigitalOcean puts on every answer.
fn answer(s: &mut State, status: StatusCode, body: Option<Value>) -> Response {
    let mut remaining = QUOTA.saturating_sub(s.requests);
    let mut reset = now_epoch() + 60;
    if let Some(secs) = s.exhaust_for.take() {
        remaining = 0;
        reset = now_epoch() + secs;
        s.exhausted_until = Some(reset);
    }
    let mut r = match body {
        Some(b) => {
            let mut r = (status, b.to_string()).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
        None => status.into_response(),
    };
    for (k, v) in [
        ("ratelimit-limit", QUOTA.to_string()),
        ("ratelimit-remaining", remaining.to_string()),
        ("ratelimit-reset", reset.to_string()),
        ("x-request-id", format!("req-{}", s.requests)),
    ] {
        r.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    r
}

fn error(s: &mut State, status: StatusCode, id: &str, message: &str) -> Response {
    let body = json!({"id": id, "message": message, "request_id": format!("4d9d8375-3c56-4925-a3e7-eb137fed{:04}", s.requests)});
    answer(s, status, Some(body))
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
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // a used-up quota: 429 until the reset [DO-DESC rate limits]
    if let Some(until) = s.exhausted_until {
        if now_epoch() < until {
            s.violations
                .push(format!("{method} {uri}: sent before the quota reset"));
            let mut r = error(
                &mut s,
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "API rate limit exceeded.",
            );
            r.headers_mut()
                .insert("ratelimit-remaining", HeaderValue::from_static("0"));
            return r;
        }
        s.exhausted_until = None;
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        let mut r = error(
            &mut s,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "API rate limit exceeded.",
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return r;
    }
    if h("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return error(
            &mut s,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unable to authenticate you",
        );
    }
    let Some(path) = uri.path().strip_prefix("/v2/") else {
        s.violations.push(format!("{method} {uri}: not under /v2"));
        return error(
            &mut s,
            StatusCode::NOT_FOUND,
            "not_found",
            "The resource you were accessing could not be found.",
        );
    };
    let q: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let segs: Vec<&str> = path.split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["droplets"]) => list_droplets(&mut s, &q),
        ("GET", ["droplets", id]) => match id.parse::<u64>() {
            Ok(id) => match s.droplets.iter().find(|d| d["id"] == id).cloned() {
                Some(d) => answer(&mut s, StatusCode::OK, Some(json!({"droplet": d}))),
                None => not_found(&mut s),
            },
            Err(_) => {
                s.violations
                    .push(format!("droplet id {id:?} is no integer"));
                not_found(&mut s)
            }
        },
        ("POST", ["droplets", id, "actions"]) => {
            let ct = h("content-type").unwrap_or_default();
            if !ct.starts_with("application/json") {
                s.violations.push(format!("POST with Content-Type {ct:?}"));
            }
            match id.parse::<u64>() {
                Ok(id) => post_action(&mut s, id, &body),
                Err(_) => {
                    s.violations
                        .push(format!("droplet id {id:?} is no integer"));
                    not_found(&mut s)
                }
            }
        }
        ("GET", ["actions", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            s.action_reads += 1;
            let Some(a) = s.actions.get_mut(&id) else {
                return not_found(&mut s);
            };
            if a.polls_left > 0 {
                a.polls_left -= 1;
            } else if a.action["status"] == "in-progress" {
                a.action["status"] = json!(a.outcome);
                a.action["completed_at"] = json!(now_iso());
            }
            let action = a.action.clone();
            if action["status"] != "in-progress" {
                let droplet = action["resource_id"].as_u64().unwrap();
                s.pending.remove(&droplet);
                if action["status"] == "completed" {
                    let new_status = match action["type"].as_str().unwrap() {
                        "power_off" | "shutdown" => Some("off"),
                        "power_on" | "reboot" | "power_cycle" => Some("active"),
                        _ => None,
                    };
                    if let Some(ns) = new_status
                        && let Some(d) = s.droplets.iter_mut().find(|d| d["id"] == droplet)
                    {
                        d["status"] = json!(ns);
                    }
                }
            }
            answer(&mut s, StatusCode::OK, Some(json!({"action": action})))
        }
        _ => {
            s.violations
                .push(format!("{method} {uri}: no such endpoint"));
            not_found(&mut s)
        }
    }
}

fn not_found(s: &mut State) -> Response {
    error(
        s,
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

fn list_droplets(s: &mut State, q: &[(String, String)]) -> Response {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    for (k, _) in q {
        if !["page", "per_page", "tag_name", "name", "type"].contains(&k.as_str()) {
            s.violations
                .push(format!("unknown parameter {k} of list droplets"));
        }
    }
    if get("tag_name").is_some() && (get("name").is_some() || get("type").is_some()) {
        s.violations
            .push("tag_name combined with name or type".into());
        return error(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "tag_name cannot be combined with name or type",
        );
    }
    let per_page: usize = match get("per_page").map(|p| p.parse::<usize>()) {
        None => 20,
        Some(Ok(p)) if (1..=200).contains(&p) => p,
        Some(_) => {
            s.violations.push(format!("per_page={:?}", get("per_page")));
            return error(
                s,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "per_page must be between 1 and 200",
            );
        }
    };
    let page: usize = get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let tag = get("tag_name");
    let all: Vec<Value> = s
        .droplets
        .iter()
        .filter(|d| {
            tag.as_ref()
                .is_none_or(|t| d["tags"].as_array().unwrap().iter().any(|x| x == t))
        })
        .cloned()
        .collect();
    let total = all.len();
    let pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link = |p: usize| {
        let mut pairs: Vec<(String, String)> =
            q.iter().filter(|(k, _)| k != "page").cloned().collect();
        pairs.push(("page".into(), p.to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{}/droplets?{query}", s.base)
    };
    let mut links = serde_json::Map::new();
    if page > 1 {
        links.insert("first".into(), json!(link(1)));
        links.insert("prev".into(), json!(link(page - 1)));
    }
    if page < pages {
        links.insert("next".into(), json!(link(page + 1)));
        links.insert("last".into(), json!(link(pages)));
    }
    let mut body = json!({"droplets": items, "meta": {"total": total}});
    if !links.is_empty() {
        body["links"] = json!({"pages": links});
    }
    answer(s, StatusCode::OK, Some(body))
}

fn post_action(s: &mut State, droplet: u64, body: &Bytes) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        s.violations.push("action body is not a JSON object".into());
        return error(
            s,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid JSON body",
        );
    };
    s.posts.push(Value::Object(req.clone()));
    let kind = req.get("type").and_then(Value::as_str).unwrap_or("");
    let allowed_extra: &[&str] = match kind {
        "power_on" | "power_off" | "shutdown" | "reboot" | "power_cycle" => &[],
        "snapshot" => &["name"],
        _ => {
            s.violations.push(format!("action type {kind:?}"));
            return error(
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable_entity",
                "Type is not valid",
            );
        }
    };
    for k in req.keys() {
        if k != "type" && !allowed_extra.contains(&k.as_str()) {
            s.violations.push(format!("field {k} in a {kind} action"));
        }
    }
    if kind == "snapshot" && req.get("name").is_some_and(|n| !n.is_string()) {
        s.violations.push("snapshot name is not a string".into());
    }
    if !s.droplets.iter().any(|d| d["id"] == droplet) {
        return not_found(s);
    }
    if s.pending.contains_key(&droplet) {
        return error(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "Droplet already has a pending event.",
        );
    }
    let id = s.next_action;
    s.next_action += 1;
    let action = json!({
        "id": id,
        "status": "in-progress",
        "type": kind,
        "started_at": now_iso(),
        "completed_at": null,
        "resource_id": droplet,
        "resource_type": "droplet",
        "region": {"name": "Frankfurt 1", "slug": "fra1"},
        "region_slug": "fra1",
    });
    s.actions.insert(
        id,
        ActionState {
            action: action.clone(),
            polls_left: if droplet == STUCK { u32::MAX } else { 2 },
            outcome: if droplet == ERRORING {
                "errored"
            } else {
                "completed"
            },
        },
    );
    s.pending.insert(droplet, id);
    answer(s, StatusCode::CREATED, Some(json!({"action": action})))
}

// ---------------------------------------------------------------- tests

fn opskit(fx: &Fixture) -> Command {
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("DIGITALOCEAN_API_URL", &fx.url)
        .env("DIGITALOCEAN_TOKEN", TOKEN)
        .env_remove("DIGITALOCEAN_ACCESS_TOKEN")
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
fn do_droplets_list_follows_every_page_with_a_tag() {
    let fx = Fixture::start(500);
    let csv = run_ok(opskit(&fx).args([
        "do",
        "droplets",
        "list",
        "--tag",
        "production",
        "--output",
        "csv",
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,name,status,region,size,vcpus,memory_mb,disk_gb,public_ipv4,private_ipv4,tags,created_at"
    );
    // 250 tagged droplets at 200 a page: two pages, every one of them, in order
    let ids: Vec<u64> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let want: Vec<u64> = (1..=500u64)
        .filter(|n| n.is_multiple_of(2))
        .map(|n| 1000 + n)
        .collect();
    assert_eq!(ids, want);
    assert_eq!(
        lines[1],
        "1002,web-002,active,fra1,s-2vcpu-2gb,2,2048,50,203.0.113.2,10.110.0.2,\"production,web\",2026-03-03T16:29:21Z"
    );
    assert_eq!(fx.requests(), 2, "two pages, two requests");
    // without a tag: all 500 in three pages
    let rows: Vec<Value> =
        serde_json::from_str(&run_ok(opskit(&fx).args(["do", "droplets", "list"]))).unwrap();
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[499]["name"], "web-500");
    assert_eq!(fx.requests(), 5);
    fx.assert_clean();
}

#[test]
fn do_droplets_list_waits_for_a_used_up_quota() {
    let fx = Fixture::start(450);
    // the first page uses the quota up for 3 s (whole epoch seconds: a wait of 2 to 3 s, which
    // the command reports): the engine waits for ratelimit-reset
    fx.state.lock().unwrap().exhaust_for = Some(3);
    let out = opskit(&fx)
        .args(["do", "droplets", "list", "--output", "ndjson"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 450);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("waiting") && err.contains("quota"), "{err}");
    fx.assert_clean();
}

#[test]
fn do_droplet_get_and_a_missing_one() {
    let fx = Fixture::start(20);
    let rows: Vec<Value> = serde_json::from_str(&run_ok(
        opskit(&fx).args(["do", "droplets", "get", "1007", "--output", "json"]),
    ))
    .unwrap();
    let d = &rows[0];
    assert_eq!(d["id"], 1007);
    assert_eq!(d["name"], "web-007");
    assert_eq!(d["status"], "off");
    assert_eq!(d["public_ipv4"], "203.0.113.7");
    assert_eq!(d["image"], "Ubuntu 24.04 (LTS) x64");
    assert_eq!(d["tags"], "staging");

    let out = opskit(&fx)
        .args(["do", "droplets", "get", "99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "DigitalOcean not_found (HTTP 404): The resource you were accessing could not be found."
        ),
        "{err}"
    );
    // a droplet id is a positive integer: refused before any request
    let before = fx.requests();
    for bad in ["0", "web-1", "-3"] {
        let out = opskit(&fx)
            .args(["do", "droplets", "get", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    assert_eq!(fx.requests(), before);
    fx.assert_clean();
}

#[test]
fn do_action_with_wait_polls_until_completed() {
    let fx = Fixture::start(20);
    let rows: Vec<Value> = serde_json::from_str(&run_ok(opskit(&fx).args([
        "do",
        "droplets",
        "action",
        "1007",
        "power_on",
        "--wait",
        "--poll-interval",
        "20ms",
        "--output",
        "json",
    ])))
    .unwrap();
    let a = &rows[0];
    assert_eq!(a["status"], "completed");
    assert_eq!(a["type"], "power_on");
    assert_eq!(a["resource_id"], 1007);
    assert!(a["completed_at"].is_string(), "{a}");
    {
        let s = fx.state.lock().unwrap();
        assert_eq!(s.posts, vec![json!({"type": "power_on"})]);
        assert_eq!(
            s.action_reads, 3,
            "two reads in progress, the third completed"
        );
        let d = s.droplets.iter().find(|d| d["id"] == 1007).unwrap();
        assert_eq!(d["status"], "active");
    }
    // without --wait: the action as started
    let rows: Vec<Value> = serde_json::from_str(&run_ok(
        opskit(&fx).args(["do", "droplets", "action", "1002", "reboot"]),
    ))
    .unwrap();
    assert_eq!(rows[0]["status"], "in-progress");
    // a second action while one is pending: DigitalOcean's 422 and its message
    let out = opskit(&fx)
        .args(["do", "droplets", "action", "1002", "shutdown"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unprocessable_entity (HTTP 422): Droplet already has a pending event."),
        "{err}"
    );
    fx.assert_clean();
}

#[test]
fn do_errored_action_exits_1_and_a_slow_one_times_out() {
    let fx = Fixture::start(30);
    let out = opskit(&fx)
        .args([
            "do",
            "droplets",
            "action",
            &ERRORING.to_string(),
            "power_cycle",
            "--wait",
            "--poll-interval",
            "20ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(power_cycle) on droplet 1013 errored"),
        "{err}"
    );
    // never finishes: exit 124 at the deadline, saying the last status
    let out = opskit(&fx)
        .args([
            "do",
            "droplets",
            "action",
            &STUCK.to_string(),
            "reboot",
            "--wait",
            "--wait-timeout",
            "1s",
            "--poll-interval",
            "100ms",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did not finish within 1s (last status: in-progress)"),
        "{err}"
    );
    fx.assert_clean();
}

#[test]
fn do_bad_action_name_sends_nothing() {
    let fx = Fixture::start(5);
    let out = opskit(&fx)
        .args(["do", "droplets", "action", "1002", "restart", "--wait"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`restart` is not a droplet power action")
            && err.contains("power_on, power_off, reboot, shutdown, power_cycle"),
        "{err}"
    );
    let out = opskit(&fx)
        .args(["do", "droplets", "action", "1002", "power-off"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean power_off?"));
    // not even with no token: the name is checked first
    let out = opskit(&fx)
        .env_remove("DIGITALOCEAN_TOKEN")
        .args(["do", "droplets", "action", "1002", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a droplet power action"));
    assert_eq!(fx.requests(), 0, "a bad action name must send nothing");
}

#[test]
fn do_snapshot_with_wait() {
    let fx = Fixture::start(5);
    let rows: Vec<Value> = serde_json::from_str(&run_ok(opskit(&fx).args([
        "do",
        "droplets",
        "snapshot",
        "1003",
        "--name",
        "web-003 nightly",
        "--wait",
        "--poll-interval",
        "20ms",
    ])))
    .unwrap();
    assert_eq!(rows[0]["type"], "snapshot");
    assert_eq!(rows[0]["status"], "completed");
    assert_eq!(
        fx.state.lock().unwrap().posts,
        vec![json!({"type": "snapshot", "name": "web-003 nightly"})]
    );
    // an empty name never leaves
    let before = fx.requests();
    let out = opskit(&fx)
        .args(["do", "droplets", "snapshot", "1003", "--name", " "])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fx.requests(), before);
    fx.assert_clean();
}

#[test]
fn do_without_a_token_or_with_a_wrong_one() {
    let fx = Fixture::start(5);
    let out = opskit(&fx)
        .env_remove("DIGITALOCEAN_TOKEN")
        .args(["do", "droplets", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no DigitalOcean token") && err.contains("DIGITALOCEAN_TOKEN"),
        "{err}"
    );
    assert_eq!(fx.requests(), 0);
    // doctl's variable works too
    let rows: Vec<Value> = serde_json::from_str(&run_ok(
        opskit(&fx)
            .env_remove("DIGITALOCEAN_TOKEN")
            .env("DIGITALOCEAN_ACCESS_TOKEN", TOKEN)
            .args(["do", "droplets", "list"]),
    ))
    .unwrap();
    assert_eq!(rows.len(), 5);
    // a refused token: DigitalOcean's message, a hint, and the token never shown
    let out = opskit(&fx)
        .env("DIGITALOCEAN_TOKEN", "dop_v1_wrong")
        .args(["do", "droplets", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unauthorized (HTTP 401): Unable to authenticate you")
            && err.contains("check the token"),
        "{err}"
    );
    assert!(!err.contains("dop_v1_wrong"), "{err}");
    fx.assert_clean();
}

#[test]
fn do_burst_429_on_an_action_is_waited_out_and_sent_once() {
    let fx = Fixture::start(5);
    // DigitalOcean did not act on a 429: the POST is sent again after retry-after, once
    fx.state.lock().unwrap().throttle = 1;
    let rows: Vec<Value> = serde_json::from_str(&run_ok(
        opskit(&fx).args(["do", "droplets", "action", "1002", "reboot"]),
    ))
    .unwrap();
    assert_eq!(rows[0]["status"], "in-progress");
    {
        let s = fx.state.lock().unwrap();
        assert_eq!(s.posts, vec![json!({"type": "reboot"})]);
        assert_eq!(s.actions.len(), 1);
    }
    fx.assert_clean();
}
