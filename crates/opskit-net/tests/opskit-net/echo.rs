//! `opskit net echo`: TCP framing under concurrency and odd write sizes, UDP datagrams.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use opskit_net::echo::{self, EchoOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const T: Duration = Duration::from_secs(10);

async fn tcp_server() -> SocketAddr {
    let listener = echo::bind_tcp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo::serve_tcp(listener, EchoOptions::default(), None));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_many_concurrent_clients_each_get_their_own_message() {
    let addr = tcp_server().await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            tokio::spawn(async move {
                let msg = format!("hello from client {i} ").repeat(i % 7 + 1);
                let reply = echo::send_tcp(addr, msg.as_bytes(), T).await.unwrap();
                assert_eq!(reply, msg.as_bytes());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn tcp_message_bigger_than_one_read_comes_back_whole() {
    let addr = tcp_server().await;
    let msg: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    let reply = echo::send_tcp(addr, &msg, T).await.unwrap();
    assert_eq!(reply.len(), msg.len());
    assert_eq!(reply, msg);
}

#[tokio::test]
async fn tcp_messages_written_in_tiny_pieces_are_not_cut_or_glued() {
    let addr = tcp_server().await;
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.set_nodelay(true).unwrap();
    let messages: [&[u8]; 3] = [b"first message", b"", b"third, after an empty one"];
    let mut wire = Vec::new();
    for m in messages {
        wire.extend_from_slice(&(m.len() as u32).to_be_bytes());
        wire.extend_from_slice(m);
    }
    // One byte per write: the server sees many partial reads.
    for b in &wire {
        raw.write_all(std::slice::from_ref(b)).await.unwrap();
        raw.flush().await.unwrap();
    }
    let mut framed = Framed::new(raw, LengthDelimitedCodec::new());
    for m in messages {
        let frame = tokio::time::timeout(T, framed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(&frame[..], m);
    }
    // The connection is still usable afterwards.
    framed.send(Bytes::from_static(b"again")).await.unwrap();
    let frame = tokio::time::timeout(T, framed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&frame[..], b"again");
}

#[tokio::test]
async fn tcp_send_to_a_closed_port_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = echo::send_tcp(addr, b"x", T).await.unwrap_err();
    assert!(
        matches!(err, opskit_net::Error::Connect { .. }),
        "unexpected: {err}"
    );
}

#[tokio::test]
async fn udp_echo_one_datagram_per_message() {
    let socket = echo::bind_udp("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(echo::serve_udp(socket, None));
    for msg in [&b"ping"[..], &[7u8; 60_000][..]] {
        let reply = echo::send_udp(addr, msg, T, 3).await.unwrap();
        assert_eq!(reply, msg);
    }
    let too_big = vec![0u8; echo::MAX_UDP_MESSAGE + 1];
    let err = echo::send_udp(addr, &too_big, T, 1).await.unwrap_err();
    assert!(err.to_string().contains("larger than the limit"), "{err}");
}

#[tokio::test]
async fn udp_to_a_closed_port_fails_instead_of_hanging() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    drop(socket);
    let err = echo::send_udp(addr, b"anyone?", Duration::from_millis(500), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            opskit_net::Error::Connect { .. } | opskit_net::Error::Timeout { .. }
        ),
        "unexpected: {err}"
    );
}
