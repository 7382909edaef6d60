//! `opskit net connect` / `opskit net listen` (issue 17): raw bytes between stdin/stdout and a
//! TCP, UDP or Unix socket, like nc — through the real binary, on loopback.

use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("opskit")
}

fn opskit(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c
}

/// Starts `opskit net listen ARGS` with piped stdio and returns it with what its first stderr
/// line names (`127.0.0.1:PORT`, or the unix path) and the rest of its stderr.
fn listen(args: &[&str]) -> (Child, String, BufReader<ChildStderr>) {
    let mut child = opskit(&[&["net", "listen"], args].concat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let at = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"));
    let at = at
        .strip_prefix("tcp://")
        .or_else(|| at.strip_prefix("udp://"))
        .or_else(|| at.strip_prefix("unix:"))
        .unwrap()
        .to_owned();
    (child, at, err)
}

/// Waits for `child` to exit, killing it (and failing) after `limit`: a guard against a hang,
/// not a timing assertion.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rest(mut err: BufReader<ChildStderr>) -> String {
    let mut s = String::new();
    let _ = err.read_to_string(&mut s);
    s
}

const GIB: u64 = 1 << 30;

/// Writes `len` deterministic pseudo-random bytes (BLAKE3's output stream of `seed`) into `to`,
/// closes it and returns the BLAKE3 hash of what was written.
fn feed(mut to: impl Write, seed: &str, len: u64) -> blake3::Hash {
    let mut xof = blake3::Hasher::new_derive_key("opskit net_raw test stream")
        .update(seed.as_bytes())
        .finalize_xof();
    let mut hash = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        xof.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        to.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    drop(to);
    hash.finalize()
}

/// Reads `from` to its end: how many bytes and their BLAKE3 hash.
fn drain(mut from: impl Read) -> (u64, blake3::Hash) {
    let mut hash = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            return (total, hash.finalize());
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
}

/// 1 GiB each way at the same time, connect ↔ listen, nothing stored on disk: both streams
/// arrive byte for byte (same length, same hash), each side passes its stdin's end on as a
/// half-close and still reads until the other is done, and both exit 0.
#[test]
fn connect_and_listen_carry_a_gib_each_way_byte_exact() {
    let (mut server, addr, server_err) = listen(&["0"]);
    let mut client = opskit(&["net", "connect", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let to_client = client.stdin.take().unwrap();
    let to_server = server.stdin.take().unwrap();
    let from_client = client.stdout.take().unwrap();
    let from_server = server.stdout.take().unwrap();
    let up = std::thread::spawn(move || feed(to_client, "client to server", GIB));
    let down = std::thread::spawn(move || feed(to_server, "server to client", GIB));
    let at_server = std::thread::spawn(move || drain(from_server));
    let at_client = std::thread::spawn(move || drain(from_client));
    let sent_up = up.join().unwrap();
    let sent_down = down.join().unwrap();
    let (n_server, got_server) = at_server.join().unwrap();
    let (n_client, got_client) = at_client.join().unwrap();
    let limit = Duration::from_secs(600);
    let cs = wait_bounded(&mut client, limit, "net connect");
    let ss = wait_bounded(&mut server, limit, "net listen");
    let mut client_err = String::new();
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut client_err)
        .unwrap();
    assert_eq!((n_server, got_server), (GIB, sent_up), "client → server");
    assert_eq!((n_client, got_client), (GIB, sent_down), "server → client");
    assert!(cs.success(), "connect: {cs:?} {client_err}");
    assert!(ss.success(), "listen: {ss:?} {}", rest(server_err));
}

/// Listen accepts one connection by default: a second client is refused once the first is in.
/// `-v` says who connected and what moved.
#[test]
fn listen_takes_one_connection_and_verbose_counts_bytes() {
    let (mut server, addr, server_err) = listen(&["0", "-v"]);
    drop(server.stdin.take());
    let out = opskit(&["net", "connect", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = out;
    first.stdin.take().unwrap().write_all(b"one\n").unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{first:?}");
    let status = wait_bounded(&mut server, Duration::from_secs(60), "net listen");
    assert!(status.success());
    let mut stdout = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(stdout, "one\n");
    let said = rest(server_err);
    assert!(said.contains("connection from tcp://127.0.0.1:"), "{said}");
    assert!(said.contains("sent 0 bytes, received 4 bytes"), "{said}");
    // it is gone: the port refuses now
    let again = opskit(&["net", "connect", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3), "{again:?}");
}

/// `--keep-open` accepts connection after connection; each ends when its client closes.
#[test]
fn listen_keep_open_takes_clients_one_after_another() {
    let (mut server, addr, _err) = listen(&["0", "--keep-open"]);
    for word in ["first\n", "second\n"] {
        let mut c = opskit(&["net", "connect", &addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(word.as_bytes()).unwrap();
        let st = wait_bounded(&mut c, Duration::from_secs(60), "net connect");
        assert!(st.success());
    }
    let mut out = server.stdout.take().unwrap();
    let mut got = vec![0u8; "first\nsecond\n".len()];
    out.read_exact(&mut got).unwrap();
    assert_eq!(got, b"first\nsecond\n");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A port nothing listens on is exit 3 with a hint; the message names the address.
#[test]
fn connect_to_a_refused_port_is_exit_3() {
    // bound, not listening: nobody else gets the port while the test runs
    let rt = runtime();
    let _guard = rt.enter();
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    let out = opskit(&["net", "connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("hint: nothing listens on that port"), "{err}");
}

/// A port whose accept queue is full drops new SYNs: the connect runs into --connect-timeout,
/// exit 124 (not 3: nothing refused), and says which deadline passed.
#[test]
fn connect_deadline_is_exit_124() {
    let rt = runtime();
    let (held, _listener, addr) = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = s.local_addr().unwrap();
        let l = s.listen(0).unwrap();
        // fill the queue (a backlog of 0 still takes one or two) until a connect stalls
        let mut held = Vec::new();
        for _ in 0..8 {
            let c = tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            match c {
                Ok(Ok(c)) => held.push(c),
                _ => return (held, l, addr),
            }
        }
        panic!("the accept queue never filled");
    });
    let out = opskit(&[
        "net",
        "connect",
        &addr.to_string(),
        "--connect-timeout",
        "300ms",
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out after 300ms"), "{err}");
    drop(held);
}

/// A port already taken is exit 1, naming the address and what to do.
#[test]
fn listen_on_a_taken_port_names_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = opskit(&["net", "listen", &port])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("another process listens on"), "{err}");
}

/// `-w`: a peer that says nothing is dropped after the idle timeout, exit 124.
#[test]
fn idle_timeout_is_exit_124() {
    let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = quiet.local_addr().unwrap().to_string();
    let holder = std::thread::spawn(move || quiet.accept().map(|(s, _)| s));
    let mut c = opskit(&["net", "connect", &addr, "-w", "300ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_bounded(&mut c, Duration::from_secs(60), "net connect -w");
    assert_eq!(st.code(), Some(124));
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("no data either way for 300ms"), "{err}");
    drop(holder.join());
}

/// stdout closed early (`| head -c 5`): the command ends quietly with 0.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::io::Write as _;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let chunk = vec![b'x'; 64 * 1024];
            while s.write_all(&chunk).is_ok() {}
        }
    });
    let out = Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; \"$0\" net connect \"$1\" < /dev/null | head -c 5")
        .arg(bin())
        .arg(&addr)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"xxxxx");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// UDP: each stdin line is one datagram to an echo server, the replies are printed, and the
/// command ends 1 s after stdin's end once nothing more comes (-q default for UDP).
#[test]
fn udp_connect_sends_a_datagram_per_line_and_prints_replies() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = echo.local_addr().unwrap().to_string();
    let seen = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..2 {
            let (n, from) = echo.recv_from(&mut buf).unwrap();
            got.push(buf[..n].to_vec());
            echo.send_to(&buf[..n], from).unwrap();
        }
        got
    });
    let mut c = opskit(&["net", "connect", "--udp", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"one\ntwo\n").unwrap();
    let st = wait_bounded(&mut c, Duration::from_secs(60), "net connect --udp");
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(st.success(), "{st:?}");
    assert_eq!(out, "one\ntwo\n");
    assert_eq!(
        seen.join().unwrap(),
        vec![b"one\n".to_vec(), b"two\n".to_vec()]
    );
}

/// UDP listen prints what a client sends and answers it with stdin lines.
#[test]
fn udp_listen_prints_datagrams_and_answers_the_sender() {
    let (mut server, addr, _err) = listen(&["--udp", "0"]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    client.send_to(b"ping\n", &addr).unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ping\n");
    server.stdin.take().unwrap().write_all(b"pong\n").unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong\n");
    assert_eq!(from.to_string(), addr);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A UDP port where nothing listens answers with ICMP port unreachable: exit 3.
#[test]
fn udp_connect_to_a_closed_port_is_exit_3() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = opskit(&["net", "connect", "--udp", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"anyone?\n").unwrap();
    let st = wait_bounded(&mut c, Duration::from_secs(60), "net connect --udp");
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("ICMP port unreachable"), "{err}");
}

/// Unix sockets: a round trip both ways; a stale socket file is replaced, a live listener's
/// is not, nor a file that is not a socket; the socket file goes when listen ends.
#[test]
fn unix_socket_round_trip_and_stale_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // a stale socket: bound by a listener that is gone
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let p = path.to_str().unwrap();
    let (mut server, at, _err) = listen(&["--unix", p]);
    assert_eq!(at, p);

    let mut client = opskit(&["net", "connect", "--unix", p])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"to server\n")
        .unwrap();
    server
        .stdin
        .take()
        .unwrap()
        .write_all(b"to client\n")
        .unwrap();
    let c = client.wait_with_output().unwrap();
    assert!(c.status.success(), "{c:?}");
    assert_eq!(c.stdout, b"to client\n");
    let st = wait_bounded(&mut server, Duration::from_secs(60), "net listen --unix");
    assert!(st.success());
    let mut got = Vec::new();
    server.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, b"to server\n");
    assert!(!path.exists(), "the socket file stays after listen ended");

    // a live listener's socket is refused and left alone
    let live_path = dir.path().join("live.sock");
    let _live = std::os::unix::net::UnixListener::bind(&live_path).unwrap();
    let second = opskit(&["net", "listen", "--unix", live_path.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(String::from_utf8_lossy(&second.stderr).contains("another process is listening"));
    assert!(live_path.exists());

    // not a socket: refused, untouched
    std::fs::write(&path, "data").unwrap();
    let out = opskit(&["net", "listen", "--unix", p])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");

    // connecting to a path with no socket: exit 3
    let out = opskit(&[
        "net",
        "connect",
        "--unix",
        &dir.path().join("none").to_string_lossy(),
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

fn python_or_skip() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "python3 is needed for the seeds' echo scripts"
        );
        eprintln!("skipping: no python3");
    }
    ok
}

/// The seeds' socket lesson (unit 7): its client — `socket.socket(AF_INET, SOCK_STREAM)`,
/// `connect`, the `mysend` loop, `recv(1024)`, `close` — as they have it.
const SEEDS_ECHO_CLIENT: &str = r#"
import socket, sys

def mysend(sock, msg):
    totalsent = 0
    while totalsent < len(msg):
        sent = sock.send(msg[totalsent:])
        if sent == 0:
            raise RuntimeError("Socket connection broken")
        totalsent += sent

# create an INET, STREAMing socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(("127.0.0.1", int(sys.argv[1])))
mysend(s, b"Hello, world!")
data = s.recv(1024)
print(f"Received {data!r}")
s.close()
"#;

/// Its server: bind, `listen(5)`, `accept`, then echo what `recv` gives until it returns 0
/// bytes ("the other side has closed").
const SEEDS_ECHO_SERVER: &str = r#"
import socket

def mysend(sock, msg):
    totalsent = 0
    while totalsent < len(msg):
        sent = sock.send(msg[totalsent:])
        if sent == 0:
            raise RuntimeError("Socket connection broken")
        totalsent += sent

# create an INET, STREAMing socket
serversocket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
serversocket.bind(("127.0.0.1", 0))
serversocket.listen(5)
print(serversocket.getsockname()[1], flush=True)
clientsocket, address = serversocket.accept()
while True:
    data = clientsocket.recv(1024)
    if not data:
        break
    mysend(clientsocket, data)
clientsocket.close()
"#;

/// The seeds' echo server answers `opskit net connect`: stdin goes out, the half-close tells
/// the server we are done, its echo comes back on stdout, and connect exits 0 when it closes.
#[test]
fn the_seeds_echo_server_works_with_net_connect() {
    if !python_or_skip() {
        return;
    }
    let mut server = Command::new("python3")
        .args(["-c", SEEDS_ECHO_SERVER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let text = "line one\nline two\n".repeat(500);
    let mut c = opskit(&["net", "connect", &format!("127.0.0.1:{}", port.trim())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let body = text.clone();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()).unwrap());
    let out = c.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
    assert!(wait_bounded(&mut server, Duration::from_secs(60), "seeds' server").success());
}

/// The seeds' echo client against `opskit net listen` made an echo server by a pipe from its
/// stdout back to its stdin: the client prints what it sent.
#[test]
fn the_seeds_echo_client_works_with_net_listen() {
    if !python_or_skip() {
        return;
    }
    let (mut server, addr, _err) = listen(&["0"]);
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let mut back = Some(server.stdin.take().unwrap());
    let mut from = server.stdout.take().unwrap();
    // echo: what listen prints goes back into its stdin, closed after the client's 13 bytes
    let pipe = std::thread::spawn(move || {
        let mut moved = 0;
        let mut buf = [0u8; 1024];
        loop {
            let n = from.read(&mut buf).unwrap();
            if n == 0 {
                return moved;
            }
            if let Some(b) = back.as_mut() {
                b.write_all(&buf[..n]).unwrap();
            }
            moved += n;
            if moved >= b"Hello, world!".len() {
                back = None;
            }
        }
    });
    let client = Command::new("python3")
        .args(["-c", SEEDS_ECHO_CLIENT, &port])
        .output()
        .unwrap();
    assert!(client.status.success(), "{client:?}");
    assert_eq!(
        String::from_utf8_lossy(&client.stdout),
        "Received b'Hello, world!'\n"
    );
    let st = wait_bounded(&mut server, Duration::from_secs(60), "net listen");
    assert!(st.success());
    assert_eq!(pipe.join().unwrap(), 13);
}

/// `--unix` and `--udp` do not mix; a target without a port is a usage error.
#[test]
fn bad_arguments_are_exit_2() {
    for args in [
        vec!["net", "connect", "--udp", "--unix", "/tmp/x"],
        vec!["net", "connect", "127.0.0.1"],
        vec!["net", "connect"],
        vec!["net", "listen"],
        vec!["net", "listen", "--unix", "/tmp/x", "--udp"],
    ] {
        let out = opskit(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}
