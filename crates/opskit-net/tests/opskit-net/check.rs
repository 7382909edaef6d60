//! `check` against an open port, a closed one, and a listener that appears late.

use std::time::Duration;

use opskit_net::check::{CheckState, check_all, check_one};
use opskit_net::target::Endpoint;

use crate::support::{from_listener, listener, reserved_port};

fn ep(port: u16) -> Endpoint {
    Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap()
}

#[tokio::test]
async fn open_and_refused_targets_in_input_order() {
    let l = listener().await;
    let (_hold, closed) = reserved_port();
    let results = check_all(&[ep(l.port), ep(closed)], Duration::from_secs(5), 8).await;
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].state, CheckState::Open);
    assert_eq!(results[0].target, format!("127.0.0.1:{}", l.port));
    assert_eq!(results[1].state, CheckState::Refused);
    assert!(
        results[1]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("refused")
    );
}

#[tokio::test]
async fn a_listener_that_appears_later_is_open_once_it_listens() {
    let (socket, port) = reserved_port();
    assert_eq!(
        check_one(&ep(port), Duration::from_secs(5)).await.state,
        CheckState::Refused
    );
    let _l = from_listener(socket.listen(128).unwrap());
    assert_eq!(
        check_one(&ep(port), Duration::from_secs(5)).await.state,
        CheckState::Open
    );
}

#[tokio::test]
async fn names_resolve_through_the_system_resolver() {
    let l = listener().await;
    let r = check_one(
        &Endpoint::parse(&format!("localhost:{}", l.port)).unwrap(),
        Duration::from_secs(5),
    )
    .await;
    // localhost may resolve to ::1 first; the check tries every address.
    assert_eq!(r.state, CheckState::Open, "{r:?}");
}
