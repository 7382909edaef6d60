//! Fan-out: the same job on many hosts with bounded concurrency, and remote commands.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use russh::{ChannelMsg, Sig};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::outcome::{Event, EventSink, HostReport, Outcome, Phase, Stream};
use crate::session::{ConnectOptions, connect};
use crate::target::Target;

/// Output kept per stream per host; more is still streamed to the event sink but not kept, and
/// the report's message says so.
pub const MAX_CAPTURE: usize = 16 * 1024 * 1024;

fn keep(buf: &mut Vec<u8>, data: &[u8], truncated: &mut bool) {
    let room = MAX_CAPTURE.saturating_sub(buf.len());
    if data.len() > room {
        *truncated = true;
    }
    buf.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
}

/// How many hosts at once, and whether to stop starting new ones after a failure.
#[derive(Debug, Clone, Copy)]
pub struct FanOut {
    /// At most this many hosts are worked on at once (at least 1).
    pub forks: usize,
    /// After the first host that is not `ok`, hosts not yet started end as `skipped`.
    pub fail_fast: bool,
}

impl Default for FanOut {
    fn default() -> Self {
        Self {
            forks: 32,
            fail_fast: false,
        }
    }
}

/// Runs `job` for every target with bounded concurrency; reports come back in target order.
pub async fn fan_out<F, Fut>(
    targets: Vec<Target>,
    fan: FanOut,
    sink: Option<EventSink>,
    job: F,
) -> Vec<HostReport>
where
    F: Fn(usize, Target) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HostReport> + Send + 'static,
{
    let sem = Arc::new(Semaphore::new(fan.forks.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let job = Arc::new(job);
    let mut set = JoinSet::new();
    let n = targets.len();
    for (i, target) in targets.into_iter().enumerate() {
        let (sem, stop, job, sink) = (sem.clone(), stop.clone(), job.clone(), sink.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.ok();
            let report = if stop.load(Ordering::SeqCst) {
                let mut r = HostReport::new(&target.label, &target.host, target.port);
                r.outcome = Outcome::Skipped;
                r.message = Some("not started: an earlier host failed (--fail-fast)".into());
                r
            } else {
                let started = Instant::now();
                let mut r = job(i, target).await;
                r.duration = started.elapsed();
                if fan.fail_fast && !r.outcome.is_ok() {
                    stop.store(true, Ordering::SeqCst);
                }
                r
            };
            if let Some(s) = &sink {
                s(Event::Finished {
                    host: i,
                    status: report.outcome.status(),
                });
            }
            (i, report)
        });
    }
    let mut out: Vec<Option<HostReport>> = (0..n).map(|_| None).collect();
    while let Some(res) = set.join_next().await {
        match res {
            Ok((i, r)) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(r);
                }
            }
            Err(e) => tracing::error!("host task failed: {e}"),
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                let mut r = HostReport::new("?", "?", 0);
                r.outcome = Outcome::NoExitStatus;
                r.message = Some("internal error: host task panicked".into());
                r
            })
        })
        .collect()
}

/// How a command is run on each host.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Ask for a pseudo-terminal (`ssh -t`): stdout and stderr arrive merged, and when the
    /// channel is closed at the deadline the hang-up ends the command even where the server
    /// refuses signals.
    pub tty: bool,
    /// Environment variables sent as SSH `env` requests before the command. A server that
    /// refuses one (not in its `AcceptEnv`) fails the host: the command is not run.
    pub env: Vec<(String, String)>,
    /// Run the command as root with `sudo -S`: the password goes to sudo's standard input when
    /// (and only when) sudo asks for it, never into the remote command line. sudo's prompt and
    /// messages are kept out of the output; a refused password ends as `auth_failed`.
    pub sudo: Option<SecretString>,
}

/// How long a command gets to end after `TERM` (and after the channel is closed) at the deadline.
const END_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `command` on every target.
pub async fn run_command(
    targets: Vec<Target>,
    command: String,
    opts: ConnectOptions,
    fan: FanOut,
    sink: Option<EventSink>,
) -> Vec<HostReport> {
    run_command_with(targets, command, opts, fan, sink, RunOptions::default()).await
}

/// [`run_command`] with [`RunOptions`].
pub async fn run_command_with(
    targets: Vec<Target>,
    command: String,
    opts: ConnectOptions,
    fan: FanOut,
    sink: Option<EventSink>,
    run: RunOptions,
) -> Vec<HostReport> {
    let command = Arc::new(command);
    let opts = Arc::new(opts);
    let run = Arc::new(run);
    let job_sink = sink.clone();
    fan_out(targets, fan, sink, move |i, target| {
        let (command, opts, sink, run) =
            (command.clone(), opts.clone(), job_sink.clone(), run.clone());
        async move { run_one_ref(i, &target, &command, &opts, sink, &run).await }
    })
    .await
}

/// Runs `command` on one target.
pub async fn run_one(
    index: usize,
    target: &Target,
    command: &str,
    opts: &ConnectOptions,
    sink: Option<EventSink>,
) -> HostReport {
    run_one_with(index, target, command, opts, sink, RunOptions::default()).await
}

/// [`run_one`] with [`RunOptions`].
pub async fn run_one_with(
    index: usize,
    target: &Target,
    command: &str,
    opts: &ConnectOptions,
    sink: Option<EventSink>,
    run: RunOptions,
) -> HostReport {
    run_one_ref(index, target, command, opts, sink, &run).await
}

async fn run_one_ref(
    index: usize,
    target: &Target,
    command: &str,
    opts: &ConnectOptions,
    sink: Option<EventSink>,
    run: &RunOptions,
) -> HostReport {
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let mut report = HostReport::new(&target.label, &target.host, target.port);
    let Some(conn) = connect(target, opts, deadline, &mut report).await else {
        report.duration = started.elapsed();
        return report;
    };
    exec(
        index,
        &conn.handle,
        command,
        deadline,
        sink,
        run,
        &mut report,
    )
    .await;
    conn.disconnect(std::time::Duration::from_secs(1)).await;
    report.duration = started.elapsed();
    report
}

struct LineSplitter {
    host: usize,
    stream: Stream,
    buf: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, data: &[u8], sink: &EventSink) {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            sink(Event::Line {
                host: self.host,
                stream: self.stream,
                line,
            });
        }
    }

    fn finish(&mut self, sink: &EventSink) {
        if !self.buf.is_empty() {
            sink(Event::Line {
                host: self.host,
                stream: self.stream,
                line: std::mem::take(&mut self.buf),
            });
        }
    }
}

/// Names of signals as OpenSSH sends them (without `SIG`).
fn signal_name(sig: &Sig) -> String {
    match sig {
        Sig::Custom(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A marker no command output can guess: 128 bits from the OS-seeded std hasher keys.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", part(), part())
}

/// `--sudo`: watches what sudo says before the command starts, answers its password prompt
/// once, and lets the command's output through only after the wrapper's ready line.
struct SudoGate {
    password: SecretString,
    prompt: String,
    ready: String,
    /// sudo's own output so far (prompts, "Sorry, try again", the lecture): never shown as
    /// command output.
    talk: Vec<u8>,
    /// Prompts answered (1: the password was sent; 2: sudo asked again, so it was refused).
    prompts: usize,
    passed: bool,
}

impl SudoGate {
    fn new(password: SecretString) -> Self {
        let n = nonce();
        Self {
            password,
            prompt: format!("[opskit-sudo-prompt:{n}]"),
            ready: format!("opskit-sudo-ready:{n}"),
            talk: Vec::new(),
            prompts: 0,
            passed: false,
        }
    }

    /// The command line that runs `command` through sudo. The password is not in it.
    fn wrap(&self, command: &str) -> String {
        format!(
            "sudo -S -p {} -- /bin/sh -c {} opskit-sudo {} {}",
            shell_quote(&self.prompt),
            shell_quote("printf '%s\\n' \"$1\" >&2; exec /bin/sh -c \"$2\""),
            shell_quote(&self.ready),
            shell_quote(command)
        )
    }

    /// Takes bytes of the stream sudo talks on before the command starts. Returns what is
    /// command output (after the ready line) and whether sudo's prompt needs an answer now
    /// (`Some(true)`: send the password, `Some(false)`: it was refused, close stdin).
    fn take(&mut self, data: &[u8]) -> (Vec<u8>, Option<bool>) {
        self.talk.extend_from_slice(data);
        let text = String::from_utf8_lossy(&self.talk);
        let mut answer = None;
        let asked = text.matches(&self.prompt).count();
        if asked > self.prompts {
            answer = Some(self.prompts == 0);
            self.prompts = asked;
        }
        if let Some(at) = find(&self.talk, self.ready.as_bytes()) {
            let after = at + self.ready.len();
            if let Some(nl) = self
                .talk
                .get(after..)
                .and_then(|r| r.iter().position(|b| *b == b'\n'))
            {
                self.passed = true;
                let rest = self.talk.get(after + nl + 1..).unwrap_or_default().to_vec();
                self.talk.clear();
                return (rest, None);
            }
        }
        (Vec::new(), answer)
    }

    /// What sudo said, prompts removed and the password (should sudo ever echo it) hidden.
    fn said(&self) -> String {
        let text = String::from_utf8_lossy(&self.talk)
            .replace(&self.prompt, "\n")
            .replace(self.password.expose_secret(), "[redacted]");
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The outcome when the channel ended before the command started.
    fn failed(&self, host: &str, exit_status: Option<u32>, report: &mut HostReport) {
        let said = self.said();
        let said = if said.is_empty() {
            "no message".to_owned()
        } else {
            said
        };
        if self.prompts >= 2 || (self.prompts == 1 && said.contains("incorrect password")) {
            report.outcome = Outcome::AuthFailed;
            report.message = Some(format!(
                "sudo on {host} refused the password (--sudo); the command was not run (sudo: {said})"
            ));
        } else {
            report.outcome = Outcome::Failed {
                exit_code: exit_status,
            };
            report.message = Some(format!("sudo did not run the command (--sudo): {said}"));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Waits for the server's answer to a channel request sent with `want_reply`.
async fn request_reply(
    channel: &mut russh::Channel<russh::client::Msg>,
    deadline: Instant,
) -> Result<bool, String> {
    loop {
        match tokio::time::timeout_at(deadline, channel.wait()).await {
            Err(_) => return Err("no answer from the server before the deadline".into()),
            Ok(None) | Ok(Some(ChannelMsg::Close)) => {
                return Err("the server closed the session".into());
            }
            Ok(Some(ChannelMsg::Success)) => return Ok(true),
            Ok(Some(ChannelMsg::Failure)) => return Ok(false),
            Ok(Some(_)) => {}
        }
    }
}

#[allow(clippy::too_many_lines, reason = "one channel's life, step by step")]
async fn exec(
    index: usize,
    handle: &russh::client::Handle<crate::session::Client>,
    command: &str,
    deadline: Instant,
    sink: Option<EventSink>,
    run: &RunOptions,
    report: &mut HostReport,
) {
    let mut channel = match tokio::time::timeout_at(deadline, handle.channel_open_session()).await {
        Err(_) => {
            report.outcome = Outcome::Timeout {
                phase: Phase::Command,
            };
            report.message = Some("no session channel before the deadline".into());
            return;
        }
        Ok(Err(e)) => {
            report.outcome = Outcome::NoExitStatus;
            report.message = Some(format!("cannot open a session channel: {e}"));
            return;
        }
        Ok(Ok(c)) => c,
    };
    let mut refused = Vec::new();
    for (name, value) in &run.env {
        if let Err(e) = channel.set_env(true, name.as_str(), value.as_str()).await {
            report.outcome = Outcome::NoExitStatus;
            report.message = Some(format!("cannot send --env {name}: {e}"));
            return;
        }
        match request_reply(&mut channel, deadline).await {
            Ok(true) => {}
            Ok(false) => refused.push(name.as_str()),
            Err(why) => {
                report.outcome = Outcome::NoExitStatus;
                report.message = Some(format!("--env {name}: {why}"));
                return;
            }
        }
    }
    if !refused.is_empty() {
        report.outcome = Outcome::Failed { exit_code: None };
        report.message = Some(format!(
            "the server refused --env {} (its sshd_config `AcceptEnv` does not allow {}); the command was not run",
            refused.join(", "),
            if refused.len() == 1 { "it" } else { "them" }
        ));
        return;
    }
    if run.tty {
        let sent = tokio::time::timeout_at(
            deadline,
            channel.request_pty(true, "xterm", 80, 24, 0, 0, &[]),
        )
        .await;
        let given = match sent {
            Ok(Ok(())) => request_reply(&mut channel, deadline).await,
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer from the server before the deadline".into()),
        };
        if !matches!(given, Ok(true)) {
            report.outcome = Outcome::NoExitStatus;
            report.message = Some(match given {
                Err(why) => format!("no pseudo-terminal (--tty): {why}"),
                _ => "the server refused a pseudo-terminal (--tty)".into(),
            });
            return;
        }
    }
    let mut gate = run.sudo.clone().map(SudoGate::new);
    let wrapped;
    let command = match &gate {
        Some(g) => {
            wrapped = g.wrap(command);
            wrapped.as_str()
        }
        None => command,
    };
    // Where sudo talks: stderr, or the one merged stream of a PTY.
    let sudo_ext = if run.tty { None } else { Some(1) };
    if let Err(e) = channel.exec(true, command).await {
        report.outcome = Outcome::NoExitStatus;
        report.message = Some(format!("cannot start the command: {e}"));
        return;
    }
    let mut out = LineSplitter {
        host: index,
        stream: Stream::Stdout,
        buf: Vec::new(),
    };
    let mut err = LineSplitter {
        host: index,
        stream: Stream::Stderr,
        buf: Vec::new(),
    };
    let mut exit_status = None;
    let mut exit_signal = None;
    let mut truncated = false;
    loop {
        match tokio::time::timeout_at(deadline, channel.wait()).await {
            Err(_) => {
                report.outcome = Outcome::Timeout {
                    phase: Phase::Command,
                };
                report.message = Some(stop_at_deadline(&mut channel, run, report).await);
                if let Some(g) = &gate
                    && !g.passed
                {
                    let said = g.said();
                    let m = report.message.take().unwrap_or_default();
                    report.message = Some(format!(
                        "{m}; sudo had not started the command{}",
                        if said.is_empty() {
                            String::new()
                        } else {
                            format!(" (sudo: {said})")
                        }
                    ));
                }
                if let Some(s) = &sink {
                    out.finish(s);
                    err.finish(s);
                }
                return;
            }
            Ok(None) => break,
            Ok(Some(msg)) => match msg {
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, ext: 1 }
                    if gate.as_ref().is_some_and(|g| !g.passed)
                        && sudo_ext
                            == match &msg {
                                ChannelMsg::ExtendedData { .. } => Some(1),
                                _ => None,
                            } =>
                {
                    let Some(g) = gate.as_mut() else { continue };
                    let (rest, answer) = g.take(&data);
                    match answer {
                        Some(true) => {
                            let mut line = g.password.expose_secret().as_bytes().to_vec();
                            line.push(b'\n');
                            let _ = channel.data(&line[..]).await;
                            line.fill(0);
                        }
                        Some(false) => {
                            // sudo asks again: the password was refused. Asking it to give up
                            // (EOF) does not reach sudo through a PTY, so end the session.
                            let _ = channel.eof().await;
                            let _ = channel.close().await;
                            break;
                        }
                        None => {}
                    }
                    if !rest.is_empty() {
                        let (buf, split) = if sudo_ext.is_some() {
                            (&mut report.stderr, &mut err)
                        } else {
                            (&mut report.stdout, &mut out)
                        };
                        keep(buf, &rest, &mut truncated);
                        if let Some(s) = &sink {
                            split.push(&rest, s);
                        }
                    }
                }
                ChannelMsg::Data { data } => {
                    keep(&mut report.stdout, &data, &mut truncated);
                    if let Some(s) = &sink {
                        out.push(&data, s);
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    keep(&mut report.stderr, &data, &mut truncated);
                    if let Some(s) = &sink {
                        err.push(&data, s);
                    }
                }
                ChannelMsg::ExitStatus { exit_status: code } => exit_status = Some(code),
                ChannelMsg::ExitSignal {
                    signal_name: sig, ..
                } => exit_signal = Some(signal_name(&sig)),
                ChannelMsg::Close => break,
                _ => {}
            },
        }
    }
    if let Some(s) = &sink {
        out.finish(s);
        err.finish(s);
    }
    if let Some(g) = &gate
        && !g.passed
    {
        g.failed(&report.label.clone(), exit_status, report);
        return;
    }
    if truncated {
        report.message = Some(format!(
            "output beyond {} MiB per stream was not kept",
            MAX_CAPTURE / (1024 * 1024)
        ));
    }
    report.outcome = match (exit_signal, exit_status) {
        (Some(name), _) => Outcome::Signal { name },
        (None, Some(0)) => Outcome::Ok,
        (None, Some(code)) => Outcome::Failed {
            exit_code: Some(code),
        },
        (None, None) => {
            report.message = Some("the channel closed without an exit status or signal".into());
            Outcome::NoExitStatus
        }
    };
}

/// Ends a command that outlived the deadline and says what really happened: `TERM` is asked for
/// (the server may refuse it: OpenSSH does for some sessions, and never says so because the
/// request carries no reply), then, if the command did not end, the channel is closed: with a
/// PTY the hang-up ends the command; without one it may keep running on the host.
async fn stop_at_deadline(
    channel: &mut russh::Channel<russh::client::Msg>,
    run: &RunOptions,
    report: &mut HostReport,
) -> String {
    let lead = "the command was still running at the deadline (--timeout)";
    let signalled = tokio::time::timeout(END_GRACE, channel.signal(Sig::TERM)).await;
    if let Ok(Ok(())) = signalled
        && let Some(how) = wait_end(channel, report).await
    {
        return format!("{lead}; sent TERM and {how}");
    }
    let term = match signalled {
        Ok(Ok(())) => format!(
            "sent TERM, but the command did not end within {}s (the server refuses signals for \
             this session, or the command ignores TERM)",
            END_GRACE.as_secs()
        ),
        Ok(Err(e)) => format!("could not send TERM ({e})"),
        Err(_) => "could not send TERM in time".to_owned(),
    };
    let closed = matches!(
        tokio::time::timeout(END_GRACE, async {
            let _ = channel.eof().await;
            channel.close().await
        })
        .await,
        Ok(Ok(()))
    );
    if !closed {
        return format!(
            "{lead}; {term}; the channel could not be closed, so the command may still be running \
             on the host"
        );
    }
    if run.tty {
        return match wait_end(channel, report).await {
            Some(how) => format!("{lead}; {term}; closed the channel and {how} (PTY hang-up)"),
            None => format!(
                "{lead}; {term}; closed the channel (the PTY hang-up ends the command; the server \
                 did not confirm it)"
            ),
        };
    }
    format!(
        "{lead}; {term}; closed the channel, but without a PTY the command may still be running on \
         the host (use --tty, whose hang-up ends it)"
    )
}

/// Waits up to [`END_GRACE`] for the command to end; says how it ended.
async fn wait_end(
    channel: &mut russh::Channel<russh::client::Msg>,
    report: &mut HostReport,
) -> Option<String> {
    let until = Instant::now() + END_GRACE;
    let mut truncated = false;
    loop {
        match tokio::time::timeout_at(until, channel.wait()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(ChannelMsg::Close)) => {
                return Some("the server closed the session".to_owned());
            }
            Ok(Some(ChannelMsg::ExitSignal {
                signal_name: sig, ..
            })) => {
                return Some(format!("the command ended by signal {}", signal_name(&sig)));
            }
            Ok(Some(ChannelMsg::ExitStatus { exit_status })) => {
                return Some(format!("the command ended with exit status {exit_status}"));
            }
            Ok(Some(ChannelMsg::Data { data })) => keep(&mut report.stdout, &data, &mut truncated),
            Ok(Some(ChannelMsg::ExtendedData { data, ext: 1 })) => {
                keep(&mut report.stderr, &data, &mut truncated);
            }
            Ok(Some(_)) => {}
        }
    }
}
