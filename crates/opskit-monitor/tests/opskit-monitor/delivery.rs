//! Delivery from the outbox to fixture servers: retries with the same webhook id (verified as a
//! Standard Webhooks delivery), PagerDuty and Jira payloads field by field.

use opskit_monitor::Checker;
use opskit_monitor::deliver::{Dispatcher, backoff};
use opskit_monitor::scheduler::check_and_record;
use opskit_notify::signing::{ReceivedHeaders, Verifier, WebhookSecret};

use crate::both;
use crate::support::{Backend, Receiver, Service, TestDb, config};

const T0: i64 = 1_790_000_000_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn monitor_with(svc: &Service, destinations: &str, alerts: &str) -> opskit_monitor::Config {
    config(&format!(
        r#"{destinations}
[[monitor]]
name = "api"
group = "prod"
kind = "http"
target = "{}"
conditions = [".status == 200"]
alerts = [{alerts}]
"#,
        svc.url("/switch")
    ))
}

/// Drives the monitor down (3 failures), then up (2 successes), delivering after each result.
async fn incident(
    db: &opskit_monitor::store::Db,
    c: &opskit_monitor::Config,
    svc: &Service,
    dispatcher: &Dispatcher,
) -> i64 {
    let checker = Checker::default();
    let mut t = T0;
    for code in [500, 500, 500, 200, 200] {
        svc.set(code);
        t += 60_000;
        check_and_record(db, &checker, c, &c.monitors[0], t)
            .await
            .unwrap();
        dispatcher.deliver_due(c, t, 4).await.unwrap();
    }
    t
}

both!(delivery::webhook_500_then_200_gets_the_alert_once_with_the_same_id);
pub async fn webhook_500_then_200_gets_the_alert_once_with_the_same_id(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let rx = Receiver::start().await;
    rx.script(&[500]);
    let c = config(&format!(
        r#"[destinations.hook]
type = "webhook"
url = "{}"
secret = "{SECRET}"

[[monitor]]
name = "api"
kind = "http"
target = "{}"
conditions = [".status == 200"]
alerts = [{{ destination = "hook", failure_threshold = 1 }}]
"#,
        rx.url("/hook"),
        svc.url("/switch")
    ));
    let dispatcher = Dispatcher::new(db.clone()).unwrap();
    svc.set(500);
    check_and_record(&db, &Checker::default(), &c, &c.monitors[0], T0)
        .await
        .unwrap();
    assert_eq!(
        dispatcher.deliver_due(&c, T0, 4).await.unwrap(),
        0,
        "500: not delivered"
    );
    // Not due yet: nothing is sent before the backoff.
    assert_eq!(dispatcher.deliver_due(&c, T0 + 10, 4).await.unwrap(), 0);
    assert_eq!(rx.requests().len(), 1);
    let later = T0 + backoff(0).as_millis() as i64;
    assert_eq!(dispatcher.deliver_due(&c, later, 4).await.unwrap(), 1);
    assert_eq!(
        dispatcher
            .deliver_due(&c, later + 3_600_000, 4)
            .await
            .unwrap(),
        0
    );
    let got = rx.requests();
    assert_eq!(
        got.len(),
        2,
        "one failed attempt, one delivery, nothing more"
    );
    let id = |i: usize| got[i].headers["webhook-id"].to_str().unwrap().to_string();
    assert_eq!(id(0), id(1));
    assert_eq!(got[0].raw, got[1].raw, "the same bytes");
    assert_eq!(
        got[0].headers["webhook-signature"],
        got[1].headers["webhook-signature"]
    );
    // A Standard Webhooks receiver accepts it (ours; the same test vectors as the reference
    // library), and would drop the first attempt's duplicate by its id.
    let verifier = Verifier::new(vec![WebhookSecret::parse(SECRET).unwrap()]).unwrap();
    let headers = ReceivedHeaders::from_pairs(
        got[1]
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
    );
    let ts: i64 = got[1].headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    verifier.verify_at(&headers, &got[1].raw, ts).unwrap();
    let body = &got[1].body;
    assert_eq!(body["type"], "monitor.trigger");
    assert_eq!(body["monitor"], "api");
    assert_eq!(body["failed_condition"]["condition"], ".status == 200");
    assert_eq!(body["failed_condition"]["seen"]["status"], 500);
}

both!(delivery::pagerduty_trigger_and_resolve_share_one_dedup_key);
pub async fn pagerduty_trigger_and_resolve_share_one_dedup_key(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("pd-key");
    std::fs::write(&key_file, "R0UTING-KEY-0123456789abcdef\n").unwrap();
    let c = monitor_with(
        &svc,
        &format!(
            "[destinations.pd]\ntype = \"pagerduty\"\nrouting_key = \"file:{}\"\nurl = \"{}\"\nseverity = \"error\"\n",
            key_file.display(),
            rx.url("/v2/enqueue")
        ),
        "\"pd\"",
    );
    let dispatcher = Dispatcher::new(db.clone()).unwrap();
    incident(&db, &c, &svc, &dispatcher).await;
    let got = rx.requests();
    assert_eq!(got.len(), 2, "{got:?}");
    let (trigger, resolve) = (&got[0].body, &got[1].body);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(trigger["routing_key"], "R0UTING-KEY-0123456789abcdef");
    assert_eq!(trigger["event_action"], "trigger");
    let dedup = trigger["dedup_key"].as_str().unwrap();
    assert!(dedup.starts_with("inc_"), "{dedup}");
    assert_eq!(trigger["payload"]["summary"], "api is down");
    assert_eq!(trigger["payload"]["source"], "api");
    assert_eq!(trigger["payload"]["severity"], "error");
    assert_eq!(trigger["payload"]["group"], "prod");
    assert_eq!(trigger["payload"]["class"], "http");
    assert!(
        trigger["payload"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(
        trigger["payload"]["custom_details"]["failed_condition"]["condition"],
        ".status == 200"
    );
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], dedup);
    assert_eq!(resolve["routing_key"], "R0UTING-KEY-0123456789abcdef");
    assert!(resolve.get("payload").is_none());
}

both!(delivery::jira_create_then_comment_and_transition_with_the_stored_key);
pub async fn jira_create_then_comment_and_transition_with_the_stored_key(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let rx = Receiver::start().await;
    let c = monitor_with(
        &svc,
        &format!(
            "[destinations.jira]\ntype = \"jira\"\nurl = \"{}\"\nemail = \"ops@example.com\"\ntoken = \"jira-token\"\nproject = \"OPS\"\nissue_type = \"Incident\"\nlabels = [\"monitoring\"]\n",
            rx.url("")
        ),
        "\"jira\"",
    );
    let dispatcher = Dispatcher::new(db.clone()).unwrap();
    incident(&db, &c, &svc, &dispatcher).await;
    let got = rx.requests();
    let paths: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("POST".into(), "/rest/api/3/search/jql".into()),
            ("POST".into(), "/rest/api/3/issue".into()),
            ("POST".into(), "/rest/api/3/issue/OPS-7/comment".into()),
            ("GET".into(), "/rest/api/3/issue/OPS-7/transitions".into()),
            ("POST".into(), "/rest/api/3/issue/OPS-7/transitions".into()),
        ]
    );
    let auth = got[1].headers["authorization"].to_str().unwrap();
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("ops@example.com:jira-token");
    assert_eq!(auth, format!("Basic {expected}"));
    let fields = &got[1].body["fields"];
    assert_eq!(fields["project"]["key"], "OPS");
    assert_eq!(fields["summary"], "api is down");
    assert_eq!(fields["issuetype"]["name"], "Incident");
    let labels: Vec<&str> = fields["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"monitoring") && labels.contains(&"opskit-monitor"),
        "{labels:?}"
    );
    assert!(
        labels.iter().any(|l| l.starts_with("opskit-inc_")),
        "{labels:?}"
    );
    assert_eq!(fields["description"]["type"], "doc", "{fields}");
    let comment = got[2].body["body"].to_string();
    assert!(comment.contains("api is up again"), "{comment}");
    assert_eq!(got[4].body["transition"]["id"], "31");
}

both!(delivery::slack_gets_trigger_and_resolved);
pub async fn slack_gets_trigger_and_resolved(b: Backend) {
    let Some(tdb) = TestDb::new(b).await else {
        return;
    };
    let db = tdb.open().await;
    let svc = Service::start().await;
    let rx = Receiver::start().await;
    let c = monitor_with(
        &svc,
        &format!(
            "[destinations.slack]\ntype = \"slack\"\nwebhook = \"{}\"\n",
            rx.url("/services/T0/B0/x")
        ),
        "\"slack\"",
    );
    let dispatcher = Dispatcher::new(db.clone()).unwrap();
    incident(&db, &c, &svc, &dispatcher).await;
    let got = rx.requests();
    assert_eq!(got.len(), 2);
    let t = got[0].body.to_string();
    assert!(
        t.contains("[CRITICAL] api is down") && t.contains("#FF0000"),
        "{t}"
    );
    let r = got[1].body.to_string();
    assert!(r.contains("[RESOLVED] api is up again"), "{r}");
}
