//! `opskit notify slack|teams|jira|webhook` and `opskit webhook sign|verify`.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use opskit_http::Secret;
use opskit_notify::jira::IssueRequest;
use opskit_notify::signing::{
    FileSeenIds, ReceivedHeaders, Verifier, WebhookSecret, XSignatureSecret,
};
use opskit_notify::slack::{Message as SlackMessage, Overrides as SlackOverrides};
use opskit_notify::teams::CardFormat;
use opskit_notify::{
    Alert, ChatSender, DeliveryOptions, Error as NotifyError, JiraClient, JiraOutcome, Severity,
    Signing, WebhookSender,
};
use secrecy::ExposeSecret;

use crate::cli::{parse_duration, zero_or_duration};
use crate::exit::{self, Failure};
use crate::secret_arg::{self, Literal};

/// Deadlines and retries shared by every `notify` command.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Deadline of one attempt (e.g. 10s, 500ms, 1m; at most 1h).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, global = true)]
    timeout: Duration,
    /// Retries after a 429, a 5xx or a timeout (0 = send once).
    #[arg(long, value_name = "N", default_value_t = 3, global = true)]
    retries: u32,
}

impl DeliveryArgs {
    fn options(&self, base: DeliveryOptions) -> anyhow::Result<DeliveryOptions> {
        if self.timeout > Duration::from_secs(3600) {
            return Err(Failure::usage("--timeout must be at most 1h").into());
        }
        Ok(DeliveryOptions {
            timeout: self.timeout,
            retries: self.retries.min(10),
            ..base
        })
    }
}

/// The alert shown by Slack and Teams.
#[derive(Debug, Clone, Args)]
pub struct AlertArgs {
    /// How bad it is; sets the colour.
    #[arg(long, value_enum, default_value_t = SeverityArg::Info)]
    severity: SeverityArg,
    /// Headline, shown as `[SEVERITY] title`.
    #[arg(long)]
    title: String,
    /// The message text.
    #[arg(long)]
    message: String,
    /// An extra field `name=value` (repeatable, shown in order).
    #[arg(long = "field", value_name = "NAME=VALUE")]
    fields: Vec<String>,
    /// The host the alert is about (shown as the first field).
    #[arg(long)]
    host: Option<String>,
    /// Footer text.
    #[arg(long, default_value = "opskit")]
    footer: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SeverityArg {
    Critical,
    Warning,
    Info,
    Resolved,
}

impl AlertArgs {
    fn alert(&self) -> anyhow::Result<Alert> {
        build_alert(
            self.severity,
            &self.title,
            &self.message,
            &self.fields,
            self.host.as_deref(),
            &self.footer,
        )
    }
}

fn build_alert(
    severity: SeverityArg,
    title: &str,
    message: &str,
    fields: &[String],
    host: Option<&str>,
    footer: &str,
) -> anyhow::Result<Alert> {
    let severity = match severity {
        SeverityArg::Critical => Severity::Critical,
        SeverityArg::Warning => Severity::Warning,
        SeverityArg::Info => Severity::Info,
        SeverityArg::Resolved => Severity::Resolved,
    };
    let mut alert = Alert::new(severity, title, message);
    footer.clone_into(&mut alert.footer);
    if let Some(h) = host {
        alert = alert.host(h);
    }
    for f in fields {
        let (k, v) = opskit_notify::alert::parse_field(f).map_err(usage)?;
        alert = alert.field(k, v);
    }
    alert.validate().map_err(usage)?;
    Ok(alert)
}

/// `notify slack`: an alert (`--title` and `--message`, an attachment coloured by severity) or a
/// plain `--text`, with the seeds' basic webhook fields.
#[derive(Debug, Clone, Args)]
pub struct SlackArgs {
    /// A plain message without an attachment (Slack mrkdwn: *bold*, <url|link>, :emoji:); instead
    /// of --title/--message.
    #[arg(long, conflicts_with_all = ["title", "message", "fields", "host"])]
    text: Option<String>,
    /// How bad it is; sets the colour of the attachment.
    #[arg(long, value_enum, default_value_t = SeverityArg::Info)]
    severity: SeverityArg,
    /// Headline, shown as `[SEVERITY] title`.
    #[arg(long, required_unless_present = "text")]
    title: Option<String>,
    /// The message text.
    #[arg(long, required_unless_present = "text")]
    message: Option<String>,
    /// An extra field `name=value` (repeatable, shown in order).
    #[arg(long = "field", value_name = "NAME=VALUE")]
    fields: Vec<String>,
    /// The host the alert is about (shown as the first field).
    #[arg(long)]
    host: Option<String>,
    /// Footer text.
    #[arg(long, default_value = "opskit")]
    footer: String,
    /// Post to this channel (`#ops`, `@user`) instead of the webhook's own; legacy webhooks.
    #[arg(long)]
    channel: Option<String>,
    /// Post as this name (the seeds' "Python Bot"); legacy webhooks.
    #[arg(long)]
    username: Option<String>,
    /// Emoji used as the avatar, e.g. :robot_face: (colons optional); legacy webhooks.
    #[arg(long, value_name = "EMOJI")]
    icon_emoji: Option<String>,
}

impl SlackArgs {
    fn message(&self) -> anyhow::Result<SlackMessage> {
        if let Some(text) = &self.text {
            let message = SlackMessage::Text(text.clone());
            message.validate().map_err(usage)?;
            return Ok(message);
        }
        // clap requires both when --text is absent
        let (Some(title), Some(message)) = (&self.title, &self.message) else {
            return Err(Failure::usage("give --text, or --title and --message").into());
        };
        Ok(SlackMessage::Alert(build_alert(
            self.severity,
            title,
            message,
            &self.fields,
            self.host.as_deref(),
            &self.footer,
        )?))
    }

    fn overrides(&self) -> anyhow::Result<SlackOverrides> {
        SlackOverrides {
            channel: self.channel.clone(),
            username: self.username.clone(),
            icon_emoji: self.icon_emoji.clone(),
        }
        .normalized()
        .map_err(usage)
    }
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Post an alert (attachment coloured by severity) or a plain --text to a Slack incoming
    /// webhook.
    Slack {
        /// The webhook URL: env:VAR, file:PATH, cmd:COMMAND or the URL itself.
        #[arg(long, value_name = "SECRET", default_value = "env:SLACK_WEBHOOK_URL")]
        webhook: String,
        #[command(flatten)]
        slack: SlackArgs,
    },
    /// Post an alert to Microsoft Teams (Adaptive Card for Workflows, or a legacy MessageCard).
    Teams {
        /// The webhook URL: env:VAR, file:PATH, cmd:COMMAND or the URL itself.
        #[arg(long, value_name = "SECRET", default_value = "env:TEAMS_WEBHOOK_URL")]
        webhook: String,
        /// `adaptive` for Workflows webhooks, `messagecard` for legacy Office 365 connectors.
        #[arg(long, value_enum, default_value_t = FormatArg::Adaptive)]
        format: FormatArg,
        #[command(flatten)]
        alert: AlertArgs,
    },
    /// Open a Jira Cloud issue (REST API v3, ADF description); print its key and URL.
    Jira(JiraArgs),
    /// POST JSON to any URL, signed per Standard Webhooks (or X-Signature).
    Webhook(WebhookArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Adaptive,
    Messagecard,
}

#[derive(Debug, Args)]
pub struct JiraArgs {
    /// The Jira site, e.g. https://example.atlassian.net.
    #[arg(long, env = "JIRA_URL")]
    url: String,
    /// The account email (Basic auth is email:api_token).
    #[arg(long, env = "JIRA_EMAIL")]
    email: String,
    /// The API token: env:VAR, file:PATH, cmd:COMMAND or the token itself.
    #[arg(long, value_name = "SECRET", default_value = "env:JIRA_API_TOKEN")]
    token: String,
    /// Project key.
    #[arg(long)]
    project: String,
    /// One-line summary.
    #[arg(long)]
    summary: String,
    /// Description (plain text; blank lines make paragraphs).
    #[arg(long)]
    description: Option<String>,
    /// Priority name (e.g. High).
    #[arg(long)]
    priority: Option<String>,
    /// A label (repeatable; no spaces).
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Issue type name.
    #[arg(long = "type", default_value = "Incident")]
    issue_type: String,
    /// If an open issue has the same summary and labels, comment on it instead.
    #[arg(long)]
    dedupe: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StyleArg {
    /// webhook-id, webhook-timestamp, webhook-signature (Standard Webhooks).
    Standard,
    /// X-Signature: sha256=<hex> of the body (the seeds' style).
    XSignature,
}

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Where to POST.
    url: String,
    /// The JSON body, or @FILE, or @- for stdin (sent byte for byte).
    #[arg(long)]
    data: String,
    /// Signing secret(s): env:VAR, file:PATH, cmd:COMMAND or the value; repeat to sign with
    /// several keys during a rotation. Standard style takes `whsec_<base64>`.
    #[arg(long = "secret", value_name = "SECRET")]
    secrets: Vec<String>,
    /// Signature scheme.
    #[arg(long, value_enum, default_value_t = StyleArg::Standard)]
    signature_style: StyleArg,
    /// The webhook-id (idempotency key) to use instead of a new one.
    #[arg(long)]
    id: Option<String>,
    /// An extra header `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Print the signature headers for a body.
    Sign {
        /// Secret(s): env:VAR, file:PATH, cmd:COMMAND or the value (repeat for rotation).
        #[arg(long = "secret", value_name = "SECRET", required = true)]
        secrets: Vec<String>,
        /// The JSON body, or @FILE, or @- for stdin.
        #[arg(long)]
        data: String,
        /// webhook-id (default: a new msg_… id).
        #[arg(long)]
        id: Option<String>,
        /// webhook-timestamp in Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// Signature scheme.
        #[arg(long, value_enum, default_value_t = StyleArg::Standard)]
        style: StyleArg,
    },
    /// Check a delivery's signature; exits 1 with the reason when it does not verify.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Secret(s) to accept: env:VAR, file:PATH, cmd:COMMAND or the value (repeat for rotation).
    #[arg(long = "secret", value_name = "SECRET", required = true)]
    secrets: Vec<String>,
    /// The body exactly as received, or @FILE, or @- for stdin.
    #[arg(long)]
    data: String,
    /// A file holding the received headers as `Name: value` lines (- for stdin).
    #[arg(long, value_name = "FILE")]
    headers: Option<PathBuf>,
    /// The webhook-id header.
    #[arg(long)]
    id: Option<String>,
    /// The webhook-timestamp header.
    #[arg(long)]
    timestamp: Option<String>,
    /// The webhook-signature header (or, with --style x-signature, the X-Signature header).
    #[arg(long)]
    signature: Option<String>,
    /// Largest accepted distance between the timestamp and now (e.g. 300, 5m; 0 = exact).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = zero_or_duration)]
    tolerance: Duration,
    /// Remember accepted ids in FILE and reject one seen before (replay).
    #[arg(long, value_name = "FILE")]
    seen_ids: Option<PathBuf>,
    /// Signature scheme.
    #[arg(long, value_enum, default_value_t = StyleArg::Standard)]
    style: StyleArg,
}

fn usage(e: NotifyError) -> anyhow::Error {
    Failure::usage(e.to_string()).into()
}

/// A failed delivery: the one mapping of `opskit_notify::Error` (3 network, 4 a 4xx, 5 a 5xx).
fn delivery_failure(e: NotifyError) -> anyhow::Error {
    crate::failure::notify(e)
}

async fn resolve(spec: &str, what: &str) -> anyhow::Result<secrecy::SecretString> {
    secret_arg::resolve(
        spec,
        &format!("the {what}"),
        &format!("{what}: "),
        Literal::Allowed,
    )
    .await
}

/// `--data JSON|@FILE|@-`: the raw bytes, checked to be JSON when we are the sender.
fn read_data(data: &str, require_json: bool) -> anyhow::Result<Vec<u8>> {
    let bytes = if data == "@-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("cannot read the body from stdin: {e}")))?;
        buf
    } else if let Some(path) = data.strip_prefix('@') {
        std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read --data file {path}: {e}")))?
    } else {
        data.as_bytes().to_vec()
    };
    if require_json && let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return Err(Failure::usage(format!("--data is not valid JSON: {e}"))
            .with_hint("pass a JSON document, or @file.json")
            .into());
    }
    Ok(bytes)
}

pub(crate) async fn standard_secrets(specs: &[String]) -> anyhow::Result<Vec<WebhookSecret>> {
    let mut out = Vec::new();
    for spec in specs {
        let text = resolve(spec, "webhook secret").await?;
        out.push(WebhookSecret::parse(text.expose_secret()).map_err(|e| {
            anyhow::Error::from(Failure::usage(e.to_string()).with_hint(
                "Standard Webhooks secrets look like whsec_<base64>; make one with \
                 echo \"whsec_$(openssl rand -base64 32)\"",
            ))
        })?);
    }
    Ok(out)
}

async fn x_secret(specs: &[String]) -> anyhow::Result<XSignatureSecret> {
    let [spec] = specs else {
        return Err(Failure::usage("--style x-signature takes exactly one --secret").into());
    };
    XSignatureSecret::new(resolve(spec, "webhook secret").await?).map_err(usage)
}

impl NotifyCommand {
    pub fn run(self, delivery: &DeliveryArgs) -> anyhow::Result<u8> {
        crate::block_on(self.run_async(delivery))?
    }

    async fn run_async(self, delivery: &DeliveryArgs) -> anyhow::Result<u8> {
        match self {
            NotifyCommand::Slack { webhook, slack } => {
                let message = slack.message()?;
                let overrides = slack.overrides()?;
                let url = resolve(&webhook, "Slack webhook URL").await?;
                let sender =
                    ChatSender::new(&delivery.options(DeliveryOptions::slack())?).map_err(usage)?;
                let done = sender
                    .slack_message(&url, &message, &overrides)
                    .await
                    .map_err(delivery_failure)?;
                println!("sent to Slack ({})", attempts(done.status, done.attempts));
            }
            NotifyCommand::Teams {
                webhook,
                format,
                alert,
            } => {
                let alert = alert.alert()?;
                let url = resolve(&webhook, "Teams webhook URL").await?;
                let sender =
                    ChatSender::new(&delivery.options(DeliveryOptions::teams())?).map_err(usage)?;
                let format = match format {
                    FormatArg::Adaptive => CardFormat::Adaptive,
                    FormatArg::Messagecard => CardFormat::MessageCard,
                };
                let done = sender
                    .teams(&url, &alert, format)
                    .await
                    .map_err(delivery_failure)?;
                println!("sent to Teams ({})", attempts(done.status, done.attempts));
            }
            NotifyCommand::Jira(args) => {
                let mut req = IssueRequest::new(&args.project, &args.summary);
                req.description = args.description;
                req.priority = args.priority;
                req.labels = args.labels;
                req.issue_type = args.issue_type;
                req.validate().map_err(usage)?;
                // Read the token now so a missing one is a clear usage error before any request.
                let token = resolve(&args.token, "Jira API token").await?;
                let client = JiraClient::new(
                    &args.url,
                    &args.email,
                    Secret::Value(token),
                    &delivery.options(DeliveryOptions::default())?,
                )
                .map_err(usage)?;
                let now = opskit_notify::alert::now_rfc3339();
                let outcome = client
                    .open(&req, args.dedupe, &now)
                    .await
                    .map_err(delivery_failure)?;
                match &outcome {
                    JiraOutcome::Created { key, url } => println!("created {key} {url}"),
                    JiraOutcome::Commented { key, url } => {
                        println!(
                            "commented on {key} {url} (an open issue with that summary exists)"
                        );
                    }
                }
            }
            NotifyCommand::Webhook(args) => {
                let body = read_data(&args.data, true)?;
                let mut headers = Vec::new();
                for h in &args.headers {
                    match h.split_once(':') {
                        Some((k, v)) if !k.trim().is_empty() => {
                            headers.push((k.trim().to_owned(), v.trim().to_owned()));
                        }
                        _ => {
                            return Err(Failure::usage(format!(
                                "--header {h:?} is not `Name: value`"
                            ))
                            .into());
                        }
                    }
                }
                let signing = if args.secrets.is_empty() {
                    if args.signature_style == StyleArg::XSignature {
                        return Err(
                            Failure::usage("--signature-style x-signature needs --secret").into(),
                        );
                    }
                    if args.id.is_some() {
                        return Err(
                            Failure::usage("--id needs --secret (it is a signed header)").into(),
                        );
                    }
                    Signing::Unsigned
                } else {
                    match args.signature_style {
                        StyleArg::Standard => Signing::Standard {
                            secrets: standard_secrets(&args.secrets).await?,
                            id: args.id,
                            timestamp: None,
                        },
                        StyleArg::XSignature => Signing::XSignature(x_secret(&args.secrets).await?),
                    }
                };
                let sender = WebhookSender::new(&delivery.options(DeliveryOptions::default())?)
                    .map_err(usage)?;
                let done = sender
                    .send(&args.url, body, &signing, &headers)
                    .await
                    .map_err(delivery_failure)?;
                match &done.webhook_id {
                    Some(id) => {
                        println!("delivered {id} ({})", attempts(done.status, done.attempts))
                    }
                    None => println!("delivered ({})", attempts(done.status, done.attempts)),
                }
            }
        }
        Ok(exit::code::OK)
    }
}

fn attempts(status: u16, n: u32) -> String {
    if n == 1 {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} after {n} attempts")
    }
}

impl WebhookCommand {
    pub fn run(self) -> anyhow::Result<u8> {
        crate::block_on(self.run_async())?
    }

    async fn run_async(self) -> anyhow::Result<u8> {
        match self {
            WebhookCommand::Sign {
                secrets,
                data,
                id,
                timestamp,
                style,
            } => {
                let body = read_data(&data, true)?;
                match style {
                    StyleArg::Standard => {
                        let secrets = standard_secrets(&secrets).await?;
                        let id = id.unwrap_or_else(opskit_notify::signing::new_message_id);
                        let ts = timestamp.unwrap_or_else(opskit_notify::signing::unix_now);
                        let signed = opskit_notify::signing::sign(&secrets, &id, ts, &body)
                            .map_err(usage)?;
                        for (k, v) in signed.pairs() {
                            println!("{k}: {v}");
                        }
                    }
                    StyleArg::XSignature => {
                        if id.is_some() || timestamp.is_some() {
                            return Err(Failure::usage(
                                "--id and --timestamp are Standard Webhooks headers; X-Signature covers the body only",
                            )
                            .into());
                        }
                        println!("X-Signature: {}", x_secret(&secrets).await?.sign(&body));
                    }
                }
                Ok(exit::code::OK)
            }
            WebhookCommand::Verify(args) => verify(args).await,
        }
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    if args.data == "@-" && args.headers.as_deref() == Some(std::path::Path::new("-")) {
        return Err(Failure::usage("--data and --headers cannot both come from stdin").into());
    }
    // The body exactly as received: verified byte for byte, whatever it contains.
    let body = read_data(&args.data, false)?;
    let mut received = match &args.headers {
        None => ReceivedHeaders::default(),
        Some(path) => {
            // bounded: a header block is small, a 1 GB file is refused, not read whole
            if path.as_os_str() == "-" {
                ReceivedHeaders::read_block(std::io::stdin().lock())
                    .map_err(|e| Failure::usage(format!("cannot read headers from stdin: {e}")))?
            } else {
                std::fs::File::open(path)
                    .and_then(ReceivedHeaders::read_block)
                    .map_err(|e| {
                        Failure::usage(format!("cannot read --headers {}: {e}", path.display()))
                    })?
            }
        }
    };
    let rejected = |e: NotifyError| -> anyhow::Error {
        match &e {
            NotifyError::Rejected(r) => {
                let hint = match r.code() {
                    "wrong_secret" | "signature_mismatch" => {
                        Some("check that --secret is the endpoint's current secret")
                    }
                    "timestamp_too_old" | "timestamp_too_new" => Some(
                        "deliveries must be verified when they arrive; check both clocks, or raise --tolerance",
                    ),
                    "malformed_header" => {
                        Some("pass --id, --timestamp and --signature, or --headers FILE")
                    }
                    _ => None,
                };
                // `r` starts with the reason in words (`replayed: …`, `malformed headers: …`).
                let f = Failure::new(exit::code::FAILURE, format!("rejected: {r}"));
                match hint {
                    Some(h) => f.with_hint(h).into(),
                    None => f.into(),
                }
            }
            _ => usage(e),
        }
    };
    match args.style {
        StyleArg::XSignature => {
            let header = args
                .signature
                .or(received.x_signature.take())
                .ok_or_else(|| {
                    Failure::usage(
                        "--style x-signature needs --signature 'sha256=<hex>' or --headers FILE with X-Signature",
                    )
                })?;
            x_secret(&args.secrets)
                .await?
                .verify(&header, &body)
                .map_err(rejected)?;
            println!("valid X-Signature");
        }
        StyleArg::Standard => {
            if args.id.is_some() {
                received.id = args.id;
            }
            if args.timestamp.is_some() {
                received.timestamp = args.timestamp;
            }
            if args.signature.is_some() {
                received.signature = args.signature;
            }
            let mut verifier = Verifier::new(standard_secrets(&args.secrets).await?)
                .map_err(usage)?
                .tolerance(Some(args.tolerance));
            if let Some(path) = &args.seen_ids {
                verifier = verifier.seen_ids(Box::new(FileSeenIds::new(path)));
            }
            verifier.verify(&received, &body).map_err(rejected)?;
            println!(
                "valid: webhook-id {} signed at {}",
                received.id.as_deref().unwrap_or_default(),
                received.timestamp.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(exit::code::OK)
}
