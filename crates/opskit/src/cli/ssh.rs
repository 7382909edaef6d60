//! `opskit ssh run|put|get|ls`: commands and files on many hosts, strict host keys, an honest
//! outcome per host.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use opskit_ssh::{
    ConnectOptions, Credentials, Event, EventSink, FanOut, HostReport, Identity, Outcome,
    SshConfig, Stream, Target, TargetDefaults, auth, sftp,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::ssh_inventory as inventory;
use crate::cli::parse_duration;
use crate::exit::{Failure, code};
use crate::output::{Format, render_rows};
use crate::secret_arg::{self, Literal};

#[derive(Debug, Args)]
pub struct SshArgs {
    #[command(subcommand)]
    command: SshCommand,
}

#[derive(Debug, Subcommand)]
enum SshCommand {
    /// Run a command on many hosts at once: `opskit ssh run web1 web2 -- uptime`.
    Run(RunArgs),
    /// Copy a local file to many hosts (written under a temporary name, then renamed).
    Put(PutArgs),
    /// Copy one remote file here.
    Get(GetArgs),
    /// List a remote directory (or file) on one or more hosts.
    Ls(LsArgs),
}

/// `--output`: one block per host, or rows in one of the shared formats ([`crate::output`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One block per host and a summary line.
    Text,
    /// A JSON array, one object per host (with stdout and stderr for `run`).
    Json,
    /// One JSON object per host per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
    /// A text table.
    Table,
}

impl Output {
    /// The shared row format, or `None` for the text blocks.
    fn rows(self) -> Option<Format> {
        match self {
            Output::Text => None,
            Output::Json => Some(Format::Json),
            Output::Ndjson => Some(Format::Ndjson),
            Output::Csv => Some(Format::Csv),
            Output::Table => Some(Format::Table),
        }
    }
}

/// Columns of the csv and table output (JSON keeps every field).
const COLUMNS: &[&str] = &[
    "host",
    "address",
    "status",
    "exit_code",
    "duration_ms",
    "message",
];

/// Connection options shared by every `opskit ssh` command.
#[derive(Debug, Args)]
struct ConnArgs {
    /// ssh client config to read instead of ~/.ssh/config (`Include`s are followed); `none`
    /// reads no config at all.
    #[arg(short = 'F', long = "config", value_name = "FILE|none")]
    config: Option<PathBuf>,
    /// Read more targets from FILE (one per line, `#` comments; `[group]` sections as in Ansible
    /// INI inventories, `[group:children]` too).
    #[arg(long, value_name = "FILE")]
    hosts_file: Option<PathBuf>,
    /// Only the hosts of this `[group]` of --hosts-file (repeatable: the union; `all` and
    /// `ungrouped` as in Ansible).
    #[arg(
        short = 'g',
        long = "group",
        value_name = "NAME",
        requires = "hosts_file"
    )]
    group: Vec<String>,
    /// Login user when the target has no `user@` (default: ssh config `User`, then $USER).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Port when the target has no `:port` (default: ssh config `Port`, then 22).
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Jump hosts (bastions) to go through, like `ssh -J`: `[user@]host[:port]`, several
    /// comma-separated, in order; replaces the ssh config's `ProxyJump` (`none`: connect
    /// directly). Each hop's host key is checked as a direct connection's. -u and -p do not apply
    /// to jump hosts (their user and port come from the spec or the ssh config).
    #[arg(short = 'J', long = "jump", value_name = "HOST[,HOST2]")]
    jump: Option<String>,
    /// Private key file (ed25519, ECDSA, RSA); repeatable. Default: ~/.ssh/id_{ed25519,ecdsa,rsa}.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    identity: Vec<PathBuf>,
    /// Passphrase of encrypted keys: `env:VAR`, `file:PATH`, `cmd:COMMAND` or `prompt` (asked
    /// when needed on a terminal).
    #[arg(long, value_name = "SECRET")]
    passphrase: Option<String>,
    /// Password authentication: `env:VAR`, `file:PATH`, `cmd:COMMAND`, or `prompt` (the default
    /// when given without a value).
    #[arg(long, value_name = "SECRET", num_args = 0..=1, default_missing_value = "prompt")]
    password: Option<String>,
    /// Do not use the ssh-agent even when SSH_AUTH_SOCK is set.
    #[arg(long)]
    no_agent: bool,
    /// Hosts worked on at once.
    #[arg(short = 'f', long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    forks: u16,
    /// Limit for TCP connect + SSH handshake, e.g. `10s`, `500ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Whole per-host deadline (connect, auth and command or transfer), e.g. `5m`.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    timeout: Duration,
    /// Start no new host after the first one that is not ok (those end as `skipped`).
    #[arg(long)]
    fail_fast: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// known_hosts file to check (and, with --accept-new, record) host keys in.
    #[arg(long, value_name = "FILE", default_value_os_t = default_known_hosts())]
    known_hosts: PathBuf,
    /// Trust and record the key of a host not yet in known_hosts (never a changed key).
    #[arg(long)]
    accept_new: bool,
}

fn default_known_hosts() -> PathBuf {
    opskit_ssh::HostKeyPolicy::default_path()
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Targets: `[user@]host[:port]` or a Host alias from ~/.ssh/config.
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Write each host's output to DIR/<target>.out and DIR/<target>.err.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Print output lines as they arrive, prefixed with the target.
    #[arg(long)]
    stream: bool,
    /// Targets from the `opskit serve` inventory: `env=prod,tag=web` (comma = and; keys env,
    /// status, os_type, tag). Each server is reached at its `ip` (unless the ssh config gives its
    /// hostname a `HostName`) and shown under its hostname.
    #[arg(long, value_name = "SELECTOR")]
    inventory: Option<String>,
    /// http profile of the inventory API (its base_url and auth), for --inventory.
    #[arg(long, value_name = "NAME", env = "OPSKIT_PROFILE")]
    profile: Option<String>,
    /// For --inventory: read the servers from `opskit serve`'s database directly (read only,
    /// `sqlite://FILE` or `postgres://…`) instead of through its API with --profile.
    #[arg(
        long,
        value_name = "URL",
        env = "OPSKIT_DATABASE",
        hide_env_values = true
    )]
    inventory_database: Option<String>,
    /// Run the command on a pseudo-terminal (like `ssh -t`): stdout and stderr arrive merged,
    /// and at the --timeout deadline the hang-up ends the command even where the server refuses
    /// the TERM signal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Run the command as root through `sudo -S`, with this sudo password: `env:VAR`,
    /// `file:PATH`, `cmd:COMMAND` or `prompt` (the default when given without a value; asked
    /// once on the terminal, not echoed). The password reaches sudo on its standard input only
    /// when sudo asks for it: never on a command line, never in the output or the logs. A
    /// refused password ends the host as auth_failed (exit 21).
    #[arg(long, value_name = "SECRET", num_args = 0..=1, default_missing_value = "prompt")]
    sudo: Option<String>,
    /// Set an environment variable for the command (SSH `env` request; repeatable). The server
    /// must accept the name (sshd_config `AcceptEnv`); if it refuses one, the host fails and the
    /// command is not run there.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// The command, after `--` (run by the remote user's shell).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// Local file to send.
    local: PathBuf,
    /// Destinations: `TARGET:PATH` (a directory or a path ending in `/` keeps the file name).
    #[arg(value_name = "TARGET:PATH", required = true)]
    remotes: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// `TARGET:PATH` of the remote file.
    #[arg(value_name = "TARGET:PATH")]
    remote: String,
    /// Local file or directory.
    local: PathBuf,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Args)]
struct LsArgs {
    /// `TARGET:PATH` to list (`TARGET:` lists the home directory).
    #[arg(value_name = "TARGET:PATH", required = true)]
    remotes: Vec<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `--env NAME=VALUE`: a name as a shell takes it.
fn parse_env(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("{s:?} is not NAME=VALUE"));
    };
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The targets of `--hosts-file` (only those of the `--group`s when given).
fn hosts_from_file(conn: &ConnArgs) -> anyhow::Result<Vec<String>> {
    let Some(file) = &conn.hosts_file else {
        return Ok(Vec::new());
    };
    let hosts = opskit_ssh::HostsFile::load(file).map_err(crate::failure::ssh)?;
    if conn.group.is_empty() {
        return Ok(hosts.all());
    }
    let chosen = hosts.select(&conn.group).map_err(crate::failure::ssh)?;
    if chosen.is_empty() {
        return Err(Failure::usage(format!(
            "{}: the group{} {} {} no hosts",
            file.display(),
            if conn.group.len() == 1 { "" } else { "s" },
            conn.group.join(", "),
            if conn.group.len() == 1 { "has" } else { "have" }
        ))
        .into());
    }
    Ok(chosen)
}

impl SshArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        match self.command {
            SshCommand::Run(a) => run(a),
            SshCommand::Put(a) => put(a),
            SshCommand::Get(a) => get(a),
            SshCommand::Ls(a) => ls(a),
        }
    }
}

struct Prepared {
    targets: Vec<Target>,
    opts: ConnectOptions,
    fan: FanOut,
}

fn prepare(
    conn: &ConnArgs,
    mut specs: Vec<String>,
    inventory: Vec<inventory::InventoryHost>,
) -> anyhow::Result<Prepared> {
    specs.extend(hosts_from_file(conn)?);
    if specs.is_empty() && inventory.is_empty() {
        return Err(Failure::usage("no targets given")
            .with_hint("name hosts as [user@]host[:port], or use --hosts-file FILE or --inventory SELECTOR")
            .into());
    }
    let config = match &conn.config {
        Some(file) => SshConfig::load_file(file),
        None => SshConfig::load_default(),
    }
    .map_err(crate::failure::ssh)?;
    let jump = match &conn.jump {
        Some(list) => Some(opskit_ssh::target::parse_jump_list(list).map_err(|e| {
            anyhow::Error::from(
                Failure::usage(format!("bad -J/--jump: {e}"))
                    .with_hint("write -J [user@]bastion[:port][,[user@]bastion2[:port]]"),
            )
        })?),
        None => None,
    };
    let defaults = TargetDefaults {
        user: conn.user.clone(),
        port: conn.port,
        jump,
    };
    let mut targets = Vec::new();
    // One warning per config line, however many targets it applies to.
    let mut warned = std::collections::BTreeSet::new();
    for spec in &specs {
        let t = config
            .resolve(spec, &defaults)
            .map_err(crate::failure::ssh)?;
        for d in t
            .jump
            .iter()
            .chain(std::iter::once(&t))
            .flat_map(|h| &h.ignored_directives)
        {
            if warned.insert(d.clone()) {
                eprintln!("warning: {d} is not supported by opskit ssh and has no effect");
            }
        }
        targets.push(t);
    }
    for h in &inventory {
        let mut t = config
            .resolve(&h.hostname, &defaults)
            .map_err(crate::failure::ssh)?;
        for d in t
            .jump
            .iter()
            .chain(std::iter::once(&t))
            .flat_map(|h| &h.ignored_directives)
        {
            if warned.insert(d.clone()) {
                eprintln!("warning: {d} is not supported by opskit ssh and has no effect");
            }
        }
        // no HostName for it in the ssh config: the inventory's address
        if t.host.eq_ignore_ascii_case(&h.hostname) {
            t.host = h.ip.clone();
        }
        targets.push(t);
    }

    // Keys: -i files, then IdentityFile from the ssh config, else the default files.
    let mut paths: Vec<PathBuf> = conn.identity.clone();
    for t in targets
        .iter()
        .flat_map(|t| t.jump.iter().chain(std::iter::once(t)))
    {
        for p in &t.identity_files {
            if !paths.contains(p) {
                paths.push(p.clone());
            }
        }
    }
    let explicit = !paths.is_empty();
    if !explicit {
        paths = auth::default_identity_files();
    }
    let mut passphrase: Option<SecretString> = match &conn.passphrase {
        Some(spec) if spec != "prompt" => Some(secret_arg::resolve_blocking(
            spec,
            "--passphrase",
            "",
            Literal::Refused,
        )?),
        _ => None,
    };
    let mut identities: Vec<Identity> = Vec::new();
    for path in &paths {
        match auth::load_identity(path, passphrase.as_ref()) {
            Ok(id) => identities.push(id),
            Err(opskit_ssh::Error::KeyEncrypted { .. })
                if passphrase.is_none() && (explicit || conn.passphrase.is_some()) =>
            {
                if conn.passphrase.is_none() && !std::io::stdin().is_terminal() {
                    return Err(
                        Failure::usage(format!("key {} is encrypted", path.display()))
                            .with_hint(
                                "give --passphrase env:VAR (or run on a terminal to be asked)",
                            )
                            .into(),
                    );
                }
                let p = secret_arg::prompt(
                    "--passphrase",
                    &format!("Passphrase for {}: ", path.display()),
                )?;
                let id = auth::load_identity(path, Some(&p)).map_err(crate::failure::ssh)?;
                passphrase = Some(p);
                identities.push(id);
            }
            Err(opskit_ssh::Error::KeyEncrypted { .. }) if !explicit => {}
            Err(e) => return Err(crate::failure::ssh(e)),
        }
    }
    let password = match &conn.password {
        Some(spec) => Some(secret_arg::resolve_blocking(
            spec,
            "--password",
            "Password: ",
            Literal::Refused,
        )?),
        None => None,
    };
    let agent_socket = if conn.no_agent {
        None
    } else {
        std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    let policy = opskit_ssh::load_policy(Some(conn.known_hosts.clone()), conn.accept_new)
        .map_err(crate::failure::ssh)?;
    Ok(Prepared {
        targets,
        opts: ConnectOptions {
            connect_timeout: conn.connect_timeout,
            timeout: conn.timeout,
            host_keys: Arc::new(policy),
            credentials: Arc::new(Credentials {
                agent_socket,
                identities,
                password,
            }),
        },
        fan: FanOut {
            forks: usize::from(conn.forks),
            fail_fast: conn.fail_fast,
        },
    })
}

/// Splits `TARGET:PATH`; the target may carry `:port` (`host:2222:/tmp/x`) or be `[v6]:port`.
/// The targets and remote paths of `put`/`ls`: each `TARGET:PATH`, then every host of
/// `--hosts-file` with the first path (or `default_path` when no `TARGET:PATH` was given).
fn remotes(
    remotes: &[String],
    conn: &ConnArgs,
    default_path: Option<&str>,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut specs = Vec::new();
    let mut paths = Vec::new();
    for r in remotes {
        let (t, p) = split_remote(r)?;
        specs.push(t);
        paths.push(p);
    }
    if conn.hosts_file.is_some() {
        let Some(path) = paths
            .first()
            .cloned()
            .or_else(|| default_path.map(str::to_owned))
        else {
            return Err(Failure::usage("give at least one TARGET:PATH with --hosts-file").into());
        };
        let more = hosts_from_file(conn)?;
        paths.extend(std::iter::repeat_n(path, more.len()));
    }
    Ok((specs, paths))
}

fn split_remote(spec: &str) -> anyhow::Result<(String, String)> {
    let bad = || {
        Failure::usage(format!("{spec:?} is not TARGET:PATH"))
            .with_hint("write host:/path, user@host:2222:/path or host: for the home directory")
    };
    let start = if spec.starts_with('[') || spec.contains("@[") {
        spec.find(']').ok_or_else(bad)?
    } else {
        0
    };
    let colon = spec[start..].find(':').map(|i| i + start).ok_or_else(bad)?;
    let (mut target, mut path) = (spec[..colon].to_string(), &spec[colon + 1..]);
    if let Some((port, rest)) = path.split_once(':')
        && !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
    {
        target = format!("{target}:{port}");
        path = rest;
    }
    if target.is_empty() {
        return Err(bad().into());
    }
    let path = if path.is_empty() { "." } else { path };
    Ok((target, path.to_string()))
}

fn exit_code(reports: &[HostReport]) -> u8 {
    let has = |f: &dyn Fn(&Outcome) -> bool| reports.iter().any(|r| f(&r.outcome));
    if has(&|o| matches!(o, Outcome::HostkeyUnknown | Outcome::HostkeyChanged)) {
        code::SSH_HOSTKEY
    } else if has(&|o| matches!(o, Outcome::AuthFailed)) {
        code::SSH_AUTH
    } else if has(&|o| matches!(o, Outcome::Unreachable | Outcome::Timeout { .. })) {
        code::NETWORK
    } else if has(&|o| !o.is_ok()) {
        code::SSH_REMOTE
    } else {
        code::OK
    }
}

fn report_json(r: &HostReport, with_output: bool) -> Value {
    let mut v = json!({
        "host": r.label,
        "address": format!("{}:{}", r.host, r.port),
        "status": r.outcome.status(),
        "exit_code": r.outcome.exit_code(),
        "duration_ms": u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
        "message": r.message,
    });
    if let Outcome::Signal { name } = &r.outcome {
        v["signal"] = json!(name);
    }
    if let Outcome::Timeout { phase } = &r.outcome {
        v["timeout_phase"] = json!(phase.as_str());
    }
    if with_output {
        v["stdout"] = json!(String::from_utf8_lossy(&r.stdout));
        v["stderr"] = json!(String::from_utf8_lossy(&r.stderr));
    }
    if let Some(k) = &r.host_key
        && (k.added || matches!(r.outcome, Outcome::HostkeyUnknown | Outcome::HostkeyChanged))
    {
        v["host_key"] = json!({
            "type": k.key_type, "fingerprint": k.fingerprint, "known_at": k.known_at, "added": k.added,
        });
    }
    v
}

fn summary(reports: &[HostReport]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reports {
        *counts.entry(r.outcome.status()).or_default() += 1;
    }
    let order = [
        "ok",
        "failed",
        "signal",
        "no_exit_status",
        "timeout",
        "unreachable",
        "auth_failed",
        "hostkey_unknown",
        "hostkey_changed",
        "skipped",
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
        .collect();
    format!(
        "{} host{}: {}",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

fn header(r: &HostReport) -> String {
    format!(
        "== {} [{}] {:.2}s",
        r.label,
        r.outcome,
        r.duration.as_secs_f64()
    )
}

fn write_text(
    out: &mut impl Write,
    reports: &[HostReport],
    show_output: bool,
) -> std::io::Result<()> {
    for r in reports {
        writeln!(out, "{}", header(r))?;
        if let Some(m) = &r.message {
            writeln!(out, "   {m}")?;
        }
        if let Some(k) = &r.host_key
            && k.added
        {
            writeln!(
                out,
                "   recorded new host key {} {} (--accept-new)",
                k.key_type, k.fingerprint
            )?;
        }
        if show_output {
            for line in String::from_utf8_lossy(&r.stdout).lines() {
                writeln!(out, "   {line}")?;
            }
            for line in String::from_utf8_lossy(&r.stderr).lines() {
                writeln!(out, "   stderr: {line}")?;
            }
        }
    }
    writeln!(out, "{}", summary(reports))
}

fn safe_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_:[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    let hosts = match &args.inventory {
        Some(selector) => match &args.inventory_database {
            Some(url) => inventory::fetch_database(url, selector)?,
            None => inventory::fetch(args.profile.as_deref(), selector)?,
        },
        None => Vec::new(),
    };
    let command = args.command.join(" ");
    if command.trim().is_empty() {
        return Err(Failure::usage("the command after `--` is empty").into());
    }
    let p = prepare(&args.conn, args.targets, hosts)?;
    let sudo = match &args.sudo {
        Some(spec) => Some(secret_arg::resolve_blocking(
            spec,
            "--sudo",
            "sudo password: ",
            Literal::Refused,
        )?),
        None => None,
    };
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create --out-dir {}", dir.display()))?;
    }
    let labels: Vec<String> = p.targets.iter().map(|t| t.label.clone()).collect();
    let sink: Option<EventSink> = if args.stream {
        let labels = labels.clone();
        Some(Arc::new(move |e| {
            if let Event::Line { host, stream, line } = e {
                let label = labels.get(host).map_or("?", String::as_str);
                let text = String::from_utf8_lossy(&line);
                match stream {
                    Stream::Stdout => {
                        let mut o = std::io::stdout().lock();
                        let _ = writeln!(o, "{label} | {text}");
                    }
                    Stream::Stderr => {
                        let mut o = std::io::stderr().lock();
                        let _ = writeln!(o, "{label} ! {text}");
                    }
                }
            }
        }))
    } else {
        None
    };
    let reports = crate::block_on(opskit_ssh::run_command_with(
        p.targets,
        command,
        p.opts,
        p.fan,
        sink,
        opskit_ssh::RunOptions {
            tty: args.tty,
            env: args.env,
            sudo,
        },
    ))?;
    if let Some(dir) = &args.out_dir {
        for r in &reports {
            let name = safe_name(&r.label);
            std::fs::write(dir.join(format!("{name}.out")), &r.stdout)
                .and_then(|()| std::fs::write(dir.join(format!("{name}.err")), &r.stderr))
                .with_context(|| format!("cannot write into {}", dir.display()))?;
        }
    }
    print_reports(&reports, args.conn.output, !args.stream, true)?;
    Ok(exit_code(&reports))
}

fn print_reports(
    reports: &[HostReport],
    output: Output,
    show_output: bool,
    with_output_json: bool,
) -> anyhow::Result<()> {
    let mut out = crate::output::stdout();
    match output.rows() {
        Some(format) => {
            let list: Vec<Value> = reports
                .iter()
                .map(|r| report_json(r, with_output_json))
                .collect();
            render_rows(&mut out, COLUMNS, &list, format)?;
        }
        None => {
            write_text(&mut out, reports, show_output)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// One progress bar per host on a terminal (none otherwise), fed by library events.
fn progress(labels: &[String], output: Output) -> (Option<EventSink>, MultiProgress) {
    let multi = MultiProgress::with_draw_target(
        if std::io::stderr().is_terminal() && output == Output::Text {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style =
        ProgressStyle::with_template("{prefix:20} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bars: Vec<ProgressBar> = labels
        .iter()
        .map(|l| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(l.clone());
            b
        })
        .collect();
    let bars = Arc::new(Mutex::new(bars));
    let sink: EventSink = Arc::new(move |e| {
        let Ok(bars) = bars.lock() else { return };
        match e {
            Event::Progress { host, done, total } => {
                if let Some(b) = bars.get(host) {
                    b.set_length(total);
                    b.set_position(done);
                }
            }
            Event::Finished { host, .. } => {
                if let Some(b) = bars.get(host) {
                    b.finish_and_clear();
                }
            }
            Event::Line { .. } => {}
        }
    });
    (Some(sink), multi)
}

fn put(args: PutArgs) -> anyhow::Result<u8> {
    let meta = std::fs::metadata(&args.local)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", args.local.display())))?;
    if !meta.is_file() {
        return Err(
            Failure::usage(format!("{} is not a regular file", args.local.display())).into(),
        );
    }
    let (specs, paths) = remotes(&args.remotes, &args.conn, None)?;
    let p = prepare(&args.conn, specs, Vec::new())?;
    let labels: Vec<String> = p.targets.iter().map(|t| t.label.clone()).collect();
    let (sink, _multi) = progress(&labels, args.conn.output);
    let reports = crate::block_on(sftp::put(
        p.targets,
        paths,
        args.local.clone(),
        p.opts,
        p.fan,
        sink,
    ))?;
    print_transfer(&reports, args.conn.output)?;
    Ok(exit_code(&reports))
}

fn print_transfer(reports: &[HostReport], output: Output) -> anyhow::Result<()> {
    let mut out = crate::output::stdout();
    match output.rows() {
        Some(format) => {
            let list: Vec<Value> = reports
                .iter()
                .map(|r| {
                    let mut v = report_json(r, false);
                    v["bytes"] = json!(r.bytes);
                    v
                })
                .collect();
            let mut columns = COLUMNS.to_vec();
            columns.push("bytes");
            render_rows(&mut out, &columns, &list, format)?;
        }
        None => {
            for r in reports {
                writeln!(out, "{}", header(r))?;
                if let Some(m) = &r.message {
                    writeln!(
                        out,
                        "   {m}{}",
                        if r.outcome.is_ok() {
                            format!(" ({})", crate::output::plural(r.bytes, "byte", "bytes"))
                        } else {
                            String::new()
                        }
                    )?;
                }
            }
            writeln!(out, "{}", summary(reports))?;
            out.flush()?;
        }
    }
    Ok(())
}

fn get(args: GetArgs) -> anyhow::Result<u8> {
    if args.conn.hosts_file.is_some() {
        return Err(Failure::usage("get copies from one host; --hosts-file does not apply").into());
    }
    let (t, path) = split_remote(&args.remote)?;
    if args.local.as_os_str().to_string_lossy().ends_with('/') && !args.local.is_dir() {
        return Err(Failure::usage(format!(
            "local directory {} does not exist",
            args.local.display()
        ))
        .into());
    }
    if let Some(parent) = args.local.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(Failure::usage(format!(
            "local directory {} does not exist",
            parent.display()
        ))
        .into());
    }
    let mut p = prepare(&args.conn, vec![t], Vec::new())?;
    let target = p.targets.remove(0);
    let (sink, _multi) = progress(std::slice::from_ref(&target.label), args.conn.output);
    let finish = sink.clone();
    let report = crate::block_on(sftp::get(target, path, args.local.clone(), p.opts, sink))?;
    if let Some(s) = finish {
        s(Event::Finished {
            host: 0,
            status: report.outcome.status(),
        });
    }
    let reports = [report];
    print_transfer(&reports, args.conn.output)?;
    Ok(exit_code(&reports))
}

fn mode_string(mode: Option<u32>, kind: &str) -> String {
    let Some(m) = mode else { return "?".repeat(10) };
    let t = match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "file" => '-',
        _ => '?',
    };
    let mut s = String::from(t);
    for shift in [6u32, 3, 0] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn ls(args: LsArgs) -> anyhow::Result<u8> {
    let (specs, paths) = remotes(&args.remotes, &args.conn, Some("."))?;
    let p = prepare(&args.conn, specs, Vec::new())?;
    let reports = crate::block_on(sftp::ls(p.targets, paths, p.opts, p.fan, None))?;
    let mut out = crate::output::stdout();
    let entry = |e: &opskit_ssh::RemoteEntry| json!({"name": e.name, "type": e.kind, "size": e.size, "mode": e.mode, "mtime": e.mtime});
    match args.conn.output.rows() {
        // One object per host with its entries.
        Some(format @ (Format::Json | Format::Ndjson)) => {
            let list: Vec<Value> = reports
                .iter()
                .map(|r| {
                    let mut v = report_json(r, false);
                    v["entries"] = r.entries.iter().map(entry).collect();
                    v
                })
                .collect();
            render_rows(&mut out, COLUMNS, &list, format)?;
        }
        // One row per entry (a host with none, or that failed, gets one row with its status).
        Some(format) => {
            let mut rows = Vec::new();
            for r in &reports {
                let base = report_json(r, false);
                if r.entries.is_empty() {
                    rows.push(base.clone());
                }
                for e in &r.entries {
                    let mut row = base.clone();
                    if let (Some(row), Value::Object(fields)) = (row.as_object_mut(), entry(e)) {
                        row.extend(fields);
                    }
                    rows.push(row);
                }
            }
            let columns = [
                "host", "status", "name", "type", "size", "mode", "mtime", "message",
            ];
            render_rows(&mut out, &columns, &rows, format)?;
        }
        None => {
            for r in &reports {
                writeln!(out, "{}", header(r))?;
                if !r.outcome.is_ok()
                    && let Some(m) = &r.message
                {
                    writeln!(out, "   {m}")?;
                }
                for e in &r.entries {
                    writeln!(
                        out,
                        "   {} {:>12} {}",
                        mode_string(e.mode, e.kind),
                        e.size,
                        e.name
                    )?;
                }
            }
            writeln!(out, "{}", summary(&reports))?;
            out.flush()?;
        }
    }
    Ok(exit_code(&reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_specs() {
        assert_eq!(
            split_remote("h:/tmp/x").unwrap(),
            ("h".into(), "/tmp/x".into())
        );
        assert_eq!(
            split_remote("u@h:2222:/tmp/x").unwrap(),
            ("u@h:2222".into(), "/tmp/x".into())
        );
        assert_eq!(split_remote("h:").unwrap(), ("h".into(), ".".into()));
        assert_eq!(
            split_remote("[::1]:22:x").unwrap(),
            ("[::1]:22".into(), "x".into())
        );
        assert!(split_remote("nocolon").is_err());
    }

    #[test]
    fn exit_code_priority() {
        let r = |o: Outcome| {
            let mut r = report();
            r.outcome = o;
            r
        };
        assert_eq!(exit_code(&[r(Outcome::Ok)]), 0);
        assert_eq!(
            exit_code(&[r(Outcome::Ok), r(Outcome::Failed { exit_code: Some(3) })]),
            code::SSH_REMOTE
        );
        assert_eq!(
            exit_code(&[
                r(Outcome::Unreachable),
                r(Outcome::Failed { exit_code: Some(3) })
            ]),
            code::NETWORK
        );
        assert_eq!(
            exit_code(&[r(Outcome::Unreachable), r(Outcome::AuthFailed)]),
            code::SSH_AUTH
        );
        assert_eq!(
            exit_code(&[r(Outcome::AuthFailed), r(Outcome::HostkeyChanged)]),
            code::SSH_HOSTKEY
        );
    }

    fn report() -> HostReport {
        HostReport {
            label: "h".into(),
            host: "h".into(),
            port: 22,
            outcome: Outcome::Ok,
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
            message: None,
            host_key: None,
            entries: Vec::new(),
            bytes: 0,
        }
    }
}
