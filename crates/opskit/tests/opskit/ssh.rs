//! `opskit ssh` against real OpenSSH sshd (scripts/services/sshd.sh).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

struct Sshd {
    ports: Vec<u16>,
    host_pub: String,
    user: String,
    password: String,
    key: String,
    key_rsa: String,
    passphrase: String,
}

fn var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{name} is not set: scripts/services/sshd.sh must start sshd under CI");
            }
            eprintln!("skipping: {name} is not set (run scripts/test to start sshd)");
            None
        }
    }
}

fn sshd() -> Option<Sshd> {
    Some(Sshd {
        ports: var("OPSKIT_TEST_SSHD_PORTS")?
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect(),
        host_pub: var("OPSKIT_TEST_SSHD_HOST_PUB")?,
        user: var("OPSKIT_TEST_SSH_USER")?,
        password: var("OPSKIT_TEST_SSH_PASSWORD")?,
        key: var("OPSKIT_TEST_SSH_KEY")?,
        key_rsa: var("OPSKIT_TEST_SSH_KEY_RSA")?,
        passphrase: var("OPSKIT_TEST_SSH_KEY_PASSPHRASE")?,
    })
}

struct Env {
    s: Sshd,
    home: tempfile::TempDir,
    kh: PathBuf,
}

impl Env {
    fn new() -> Option<Self> {
        let s = sshd()?;
        let home = tempfile::tempdir().unwrap();
        let kh = home.path().join("known_hosts");
        let key = s
            .host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let text: String = s
            .ports
            .iter()
            .map(|p| format!("[127.0.0.1]:{p} {key}\n"))
            .collect();
        std::fs::write(&kh, text).unwrap();
        Some(Self { s, home, kh })
    }

    fn target(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.s.ports[i])
    }

    /// `opskit ssh SUB` with an isolated HOME, no agent, the test user and the known_hosts file.
    fn cmd(&self, sub: &str) -> Command {
        let mut c = Command::cargo_bin("opskit").unwrap();
        c.env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .args(["ssh", sub, "-u", &self.s.user, "--known-hosts"])
            .arg(&self.kh);
        c
    }

    fn keyed(&self, sub: &str) -> Command {
        let mut c = self.cmd(sub);
        c.args(["-i", &self.s.key]);
        c
    }
}

fn json(out: &[u8]) -> Vec<Value> {
    serde_json::from_slice::<Vec<Value>>(out).expect("JSON list")
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn run_on_several_hosts_prints_blocks_and_a_summary() {
    let Some(e) = Env::new() else { return };
    e.keyed("run")
        .args([e.target(0), e.target(1), "--".into(), "echo hello".into()])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!("== {} [ok]", e.target(0))))
        .stdout(predicate::str::contains("   hello"))
        .stdout(predicate::str::contains("2 hosts: 2 ok"));
}

#[test]
fn json_output_tells_remote_exit_codes_from_ssh_failures() {
    let Some(e) = Env::new() else { return };
    let bad = format!("127.0.0.1:{}", closed_port());
    let out = e
        .keyed("run")
        .args([
            e.target(0),
            bad.clone(),
            "--output".into(),
            "json".into(),
            "--".into(),
        ])
        .arg("echo out; echo err >&2; exit 255")
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let list = json(&out);
    assert_eq!(list[0]["host"], e.target(0));
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["exit_code"], 255);
    assert_eq!(list[0]["stdout"], "out\n");
    assert_eq!(list[0]["stderr"], "err\n");
    assert!(list[0]["duration_ms"].is_u64());
    assert_eq!(list[1]["host"], bad);
    assert_eq!(list[1]["status"], "unreachable");
    assert_eq!(list[1]["exit_code"], Value::Null);
}

#[test]
fn remote_failure_exit_code_is_22_and_shows_the_remote_code() {
    let Some(e) = Env::new() else { return };
    e.keyed("run")
        .args([e.target(0), "--".into(), "exit".into(), "3".into()])
        .assert()
        .code(22)
        .stdout(predicate::str::contains("[failed (exit 3)]"))
        .stdout(predicate::str::contains("1 host: 1 failed"));
}

#[test]
fn unknown_host_is_refused_then_accepted_new_then_changed_is_refused() {
    let Some(e) = Env::new() else { return };
    std::fs::write(&e.kh, "").unwrap();
    e.keyed("run")
        .args([e.target(0), "--".into(), "true".into()])
        .assert()
        .code(20)
        .stdout(predicate::str::contains("hostkey_unknown"))
        .stdout(predicate::str::contains("SHA256:"))
        .stdout(predicate::str::contains("--accept-new"));
    e.keyed("run")
        .args([
            e.target(0),
            "--accept-new".into(),
            "--".into(),
            "true".into(),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("recorded new host key"));
    assert!(
        std::fs::read_to_string(&e.kh)
            .unwrap()
            .contains(&format!("[127.0.0.1]:{}", e.s.ports[0]))
    );
    e.keyed("run")
        .args([e.target(0), "--".into(), "true".into()])
        .assert()
        .code(0);
    // The key changes (the file now holds another key for this host).
    std::fs::write(
        &e.kh,
        format!(
            "\n[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
            e.s.ports[0]
        ),
    )
    .unwrap();
    e.keyed("run")
        .args([
            e.target(0),
            "--accept-new".into(),
            "--".into(),
            "true".into(),
        ])
        .assert()
        .code(20)
        .stdout(predicate::str::contains("hostkey_changed"))
        .stdout(predicate::str::contains(format!("{}:2", e.kh.display())));
}

#[test]
fn password_from_env_and_wrong_password() {
    let Some(e) = Env::new() else { return };
    e.cmd("run")
        .env("PW", &e.s.password)
        .args([
            e.target(0),
            "--password".into(),
            "env:PW".into(),
            "--".into(),
            "whoami".into(),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(&e.s.user));
    e.cmd("run")
        .env("PW", "wrong")
        .args([
            e.target(0),
            "--password".into(),
            "env:PW".into(),
            "--".into(),
            "true".into(),
        ])
        .assert()
        .code(21)
        .stdout(predicate::str::contains("auth_failed"));
    // A password on the command line is refused.
    e.cmd("run")
        .args([
            e.target(0),
            "--password".into(),
            "hunter2".into(),
            "--".into(),
            "true".into(),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("env:VAR"));
}

#[test]
fn encrypted_key_with_passphrase_from_env() {
    let Some(e) = Env::new() else { return };
    e.cmd("run")
        .args(["-i", &e.s.key_rsa, &e.target(0), "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("encrypted"));
    e.cmd("run")
        .env("PASS", &e.s.passphrase)
        .args([
            "-i",
            &e.s.key_rsa,
            "--passphrase",
            "env:PASS",
            &e.target(0),
            "--",
            "true",
        ])
        .assert()
        .code(0);
}

#[test]
fn command_outliving_the_timeout() {
    let Some(e) = Env::new() else { return };
    e.keyed("run")
        .args([
            e.target(0),
            "--timeout".into(),
            "2s".into(),
            "--".into(),
            "sleep 60".into(),
        ])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("[timeout (command)]"));
}

#[test]
fn out_dir_stream_and_hosts_file() {
    let Some(e) = Env::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("# web\n{}\n{}\n", e.target(1), e.target(2))).unwrap();
    let out = dir.path().join("out");
    e.keyed("run")
        .args([e.target(0).as_str(), "--hosts-file"])
        .arg(&hosts)
        .arg("--out-dir")
        .arg(&out)
        .args(["--stream", "--", "echo line; echo oops >&2"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!("{} | line", e.target(2))))
        .stderr(predicate::str::contains(format!("{} ! oops", e.target(1))))
        .stdout(predicate::str::contains("3 hosts: 3 ok"));
    let name = |i: usize, ext: &str| out.join(format!("{}.{ext}", e.target(i)));
    assert_eq!(std::fs::read_to_string(name(1, "out")).unwrap(), "line\n");
    assert_eq!(std::fs::read_to_string(name(2, "err")).unwrap(), "oops\n");
}

#[test]
fn ssh_config_alias_and_unsupported_proxyjump() {
    let Some(e) = Env::new() else { return };
    let ssh = e.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(
        ssh.join("config"),
        format!(
            "Host web\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n\nHost behind\n  HostName 127.0.0.1\n  ProxyJump web\n",
            e.s.ports[0], e.s.user, e.s.key
        ),
    )
    .unwrap();
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("HOME", e.home.path())
        .env_remove("SSH_AUTH_SOCK")
        .args(["ssh", "run", "--known-hosts"])
        .arg(&e.kh)
        .args(["web", "--", "whoami"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("== web [ok]"))
        .stdout(predicate::str::contains(&e.s.user));
    let mut c = Command::cargo_bin("opskit").unwrap();
    c.env("HOME", e.home.path())
        .args(["ssh", "run", "behind", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("proxyjump"))
        .stderr(predicate::str::contains("not supported"));
}

#[test]
fn bad_target_is_a_usage_error() {
    let Some(e) = Env::new() else { return };
    e.keyed("run")
        .args(["host:notaport", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("port must be a number"));
}

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn put_get_ls_and_missing_remote_path() {
    let Some(e) = Env::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("payload.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let remote_dir = format!("opskit-cli-{}", std::process::id());
    e.keyed("run")
        .args([e.target(0), "--".into(), format!("mkdir -p {remote_dir}")])
        .assert()
        .code(0);
    let dests: Vec<String> = (0..e.s.ports.len())
        .map(|i| format!("{}:{remote_dir}/", e.target(i)))
        .collect();
    e.keyed("put")
        .arg(&local)
        .args(&dests)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "{} hosts: {} ok",
            dests.len(),
            dests.len()
        )))
        .stdout(predicate::str::contains("3000000 bytes"));
    let out = e
        .keyed("ls")
        .args([
            format!("{}:{remote_dir}", e.target(1)),
            "--output".into(),
            "json".into(),
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let list = json(&out);
    assert_eq!(list[0]["entries"][0]["name"], "payload.bin");
    assert_eq!(list[0]["entries"][0]["size"], 3_000_000);
    assert_eq!(list[0]["entries"].as_array().unwrap().len(), 1);
    let back = dir.path().join("back.bin");
    e.keyed("get")
        .arg(format!("{}:{remote_dir}/payload.bin", e.target(2)))
        .arg(&back)
        .assert()
        .code(0);
    assert!(sha(&back) == data);
    e.keyed("get")
        .arg(format!("{}:{remote_dir}/missing.bin", e.target(0)))
        .arg(dir.path().join("nope"))
        .assert()
        .code(22)
        .stdout(predicate::str::contains("no such file"));
    e.keyed("ls")
        .arg(format!("{}:/no/such/dir", e.target(0)))
        .assert()
        .code(22)
        .stdout(predicate::str::contains("no such file"));
    e.keyed("run")
        .args([e.target(0), "--".into(), format!("rm -rf {remote_dir}")])
        .assert()
        .code(0);
}

#[test]
fn ssh_agent_from_ssh_auth_sock() {
    let Some(e) = Env::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::yield_now();
    }
    let added = std::process::Command::new("ssh-add")
        .arg(&e.s.key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success());
    // No -i and no key files in HOME: only the agent can authenticate.
    let assert = e
        .cmd("run")
        .env("SSH_AUTH_SOCK", &sock)
        .args([e.target(0), "--".into(), "echo agent-ok".into()])
        .assert();
    let _ = agent.kill();
    let _ = agent.wait();
    assert.code(0).stdout(predicate::str::contains("agent-ok"));
    // Without the agent the same run has no credentials.
    e.cmd("run")
        .args([e.target(0), "--".into(), "true".into()])
        .assert()
        .code(21)
        .stdout(predicate::str::contains("no credentials"));
}

/// Issue 12 (defect 16): a command that ignores TERM (as when the server refuses the signal) is
/// reported as such, never as "sent TERM and closed the channel"; with --tty the hang-up ends it.
#[test]
fn timeout_tells_what_happened_and_a_pty_hangup_ends_the_command() {
    let Some(e) = Env::new() else { return };
    let marker = format!(
        "{}.{}",
        60 + std::process::id() % 30,
        std::process::id() % 1000
    );
    let command = format!("trap '' TERM; sleep {marker}");
    // `slee[p]` does not match the shell that runs pgrep itself.
    let running = || {
        e.keyed("run")
            .args([
                e.target(0),
                "--".into(),
                format!("pgrep -f 'slee[p] {marker}'"),
            ])
            .output()
            .unwrap()
            .status
            .code()
            == Some(0)
    };
    let out = e
        .keyed("run")
        .args([e.target(0), "--timeout".into(), "2s".into(), "--".into()])
        .arg(&command)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[timeout (command)]"), "{text}");
    assert!(text.contains("did not end"), "{text}");
    assert!(text.contains("may still be running"), "{text}");
    assert!(
        running(),
        "the TERM-proof command is still running, as reported"
    );
    e.keyed("run")
        .args([
            e.target(0),
            "--".into(),
            format!("pkill -KILL -f 'slee[p] {marker}'"),
        ])
        .assert()
        .code(0);

    let out = e
        .keyed("run")
        .args([e.target(0), "--tty".into(), "--timeout".into(), "2s".into()])
        .arg("--")
        .arg(&command)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("closed the channel"), "{text}");
    assert!(!text.contains("may still be running"), "{text}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command outlived the PTY hang-up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Issue 12 (defect 6): `Include` (globs, `~`, paths relative to ~/.ssh), `-F FILE`, `-F none`,
/// and one warning per ignored directive however many hosts it applies to.
#[test]
fn ssh_config_include_and_dash_f() {
    let Some(e) = Env::new() else { return };
    let ssh = e.home.path().join(".ssh");
    std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
    let alias = |name: &str, port: u16| {
        format!(
            "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {}\n  IdentityFile {}\n",
            e.s.user, e.s.key
        )
    };
    std::fs::write(ssh.join("conf.d/web.conf"), alias("web", e.s.ports[0])).unwrap();
    std::fs::write(ssh.join("extra"), alias("db", e.s.ports[1])).unwrap();
    std::fs::write(
        ssh.join("config"),
        "Include conf.d/*.conf ~/.ssh/extra\nHost *\n  ServerAliveInterval 5\n",
    )
    .unwrap();
    let base = || {
        let mut c = Command::cargo_bin("opskit").unwrap();
        c.env("HOME", e.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .args(["ssh", "run", "--known-hosts"])
            .arg(&e.kh);
        c
    };
    let out = base().args(["web", "db", "--", "true"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("== web [ok]") && stdout.contains("== db [ok]"),
        "{stdout}"
    );
    assert_eq!(
        stderr.matches("serveraliveinterval").count(),
        1,
        "one warning per directive: {stderr}"
    );

    // A config opskit refuses for this host, skipped with -F none, replaced with -F FILE.
    std::fs::write(ssh.join("config"), "Host 127.0.0.1\n  ProxyJump bastion\n").unwrap();
    base()
        .args(["-u", &e.s.user, "-i", &e.s.key])
        .args([e.target(0).as_str(), "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("proxyjump"));
    base()
        .args(["-F", "none", "-u", &e.s.user, "-i", &e.s.key])
        .args([e.target(0).as_str(), "--", "true"])
        .assert()
        .code(0);
    let other = e.home.path().join("other-config");
    std::fs::write(&other, alias("web", e.s.ports[2])).unwrap();
    base()
        .arg("-F")
        .arg(&other)
        .args(["web", "--", "true"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("== web [ok]"));
    base()
        .args(["-F", "/no/such/config", "web", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/no/such/config"));
}

/// Issue 12 (defect 10): a missing local directory is refused before anything is written.
#[test]
fn get_into_a_missing_directory_leaves_no_temp_file() {
    let Some(e) = Env::new() else { return };
    let cwd = tempfile::tempdir().unwrap();
    e.keyed("get")
        .current_dir(cwd.path())
        .args([
            format!("{}:/etc/hostname", e.target(0)),
            "missing-dir/".into(),
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("missing-dir"));
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Issue 12 (defect 4): a closed stdout ends `ssh run` quietly with success.
#[test]
fn run_into_a_closed_pipe_ends_quietly() {
    let Some(e) = Env::new() else { return };
    let keyed_std = |extra: &[&str]| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"));
        c.env("HOME", e.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .args([
                "ssh",
                "run",
                "-u",
                &e.s.user,
                "-i",
                &e.s.key,
                "--known-hosts",
            ])
            .arg(&e.kh)
            .args(extra)
            .args([e.target(0).as_str(), "--"]);
        c
    };
    crate::basics::assert_quiet_success(&crate::basics::with_closed_stdout(
        keyed_std(&[]).arg("seq 1 1000"),
    ));
    crate::basics::assert_quiet_success(&crate::basics::with_closed_stdout(
        keyed_std(&["--stream"]).arg("seq 1 1000"),
    ));
    crate::basics::assert_stdout_failure(&crate::basics::with_full_stdout(
        keyed_std(&[]).arg("seq 1 10"),
    ));
}

/// Issue 12 (secret arguments): ssh takes `file:` and `cmd:` like every other family, and still
/// refuses a literal.
#[test]
fn password_from_a_file_or_command_and_never_literal() {
    let Some(e) = Env::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{}\n", e.s.password)).unwrap();
    e.cmd("run")
        .arg("--password")
        .arg(format!("file:{}", file.display()))
        .args([e.target(0), "--".into(), "true".into()])
        .assert()
        .code(0);
    e.cmd("run")
        .arg("--password")
        .arg(format!("cmd:cat {}", file.display()))
        .args([e.target(0), "--".into(), "true".into()])
        .assert()
        .code(0);
    e.cmd("run")
        .args(["--password", "hunter2"])
        .args([e.target(0), "--".into(), "true".into()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "never taken from the command line",
        ));
}

/// A running `opskit serve` on a temp SQLite database, killed on drop.
struct Inventory {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
    db: String,
}

impl Drop for Inventory {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `opskit serve` on 127.0.0.1:0 and waits (with a deadline) for its "listening" line.
fn start_inventory() -> Inventory {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("inv.db").display());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &db])
        .args(["--log-format", "json", "--rate-limit", "0"])
        .env("OPSKIT_ADMIN_PASSWORD", "admin-password-1")
        .env_remove("OPSKIT_DATABASE")
        .env_remove("OPSKIT_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // read to the end: a closed pipe would make serve's next log line fail
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let addr = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("opskit serve did not start");
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["fields"]["message"] == "opskit serve listening"
        {
            break v["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    Inventory {
        child,
        addr,
        _dir: dir,
        db,
    }
}

#[test]
fn run_on_inventory_servers_selected_from_opskit_serve() {
    let Some(e) = Env::new() else { return };
    // a bad selector is refused before anything is contacted
    for (bad, says) in [
        ("env", "`env` has no `=`"),
        ("env=prod,colour=red", "unknown key `colour`"),
    ] {
        e.keyed("run")
            .args(["--profile", "none", "--inventory", bad, "--", "true"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!("`{bad}`")))
            .stderr(predicate::str::contains(says));
    }

    let inv = start_inventory();
    let out = Command::cargo_bin("opskit")
        .unwrap()
        .args(["apikey", "--database", &inv.db, "create", "ssh-test"])
        .env_remove("OPSKIT_DATABASE")
        .assert()
        .success();
    let key = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let config = e.home.path().join("opskit.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.inv]\nbase_url = \"http://{}\"\nquery = {{ per_page = \"1\" }}\nauth = {{ type = \"api_key\", name = \"X-API-Key\", value = \"env:INV_KEY\" }}\n",
            inv.addr
        ),
    )
    .unwrap();
    for (host, env, tags) in [
        ("web1", "prod", r#"["web"]"#),
        ("web2", "prod", r#"["web","linux"]"#),
        ("dev1", "dev", r#"["web"]"#),
        ("db1", "prod", r#"["db"]"#),
    ] {
        Command::cargo_bin("opskit")
            .unwrap()
            .env("OPSKIT_CONFIG", &config)
            .env("INV_KEY", key.trim())
            .args([
                "post",
                "/api/v1/servers",
                "--profile",
                "inv",
                "--check-status",
            ])
            .args([
                format!("hostname={host}"),
                "ip=127.0.0.1".into(),
                format!("env={env}"),
                format!("tags:={tags}"),
            ])
            .assert()
            .success();
    }

    // one server per page (the profile's per_page): every page is followed
    let port = e.s.ports[0].to_string();
    let out = e
        .keyed("run")
        .env("OPSKIT_CONFIG", &config)
        .env("INV_KEY", key.trim())
        .args(["--profile", "inv", "--inventory", "env=prod,tag=web"])
        .args(["-p", &port, "--output", "json", "--", "echo", "hi"])
        .assert()
        .code(0);
    let reports = json(&out.get_output().stdout);
    let mut hosts: Vec<&str> = reports
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["web1", "web2"], "{reports:?}");
    for r in &reports {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["stdout"], "hi\n", "{r}");
    }

    // nothing matches: an error naming the selector
    e.keyed("run")
        .env("OPSKIT_CONFIG", &config)
        .env("INV_KEY", key.trim())
        .args([
            "--profile",
            "inv",
            "--inventory",
            "env=staging",
            "-p",
            &port,
        ])
        .args(["--", "echo", "hi"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no server in the inventory matches `env=staging`",
        ));
}
