//! `opskit do`: the DigitalOcean API v2 through [`opskit_apis::digitalocean`]: droplets (every
//! page, by tag), one droplet, power actions and snapshots, optionally waited for.
//!
//! The token is `--token` (env:VAR, file:PATH, cmd:COMMAND or prompt), else `DIGITALOCEAN_TOKEN`
//! (the API docs' name), else `DIGITALOCEAN_ACCESS_TOKEN` (doctl's), else the `--profile`'s auth.
//! The action name is checked before anything is read or sent.

use std::time::Duration;

use clap::{Args, Subcommand};
use opskit_apis::digitalocean::{self as dig, Action, DigitalOcean, PowerAction, WaitOptions};
use opskit_http as engine;
use serde_json::{Value, json};

use super::api_client::{self, ConnArgs};
use crate::exit::{Failure, code};
use crate::output::Format;
use crate::secret_arg::{self, Literal};

/// The env vars a token is taken from, in this order.
const TOKEN_VARS: [&str; 2] = ["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"];

const DROPLET_COLUMNS: [&str; 12] = [
    "id",
    "name",
    "status",
    "region",
    "size",
    "vcpus",
    "memory_mb",
    "disk_gb",
    "public_ipv4",
    "private_ipv4",
    "tags",
    "created_at",
];

const ACTION_COLUMNS: [&str; 7] = [
    "id",
    "type",
    "status",
    "resource_id",
    "region",
    "started_at",
    "completed_at",
];

#[derive(Debug, Args)]
pub struct DoArgs {
    /// API base URL (default https://api.digitalocean.com/v2).
    #[arg(
        long,
        global = true,
        env = "DIGITALOCEAN_API_URL",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub api_url: Option<String>,
    /// Token: env:VAR, file:PATH, cmd:COMMAND or prompt; default $DIGITALOCEAN_TOKEN, then
    /// $DIGITALOCEAN_ACCESS_TOKEN (doctl's), then the --profile's auth.
    #[arg(
        long,
        global = true,
        value_name = "SECRET",
        help_heading = "Connection"
    )]
    pub token: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: DoCommand,
}

#[derive(Debug, Subcommand)]
pub enum DoCommand {
    /// Droplets: list, get, action, snapshot.
    #[command(subcommand)]
    Droplets(DropletsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DropletsCommand {
    /// Every droplet (every page), or those with a tag.
    List {
        /// Only droplets with this tag.
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
    },
    /// One droplet.
    Get {
        /// The droplet id.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
    },
    /// Power action: power_on, power_off, reboot, shutdown (graceful), power_cycle.
    Action {
        /// The droplet id.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// power_on, power_off, reboot, shutdown or power_cycle.
        action: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Snapshot a droplet (DigitalOcean advises powering it off first).
    Snapshot {
        /// The droplet id.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// The snapshot's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the action completes (exit 0) or errors (exit 1).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long (exit 124; the action may still finish).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::parse_duration)]
    wait_timeout: Duration,
    /// With --wait: between two looks at the action.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = super::parse_duration)]
    poll_interval: Duration,
}

impl DoArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        // everything the user typed is checked before the token is read or a request is sent
        let action = match &self.command {
            DoCommand::Droplets(DropletsCommand::Action { action, .. }) => Some(
                action
                    .parse::<PowerAction>()
                    .map_err(crate::failure::apis)?,
            ),
            _ => None,
        };
        if let DoCommand::Droplets(DropletsCommand::Snapshot { name, .. }) = &self.command
            && name.trim().is_empty()
        {
            return Err(Failure::usage("--name: the snapshot name is empty").into());
        }
        let ep = api_client::endpoint(
            "do",
            "--api-url / DIGITALOCEAN_API_URL",
            self.api_url.as_deref(),
            Some(dig::DEFAULT_API_URL),
            &self.conn,
        )?;
        let mut cfg = ep.config;
        cfg.observer = Some(std::sync::Arc::new(api_client::WaitNotice));
        let output = self.conn.output;
        let base = ep.base_url;
        let profile_auth = ep.profile_auth;
        crate::block_on(async move {
            let token = match &self.token {
                Some(spec) => Some(
                    secret_arg::resolve(spec, "--token", "DigitalOcean token: ", Literal::Refused)
                        .await?,
                ),
                None => TOKEN_VARS
                    .iter()
                    .find_map(|v| std::env::var(v).ok().filter(|t| !t.trim().is_empty()))
                    .map(|t| t.trim().to_owned().into()),
            };
            match token {
                Some(t) => cfg.auth = engine::Auth::Bearer(engine::Secret::Value(t)),
                None if profile_auth => {}
                None => {
                    return Err(Failure::usage("opskit do: no DigitalOcean token")
                        .with_hint(
                            "set DIGITALOCEAN_TOKEN, give --token env:VAR|file:PATH|cmd:COMMAND, \
                             or --profile NAME with an [auth] (DigitalOcean has no anonymous access)",
                        )
                        .into());
                }
            }
            let client = DigitalOcean::new(&base, cfg).map_err(crate::failure::apis)?;
            run_command(&client, self.command, action, output).await
        })?
    }
}

async fn run_command(
    client: &DigitalOcean,
    command: DoCommand,
    action: Option<PowerAction>,
    output: Option<Format>,
) -> anyhow::Result<u8> {
    let DoCommand::Droplets(command) = command;
    match command {
        DropletsCommand::List { tag } => {
            let pages = client.droplets(tag.as_deref());
            api_client::stream_rows(&DROPLET_COLUMNS, pages, output, droplet_row).await?;
            Ok(code::OK)
        }
        DropletsCommand::Get { id } => {
            let d = client.droplet(id).await.map_err(crate::failure::apis)?;
            let mut columns = DROPLET_COLUMNS.to_vec();
            columns.extend(["image", "public_ipv6", "vpc_uuid", "locked", "features"]);
            let mut row = droplet_row(&d);
            row["image"] = json!(image_name(&d));
            row["public_ipv6"] = json!(address(&d, "v6", "public"));
            row["vpc_uuid"] = d.get("vpc_uuid").cloned().unwrap_or(Value::Null);
            row["locked"] = d.get("locked").cloned().unwrap_or(Value::Null);
            row["features"] = json!(joined(d.get("features")));
            api_client::print_rows(&columns, vec![row], output)?;
            Ok(code::OK)
        }
        DropletsCommand::Action { id, wait, .. } => {
            let Some(action) = action else {
                return Err(Failure::usage("no droplet action given").into());
            };
            let started = client
                .power_action(id, action)
                .await
                .map_err(crate::failure::apis)?;
            finish_action(client, started, &wait, output).await
        }
        DropletsCommand::Snapshot { id, name, wait } => {
            let started = client
                .snapshot(id, &name)
                .await
                .map_err(crate::failure::apis)?;
            finish_action(client, started, &wait, output).await
        }
    }
}

/// Prints the action as started, or with `--wait` as it ended.
async fn finish_action(
    client: &DigitalOcean,
    started: Action,
    wait: &WaitArgs,
    output: Option<Format>,
) -> anyhow::Result<u8> {
    if !wait.wait {
        api_client::print_rows(&ACTION_COLUMNS, vec![action_row(&started)], output)?;
        return Ok(code::OK);
    }
    if !started.is_done() {
        eprintln!(
            "waiting for action {} ({}) to complete (up to {}s)…",
            started.id,
            started.kind,
            wait.wait_timeout.as_secs()
        );
    }
    let options = WaitOptions {
        poll: wait.poll_interval.max(Duration::from_millis(10)),
        timeout: wait.wait_timeout,
    };
    let done = client
        .wait_for_action(&started, &options, |a| {
            tracing::debug!(id = a.id, status = %a.status, "action state")
        })
        .await
        .map_err(|e| match e {
            opskit_apis::Error::WaitTimedOut { .. } => Failure::new(code::WAIT_TIMEOUT, e.to_string())
                .with_hint(
                    "the action goes on at DigitalOcean; raise --wait-timeout, or look later: \
                     opskit http get https://api.digitalocean.com/v2/actions/ID",
                )
                .into(),
            opskit_apis::Error::OperationFailed { .. } => Failure::new(code::FAILURE, e.to_string())
                .with_hint("DigitalOcean gives no reason for an errored action; see the droplet's history in the control panel")
                .into(),
            other => crate::failure::apis(other),
        })?;
    api_client::print_rows(&ACTION_COLUMNS, vec![action_row(&done)], output)?;
    Ok(code::OK)
}

fn action_row(a: &Action) -> Value {
    json!({
        "id": a.id,
        "type": a.kind,
        "status": a.status,
        "resource_id": a.resource_id,
        "region": a.region_slug,
        "started_at": a.started_at,
        "completed_at": a.completed_at,
    })
}

fn droplet_row(d: &Value) -> Value {
    json!({
        "id": d.get("id"),
        "name": d.get("name"),
        "status": d.get("status"),
        "region": d.pointer("/region/slug"),
        "size": d.get("size_slug").or_else(|| d.pointer("/size/slug")),
        "vcpus": d.get("vcpus"),
        "memory_mb": d.get("memory"),
        "disk_gb": d.get("disk"),
        "public_ipv4": address(d, "v4", "public"),
        "private_ipv4": address(d, "v4", "private"),
        "tags": joined(d.get("tags")),
        "created_at": d.get("created_at"),
    })
}

/// The first address of `kind` (`public`/`private`) in `networks.{family}`.
fn address(d: &Value, family: &str, kind: &str) -> Value {
    d.pointer(&format!("/networks/{family}"))
        .and_then(Value::as_array)
        .and_then(|nets| {
            nets.iter()
                .find(|n| n.get("type").and_then(Value::as_str) == Some(kind))
                .and_then(|n| n.get("ip_address"))
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// An array of strings as `a,b,c`.
fn joined(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `Ubuntu 24.04 (LTS) x64`.
fn image_name(d: &Value) -> Value {
    let s = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or("");
    let text = format!("{} {}", s("/image/distribution"), s("/image/name"));
    let text = text.trim();
    if text.is_empty() {
        Value::Null
    } else {
        json!(text)
    }
}
