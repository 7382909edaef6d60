//! `opskit prom` against a real Prometheus (scripts/services/prometheus.sh: it scrapes itself and
//! a port nobody listens on, every second, and has an always-firing alert and a recording rule).

use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// The test Prometheus, or None (skipped) outside CI; under CI=true a missing one fails.
fn prometheus() -> Option<String> {
    match std::env::var("OPSKIT_TEST_PROMETHEUS_URL") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "OPSKIT_TEST_PROMETHEUS_URL is not set (CI=true): scripts/services/prometheus.sh must start Prometheus"
                );
            }
            eprintln!(
                "skipping: OPSKIT_TEST_PROMETHEUS_URL is not set (run scripts/test to start Prometheus)"
            );
            None
        }
    }
}

fn opskit(url: &str) -> Command {
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("PROMETHEUS_URL", url)
        .env_remove("OPSKIT_PROFILE")
        .env("OPSKIT_CONFIG", "/nonexistent/opskit-test-config.toml")
        .timeout(Duration::from_secs(60));
    c
}

fn json_rows(url: &str, args: &[&str]) -> Vec<Value> {
    let out = opskit(url)
        .arg("prom")
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(rows) => rows,
        other => panic!("not an array: {other}"),
    }
}

/// Runs `args` until `ok` holds for its JSON rows (Prometheus scrapes every second), with a
/// deadline.
fn rows_until(url: &str, args: &[&str], ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = json_rows(url, args);
        if ok(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?}: never satisfied: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prom_query_up_has_labels_as_columns() {
    let Some(url) = prometheus() else { return };
    let rows = rows_until(&url, &["query", "up"], |rows| {
        rows.iter()
            .any(|r| r["job"] == "prometheus" && r["value"] == 1)
    });
    let me = rows.iter().find(|r| r["job"] == "prometheus").unwrap();
    assert_eq!(me["__name__"], "up");
    assert!(me["instance"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(me["timestamp"].as_str().unwrap().ends_with('Z'), "{me}");
    let down = rows.iter().find(|r| r["job"] == "nothing-listens").unwrap();
    assert_eq!(down["value"], 0);

    // CSV: the labels are the header's columns, then value and timestamp
    let out = opskit(&url)
        .args(["prom", "query", "up{job=\"prometheus\"}", "--output", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("__name__,instance,job,value,timestamp"));
    assert!(lines.next().unwrap().starts_with("up,127.0.0.1:"), "{text}");
}

#[test]
fn prom_range_relative_and_absolute_times() {
    let Some(url) = prometheus() else { return };
    // relative: the last 20 s every second; the self-scrape has samples on several steps
    let rows = rows_until(
        &url,
        &[
            "range",
            "up{job=\"prometheus\"}",
            "--since",
            "20s",
            "--step",
            "1s",
        ],
        |rows| rows.len() >= 3,
    );
    assert!(
        rows.iter()
            .all(|r| r["job"] == "prometheus" && r["value"] == 1),
        "{rows:?}"
    );
    let times: Vec<&str> = rows
        .iter()
        .map(|r| r["timestamp"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "samples oldest first");

    // absolute: RFC 3339 start and end, as CSV with one row per sample
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rfc = |t: u64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (start, end) = (rfc(now - 10), rfc(now));
    let out = opskit(&url)
        .args([
            "prom",
            "range",
            "up{job=\"prometheus\"}",
            "--start",
            &start,
            "--end",
            &end,
        ])
        .args(["--step", "5s", "--output", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "__name__,instance,job,timestamp,value");
    // 10 s every 5 s: the samples at start, +5 s and end (those Prometheus has)
    assert!((2..=4).contains(&lines.len()), "{text}");
    assert!(lines[1].contains(&start[..16]), "{start}: {text}");

    // an end before the start, and a time that is none: usage errors
    let out = opskit(&url)
        .args(["prom", "range", "up", "--start", "now", "--end", "-1h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("before it starts"));
    let out = opskit(&url)
        .args(["prom", "range", "up", "--start", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--start: \"yesterday\" is not a time"));
}

#[test]
fn prom_alerts_show_the_firing_alert() {
    let Some(url) = prometheus() else { return };
    let rows = rows_until(&url, &["alerts"], |rows| !rows.is_empty());
    let a = rows
        .iter()
        .find(|r| r["alertname"] == "OpskitTestAlwaysFiring")
        .unwrap();
    assert_eq!(a["state"], "firing");
    assert_eq!(a["labels"]["severity"], "info");
    assert_eq!(
        a["annotations"]["summary"],
        "always firing, for the opskit prom tests"
    );
}

#[test]
fn prom_rules_list_alerting_and_recording_rules() {
    let Some(url) = prometheus() else { return };
    let rows = json_rows(&url, &["rules"]);
    let alert = rows
        .iter()
        .find(|r| r["name"] == "OpskitTestAlwaysFiring")
        .unwrap();
    assert_eq!(alert["type"], "alerting");
    assert_eq!(alert["query"], "vector(1)");
    assert_eq!(alert["group"], "opskit-test");
    let rec = rows
        .iter()
        .find(|r| r["name"] == "opskit_test:up:sum")
        .unwrap();
    assert_eq!(rec["type"], "recording");
    // only recording rules
    let rows = json_rows(&url, &["rules", "--type", "record"]);
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["type"] == "recording"),
        "{rows:?}"
    );
}

#[test]
fn prom_targets_by_health() {
    let Some(url) = prometheus() else { return };
    let down = rows_until(&url, &["targets", "--state", "down"], |rows| {
        !rows.is_empty()
    });
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0]["pool"], "nothing-listens");
    assert!(
        down[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{down:?}"
    );
    let up = json_rows(&url, &["targets", "--state", "up"]);
    assert!(up.iter().all(|t| t["health"] == "up"));
    assert!(up.iter().any(|t| t["pool"] == "prometheus"), "{up:?}");
}

#[test]
fn prom_series_and_labels() {
    let Some(url) = prometheus() else { return };
    let series = json_rows(&url, &["series", "up", "--since", "1h"]);
    assert!(
        series
            .iter()
            .any(|s| s["job"] == "prometheus" && s["__name__"] == "up"),
        "{series:?}"
    );
    let labels = json_rows(&url, &["labels"]);
    assert!(labels.iter().any(|l| l["label"] == "job"), "{labels:?}");
    let jobs = json_rows(&url, &["labels", "job", "--match", "up"]);
    let jobs: Vec<&str> = jobs.iter().map(|j| j["value"].as_str().unwrap()).collect();
    // every job once, sorted (with the test `opskit serve` when it is scraped)
    let mut want = vec!["nothing-listens", "prometheus"];
    if std::env::var("OPSKIT_TEST_PROMETHEUS_SERVE").as_deref() == Ok("1") {
        want.insert(1, "opskit");
    }
    assert_eq!(jobs, want);
}

#[test]
fn prom_bad_promql_shows_type_and_position() {
    let Some(url) = prometheus() else { return };
    let out = opskit(&url)
        .args(["prom", "query", "sum(up"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad expression is the user's input"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad_data"), "{err}");
    assert!(err.contains("1:7"), "{err}");
    // the expression with a caret under the position
    assert!(err.contains("      sum(up\n            ^"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn prom_fail_empty_exits_1_on_no_result() {
    let Some(url) = prometheus() else { return };
    // without the flag an empty result is a success (an empty JSON array)
    let out = opskit(&url)
        .args([
            "prom",
            "query",
            "up{job=\"no-such-job\"}",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = opskit(&url)
        .args(["prom", "query", "up{job=\"no-such-job\"}", "--fail-empty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the result is empty"));
    // a non-empty result passes
    opskit(&url)
        .args(["prom", "query", "up", "--fail-empty"])
        .assert()
        .success();
}

#[test]
fn prom_url_from_a_profile_and_errors_without_one() {
    let Some(url) = prometheus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.metrics]\nbase_url = \"{url}\"\ntimeout = \"10s\"\n"),
    )
    .unwrap();
    let out = Command::cargo_bin("opskit")
        .unwrap()
        .env_remove("PROMETHEUS_URL")
        .env("OPSKIT_CONFIG", &config)
        .args([
            "prom",
            "query",
            "vector(42)",
            "--profile",
            "metrics",
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
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("value,timestamp\n42,"));

    // no URL at all: a usage error that says where one comes from
    let out = Command::cargo_bin("opskit")
        .unwrap()
        .env_remove("PROMETHEUS_URL")
        .env("OPSKIT_CONFIG", &config)
        .args(["prom", "query", "up"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PROMETHEUS_URL") && err.contains("--profile"),
        "{err}"
    );

    // nothing listening: a connection failure, exit 3
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = opskit(&format!("http://127.0.0.1:{port}"))
        .args(["prom", "query", "up", "--retries", "0"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prom_sees_the_test_opskit_serve_metrics() {
    let Some(url) = prometheus() else { return };
    if std::env::var("OPSKIT_TEST_PROMETHEUS_SERVE").as_deref() != Ok("1") {
        eprintln!(
            "skipping: the test Prometheus scrapes no `opskit serve` (OPSKIT_TEST_PROMETHEUS_SERVE is not 1)"
        );
        return;
    }
    // Prometheus logs in to `opskit serve`'s /metrics (basic auth) and scrapes it
    let up = rows_until(&url, &["query", "up{job=\"opskit\"}"], |rows| {
        rows.iter().any(|r| r["value"] == 1)
    });
    assert_eq!(up.len(), 1, "{up:?}");
    // the serve's own series, through Prometheus
    let series = rows_until(
        &url,
        &["series", "{job=\"opskit\",__name__=~\"opskit_.+\"}"],
        |rows| !rows.is_empty(),
    );
    assert!(
        series
            .iter()
            .all(|s| s["__name__"].as_str().unwrap().starts_with("opskit_")),
        "{series:?}"
    );
}
