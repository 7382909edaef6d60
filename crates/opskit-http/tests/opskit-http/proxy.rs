//! The proxy password: read like every other secret, with the same deadline and checks.

use opskit_http::{Client, ClientConfig, Error, ProxyConfig, Secret};

fn with_password(password: Secret) -> Result<Client, Error> {
    Client::new(ClientConfig::default().proxy(ProxyConfig {
        url: "http://127.0.0.1:3128".into(),
        username: Some("ops".into()),
        password: Some(password),
        no_proxy: None,
    }))
}

fn config_message(r: Result<Client, Error>) -> String {
    match r {
        Err(Error::Config { message }) => message,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn an_empty_proxy_password_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let m = config_message(with_password(Secret::file(&empty)));
    assert!(m.contains("proxy password") && m.contains("empty"), "{m}");
    let m = config_message(with_password(Secret::command("printf ''")));
    assert!(m.contains("proxy password") && m.contains("nothing"), "{m}");
    let m = config_message(with_password(Secret::command("exit 3")));
    assert!(m.contains("proxy password") && m.contains("failed"), "{m}");
    let m = config_message(with_password(Secret::env("OPSKIT_TEST_NO_SUCH_PROXY_PW")));
    assert!(m.contains("OPSKIT_TEST_NO_SUCH_PROXY_PW"), "{m}");
    with_password(Secret::value("pw")).unwrap();
}

#[test]
fn a_proxy_password_command_that_hangs_is_stopped_at_the_secret_deadline() {
    let m = config_message(with_password(Secret::command("sleep 30")));
    assert!(m.contains("proxy password"), "{m}");
    assert!(m.contains("timeout") || m.contains("did not finish"), "{m}");
}

#[tokio::test]
async fn a_proxy_password_command_runs_inside_an_async_caller() {
    // Client::new is synchronous and is often called from async code
    with_password(Secret::command("printf pw")).unwrap();
}
