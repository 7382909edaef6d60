//! `opskit net send|receive|echo` through the binary: real processes on loopback, exit codes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;

fn opskit() -> Command {
    Command::cargo_bin("opskit").expect("binary built")
}

/// A background `opskit` process whose first stderr line tells its listening address.
struct Server {
    child: Child,
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its address");
        // "... on 127.0.0.1:PORT ..." or "... on tcp://127.0.0.1:PORT"
        let addr = first
            .split_whitespace()
            .find_map(|w| {
                let w = w.trim_start_matches("tcp://").trim_start_matches("udp://");
                w.parse::<std::net::SocketAddr>().ok()
            })
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        Server {
            child,
            addr,
            stderr: rx,
        }
    }

    /// Waits for the process to exit (with a deadline) and returns its code and stdout.
    fn wait(mut self) -> (i32, String, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                use std::io::Read;
                self.child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                let err: Vec<String> = self.stderr.try_iter().collect();
                return (status.code().unwrap_or(-1), out, err.join("\n"));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver(dir: &Path, extra: &[&str]) -> Server {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "net",
        "receive",
        "--bind",
        "127.0.0.1:0",
        "--dir",
        dir,
        "--once",
        "--timeout",
        "20s",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn send_and_receive_once_move_a_file_intact() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("backup.tar");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let rx = receiver(dst.path(), &[]);

    opskit()
        .args(["net", "send", file.to_str().unwrap(), &rx.addr])
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sent backup.tar (5000000 bytes, blake3 ",
        ));
    let (code, out, _) = rx.wait();
    assert_eq!(code, 0);
    assert!(out.contains("received backup.tar"), "{out}");
    assert_eq!(std::fs::read(dst.path().join("backup.tar")).unwrap(), data);
}

#[test]
fn an_existing_file_fails_with_code_1_and_the_receivers_reason() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("app.conf");
    std::fs::write(&file, b"new").unwrap();
    std::fs::write(dst.path().join("app.conf"), b"old").unwrap();
    let rx = receiver(dst.path(), &["--output", "json"]);

    opskit()
        .args(["net", "send", file.to_str().unwrap(), &rx.addr])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the receiver refused \"app.conf\"",
        ))
        .stderr(predicate::str::contains("already exists"))
        .stderr(predicate::str::contains("--overwrite"));
    let (code, _, err) = rx.wait();
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read(dst.path().join("app.conf")).unwrap(), b"old");
}

#[test]
fn overwrite_replaces_and_json_reports_each_file() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let a = src.path().join("a.txt");
    let b = src.path().join("b.txt");
    std::fs::write(&a, b"A").unwrap();
    std::fs::write(&b, b"B").unwrap();
    std::fs::write(dst.path().join("a.txt"), b"old").unwrap();
    let rx = receiver(dst.path(), &["--overwrite", "--output", "json"]);
    let out = opskit()
        .args([
            "net",
            "send",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            &rx.addr,
            "--output",
            "json",
        ])
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "a.txt");
    assert_eq!(lines[0]["size"], 1);
    let (code, out, _) = rx.wait();
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(std::fs::read(dst.path().join("a.txt")).unwrap(), b"A");
}

#[test]
fn exit_codes_for_bad_arguments_and_closed_ports() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    // Nothing listens: a connection failure.
    opskit()
        .args(["net", "send", file.to_str().unwrap(), &closed])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("cannot connect"));
    // A missing file: usage.
    opskit()
        .args(["net", "send", "/nonexistent/file", &closed])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/file"));
    // No address.
    opskit()
        .args(["net", "send", file.to_str().unwrap()])
        .assert()
        .code(2);
    opskit()
        .args(["net", "send", file.to_str().unwrap(), "no-port-here"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("host:port"));
    // A receiver without its directory.
    opskit()
        .args([
            "net",
            "receive",
            "--bind",
            "127.0.0.1:0",
            "--dir",
            "/nonexistent/dir",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/dir"));
}

#[test]
fn echo_serve_and_send_over_tcp_and_udp() {
    for proto in [None, Some("--udp")] {
        let mut args = vec!["net", "echo", "serve", "--bind", "127.0.0.1:0"];
        args.extend(proto);
        let server = Server::start(&args);
        let mut send = vec!["net", "echo", "send", server.addr.as_str(), "hello, echo"];
        send.extend(proto);
        opskit()
            .args(&send)
            .timeout(Duration::from_secs(30))
            .assert()
            .success()
            .stdout("hello, echo\n");
        drop(server);
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    opskit()
        .args(["net", "echo", "send", &closed, "anyone?"])
        .assert()
        .code(3);
}

// ------------------------------------------------------------------ issue 12 #5, issue 18

#[test]
fn send_reports_every_file_and_goes_on_after_a_refusal() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    for n in ["a.txt", "b.txt", "c.txt"] {
        std::fs::write(src.path().join(n), format!("new {n}")).unwrap();
    }
    std::fs::write(dst.path().join("b.txt"), "kept").unwrap();
    let dir = dst.path().to_str().unwrap();
    let server = Server::start(&["net", "receive", "--bind", "127.0.0.1:0", "--dir", dir]);
    let files: Vec<String> = ["a.txt", "b.txt", "c.txt"]
        .iter()
        .map(|n| src.path().join(n).to_str().unwrap().to_string())
        .collect();
    let out = opskit()
        .args(["net", "send"])
        .args(&files)
        .arg(&server.addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("sent a.txt"), "{stdout}");
    assert!(lines[1].starts_with("refused b.txt"), "{stdout}");
    assert!(lines[2].starts_with("sent c.txt"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(dst.path().join("b.txt")).unwrap(),
        "kept"
    );
    assert_eq!(
        std::fs::read_to_string(dst.path().join("c.txt")).unwrap(),
        "new c.txt"
    );

    // the same as JSON, one object per file
    std::fs::remove_file(dst.path().join("a.txt")).unwrap();
    std::fs::remove_file(dst.path().join("c.txt")).unwrap();
    let out = opskit()
        .args(["net", "send", "--output", "json"])
        .args(&files)
        .arg(&server.addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1);
    let statuses: Vec<String> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(statuses, ["sent", "refused", "sent"]);
    drop(server);
}

#[test]
fn after_a_connection_failure_the_rest_is_reported_not_sent() {
    let src = tempfile::tempdir().unwrap();
    for n in ["a.txt", "b.txt"] {
        std::fs::write(src.path().join(n), "x").unwrap();
    }
    // a port with nobody listening
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = opskit()
        .args(["net", "send", "--output", "json"])
        .arg(src.path().join("a.txt"))
        .arg(src.path().join("b.txt"))
        .arg(format!("127.0.0.1:{port}"))
        .timeout(Duration::from_secs(60))
        .assert()
        .code(3);
    let statuses: Vec<String> = String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(statuses, ["failed", "not_sent"]);
}

/// A fake receiver that refuses the first file with `message` (escapes and CRLF included).
fn forging_receiver(message: &'static [u8]) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut hello = [0u8; 16];
        s.read_exact(&mut hello).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut header = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut header).unwrap();
        let mut reply = ((1 + message.len()) as u32).to_be_bytes().to_vec();
        reply.push(0x11);
        reply.extend_from_slice(message);
        s.write_all(&reply).unwrap();
    });
    addr
}

#[test]
fn a_receivers_refusal_cannot_forge_lines_or_drive_the_terminal() {
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("real.txt");
    std::fs::write(&f, "x").unwrap();
    let addr = forging_receiver(b"no\x1b[2K\r\nsent legit.txt (5 bytes)\x1b]0;owned\x07");
    let out = opskit()
        .args(["net", "send"])
        .arg(&f)
        .arg(&addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1);
    let o = out.get_output();
    let all = [o.stdout.clone(), o.stderr.clone()].concat();
    assert!(!all.contains(&0x1b), "{}", String::from_utf8_lossy(&all));
    assert!(!all.contains(&0x07));
    let text = String::from_utf8_lossy(&all);
    assert!(
        !text.lines().any(|l| l.starts_with("sent legit.txt")),
        "a forged line: {text}"
    );
    assert!(text.contains("\\x1b[2K\\r\\nsent legit.txt"), "{text}");
}

#[test]
fn receive_flags_for_slots_and_rates_are_accepted() {
    let dst = tempfile::tempdir().unwrap();
    opskit()
        .args(["net", "receive", "--once", "--max-sessions", "0", "--dir"])
        .arg(dst.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--max-sessions"));
}

// ------------------------------------------------------------------------------ issue 16

/// Pseudo-random bytes (xorshift), so a file does not compress or repeat.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn checksum_sha256_reports_the_digest_sha256sum_prints() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("release.tar.gz");
    std::fs::write(&file, noise(3_000_000, 1)).unwrap();
    let sha256sum = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .expect("sha256sum (coreutils) runs");
    let want = String::from_utf8(sha256sum.stdout).unwrap();
    let want = want.split_whitespace().next().unwrap().to_string();
    assert_eq!(want.len(), 64);
    let rx = receiver(dst.path(), &[]);
    opskit()
        .args(["net", "send", "--checksum", "sha256"])
        .arg(&file)
        .arg(&rx.addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "sent release.tar.gz (3000000 bytes, sha256 {want})"
        )));
    let (code, out, _) = rx.wait();
    assert_eq!(code, 0);
    assert!(out.contains(&format!("sha256 {want}")), "{out}");
}

/// A relay to `to` that forwards the first `cut_after` bytes from the sender, then closes
/// both connections (a cable pulled mid-transfer). Replies pass through.
fn cutting_relay(to: &str, cut_after: u64) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let to = to.to_string();
    std::thread::spawn(move || {
        let (mut client, _) = l.accept().unwrap();
        let mut server = std::net::TcpStream::connect(&to).unwrap();
        let (mut back_from, mut back_to) =
            (server.try_clone().unwrap(), client.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut back_from, &mut back_to);
        });
        let mut left = cut_after;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = match client.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if server.write_all(&buf[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    addr
}

fn json_line(out: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(out);
    serde_json::from_str(text.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn resume_after_a_cut_at_40_percent_sends_only_the_rest() {
    const SIZE: usize = 24 << 20;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("vm.img");
    let data = noise(SIZE, 2);
    std::fs::write(&file, &data).unwrap();
    let dir = dst.path().to_str().unwrap();
    let server = Server::start(&[
        "net",
        "receive",
        "--bind",
        "127.0.0.1:0",
        "--dir",
        dir,
        "--timeout",
        "20s",
    ]);

    // 1. the connection is cut at 40%: the send fails, nothing is stored under the name
    let relay = cutting_relay(&server.addr, SIZE as u64 * 4 / 10);
    let out = opskit()
        .args([
            "net",
            "send",
            "--resume",
            "--timeout",
            "10s",
            "--output",
            "json",
        ])
        .arg(&file)
        .arg(&relay)
        .timeout(Duration::from_secs(60))
        .assert()
        .failure();
    assert_eq!(json_line(&out.get_output().stdout)["status"], "failed");
    // the receiver reports the cut session before the next one starts
    let said = server
        .stderr
        .recv_timeout(Duration::from_secs(30))
        .expect("the receiver reports the cut");
    assert!(said.contains("closed"), "{said}");
    assert!(!dst.path().join("vm.img").exists());

    // 2. the same command again sends the rest only
    let out = opskit()
        .args(["net", "send", "--resume", "--output", "json"])
        .arg(&file)
        .arg(&server.addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let report = json_line(&out.get_output().stdout);
    let resumed = report["resumed_from"].as_u64().unwrap();
    let sent = report["sent"].as_u64().unwrap();
    assert!(resumed > 0 && resumed <= SIZE as u64 * 4 / 10, "{report}");
    assert_eq!(sent, SIZE as u64 - resumed, "{report}");
    assert_eq!(report["algorithm"], "blake3");
    assert_eq!(std::fs::read(dst.path().join("vm.img")).unwrap(), data);
    let names: Vec<String> = std::fs::read_dir(dst.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["vm.img"], "no partial file is left");
    drop(server);
}

#[test]
fn resume_in_text_mode_says_where_it_continued() {
    const SIZE: usize = 8 << 20;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("logs.tar");
    std::fs::write(&file, noise(SIZE, 3)).unwrap();
    let dir = dst.path().to_str().unwrap();
    let server = Server::start(&["net", "receive", "--bind", "127.0.0.1:0", "--dir", dir]);
    let relay = cutting_relay(&server.addr, SIZE as u64 / 2);
    opskit()
        .args(["net", "send", "--resume", "--timeout", "10s"])
        .arg(&file)
        .arg(&relay)
        .timeout(Duration::from_secs(60))
        .assert()
        .failure();
    server
        .stderr
        .recv_timeout(Duration::from_secs(30))
        .expect("the receiver reports the cut");
    opskit()
        .args(["net", "send", "--resume"])
        .arg(&file)
        .arg(&server.addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .stdout(predicate::str::is_match(
            r"^sent logs\.tar \(8388608 bytes, blake3 [0-9a-f]{64}; resumed at byte [1-9][0-9]*, [0-9]+ bytes this time\)\n$",
        ).unwrap());
    drop(server);
}

/// What an opskit of wire format 1 answers to a version 2 hello, byte for byte.
fn version_1_receiver() -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut hello = [0u8; 16];
        s.read_exact(&mut hello).unwrap();
        let msg = format!(
            "protocol version {} is not supported (this receiver speaks 1)",
            u16::from_be_bytes([hello[8], hello[9]])
        );
        let mut reply = ((1 + msg.len()) as u32).to_be_bytes().to_vec();
        reply.push(0x14);
        reply.extend_from_slice(msg.as_bytes());
        s.write_all(&reply).unwrap();
        let mut sink = [0u8; 4096];
        while s.read(&mut sink).unwrap_or(0) > 0 {}
    });
    addr
}

#[test]
fn an_old_receiver_gives_a_clear_protocol_version_error() {
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("a.txt");
    std::fs::write(&f, "x").unwrap();
    let addr = version_1_receiver();
    opskit()
        .args(["net", "send"])
        .arg(&f)
        .arg(&addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "protocol version 2 is not supported",
        ));
}

#[test]
fn a_receiver_answers_an_old_sender_with_its_protocol_version() {
    use std::io::{Read, Write};
    let dst = tempfile::tempdir().unwrap();
    let rx = receiver(dst.path(), &[]);
    let mut s = std::net::TcpStream::connect(&rx.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // a version 1 hello and header, as `opskit net send` of wire format 1 wrote them
    let mut v1 = b"OPSKITXF".to_vec();
    v1.extend_from_slice(&1u16.to_be_bytes());
    v1.extend_from_slice(&0u16.to_be_bytes());
    v1.extend_from_slice(&1u32.to_be_bytes());
    v1.extend_from_slice(&((42 + 1) as u32).to_be_bytes());
    v1.extend_from_slice(&1u64.to_be_bytes());
    v1.extend_from_slice(&[0u8; 32]);
    v1.extend_from_slice(&1u16.to_be_bytes());
    v1.push(b'x');
    s.write_all(&v1).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body[0], 0x14, "protocol error");
    let msg = String::from_utf8_lossy(&body[1..]);
    assert!(msg.contains("protocol version 1 is not supported"), "{msg}");
    assert!(msg.contains("version 2"), "{msg}");
    assert!(std::fs::read_dir(dst.path()).unwrap().next().is_none());
}

/// Sets the modification time of a file or directory (seconds since the epoch).
fn set_mtime(path: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    std::fs::File::open(path)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(t))
        .unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every entry under `root` (not following links): relative path → (kind, mode, mtime s, bytes).
fn tree_of(root: &Path) -> std::collections::BTreeMap<String, (char, u32, i64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut std::collections::BTreeMap<String, (char, u32, i64, Vec<u8>)>,
    ) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let (kind, bytes) = if m.file_type().is_symlink() {
                ('l', Vec::new())
            } else if m.is_dir() {
                walk(root, &path, out);
                ('d', Vec::new())
            } else {
                ('f', std::fs::read(&path).unwrap())
            };
            out.insert(rel, (kind, m.mode() & 0o7777, m.mtime(), bytes));
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn send_r_copies_a_tree_with_modes_times_and_empty_dirs() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let site = src.path().join("site");
    std::fs::create_dir_all(site.join("bin")).unwrap();
    std::fs::create_dir_all(site.join("data/deeper")).unwrap();
    std::fs::create_dir_all(site.join("empty")).unwrap();
    std::fs::write(site.join("secret.txt"), "only me\n").unwrap();
    std::fs::write(site.join("bin/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(site.join("bin/suid"), "x").unwrap();
    std::fs::write(site.join("data/deeper/leaf.bin"), noise(3 << 20, 7)).unwrap();
    std::fs::write(site.join("data/zero-length"), "").unwrap();
    std::os::unix::fs::symlink("secret.txt", site.join("link-to-secret")).unwrap();
    set_mode(&site.join("secret.txt"), 0o600);
    set_mode(&site.join("bin/run.sh"), 0o755);
    set_mode(&site.join("bin/suid"), 0o4755);
    set_mode(&site.join("data/deeper/leaf.bin"), 0o640);
    set_mode(&site.join("data/zero-length"), 0o444);
    set_mode(&site.join("empty"), 0o700);
    set_mode(&site.join("bin"), 0o755);
    set_mode(&site.join("data/deeper"), 0o750);
    set_mode(&site, 0o751);
    // times last, deepest first (writing into a directory changes its time)
    for (i, rel) in [
        "secret.txt",
        "bin/run.sh",
        "bin/suid",
        "data/deeper/leaf.bin",
        "data/zero-length",
        "data/deeper",
        "data",
        "bin",
        "empty",
        "",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&site.join(rel), 1_500_000_000 + i as u64 * 86_400);
    }
    let rx = receiver(dst.path(), &[]);
    let out = opskit()
        .args(["net", "send", "-r"])
        .arg(&site)
        .arg(&rx.addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: skipped"))
        .stderr(predicate::str::contains("link-to-secret: a symbolic link"));
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("sent site/data/deeper/leaf.bin (3145728 bytes, blake3 "),
        "{stdout}"
    );
    assert!(stdout.contains("sent site/empty/ (directory)"), "{stdout}");
    let (code, rx_out, rx_err) = rx.wait();
    assert_eq!(code, 0, "{rx_out}{rx_err}");
    assert!(rx_out.contains("received site/bin/run.sh"), "{rx_out}");

    let mut want = tree_of(src.path());
    want.remove("site/link-to-secret");
    // setuid, setgid and sticky are dropped on the receiver
    want.get_mut("site/bin/suid").unwrap().1 = 0o755;
    let got = tree_of(dst.path());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same entries, the link left out, no temporary files"
    );
    for (rel, (kind, mode, mtime, bytes)) in &want {
        let g = &got[rel];
        assert_eq!(g.0, *kind, "{rel}: kind");
        assert_eq!(g.1, *mode, "{rel}: mode {:o} vs {:o}", g.1, mode);
        assert_eq!(g.2, *mtime, "{rel}: modification time");
        assert!(g.3 == *bytes, "{rel}: contents");
    }
}

/// Sends one version 3 (tree) header for `path` to `addr` and returns the reply's status byte
/// and message (a hand-crafted sender).
fn send_tree_header(addr: &str, path: &str, kind: u8) -> (u8, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut msg = b"OPSKITXF".to_vec();
    msg.extend_from_slice(&3u16.to_be_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(&1u32.to_be_bytes());
    let size: u64 = if kind == 0 { 1 } else { 0 };
    msg.extend_from_slice(&((29 + path.len()) as u32).to_be_bytes());
    msg.extend_from_slice(&size.to_be_bytes());
    msg.push(1); // blake3
    msg.push(0); // flags
    msg.extend_from_slice(&(path.len() as u16).to_be_bytes());
    msg.push(kind);
    msg.extend_from_slice(&0o644u32.to_be_bytes());
    msg.extend_from_slice(&1_600_000_000i64.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    msg.extend_from_slice(path.as_bytes());
    s.write_all(&msg).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    (body[0], String::from_utf8_lossy(&body[1..]).into_owned())
}

#[test]
fn a_crafted_tree_sender_cannot_write_outside_the_target_directory() {
    let dst = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = dst.path().join("target");
    std::fs::create_dir(&target).unwrap();
    // a link inside the target directory that points out of it
    std::os::unix::fs::symlink(outside.path(), target.join("out")).unwrap();
    std::fs::write(target.join("plain"), "a file").unwrap();
    let server = Server::start(&[
        "net",
        "receive",
        "--bind",
        "127.0.0.1:0",
        "--dir",
        target.to_str().unwrap(),
        "--timeout",
        "20s",
    ]);
    let evil = format!("{}/evil", outside.path().display());
    for (path, kind) in [
        ("../evil", 0u8),
        ("a/../../evil", 0),
        (evil.as_str(), 0),
        ("a//evil", 0),
        ("a/./evil", 0),
        ("evil/", 0),
        ("out/evil", 0),
        ("out/sub/evil", 0),
        ("out", 1),
        ("out/newdir", 1),
        ("../evil-dir", 1),
        ("a\\..\\..\\evil", 0),
        ("a/\u{1b}[31mred", 0),
        ("plain/evil", 0),
    ] {
        let (status, msg) = send_tree_header(&server.addr, path, kind);
        assert!(
            status == 0x10 || (path.starts_with("plain") && status == 0x11),
            "{path:?} (kind {kind}) was not refused: status {status:#04x} {msg}"
        );
    }
    assert!(
        std::fs::read_dir(outside.path()).unwrap().next().is_none(),
        "nothing was written through the link"
    );
    assert!(!dst.path().join("evil").exists());
    assert!(!dst.path().join("evil-dir").exists());
    let mut names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["out", "plain"],
        "nothing else is created in the target"
    );
    drop(server);
}

#[test]
fn send_r_to_an_older_receiver_gives_a_clear_protocol_version_error() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("d")).unwrap();
    std::fs::write(src.path().join("d/a.txt"), "x").unwrap();
    let addr = version_1_receiver();
    opskit()
        .args(["net", "send", "-r"])
        .arg(src.path().join("d"))
        .arg(&addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "protocol version 3 is not supported",
        ));
}

#[test]
fn send_r_resume_continues_a_cut_file_of_the_tree() {
    const SIZE: usize = 24 << 20;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let tree = src.path().join("t");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    let data = noise(SIZE, 5);
    std::fs::write(tree.join("sub/vm.img"), &data).unwrap();
    std::fs::write(tree.join("z.txt"), "last").unwrap();
    let server = Server::start(&[
        "net",
        "receive",
        "--bind",
        "127.0.0.1:0",
        "--dir",
        dst.path().to_str().unwrap(),
        "--timeout",
        "20s",
    ]);
    let lines = |out: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    // 1. cut at 40% of the big file: it fails, the entries after it are not sent
    let relay = cutting_relay(&server.addr, SIZE as u64 * 4 / 10);
    let out = opskit()
        .args([
            "net",
            "send",
            "-r",
            "--resume",
            "--timeout",
            "10s",
            "--output",
            "json",
        ])
        .arg(&tree)
        .arg(&relay)
        .timeout(Duration::from_secs(60))
        .assert()
        .failure();
    let first = lines(&out.get_output().stdout);
    assert_eq!(first[0]["name"], "t/sub/vm.img", "{first:?}");
    assert_eq!(first[0]["status"], "failed", "{first:?}");
    assert!(
        first[1..].iter().all(|l| l["status"] == "not_sent"),
        "{first:?}"
    );
    server
        .stderr
        .recv_timeout(Duration::from_secs(30))
        .expect("the receiver reports the cut");
    assert!(!dst.path().join("t/sub/vm.img").exists());

    // 2. again: the big file continues where it was cut, the rest follows
    let out = opskit()
        .args(["net", "send", "-r", "--resume", "--output", "json"])
        .arg(&tree)
        .arg(&server.addr)
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let second = lines(&out.get_output().stdout);
    let big = second
        .iter()
        .find(|l| l["name"] == "t/sub/vm.img")
        .unwrap_or_else(|| panic!("{second:?}"));
    let resumed = big["resumed_from"].as_u64().unwrap();
    assert!(resumed > 0 && resumed <= SIZE as u64 * 4 / 10, "{big}");
    assert_eq!(big["sent"].as_u64().unwrap(), SIZE as u64 - resumed);
    assert_eq!(
        std::fs::read(dst.path().join("t/sub/vm.img")).unwrap(),
        data
    );
    assert_eq!(std::fs::read(dst.path().join("t/z.txt")).unwrap(), b"last");
    let mut names: Vec<String> = std::fs::read_dir(dst.path().join("t/sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["vm.img"], "no partial file is left");
    drop(server);
}
