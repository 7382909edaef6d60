//! Each check kind against a fixture the test controls, and what a failing condition records.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use opskit_monitor::{Checker, Status};
use serde_json::json;

use crate::support::{Service, config};

async fn run_one(text: &str) -> opskit_monitor::Report {
    let cfg = config(text);
    Checker::default().run(&cfg.monitors[0]).await
}

#[tokio::test]
async fn http_up_down_wrong_body_and_slow() {
    let svc = Service::start().await;
    let up = run_one(&format!(
        r#"[[monitor]]
name = "api"
kind = "http"
target = "{}"
conditions = [".status == 200", ".response_time_ms < 2000", '.body.status == "UP"']
"#,
        svc.url("/up")
    ))
    .await;
    assert_eq!(up.status, Status::Up, "{up:?}");
    assert_eq!(up.result["status"], 200);
    assert!(up.reason.is_none());

    let down = run_one(&format!(
        "[[monitor]]\nname = \"api\"\nkind = \"http\"\ntarget = \"{}\"\n",
        svc.url("/down")
    ))
    .await;
    assert_eq!(down.status, Status::Down);
    let failed = down.failed_condition.as_ref().expect("a failed condition");
    assert_eq!(failed.condition, ".status >= 200 and .status < 400");
    assert_eq!(failed.seen["status"], 503);
    assert_eq!(failed.seen["body_excerpt"], "maintenance");

    let wrong = run_one(&format!(
        r#"[[monitor]]
name = "api"
kind = "http"
target = "{}"
conditions = [".status == 200", '.body.status == "UP"']
"#,
        svc.url("/wrong-body")
    ))
    .await;
    assert_eq!(wrong.status, Status::Down);
    let failed = wrong.failed_condition.as_ref().unwrap();
    assert_eq!(failed.condition, ".body.status == \"UP\"");
    assert_eq!(failed.got, json!(false));
    assert!(
        failed.seen["body_excerpt"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{failed:?}"
    );
    let reason = wrong.reason.unwrap();
    assert!(
        reason.contains("status=200") && reason.contains("DOWN"),
        "{reason}"
    );

    let slow = run_one(&format!(
        "[[monitor]]\nname = \"api\"\nkind = \"http\"\ntarget = \"{}\"\ntimeout = \"300ms\"\n",
        svc.url("/slow")
    ))
    .await;
    assert_eq!(slow.status, Status::Down);
    assert!(slow.reason.unwrap().contains("timeout"), "slow");
}

#[tokio::test]
async fn tcp_open_and_closed_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = run_one(&format!(
        "[[monitor]]\nname = \"p\"\nkind = \"tcp\"\ntarget = \"{open}\"\n"
    ))
    .await;
    assert_eq!(r.status, Status::Up, "{r:?}");
    assert_eq!(r.result["connected"], true);
    let r = run_one(&format!(
        "[[monitor]]\nname = \"p\"\nkind = \"tcp\"\ntarget = \"{closed}\"\n"
    ))
    .await;
    assert_eq!(r.status, Status::Down);
    assert!(r.reason.unwrap().contains("refused"));
}

#[tokio::test]
async fn dns_answers_against_dnsmasq() {
    let Some(server) = crate::dns_server() else {
        return;
    };
    let r = run_one(&format!(
        "[[monitor]]\nname = \"d\"\nkind = \"dns\"\ntarget = \"web01.test\"\nserver = \"{server}\"\nexpected = [\"10.0.0.11\"]\n"
    ))
    .await;
    assert_eq!(r.status, Status::Up, "{r:?}");
    assert_eq!(r.result["answers"], json!(["10.0.0.11"]));
    let r = run_one(&format!(
        "[[monitor]]\nname = \"d\"\nkind = \"dns\"\ntarget = \"web01.test\"\nserver = \"{server}\"\nexpected = [\"10.0.0.99\"]\n"
    ))
    .await;
    assert_eq!(r.status, Status::Down);
    assert!(r.reason.unwrap().contains("10.0.0.11"));
}

#[tokio::test]
async fn tls_certificate_expiry_and_chain() {
    let (addr, pem, _dir) = crate::tls::serve_expiring_cert(10).await;
    let bundle = _dir.path().join("ca.pem");
    std::fs::write(&bundle, &pem).unwrap();
    let r = run_one(&format!(
        "[[monitor]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"localhost:{}\"\nca_bundle = \"{}\"\nconditions = [\".chain_valid\", \".cert.expires_in_days > 14\"]\n",
        addr.port(),
        bundle.display()
    ))
    .await;
    assert_eq!(r.status, Status::Down, "{r:?}");
    let failed = r.failed_condition.unwrap();
    assert_eq!(failed.condition, ".cert.expires_in_days > 14");
    let days = failed.seen["cert"]["expires_in_days"].as_f64().unwrap();
    assert!((9.0..=10.0).contains(&days), "{days}");
    assert_eq!(r.result["chain_valid"], true);

    // Without the CA the chain is not trusted, and the certificate is still described.
    let r = run_one(&format!(
        "[[monitor]]\nname = \"t\"\nkind = \"tls\"\ntarget = \"localhost:{}\"\n",
        addr.port()
    ))
    .await;
    assert_eq!(r.status, Status::Down);
    assert_eq!(r.result["chain_valid"], false);
    assert!(
        r.result["chain_error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer")
    );
    assert!(r.result["cert"]["dns_names"][0] == "localhost");
}

#[tokio::test]
async fn ssh_exit_status_and_stdout_in_conditions() {
    let Some(sshd) = crate::sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.host_pub),
    )
    .unwrap();
    let text = |cmd: &str, cond: &str| {
        format!(
            "[[monitor]]\nname = \"s\"\nkind = \"ssh\"\ntarget = \"{}@127.0.0.1:{}\"\ncommand = \"{cmd}\"\nknown_hosts = \"{}\"\nidentity = \"{}\"\nconditions = [{cond}]\ntimeout = \"20s\"\n",
            sshd.user,
            sshd.port,
            kh.display(),
            sshd.key
        )
    };
    let r = run_one(&text(
        "echo disk-ok",
        "'.exit_code == 0', '.stdout | contains(\"disk-ok\")'",
    ))
    .await;
    assert_eq!(r.status, Status::Up, "{r:?}");
    let r = run_one(&text("echo full; exit 3", "'.exit_code == 0'")).await;
    assert_eq!(r.status, Status::Down);
    assert_eq!(r.failed_condition.unwrap().seen["exit_code"], 3);

    // Strict host keys: a known_hosts without the server's key is refused, not accepted.
    std::fs::write(&kh, "").unwrap();
    let r = run_one(&text("true", "'.exit_code == 0'")).await;
    assert_eq!(r.status, Status::Down);
    assert!(
        r.reason.unwrap().to_lowercase().contains("host key"),
        "hostkey"
    );
}

#[tokio::test]
async fn icmp_answers_or_says_why_not() {
    let r = run_one(
        "[[monitor]]\nname = \"i\"\nkind = \"icmp\"\ntarget = \"127.0.0.1\"\ntimeout = \"3s\"\n",
    )
    .await;
    match r.status {
        Status::Up => assert_eq!(r.result["reachable"], true),
        _ => {
            let why = r.reason.unwrap();
            assert!(why.contains("ping_group_range"), "{why}");
        }
    }
}

#[tokio::test]
async fn heartbeat_down_after_period_plus_grace() {
    let now = Arc::new(AtomicI64::new(1_000_000));
    let clock = now.clone();
    let checker = Checker::new(Arc::new(move || clock.load(Ordering::SeqCst)));
    let cfg = config(
        "[[monitor]]\nname = \"backup\"\nkind = \"heartbeat\"\ntoken = \"backup-token-1\"\ninterval = \"60s\"\ngrace = \"30s\"\n",
    );
    let m = &cfg.monitors[0];
    // Just started: no news is not bad news yet.
    assert_eq!(checker.run(m).await.status, Status::Up);
    now.fetch_add(91_000, Ordering::SeqCst);
    let r = checker.run(m).await;
    assert_eq!(r.status, Status::Down);
    assert_eq!(r.result["received"], false);
    checker.ping("backup-token-1");
    now.fetch_add(89_000, Ordering::SeqCst);
    assert_eq!(checker.run(m).await.status, Status::Up);
    now.fetch_add(2_000, Ordering::SeqCst);
    assert_eq!(checker.run(m).await.status, Status::Down);
}
