//! `opskit notify …` and `opskit webhook sign|verify`, against the local stand-ins for Slack,
//! Teams, Jira and a webhook receiver (shared with opskit-notify's tests).

use assert_cmd::Command;
use predicates::prelude::*;

#[path = "../../../opskit-notify/tests/opskit-notify/fixtures.rs"]
mod fixtures;

use fixtures::{Fault, Fixture, Vendor};

fn opskit() -> Command {
    let mut cmd = Command::cargo_bin("opskit").expect("binary built");
    for var in [
        "SLACK_WEBHOOK_URL",
        "TEAMS_WEBHOOK_URL",
        "JIRA_URL",
        "JIRA_EMAIL",
        "JIRA_API_TOKEN",
        "HOOK_SECRET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A fixture on its own runtime, alive as long as this value.
struct Served {
    _rt: tokio::runtime::Runtime,
    f: Fixture,
}

fn serve(vendor: Vendor) -> Served {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(Fixture::start(vendor));
    Served { _rt: rt, f }
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn slack_alert_from_env_webhook() {
    let s = serve(Vendor::Slack);
    opskit()
        .env("SLACK_WEBHOOK_URL", s.f.url("/services/T/B/SECRET"))
        .args([
            "notify",
            "slack",
            "--severity",
            "warning",
            "--title",
            "Disk 91%",
        ])
        .args([
            "--message",
            "/var/log needs cleaning",
            "--host",
            "web-prod-03",
        ])
        .args(["--field", "Environment=production"])
        .assert()
        .success()
        .stdout(predicate::str::contains("sent to Slack (HTTP 200)"));
    s.f.assert_valid();
    let body = s.f.requests()[0].json();
    assert_eq!(body["attachments"][0]["color"], "#FFA500");
    assert_eq!(body["attachments"][0]["fields"][1]["value"], "production");
}

/// Issue 17: the seeds' basic webhook (`send_slack_webhook`): a plain text, no attachment, with
/// channel, username and icon_emoji — exactly that JSON reaches the webhook.
#[test]
fn slack_plain_text_with_the_seeds_basic_fields_sends_exactly_that_json() {
    let s = serve(Vendor::Slack);
    opskit()
        .env("SLACK_WEBHOOK_URL", s.f.url("/services/T/B/SECRET"))
        .args([
            "notify",
            "slack",
            "--text",
            ":warning: Server web01 is down!",
        ])
        .args(["--channel", "#ops-alerts", "--username", "Python Bot"])
        .args(["--icon-emoji", ":robot_face:"])
        .assert()
        .success()
        .stdout(predicate::str::contains("sent to Slack (HTTP 200)"));
    s.f.assert_valid();
    let sent = s.f.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].json(),
        serde_json::json!({
            "text": ":warning: Server web01 is down!",
            "channel": "#ops-alerts",
            "username": "Python Bot",
            "icon_emoji": ":robot_face:",
        })
    );

    // only --text: {"text": ...} and nothing else; an emoji without colons gets them
    opskit()
        .env("SLACK_WEBHOOK_URL", s.f.url("/services/T/B/SECRET"))
        .args(["notify", "slack", "--text", "deploy done"])
        .assert()
        .success();
    opskit()
        .env("SLACK_WEBHOOK_URL", s.f.url("/services/T/B/SECRET"))
        .args(["notify", "slack", "--text", "x", "--icon-emoji", "rocket"])
        .assert()
        .success();
    s.f.assert_valid();
    let sent = s.f.requests();
    assert_eq!(sent[1].json(), serde_json::json!({"text": "deploy done"}));
    assert_eq!(
        sent[2].json(),
        serde_json::json!({"text": "x", "icon_emoji": ":rocket:"})
    );
}

/// The overrides go on an alert too, beside its attachment.
#[test]
fn slack_alert_with_channel_username_and_icon() {
    let s = serve(Vendor::Slack);
    opskit()
        .args([
            "notify",
            "slack",
            "--webhook",
            &s.f.url("/services/T/B/SECRET"),
        ])
        .args([
            "--severity",
            "critical",
            "--title",
            "DB down",
            "--message",
            "failover",
        ])
        .args([
            "--channel",
            "@oncall",
            "--username",
            "opskit",
            "--icon-emoji",
            ":fire:",
        ])
        .assert()
        .success();
    s.f.assert_valid();
    let body = s.f.requests()[0].json();
    assert_eq!(body["channel"], "@oncall");
    assert_eq!(body["username"], "opskit");
    assert_eq!(body["icon_emoji"], ":fire:");
    assert_eq!(body["text"], "[CRITICAL] DB down");
    assert_eq!(body["attachments"][0]["text"], "failover");
}

/// Bad values are usage errors before any request; --text and --title do not mix; without
/// --text an alert still needs --title and --message.
#[test]
fn slack_text_and_overrides_are_checked_before_sending() {
    let s = serve(Vendor::Slack);
    let url = s.f.url("/services/T/B/SECRET");
    let runs: [(&[&str], &str); 5] = [
        (&["--text", "x", "--channel", "#two words"], "space"),
        (&["--text", "x", "--icon-emoji", ":no way:"], "emoji"),
        (&["--text", "   "], "text is empty"),
        (&["--text", "x", "--title", "t"], "cannot be used with"),
        (&["--title", "t"], "--message"),
    ];
    for (args, says) in runs {
        opskit()
            .args(["notify", "slack", "--webhook", &url])
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
    assert!(s.f.requests().is_empty());
}

#[test]
fn slack_missing_webhook_is_a_usage_error_naming_the_variable() {
    opskit()
        .args(["notify", "slack", "--title", "t", "--message", "m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SLACK_WEBHOOK_URL"));
}

#[test]
fn slack_failing_for_good_exits_5_with_what_slack_said() {
    let s = serve(Vendor::Slack);
    s.f.fail_next(std::iter::repeat_n(Fault::Status(503), 5));
    opskit()
        .env("SLACK_WEBHOOK_URL", s.f.url("/services/T/B/SECRET"))
        .args([
            "notify",
            "slack",
            "--title",
            "t",
            "--message",
            "m",
            "--retries",
            "1",
        ])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("gave up after 2 attempts"))
        .stderr(predicate::str::contains("HTTP 503"))
        .stderr(predicate::str::contains("SECRET").not());
}

#[test]
fn teams_adaptive_and_messagecard() {
    let s = serve(Vendor::TeamsWorkflows);
    opskit()
        .env("TEAMS_WEBHOOK_URL", s.f.url("/workflows/x"))
        .args([
            "notify",
            "teams",
            "--severity",
            "critical",
            "--title",
            "DB down",
            "--message",
            "failover",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("sent to Teams (HTTP 202)"));
    s.f.assert_valid();

    let legacy = serve(Vendor::TeamsConnector);
    opskit()
        .args([
            "notify",
            "teams",
            "--webhook",
            &legacy.f.url("/webhookb2/x"),
            "--format",
            "messagecard",
        ])
        .args(["--title", "DB down", "--message", "failover"])
        .assert()
        .success();
    legacy.f.assert_valid();
}

#[test]
fn jira_creates_then_dedupes() {
    let s = serve(Vendor::Jira {
        email: "ops@example.com".into(),
        token: "tok".into(),
    });
    let run = || {
        let mut c = opskit();
        c.env("JIRA_API_TOKEN", "tok")
            .args([
                "notify",
                "jira",
                "--url",
                &s.f.url(""),
                "--email",
                "ops@example.com",
            ])
            .args(["--project", "OPS", "--summary", "[ALERT] web-1 disk full"])
            .args(["--description", "91% on /var", "--priority", "High"])
            .args(["--label", "monitoring", "--dedupe"]);
        c
    };
    run()
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "created OPS-1 {}",
            s.f.url("/browse/OPS-1")
        )));
    run()
        .assert()
        .success()
        .stdout(predicate::str::contains("commented on OPS-1"));
    s.f.assert_valid();
    assert_eq!(s.f.issues().len(), 1);
}

#[test]
fn jira_bad_label_is_a_usage_error_before_any_request() {
    opskit()
        .env("JIRA_API_TOKEN", "tok")
        .args([
            "notify",
            "jira",
            "--url",
            "http://127.0.0.1:9",
            "--email",
            "e@x",
        ])
        .args(["--project", "OPS", "--summary", "s", "--label", "two words"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("spaces"));
}

#[test]
fn webhook_is_signed_retried_and_verifiable() {
    let s = serve(Vendor::Webhook);
    s.f.fail_next([Fault::Status(502)]);
    opskit()
        .env("HOOK_SECRET", SECRET)
        .args([
            "notify",
            "webhook",
            &s.f.url("/api/data"),
            "--secret",
            "env:HOOK_SECRET",
        ])
        .args(["--data", r#"{"event":"backup.done"}"#, "--id", "msg_cli_1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "delivered msg_cli_1 (HTTP 204 after 2 attempts)",
        ));
    let reqs = s.f.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter()
            .all(|r| r.header("webhook-id").as_deref() == Some("msg_cli_1"))
    );
    // The receiver side, with the CLI: the recorded headers and body verify.
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let block: String = reqs[1]
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap()))
        .collect();
    std::fs::write(&headers, block).unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, &reqs[1].body).unwrap();
    opskit()
        .args(["webhook", "verify", "--secret", SECRET, "--headers"])
        .arg(&headers)
        .arg("--data")
        .arg(format!("@{}", body.display()))
        .assert()
        .success()
        .stdout(predicate::str::contains("valid: webhook-id msg_cli_1"));
}

#[test]
fn webhook_to_a_closed_port_exits_3() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    opskit()
        .args([
            "notify",
            "webhook",
            &format!("http://127.0.0.1:{port}/"),
            "--data",
            "{}",
        ])
        .args(["--retries", "0"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("cannot connect"));
}

#[test]
fn webhook_data_must_be_json() {
    opskit()
        .args([
            "notify",
            "webhook",
            "http://127.0.0.1:9/",
            "--data",
            "not json",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not valid JSON"));
}

#[test]
fn sign_prints_the_spec_vector_headers() {
    // Standard Webhooks reference vector (standard-webhooks/standard-webhooks,
    // libraries/go/webhook_test.go, TestWebhookSign).
    opskit()
        .args([
            "webhook",
            "sign",
            "--secret",
            SECRET,
            "--id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
        ])
        .args([
            "--timestamp",
            "1614265330",
            "--data",
            r#"{"test": 2432232314}"#,
        ])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\nwebhook-timestamp: 1614265330\n\
             webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n",
        ));
}

#[test]
fn sign_x_signature_style() {
    opskit()
        .args([
            "webhook",
            "sign",
            "--style",
            "x-signature",
            "--secret",
            "It's a Secret to Everybody",
        ])
        .args(["--data", "\"Hello, World!\""])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("X-Signature: sha256="));
}

/// Signs `data` now with the CLI and writes the headers to a file.
fn signed_headers(dir: &std::path::Path, data: &str) -> std::path::PathBuf {
    let out = opskit()
        .args(["webhook", "sign", "--secret", SECRET, "--data", data])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.join("headers.txt");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

#[test]
fn verify_rejects_each_problem_with_its_own_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = r#"{"alert":"disk full"}"#;
    let headers = signed_headers(dir.path(), data);
    let verify = |secret: &str, data: &str| {
        let mut c = opskit();
        c.args([
            "webhook",
            "verify",
            "--secret",
            secret,
            "--data",
            data,
            "--headers",
        ])
        .arg(&headers);
        c
    };
    verify(SECRET, data).assert().success();
    verify(SECRET, r#"{"alert":"disk fine"}"#)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad signature"));
    verify("whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=", data)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong secret"));
    // The spec vector was signed in 2021: far outside the 5-minute tolerance.
    opskit()
        .args([
            "webhook",
            "verify",
            "--secret",
            SECRET,
            "--id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
        ])
        .args(["--timestamp", "1614265330"])
        .args([
            "--signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ])
        .args(["--data", r#"{"test": 2432232314}"#])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("timestamp too old"));
    let seen = dir.path().join("seen-ids");
    let replay = || {
        let mut c = verify(SECRET, data);
        c.arg("--seen-ids").arg(&seen);
        c
    };
    replay().assert().success();
    replay()
        .assert()
        .code(1)
        .stderr(predicate::str::contains("replayed"));
    opskit()
        .args([
            "webhook", "verify", "--secret", SECRET, "--data", data, "--id", "x",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("malformed headers"));
}

#[test]
fn slack_connection_failure_exits_3_without_printing_the_webhook_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    opskit()
        .env(
            "SLACK_WEBHOOK_URL",
            format!("http://127.0.0.1:{port}/services/T0/B0/TOPSECRETTOKEN"),
        )
        .args([
            "notify",
            "slack",
            "--title",
            "t",
            "--message",
            "m",
            "--retries",
            "0",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("Slack: cannot connect"))
        .stderr(predicate::str::contains("TOPSECRETTOKEN").not());
}

#[test]
fn x_signature_round_trip_through_a_headers_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = r#"{"host":"web-1","status":"down"}"#;
    let out = opskit()
        .env("PLAIN", "s3cret")
        .args([
            "webhook",
            "sign",
            "--style",
            "x-signature",
            "--secret",
            "env:PLAIN",
            "--data",
            data,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let headers = dir.path().join("h");
    std::fs::write(&headers, &out.stdout).unwrap();
    let verify = |body: &str| {
        let mut c = opskit();
        c.env("PLAIN", "s3cret")
            .args([
                "webhook",
                "verify",
                "--style",
                "x-signature",
                "--secret",
                "env:PLAIN",
            ])
            .args(["--data", body, "--headers"])
            .arg(&headers);
        c
    };
    verify(data)
        .assert()
        .success()
        .stdout(predicate::str::contains("valid X-Signature"));
    verify(r#"{"host":"web-1","status":"up"}"#)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad signature"));
}

#[test]
fn verify_checks_bodies_that_are_not_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "plain text, not JSON").unwrap();
    opskit()
        .args(["webhook", "verify", "--secret", SECRET, "--id", "msg_1"])
        .args([
            "--timestamp",
            "1614265330",
            "--signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ])
        .arg("--data")
        .arg(format!("@{}", body.display()))
        .args(["--tolerance", "0"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("timestamp too old"));
}

/// Issue 12 (defect 12): every duration flag takes the same syntax as `ssh`/`net` (`1s`, `500ms`).
#[test]
fn notify_timeout_takes_the_common_duration_syntax() {
    let s = serve(Vendor::Slack);
    for timeout in ["1s", "1500ms", "2"] {
        opskit()
            .env("SLACK_WEBHOOK_URL", s.f.url("/services/T/B/SECRET"))
            .args(["notify", "slack", "--title", "t", "--message", "m"])
            .args(["--timeout", timeout])
            .assert()
            .success()
            .stdout(predicate::str::contains("sent to Slack"));
    }
    opskit()
        .args(["notify", "slack", "--title", "t", "--message", "m"])
        .args(["--timeout", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("500ms, 30s, 5m"));
}

/// Issue 12 (defect 19): a failing `cmd:` secret is a failed command, not "authentication failed".
#[test]
fn a_failing_cmd_secret_says_the_command_failed() {
    opskit()
        .args(["notify", "slack", "--webhook", "cmd:exit 3"])
        .args(["--title", "t", "--message", "m"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`exit 3` failed"))
        .stderr(predicate::str::contains("authentication").not());
}

/// Issue 12 (defect 19): the reason is named once, in the README's words.
#[test]
fn verify_names_each_reason_once_in_the_readme_words() {
    let dir = tempfile::tempdir().unwrap();
    let data = r#"{"alert":"disk full"}"#;
    let headers = signed_headers(dir.path(), data);
    let seen = dir.path().join("seen-ids");
    let verify = || {
        let mut c = opskit();
        c.args(["webhook", "verify", "--secret", SECRET, "--data", data])
            .arg("--headers")
            .arg(&headers)
            .arg("--seen-ids")
            .arg(&seen)
            .args(["--tolerance", "10m"]);
        c
    };
    verify().assert().success();
    let out = verify().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("replayed").count(), 1, "{err}");
    let out = opskit()
        .args(["webhook", "verify", "--secret", SECRET, "--data", data])
        .args(["--id", "x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("malformed headers"), "{err}");
    assert!(!err.contains("malformed_header"), "{err}");
}
