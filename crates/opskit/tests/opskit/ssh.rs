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
fn ssh_config_alias_and_unsupported_proxycommand() {
    let Some(e) = Env::new() else { return };
    let ssh = e.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(
        ssh.join("config"),
        format!(
            "Host web\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n\nHost behind\n  HostName 127.0.0.1\n  ProxyCommand nc %h %p\n",
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
        .stderr(predicate::str::contains("proxycommand"))
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
    std::fs::write(
        ssh.join("config"),
        "Host 127.0.0.1\n  ProxyCommand nc %h %p\n",
    )
    .unwrap();
    base()
        .args(["-u", &e.s.user, "-i", &e.s.key])
        .args([e.target(0).as_str(), "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("proxycommand"));
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

// ---- issue 17: ProxyJump / -J, -t, --sudo, --env, hosts-file groups ----

/// A shell line that prints who owns the client end of the target's SSH connection (from
/// /proc/net/tcp, the same machine here): through a jump host that is the bastion's sshd, which
/// runs as the test user; a direct connection's is this test process (root).
const CLIENT_SOCKET: &str = r#"hex=$(printf ':%04X' "$(echo "$SSH_CONNECTION" | cut -d' ' -f2)"); awk -v h="$hex" '$2 ~ h"$" { print "owner=uid:" $8 }' /proc/net/tcp; echo "me=uid:$(id -u)""#;

fn came_through_sshd(stdout: &str) -> bool {
    let field = |key: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix(key).map(str::to_owned))
            .collect()
    };
    let me = field("me=");
    let owners = field("owner=");
    assert_eq!(me.len(), 1, "{stdout}");
    assert!(!owners.is_empty(), "the client socket was found: {stdout}");
    owners.contains(&me[0])
}

#[test]
fn proxy_jump_through_one_and_two_bastions() {
    let Some(e) = Env::new() else { return };
    let hop = |i: usize| format!("{}@{}", e.s.user, e.target(i));
    // direct: the client socket is this test's
    let out = e
        .keyed("run")
        .args([e.target(1), "--".into(), CLIENT_SOCKET.into()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!came_through_sshd(&String::from_utf8_lossy(&out.stdout)));
    // one bastion with -J
    let out = e
        .keyed("run")
        .args([
            "-J".into(),
            hop(0),
            e.target(1),
            "--".into(),
            CLIENT_SOCKET.into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("== {} [ok]", e.target(1))), "{text}");
    assert!(came_through_sshd(&text), "{text}");
    // a chain of two, comma-separated
    let out = e
        .keyed("run")
        .args([
            "--jump".into(),
            format!("{},ssh://{}", hop(0), hop(1)),
            e.target(2),
            "--".into(),
            CLIENT_SOCKET.into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(came_through_sshd(&text), "{text}");
    // put/ls go through the bastion too
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("jumped.txt");
    std::fs::write(&local, "through the bastion\n").unwrap();
    let remote = format!("/tmp/opskit-jump-{}.txt", std::process::id());
    e.keyed("put")
        .arg("-J")
        .arg(hop(0))
        .arg(&local)
        .arg(format!("{}:{remote}", e.target(1)))
        .assert()
        .code(0);
    e.keyed("run")
        .args([
            e.target(1),
            "--".into(),
            format!("cat {remote} && rm {remote}"),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("through the bastion"));
}

#[test]
fn proxy_jump_from_the_ssh_config_and_two_hops() {
    let Some(e) = Env::new() else { return };
    let ssh = e.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(
        ssh.join("config"),
        format!(
            "Host bastion\n  HostName 127.0.0.1\n  Port {p0}\n\nHost inner\n  HostName 127.0.0.1\n  Port {p1}\n  ProxyJump bastion\n\nHost deep\n  HostName 127.0.0.1\n  Port {p2}\n  ProxyJump inner\n\nHost *\n  User {user}\n  IdentityFile {key}\n",
            p0 = e.s.ports[0],
            p1 = e.s.ports[1],
            p2 = e.s.ports[2],
            user = e.s.user,
            key = e.s.key
        ),
    )
    .unwrap();
    let run = |target: &str| {
        let mut c = Command::cargo_bin("opskit").unwrap();
        c.env("HOME", e.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .args(["ssh", "run", "--known-hosts"])
            .arg(&e.kh)
            .args([target, "--", CLIENT_SOCKET]);
        c.output().unwrap()
    };
    for target in ["inner", "deep"] {
        let out = run(target);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{target}: {text}");
        assert!(text.contains(&format!("== {target} [ok]")), "{text}");
        assert!(came_through_sshd(&text), "{target}: {text}");
    }
    // `-J none` connects directly in spite of the config's ProxyJump
    let mut c = Command::cargo_bin("opskit").unwrap();
    let out = c
        .env("HOME", e.home.path())
        .env_remove("SSH_AUTH_SOCK")
        .args(["ssh", "run", "-J", "none", "--known-hosts"])
        .arg(&e.kh)
        .args(["inner", "--", CLIENT_SOCKET])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!came_through_sshd(&String::from_utf8_lossy(&out.stdout)));
}

#[test]
fn proxy_jump_checks_the_host_key_of_every_hop() {
    let Some(e) = Env::new() else { return };
    let hop = |i: usize| format!("{}@{}", e.s.user, e.target(i));
    let key =
        e.s.host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let kh = |lines: &[(usize, &str)]| {
        let text: String = lines
            .iter()
            .map(|(i, k)| format!("[127.0.0.1]:{} {k}\n", e.s.ports[*i]))
            .collect();
        std::fs::write(&e.kh, text).unwrap();
    };
    // the bastion's key is unknown (the target's is known): refused as a direct connection is
    kh(&[(1, &key), (2, &key)]);
    let out = e
        .keyed("run")
        .args(["-J".into(), hop(0), e.target(1), "--".into(), "true".into()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(20), "{text}");
    assert!(text.contains("[hostkey_unknown]"), "{text}");
    assert!(
        text.contains(&format!(
            "jump host {} (127.0.0.1:{}, hop 1 of 1)",
            hop(0),
            e.s.ports[0]
        )),
        "{text}"
    );
    assert!(text.contains("is not known"), "{text}");
    // a changed key at the second bastion of two
    kh(&[(0, &key), (1, other), (2, &key)]);
    let out = e
        .keyed("run")
        .args([
            "-J".into(),
            format!("{},{}", hop(0), hop(1)),
            e.target(2),
            "--output".into(),
            "json".into(),
            "--".into(),
            "true".into(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(20));
    let list = json(&out.stdout);
    assert_eq!(list[0]["status"], "hostkey_changed");
    let msg = list[0]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("jump host {} (", hop(1))), "{msg}");
    assert!(
        msg.contains("hop 2 of 2") && msg.contains("HOST KEY CHANGED"),
        "{msg}"
    );
    // the bastions are known, the target is not: the message says the way it came
    kh(&[(0, &key)]);
    let out = e
        .keyed("run")
        .args(["-J".into(), hop(0), e.target(1), "--".into(), "true".into()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(20), "{text}");
    assert!(
        text.contains(&format!("[127.0.0.1]:{} is not known", e.s.ports[1])),
        "{text}"
    );
    assert!(text.contains(&format!("(through {})", hop(0))), "{text}");
    // --accept-new records the keys of every hop, as it would directly
    e.keyed("run")
        .args([
            "-J".into(),
            hop(0),
            e.target(1),
            "--accept-new".into(),
            "--".into(),
            "true".into(),
        ])
        .assert()
        .code(0);
    assert!(
        std::fs::read_to_string(&e.kh)
            .unwrap()
            .contains(&format!("[127.0.0.1]:{}", e.s.ports[1]))
    );
}

#[test]
fn proxy_jump_hops_have_deadlines_and_bad_hops_are_named() {
    let Some(e) = Env::new() else { return };
    let hop = |i: usize| format!("{}@{}", e.s.user, e.target(i));
    // behind the bastion, a TCP peer that never says a word of SSH
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let out = e
        .keyed("run")
        .args([
            "-J".into(),
            hop(0),
            format!("127.0.0.1:{port}"),
            "--connect-timeout".into(),
            "1s".into(),
            "--".into(),
            "true".into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("[timeout (connect)]"), "{text}");
    assert!(text.contains(&format!("(through {})", hop(0))), "{text}");
    drop(silent);
    // the bastion cannot reach the next hop: named, unreachable
    let closed = closed_port();
    let out = e
        .keyed("run")
        .args([
            "-J".into(),
            format!("{},{}@127.0.0.1:{closed}", hop(0), e.s.user),
            e.target(1),
            "--".into(),
            "true".into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("[unreachable]"), "{text}");
    assert!(text.contains("hop 2 of 2"), "{text}");
    assert!(
        text.contains(&format!("jump host {} could not open a connection", hop(0))),
        "{text}"
    );
    // a bad -J is a usage error
    e.keyed("run")
        .args(["-J", "a,,b", "127.0.0.1", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("-J"));
}

#[test]
fn tty_gives_the_command_a_terminal() {
    let Some(e) = Env::new() else { return };
    e.keyed("run")
        .args([e.target(0), "-t".into(), "--".into(), "tty".into()])
        .assert()
        .code(0)
        .stdout(predicate::str::is_match(r"(?m)^   /dev/pts/\d+$").unwrap());
    e.keyed("run")
        .args([e.target(0), "--".into(), "tty".into()])
        .assert()
        .code(22)
        .stdout(predicate::str::contains("not a tty"));
}

fn sudo_ready() -> bool {
    var("OPSKIT_TEST_SSHD_SUDO").is_some()
}

#[test]
fn sudo_runs_as_root_with_the_password_kept_out_of_sight() {
    let Some(e) = Env::new() else { return };
    if !sudo_ready() {
        return;
    }
    let pw = &e.s.password;
    // Without a PTY: sudo's prompt is not in the output; the password is in no process's argv
    // and in no output or log line, even at trace level.
    let out = e
        .keyed("run")
        .env("SUDO_PW", pw)
        .env("OPSKIT_LOG", "trace")
        .args([
            e.target(0),
            "--sudo".into(),
            "env:SUDO_PW".into(),
            "--output".into(),
            "json".into(),
            "--".into(),
            "id -u; ps -eo args; echo to-stderr >&2".into(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains(pw.as_str()) && !stderr.contains(pw.as_str()));
    let list = json(&out.stdout);
    let remote_out = list[0]["stdout"].as_str().unwrap();
    assert_eq!(remote_out.lines().next(), Some("0"), "{remote_out}");
    assert!(
        remote_out.contains("sudo -S"),
        "ps shows sudo: {remote_out}"
    );
    // only the command's own stderr: no prompt, no sudo chatter
    assert_eq!(list[0]["stderr"], "to-stderr\n");
    // With a PTY (where a terminal could echo it): still no prompt and no password.
    let out = e
        .keyed("run")
        .env("SUDO_PW", pw)
        .args([
            e.target(0),
            "-t".into(),
            "--sudo".into(),
            "env:SUDO_PW".into(),
            "--".into(),
            "id -u; tty".into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains(pw.as_str()), "{text}");
    assert!(
        !text.contains("opskit-sudo") && !text.contains("assword"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "   0", "{text}");
    assert!(lines[2].starts_with("   /dev/pts/"), "{text}");
    // without --sudo the same command is the test user's
    e.keyed("run")
        .args([e.target(0), "--".into(), "id -u".into()])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("   0\n").not());
}

#[test]
fn sudo_with_a_wrong_password_is_an_auth_failure() {
    let Some(e) = Env::new() else { return };
    if !sudo_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "not-the-password\n").unwrap();
    for tty in [false, true] {
        let mut c = e.keyed("run");
        c.arg(e.target(0));
        if tty {
            c.arg("-t");
        }
        let out = c
            .arg("--sudo")
            .arg(format!("file:{}", file.display()))
            .args(["--", "touch /tmp/opskit-sudo-must-not-run; id -u"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(21), "tty={tty}: {text}");
        assert!(text.contains("[auth_failed]"), "{text}");
        assert!(
            text.contains("sudo on") && text.contains("refused the password"),
            "{text}"
        );
        assert!(text.contains("the command was not run"), "{text}");
        assert!(!text.contains("not-the-password"), "{text}");
    }
    assert!(!std::path::Path::new("/tmp/opskit-sudo-must-not-run").exists());
    // `prompt` without a terminal: a usage error, nothing is run
    e.keyed("run")
        .args([e.target(0), "--sudo".into(), "--".into(), "true".into()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--sudo"));
}

#[test]
fn env_is_sent_and_a_refused_name_fails_the_host() {
    let Some(e) = Env::new() else { return };
    if var("OPSKIT_TEST_SSHD_ACCEPT_ENV").is_none() {
        return;
    }
    e.keyed("run")
        .args([
            e.target(0),
            "--env".into(),
            "OPSKIT_ONE=1".into(),
            "-e".into(),
            "OPSKIT_TWO=a b=c".into(),
            "--".into(),
            r#"echo "[$OPSKIT_ONE/$OPSKIT_TWO]""#.into(),
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("   [1/a b=c]"));
    let out = e
        .keyed("run")
        .args([
            e.target(0),
            "-e".into(),
            "OPSKIT_OK=1".into(),
            "-e".into(),
            "NOT_ACCEPTED=1".into(),
            "--output".into(),
            "json".into(),
            "--".into(),
            "echo ran".into(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(22));
    let list = json(&out.stdout);
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["stdout"], "", "the command was not run");
    let msg = list[0]["message"].as_str().unwrap();
    assert!(msg.contains("refused --env NOT_ACCEPTED"), "{msg}");
    assert!(
        msg.contains("AcceptEnv") && msg.contains("not run"),
        "{msg}"
    );
    e.keyed("run")
        .args([e.target(0).as_str(), "-e", "NOEQUALS", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NAME=VALUE"));
}

#[test]
fn hosts_file_groups_select_hosts() {
    let Some(e) = Env::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "# the fleet\n{t0}\n\n[web]\n{t1}\n{t2}   # two web servers\n\n[db]\n{t2}\n\n[prod:children]\nweb\ndb\n",
            t0 = e.target(0),
            t1 = e.target(1),
            t2 = e.target(2)
        ),
    )
    .unwrap();
    let run = |groups: &[&str]| {
        let mut c = e.keyed("run");
        c.arg("--hosts-file").arg(&hosts);
        for g in groups {
            c.args(["--group", g]);
        }
        c.args(["--output", "json", "--", "true"]);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{groups:?}");
        json(&out.stdout)
            .iter()
            .map(|r| r["host"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&[]), [e.target(0), e.target(1), e.target(2)]);
    assert_eq!(run(&["web"]), [e.target(1), e.target(2)]);
    // a host in both groups runs once
    assert_eq!(run(&["db", "web"]), [e.target(1), e.target(2)]);
    assert_eq!(run(&["db"]), [e.target(2)]);
    assert_eq!(run(&["prod"]), [e.target(1), e.target(2)]);
    assert_eq!(run(&["ungrouped"]), [e.target(0)]);
    // ls takes groups too (after its TARGET:PATH, with the same path)
    let out = e
        .keyed("ls")
        .arg(format!("{}:/tmp", e.target(0)))
        .arg("--hosts-file")
        .arg(&hosts)
        .args(["-g", "db", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let hosts_listed: Vec<String> = json(&out.stdout)
        .iter()
        .map(|r| r["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts_listed, [e.target(0), e.target(2)]);
    // an unknown group lists the groups
    e.keyed("run")
        .arg("--hosts-file")
        .arg(&hosts)
        .args(["--group", "wbe", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no group `wbe`"))
        .stderr(predicate::str::contains("db, prod, web"));
    // --group needs --hosts-file; sections Ansible has but we do not are refused by line
    e.keyed("run")
        .args(["--group", "web", "127.0.0.1", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--hosts-file"));
    std::fs::write(&hosts, "[web]\nh1\n[web:vars]\nansible_user=x\n").unwrap();
    e.keyed("run")
        .arg("--hosts-file")
        .arg(&hosts)
        .args(["--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(":3:"))
        .stderr(predicate::str::contains(
            "[web:vars] sections are not supported",
        ));
}
