//! `opskit net send` / `receive`: what lands, what is refused, that nothing half-written is
//! ever left behind, the trailer digest, `--resume` and the protocol version.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opskit_net::Error;
use opskit_net::transfer::{self, Checksum, FailureKind, FileReport, ReceiveOptions, SendOptions};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

fn options(dir: &Path) -> ReceiveOptions {
    let mut o = ReceiveOptions::new(dir);
    o.idle_timeout = Duration::from_secs(20);
    o
}

/// Starts a `--once` receiver; returns its address and the session's outcome.
async fn receiver(
    opts: ReceiveOptions,
) -> (SocketAddr, JoinHandle<opskit_net::Result<Vec<FileReport>>>) {
    let listener = transfer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { transfer::receive_once(&listener, &opts, None).await });
    (addr, task)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

async fn send(addr: SocketAddr, files: &[PathBuf]) -> opskit_net::Result<Vec<FileReport>> {
    transfer::send_files(addr, files, &SendOptions::default(), None).await
}

#[tokio::test]
async fn empty_and_small_files_arrive_intact_in_one_send() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let empty = src.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let small = src.path().join("small.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&small, &data).unwrap();
    let third = src.path().join("notes.md");
    std::fs::write(&third, "# notes\n").unwrap();

    let (addr, rx) = receiver(options(dst.path())).await;
    let sent = send(addr, &[empty.clone(), small.clone(), third.clone()])
        .await
        .unwrap();
    let received = rx.await.unwrap().unwrap();

    assert_eq!(entries(dst.path()), ["empty.txt", "notes.md", "small.bin"]);
    assert_eq!(std::fs::read(dst.path().join("small.bin")).unwrap(), data);
    assert_eq!(std::fs::read(dst.path().join("empty.txt")).unwrap(), b"");
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1].algorithm, Checksum::Blake3, "BLAKE3 is the default");
    assert_eq!(sent[1].digest, blake3_hex(&data));
    assert_eq!(sent[0].digest, blake3_hex(b""));
    assert_eq!(sent[1].sent, data.len() as u64);
    assert_eq!(received.len(), 3);
    assert_eq!(received[1].digest, sent[1].digest);
    assert_eq!(received[1].size, data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_gib_sparse_file_arrives_sparse_and_verified() {
    const SIZE: u64 = 3 * 1024 * 1024 * 1024 + 12_345;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join("disk.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(SIZE).unwrap();
        // A little data in the middle so it is not all holes.
        f.seek(SeekFrom::Start(SIZE / 2)).unwrap();
        f.write_all(b"data in the middle of a hole").unwrap();
    }
    let (addr, rx) = receiver(options(dst.path())).await;
    let sent = send(addr, std::slice::from_ref(&path)).await.unwrap();
    rx.await.unwrap().unwrap();

    let out = dst.path().join("disk.img");
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), SIZE);
    assert_eq!(sent[0].size, SIZE);
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&out).unwrap();
        f.seek(SeekFrom::Start(SIZE / 2)).unwrap();
        let mut buf = [0u8; 28];
        f.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"data in the middle of a hole");
    }
    // Holes stay holes: far fewer blocks than the apparent size.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < 64 * 1024 * 1024,
            "{} bytes allocated",
            meta.blocks() * 512
        );
    }
}

/// Writes the hello for `count` files.
async fn raw_hello(stream: &mut TcpStream, count: u32) {
    let mut h = Vec::new();
    h.extend_from_slice(&transfer::MAGIC);
    h.extend_from_slice(&transfer::VERSION.to_be_bytes());
    h.extend_from_slice(&0u16.to_be_bytes());
    h.extend_from_slice(&count.to_be_bytes());
    stream.write_all(&h).await.unwrap();
}

/// A v2 header for `name` (BLAKE3, no flags).
fn header(name: &str, size: u64) -> Vec<u8> {
    transfer::encode_header(name, size, Checksum::Blake3, 0)
}

/// Reads the ACCEPT to a header and starts the data at byte 0.
async fn accept_and_start(stream: &mut TcpStream) {
    let (status, body) = raw_reply(stream).await;
    assert_eq!(
        status,
        0x00,
        "header accepted: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        body.len(),
        41,
        "ACCEPT carries have, algorithm, prefix digest"
    );
    assert_eq!(&body[..8], &0u64.to_be_bytes(), "nothing there yet");
    stream.write_all(&0u64.to_be_bytes()).await.unwrap();
}

/// Writes `data` as chunks of `chunk` bytes.
async fn raw_chunks(stream: &mut TcpStream, data: &[u8], chunk: usize) {
    for c in data.chunks(chunk) {
        stream
            .write_all(&(c.len() as u32).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(c).await.unwrap();
    }
}

/// Reads one reply: status and body.
async fn raw_reply(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let fut = async {
        let len = stream.read_u32().await.unwrap() as usize;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.unwrap();
        (body[0], body[1..].to_vec())
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_corrupt_last_chunk_is_caught_by_the_trailer_digest_and_leaves_no_file() {
    let dst = tempfile::tempdir().unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let data = b"the real content".repeat(200_000); // 3.2 MB: four chunks
    let digest = blake3::hash(&data);
    let mut corrupt = data.clone();
    let last = corrupt.len() - 10;
    corrupt[last] ^= 0x01; // one bit, in the last chunk
    let mut s = TcpStream::connect(addr).await.unwrap();
    raw_hello(&mut s, 1).await;
    s.write_all(&header("a.txt", data.len() as u64))
        .await
        .unwrap();
    accept_and_start(&mut s).await;
    raw_chunks(&mut s, &corrupt, 1 << 20).await;
    s.write_all(&0u32.to_be_bytes()).await.unwrap();
    s.write_all(digest.as_bytes()).await.unwrap(); // the trailer: digest of the real data
    let (status, body) = raw_reply(&mut s).await;
    assert_eq!(status, FailureKind::Checksum.code());
    let msg = String::from_utf8(body).unwrap();
    assert!(msg.contains("blake3"), "{msg}");
    assert!(msg.contains(&digest.to_hex().to_string()), "{msg}");
    drop(s);

    let err = rx.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transfer {
                kind: FailureKind::Checksum,
                ..
            }
        ),
        "{err}"
    );
    assert!(entries(dst.path()).is_empty(), "{:?}", entries(dst.path()));
}

#[tokio::test]
async fn the_same_stream_with_the_right_trailer_is_stored() {
    // the control for the test above: the hand-written stream itself is valid
    let dst = tempfile::tempdir().unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let data = b"the real content".repeat(200_000);
    let mut s = TcpStream::connect(addr).await.unwrap();
    raw_hello(&mut s, 1).await;
    s.write_all(&header("a.txt", data.len() as u64))
        .await
        .unwrap();
    accept_and_start(&mut s).await;
    raw_chunks(&mut s, &data, 1 << 20).await;
    s.write_all(&0u32.to_be_bytes()).await.unwrap();
    s.write_all(blake3::hash(&data).as_bytes()).await.unwrap();
    let (status, body) = raw_reply(&mut s).await;
    assert_eq!(status, 0x01, "DONE");
    assert_eq!(body[0], Checksum::Blake3.code(), "DONE names the algorithm");
    assert_eq!(&body[1..], blake3::hash(&data).as_bytes());
    drop(s);
    rx.await.unwrap().unwrap();
    assert_eq!(std::fs::read(dst.path().join("a.txt")).unwrap(), data);
}

#[tokio::test]
async fn sha256_on_request_gives_the_digest_sha256sum_prints() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("image.iso");
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let opts = SendOptions {
        checksum: Checksum::Sha256,
        ..SendOptions::default()
    };
    let sent = transfer::send_files(addr, std::slice::from_ref(&file), &opts, None)
        .await
        .unwrap();
    let received = rx.await.unwrap().unwrap();
    let want = hex::encode(Sha256::digest(&data));
    assert_eq!(sent[0].algorithm, Checksum::Sha256);
    assert_eq!(sent[0].digest, want);
    assert_eq!(received[0].algorithm, Checksum::Sha256);
    assert_eq!(received[0].digest, want);
    assert_eq!(std::fs::read(dst.path().join("image.iso")).unwrap(), data);
}

#[tokio::test]
async fn an_old_version_1_sender_is_told_the_protocol_version() {
    let dst = tempfile::tempdir().unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // a version 1 session, byte for byte: hello, then a header with the SHA-256 in it
    let mut hello = b"OPSKITXF".to_vec();
    hello.extend_from_slice(&1u16.to_be_bytes());
    hello.extend_from_slice(&0u16.to_be_bytes());
    hello.extend_from_slice(&1u32.to_be_bytes());
    let mut old_header = ((42 + 5) as u32).to_be_bytes().to_vec();
    old_header.extend_from_slice(&3u64.to_be_bytes());
    old_header.extend_from_slice(&Sha256::digest(b"abc"));
    old_header.extend_from_slice(&5u16.to_be_bytes());
    old_header.extend_from_slice(b"a.txt");
    s.write_all(&hello).await.unwrap();
    s.write_all(&old_header).await.unwrap();
    let (status, body) = raw_reply(&mut s).await;
    assert_eq!(status, FailureKind::Protocol.code());
    let msg = String::from_utf8(body).unwrap();
    assert!(msg.contains("protocol version 1"), "{msg}");
    assert!(msg.contains("version 2"), "{msg}");
    drop(s);
    // --once keeps waiting for a sender it can talk to
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("new.txt");
    std::fs::write(&file, b"v2").unwrap();
    send(addr, std::slice::from_ref(&file)).await.unwrap();
    assert_eq!(rx.await.unwrap().unwrap().len(), 1);
    assert_eq!(entries(dst.path()), ["new.txt"]);
}

#[tokio::test]
async fn a_sender_meeting_an_old_receiver_reports_the_protocol_version() {
    // what a version 1 receiver answers to a version 2 hello, byte for byte
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut hello = [0u8; 16];
        s.read_exact(&mut hello).await.unwrap();
        let msg = format!(
            "protocol version {} is not supported (this receiver speaks 1)",
            u16::from_be_bytes([hello[8], hello[9]])
        );
        let mut reply = ((1 + msg.len()) as u32).to_be_bytes().to_vec();
        reply.push(0x14);
        reply.extend_from_slice(msg.as_bytes());
        s.write_all(&reply).await.unwrap();
        let mut sink = vec![0u8; 4096];
        while s.read(&mut sink).await.unwrap_or(0) > 0 {}
    });
    let src = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| {
            let p = src.path().join(n);
            std::fs::write(&p, n).unwrap();
            p
        })
        .collect();
    let outcomes = transfer::send_each(addr, &files, &SendOptions::default(), None)
        .await
        .unwrap();
    match &outcomes[0].1 {
        transfer::SendOutcome::Failed(Error::Rejected { kind, message, .. }) => {
            assert_eq!(*kind, FailureKind::Protocol);
            assert!(message.contains("protocol version 2"), "{message}");
        }
        other => panic!("unexpected: {other:?}"),
    }
    // a protocol refusal ends the send: the second file is not tried in a new session
    assert!(
        matches!(outcomes[1].1, transfer::SendOutcome::NotSent),
        "{:?}",
        outcomes[1].1
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_file_leaves_no_partial_file() {
    let dst = tempfile::tempdir().unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    raw_hello(&mut s, 1).await;
    s.write_all(&header("big.bin", 10 << 20)).await.unwrap();
    accept_and_start(&mut s).await;
    let chunk = vec![1u8; 1 << 20];
    for _ in 0..3 {
        s.write_all(&(chunk.len() as u32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&chunk).await.unwrap();
    }
    drop(s);
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    assert!(entries(dst.path()).is_empty(), "{:?}", entries(dst.path()));
}

#[tokio::test]
async fn more_data_than_the_header_announced_is_refused() {
    let dst = tempfile::tempdir().unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    raw_hello(&mut s, 1).await;
    s.write_all(&header("x", 4)).await.unwrap();
    accept_and_start(&mut s).await;
    s.write_all(&8u32.to_be_bytes()).await.unwrap();
    s.write_all(b"12345678").await.unwrap();
    let (status, _) = raw_reply(&mut s).await;
    assert_eq!(status, FailureKind::Size.code());
    drop(s);
    assert!(rx.await.unwrap().is_err());
    assert!(entries(dst.path()).is_empty());
}

#[tokio::test]
async fn hostile_names_are_refused_with_a_reason() {
    for name in ["../x", "/etc/x", "a/b", "..", ".", "a\\b", "", "nul\0byte"] {
        // The target directory inside a fresh parent, so an escape to `../x` would show.
        let base = tempfile::tempdir().unwrap();
        let dst = base.path().join("in");
        std::fs::create_dir(&dst).unwrap();
        let (addr, rx) = receiver(options(&dst)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        raw_hello(&mut s, 1).await;
        s.write_all(&header(name, 1)).await.unwrap();
        let (status, body) = raw_reply(&mut s).await;
        assert_eq!(status, FailureKind::BadName.code(), "name {name:?}");
        assert!(!body.is_empty(), "a reason is given for {name:?}");
        drop(s);
        assert!(rx.await.unwrap().is_err());
        assert!(entries(&dst).is_empty(), "name {name:?}");
        assert_eq!(entries(base.path()), ["in"], "name {name:?}");
    }
}

#[tokio::test]
async fn bad_magic_is_answered_and_once_keeps_waiting_for_a_real_sender() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let (status, body) = raw_reply(&mut s).await;
    assert_eq!(status, FailureKind::Protocol.code());
    assert!(String::from_utf8_lossy(&body).contains("magic"));
    drop(s);
    // the stray peer did not end --once: the real sender still lands its file
    let file = src.path().join("real.txt");
    std::fs::write(&file, b"the real one").unwrap();
    send(addr, std::slice::from_ref(&file)).await.unwrap();
    let got = rx.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "real.txt");
}

#[tokio::test]
async fn an_existing_file_is_kept_unless_overwrite_is_given() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("config.yml");
    std::fs::write(&file, b"new content").unwrap();
    std::fs::write(dst.path().join("config.yml"), b"old content").unwrap();

    let (addr, rx) = receiver(options(dst.path())).await;
    let err = send(addr, std::slice::from_ref(&file)).await.unwrap_err();
    match &err {
        Error::Rejected {
            file,
            kind,
            message,
        } => {
            assert_eq!(file, "config.yml");
            assert_eq!(*kind, FailureKind::Exists);
            assert!(message.contains("--overwrite"), "{message}");
        }
        other => panic!("unexpected: {other}"),
    }
    assert!(rx.await.unwrap().is_err());
    assert_eq!(
        std::fs::read(dst.path().join("config.yml")).unwrap(),
        b"old content"
    );
    assert_eq!(entries(dst.path()), ["config.yml"]);

    let mut opts = options(dst.path());
    opts.overwrite = true;
    let (addr, rx) = receiver(opts).await;
    send(addr, std::slice::from_ref(&file)).await.unwrap();
    rx.await.unwrap().unwrap();
    assert_eq!(
        std::fs::read(dst.path().join("config.yml")).unwrap(),
        b"new content"
    );
    assert_eq!(entries(dst.path()), ["config.yml"]);
}

#[tokio::test]
async fn the_sender_refuses_directories_and_duplicate_names_before_connecting() {
    let src = tempfile::tempdir().unwrap();
    let a = src.path().join("a");
    std::fs::create_dir(&a).unwrap();
    std::fs::write(a.join("same.txt"), b"1").unwrap();
    std::fs::write(src.path().join("same.txt"), b"2").unwrap();
    // A closed port: the error must come before any connection attempt.
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = send(closed, std::slice::from_ref(&a)).await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = send(closed, &[a.join("same.txt"), src.path().join("same.txt")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unique"), "{err}");
    let err = send(closed, &[src.path().join("same.txt")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_mode_takes_concurrent_sessions() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let listener = transfer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let events: transfer::SessionFn = std::sync::Arc::new(move |e| {
        let _ = tx.send(e);
    });
    let server = tokio::spawn(transfer::serve(listener, options(dst.path()), None, events));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let p = src.path().join(format!("f{i}.txt"));
        std::fs::write(&p, format!("file {i}").repeat(1000)).unwrap();
        tasks.push(tokio::spawn(async move { send(addr, &[p]).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut received = 0;
    while received < 8 {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
        {
            Some(transfer::SessionEvent::Received { .. }) => received += 1,
            other => panic!("unexpected event {other:?}"),
        }
    }
    server.abort();
    assert_eq!(entries(dst.path()).len(), 8);
    assert_eq!(
        std::fs::read_to_string(dst.path().join("f3.txt")).unwrap(),
        "file 3".repeat(1000)
    );
}

#[tokio::test]
async fn once_ignores_a_connection_that_sends_nothing_like_a_port_scan() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("after-the-scan.txt");
    std::fs::write(&file, b"still received").unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    drop(TcpStream::connect(addr).await.unwrap());
    send(addr, std::slice::from_ref(&file)).await.unwrap();
    assert_eq!(rx.await.unwrap().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(dst.path().join("after-the-scan.txt")).unwrap(),
        b"still received"
    );
}

/// A `serve` receiver with `opts`; returns its address and the server task.
async fn server(opts: ReceiveOptions) -> (SocketAddr, JoinHandle<opskit_net::Result<()>>) {
    let listener = transfer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let events: transfer::SessionFn = std::sync::Arc::new(|_| {});
    (
        addr,
        tokio::spawn(transfer::serve(listener, opts, None, events)),
    )
}

fn quick_sender() -> SendOptions {
    SendOptions {
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(8),
        ..SendOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_never_take_the_session_slots() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut o = options(dst.path());
    o.max_connections = 2;
    o.hello_timeout = Duration::from_secs(60);
    let (addr, srv) = server(o).await;
    // 300 connections that send nothing, and 20 that send half a hello and stall
    let mut idle = Vec::new();
    for i in 0..320 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        if i >= 300 {
            c.write_all(b"OPSK").await.unwrap();
        }
        idle.push(c);
    }
    let file = src.path().join("real.txt");
    std::fs::write(&file, b"through the crowd").unwrap();
    let sent = transfer::send_files(addr, std::slice::from_ref(&file), &quick_sender(), None).await;
    assert_eq!(sent.unwrap().len(), 1);
    assert_eq!(
        std::fs::read(dst.path().join("real.txt")).unwrap(),
        b"through the crowd"
    );
    srv.abort();
}

/// A peer that opens a session properly, announces a file, then drips one byte at a time.
async fn dripper(addr: SocketAddr, name: &str) -> JoinHandle<()> {
    let name = name.to_string();
    let mut s = TcpStream::connect(addr).await.unwrap();
    tokio::spawn(async move {
        raw_hello(&mut s, 1).await;
        if s.write_all(&header(&name, 1_000_000)).await.is_err() {
            return;
        }
        let mut reply = [0u8; 4 + 1 + 41];
        if s.read_exact(&mut reply).await.is_err() {
            return;
        }
        if s.write_all(&0u64.to_be_bytes()).await.is_err() {
            return;
        }
        for _ in 0..100_000 {
            let mut frame = 1u32.to_be_bytes().to_vec();
            frame.push(b'x');
            if s.write_all(&frame).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_dripping_bytes_are_cut_off_and_a_real_sender_gets_through() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut o = options(dst.path());
    o.max_connections = 2;
    o.min_rate = Some(64 * 1024);
    o.rate_grace = Duration::from_millis(300);
    let (addr, srv) = server(o).await;
    let drips = vec![dripper(addr, "d1.bin").await, dripper(addr, "d2.bin").await];
    let file = src.path().join("real.txt");
    std::fs::write(&file, b"past the drippers").unwrap();
    let sent = transfer::send_files(addr, std::slice::from_ref(&file), &quick_sender(), None).await;
    assert_eq!(sent.unwrap().len(), 1);
    // The drippers' temp files go when the receiver cuts them off, which may finish after the
    // real sender's file is in place: wait for it (bounded), then nothing but the file is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while entries(dst.path()) != vec!["real.txt".to_string()]
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries(dst.path()), vec!["real.txt".to_string()]);
    for d in drips {
        d.abort();
    }
    srv.abort();
}

#[tokio::test]
async fn a_session_longer_than_the_session_limit_is_cut() {
    let dst = tempfile::tempdir().unwrap();
    let mut o = options(dst.path());
    o.session_timeout = Some(Duration::from_millis(500));
    o.min_rate = None;
    let (addr, rx) = receiver(o).await;
    let d = dripper(addr, "slow.bin").await;
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("session limit"), "{err}");
    d.abort();
    assert!(entries(dst.path()).is_empty());
}

// ------------------------------------------------------------------------------- --resume

/// A relay to `to` that forwards the first `cut_after` bytes of the sender's stream, then
/// closes both connections (a cable pulled mid-transfer). Replies pass through.
async fn cutting_relay(to: SocketAddr, cut_after: u64) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = l.accept().await.unwrap();
        let server = TcpStream::connect(to).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut left = cut_after;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = match cr.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            left -= n as u64;
        }
        back.abort();
        let _ = back.await;
    });
    addr
}

/// A `serve` receiver whose session events arrive on a channel.
async fn watched_server(
    opts: ReceiveOptions,
) -> (
    SocketAddr,
    JoinHandle<opskit_net::Result<()>>,
    tokio::sync::mpsc::UnboundedReceiver<transfer::SessionEvent>,
) {
    let listener = transfer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let events: transfer::SessionFn = std::sync::Arc::new(move |e| {
        let _ = tx.send(e);
    });
    let srv = tokio::spawn(transfer::serve(listener, opts, None, events));
    (addr, srv, rx)
}

async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<transfer::SessionEvent>,
) -> transfer::SessionEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a session event in time")
        .expect("the server is running")
}

fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut out);
    out
}

fn resuming() -> SendOptions {
    SendOptions {
        idle_timeout: Duration::from_secs(10),
        resume: true,
        ..SendOptions::default()
    }
}

/// Sends `file` through a relay that cuts the connection after 40% of its size; returns once
/// the receiver has given up on that session.
async fn cut_at_40_percent(
    addr: SocketAddr,
    file: &Path,
    size: u64,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<transfer::SessionEvent>,
) {
    let relay = cutting_relay(addr, size * 4 / 10).await;
    let err = transfer::send_files(relay, &[file.to_path_buf()], &resuming(), None)
        .await
        .unwrap_err();
    assert!(!matches!(err, Error::Rejected { .. }), "{err}");
    match next_event(events).await {
        transfer::SessionEvent::Failed { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
}

fn partial_files(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with(transfer::PARTIAL_PREFIX))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_cut_at_40_percent_sends_only_the_rest() {
    const SIZE: usize = 24 << 20;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("backup.tar");
    let data = noise(SIZE, 1);
    std::fs::write(&file, &data).unwrap();
    let (addr, srv, mut events) = watched_server(options(dst.path())).await;

    cut_at_40_percent(addr, &file, SIZE as u64, &mut events).await;
    // nothing under the real name; what arrived is kept hidden for the next attempt
    assert!(!dst.path().join("backup.tar").exists());
    let partial = partial_files(dst.path());
    assert_eq!(partial.len(), 1, "{:?}", entries(dst.path()));
    let kept = std::fs::metadata(dst.path().join(&partial[0]))
        .unwrap()
        .len();
    assert!(kept > 0 && kept <= SIZE as u64 * 4 / 10, "{kept}");

    let sent = transfer::send_files(addr, std::slice::from_ref(&file), &resuming(), None)
        .await
        .unwrap();
    assert_eq!(
        sent[0].resumed_from, kept,
        "continues where the receiver is"
    );
    assert_eq!(
        sent[0].sent,
        SIZE as u64 - kept,
        "only the rest goes over the wire"
    );
    assert!(sent[0].sent < SIZE as u64 * 7 / 10);
    assert_eq!(
        sent[0].digest,
        blake3_hex(&data),
        "digest of the whole file"
    );
    match next_event(&mut events).await {
        transfer::SessionEvent::Received { file, .. } => {
            assert_eq!(file.resumed_from, kept);
            assert_eq!(file.digest, blake3_hex(&data));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(std::fs::read(dst.path().join("backup.tar")).unwrap(), data);
    assert_eq!(
        entries(dst.path()),
        ["backup.tar"],
        "the partial file is gone"
    );
    srv.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_the_source_changed_starts_over_and_never_mixes() {
    const SIZE: usize = 16 << 20;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("db.dump");
    std::fs::write(&file, noise(SIZE, 2)).unwrap();
    let (addr, srv, mut events) = watched_server(options(dst.path())).await;
    cut_at_40_percent(addr, &file, SIZE as u64, &mut events).await;
    assert_eq!(partial_files(dst.path()).len(), 1);

    // the source changes in between: same size, other bytes (its start too)
    let changed = noise(SIZE, 3);
    std::fs::write(&file, &changed).unwrap();
    let sent = transfer::send_files(addr, std::slice::from_ref(&file), &resuming(), None)
        .await
        .unwrap();
    assert_eq!(sent[0].resumed_from, 0, "the receiver's prefix is not ours");
    assert_eq!(sent[0].sent, SIZE as u64);
    assert_eq!(std::fs::read(dst.path().join("db.dump")).unwrap(), changed);
    assert_eq!(entries(dst.path()), ["db.dump"]);
    srv.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_resume_a_cut_transfer_leaves_nothing_behind() {
    const SIZE: usize = 8 << 20;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("plain.bin");
    std::fs::write(&file, noise(SIZE, 4)).unwrap();
    let (addr, srv, mut events) = watched_server(options(dst.path())).await;
    let relay = cutting_relay(addr, SIZE as u64 * 4 / 10).await;
    let opts = SendOptions {
        idle_timeout: Duration::from_secs(10),
        ..SendOptions::default()
    };
    transfer::send_files(relay, std::slice::from_ref(&file), &opts, None)
        .await
        .unwrap_err();
    match next_event(&mut events).await {
        transfer::SessionEvent::Failed { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(entries(dst.path()).is_empty(), "{:?}", entries(dst.path()));
    srv.abort();
}

#[tokio::test]
async fn a_partial_file_longer_than_the_source_is_started_over() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("small.txt");
    std::fs::write(&file, b"short content").unwrap();
    // left by an earlier, longer version of the file
    let partial = dst.path().join(transfer::partial_name("small.txt"));
    std::fs::write(&partial, vec![b'x'; 100_000]).unwrap();
    let (addr, rx) = receiver(options(dst.path())).await;
    let sent = transfer::send_files(addr, std::slice::from_ref(&file), &resuming(), None)
        .await
        .unwrap();
    rx.await.unwrap().unwrap();
    assert_eq!(sent[0].resumed_from, 0);
    assert_eq!(
        std::fs::read(dst.path().join("small.txt")).unwrap(),
        b"short content"
    );
    assert_eq!(entries(dst.path()), ["small.txt"]);
}
