//! `opskit prom`: the Prometheus HTTP API through [`opskit_apis::prometheus`]: instant and range
//! queries, alerts, rules, targets, series and labels, as rows (labels as columns).
//!
//! The server is `--url`, else `PROMETHEUS_URL`, else the base_url of `--profile NAME`. A
//! Prometheus error document is shown with its `errorType` and text; a bad expression's
//! position is pointed at under the expression (exit 2).

use std::collections::BTreeSet;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use opskit_apis::prometheus::{self as prom, Answer, Prometheus, QueryData, RuleKind, Window};
use opskit_apis::time_arg::{parse_time, rfc3339, unix_now};
use opskit_http as engine;
use serde_json::{Map, Value, json};

use super::api_client::{self, ConnArgs};
use super::http::values::SecretRef;
use crate::exit::{Failure, code};
use crate::secret_arg::{self, Literal};

#[derive(Debug, Args)]
pub struct PromArgs {
    /// Prometheus base URL; a path is kept as the route prefix (http://h/prometheus).
    #[arg(
        long,
        global = true,
        env = "PROMETHEUS_URL",
        value_name = "URL",
        help_heading = "Connection"
    )]
    pub url: Option<String>,
    /// Bearer token for a Prometheus behind an authenticating proxy (env:VAR, file:PATH,
    /// cmd:COMMAND or the value).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        conflicts_with = "user",
        help_heading = "Connection"
    )]
    pub bearer: Option<SecretRef>,
    /// Basic auth user (Prometheus' --web.config.file); the password comes from --password.
    #[arg(long, global = true, value_name = "USER", help_heading = "Connection")]
    pub user: Option<String>,
    /// Basic auth password: env:VAR, file:PATH, cmd:COMMAND or prompt (never the value).
    #[arg(
        long,
        global = true,
        value_name = "SECRET",
        requires = "user",
        help_heading = "Connection"
    )]
    pub password: Option<String>,
    /// Exit 1 when the result is empty (no series, alert, rule, target or label), for scripts.
    #[arg(long, global = true, help_heading = "Output")]
    pub fail_empty: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: PromCommand,
}

#[derive(Debug, Subcommand)]
pub enum PromCommand {
    /// Instant query: one row per series, labels as columns, then value and timestamp.
    Query {
        /// PromQL expression, e.g. 'up' or 'sum by (job) (rate(http_requests_total[5m]))'.
        expr: String,
        /// Evaluation time: now (default), -1h / now-1h, RFC 3339 or Unix seconds.
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        time: Option<String>,
    },
    /// Range query: one row per sample (labels, timestamp, value).
    Range(RangeArgs),
    /// Active alerts (pending and firing).
    Alerts,
    /// Alerting and recording rules, one row per rule.
    Rules {
        /// Only alerting or only recording rules.
        #[arg(long = "type", value_enum)]
        kind: Option<RuleType>,
    },
    /// Scrape targets and their health.
    Targets {
        /// Only targets in this health state.
        #[arg(long, value_enum)]
        state: Option<Health>,
    },
    /// Series matching selectors, one row per series (labels as columns).
    Series {
        /// Series selectors, e.g. up or '{job="node"}' (at least one).
        #[arg(required = true)]
        selectors: Vec<String>,
        #[command(flatten)]
        window: WindowArgs,
    },
    /// Label names, or with NAME the values of that label.
    Labels {
        /// A label whose values to list (e.g. job).
        name: Option<String>,
        /// Only series matching this selector (repeatable).
        #[arg(long = "match", value_name = "SELECTOR")]
        matchers: Vec<String>,
        #[command(flatten)]
        window: WindowArgs,
    },
}

#[derive(Debug, Args)]
pub struct RangeArgs {
    /// PromQL expression.
    expr: String,
    /// Start this long before the end (default 1h); or give --start.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, conflicts_with = "start")]
    since: Option<Duration>,
    /// Start: -2h / now-2h, RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    start: Option<String>,
    /// End: now (default), relative, RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    end: Option<String>,
    /// Resolution (default: the range / 250, at least 1s), e.g. 15s or 1m.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    step: Option<Duration>,
}

/// `--start`/`--end` or `--since` of the metadata commands (`series`, `labels`).
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Only series with samples in the last DURATION (approximate, as Prometheus says).
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, conflicts_with = "start")]
    since: Option<Duration>,
    /// Window start: relative (-1h), RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    start: Option<String>,
    /// Window end: relative, RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    end: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuleType {
    Alert,
    Record,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Health {
    Up,
    Down,
    Unknown,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }
}

impl PromArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let ep = api_client::endpoint(
            "prom",
            "--url / PROMETHEUS_URL",
            self.url.as_deref(),
            None,
            &self.conn,
        )?;
        let mut cfg = ep.config;
        if let Some(b) = &self.bearer {
            cfg.auth = api_client::bearer(b);
        }
        let output = self.conn.output;
        let fail_empty = self.fail_empty;
        let base = ep.base_url;
        crate::block_on(async move {
            if let Some(user) = &self.user {
                let password = match &self.password {
                    Some(spec) => Some(
                        secret_arg::resolve(
                            spec,
                            "--password",
                            "Prometheus password: ",
                            Literal::Refused,
                        )
                        .await?,
                    ),
                    None => None,
                };
                cfg.auth = engine::Auth::Basic {
                    username: user.clone(),
                    password: engine::Secret::Value(password.unwrap_or_else(|| "".into())),
                };
            }
            let client = Prometheus::new(&base, cfg).map_err(crate::failure::apis)?;
            let rows = run_command(&client, self.command).await?;
            let empty = rows.rows.is_empty();
            api_client::print_rows(&rows.columns, rows.rows, output)?;
            if empty && fail_empty {
                return Err(api_client::empty_result(&rows.what));
            }
            Ok(code::OK)
        })?
    }
}

/// What a command prints: columns for the table and CSV, the rows, and what it was (messages).
struct Rows {
    what: String,
    columns: Vec<String>,
    rows: Vec<Value>,
}

async fn run_command(client: &Prometheus, command: PromCommand) -> anyhow::Result<Rows> {
    let now = unix_now();
    match command {
        PromCommand::Query { expr, time } => {
            let at = time
                .as_deref()
                .map(|t| time_flag("--time", t, now))
                .transpose()?;
            let answer = client
                .query(&expr, at)
                .await
                .map_err(|e| prom_error(e, &expr))?;
            Ok(query_rows(&expr, answer))
        }
        PromCommand::Range(a) => {
            let end = match &a.end {
                Some(t) => time_flag("--end", t, now)?,
                None => now,
            };
            let start = match (&a.start, a.since) {
                (Some(t), _) => time_flag("--start", t, now)?,
                (None, Some(d)) => end - d.as_secs_f64(),
                (None, None) => end - 3600.0,
            };
            if end < start {
                return Err(Failure::usage(format!(
                    "the range ends ({}) before it starts ({})",
                    rfc3339(end),
                    rfc3339(start)
                ))
                .into());
            }
            let step = a.step.unwrap_or_else(|| auto_step(end - start));
            let answer = client
                .query_range(&a.expr, start, end, step)
                .await
                .map_err(|e| prom_error(e, &a.expr))?;
            Ok(query_rows(&a.expr, answer))
        }
        PromCommand::Alerts => {
            let answer = client.alerts().await.map_err(crate::failure::apis)?;
            warn(&answer.warnings);
            let rows = answer
                .data
                .into_iter()
                .map(|a| {
                    let mut labels = a.labels;
                    let name = labels.remove("alertname").unwrap_or_default();
                    json!({
                        "alertname": name,
                        "state": a.state,
                        "active_at": a.active_at,
                        "value": number_or_text(&a.value),
                        "labels": labels,
                        "annotations": a.annotations,
                    })
                })
                .collect();
            Ok(Rows {
                what: "alerts".into(),
                columns: cols(&[
                    "alertname",
                    "state",
                    "active_at",
                    "value",
                    "labels",
                    "annotations",
                ]),
                rows,
            })
        }
        PromCommand::Rules { kind } => {
            let kind = kind.map(|k| match k {
                RuleType::Alert => RuleKind::Alert,
                RuleType::Record => RuleKind::Record,
            });
            let answer = client.rules(kind).await.map_err(crate::failure::apis)?;
            warn(&answer.warnings);
            let mut rows = Vec::new();
            for g in answer.data {
                for r in g.rules {
                    rows.push(json!({
                        "group": g.name,
                        "name": r.name,
                        "type": r.kind,
                        "state": r.state,
                        "health": r.health,
                        "alerts": r.alerts.len(),
                        "query": r.query,
                        "last_error": r.last_error.filter(|e| !e.is_empty()),
                        "labels": r.labels,
                        "file": g.file,
                    }));
                }
            }
            Ok(Rows {
                what: "rules".into(),
                columns: cols(&[
                    "group",
                    "name",
                    "type",
                    "state",
                    "health",
                    "alerts",
                    "query",
                    "last_error",
                ]),
                rows,
            })
        }
        PromCommand::Targets { state } => {
            let answer = client.targets().await.map_err(crate::failure::apis)?;
            warn(&answer.warnings);
            let rows = answer
                .data
                .active_targets
                .into_iter()
                .filter(|t| state.is_none_or(|s| t.health == s.as_str()))
                .map(|t| {
                    json!({
                        "pool": t.scrape_pool,
                        "url": t.scrape_url,
                        "health": t.health,
                        "last_scrape": t.last_scrape,
                        "scrape_ms": (t.last_scrape_duration * 10_000.0).round() / 10.0,
                        "last_error": t.last_error,
                        "labels": t.labels,
                    })
                })
                .collect();
            Ok(Rows {
                what: match state {
                    Some(s) => format!("targets that are {}", s.as_str()),
                    None => "targets".into(),
                },
                columns: cols(&[
                    "pool",
                    "url",
                    "health",
                    "last_scrape",
                    "scrape_ms",
                    "last_error",
                ]),
                rows,
            })
        }
        PromCommand::Series { selectors, window } => {
            let w = window_of(&window, now)?;
            let answer = client
                .series(&selectors, w)
                .await
                .map_err(|e| prom_error(e, &selectors.join(" ")))?;
            warn(&answer.warnings);
            let columns = label_columns(answer.data.iter());
            let rows = answer
                .data
                .into_iter()
                .map(|labels| Value::Object(labels_object(&labels, &columns)))
                .collect();
            Ok(Rows {
                what: "series".into(),
                columns,
                rows,
            })
        }
        PromCommand::Labels {
            name,
            matchers,
            window,
        } => {
            let w = window_of(&window, now)?;
            let (column, answer) = match &name {
                Some(n) => ("value", client.label_values(n, &matchers, w).await),
                None => ("label", client.labels(&matchers, w).await),
            };
            let answer = answer.map_err(|e| prom_error(e, &matchers.join(" ")))?;
            warn(&answer.warnings);
            Ok(Rows {
                what: match &name {
                    Some(n) => format!("values of label {n}"),
                    None => "labels".into(),
                },
                columns: vec![column.to_owned()],
                rows: answer
                    .data
                    .into_iter()
                    .map(|l| json!({ column: l }))
                    .collect(),
            })
        }
    }
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// The rows of a query result: a vector's samples or a matrix's samples, labels as columns.
fn query_rows(expr: &str, answer: Answer<QueryData>) -> Rows {
    warn(&answer.warnings);
    for i in &answer.infos {
        eprintln!("info: {}", crate::peer_text::line(i));
    }
    let what = format!("query `{expr}`");
    match answer.data {
        QueryData::Vector(samples) => {
            let mut columns = label_columns(samples.iter().map(|s| &s.metric));
            let rows = samples
                .iter()
                .map(|s| {
                    let mut row = labels_object(&s.metric, &columns);
                    match &s.histogram {
                        Some((t, h)) => {
                            row.insert("value".into(), h.clone());
                            row.insert("timestamp".into(), Value::String(rfc3339(*t)));
                        }
                        None => {
                            row.insert("value".into(), number_or_text(&s.value.1));
                            row.insert("timestamp".into(), Value::String(rfc3339(s.value.0)));
                        }
                    }
                    Value::Object(row)
                })
                .collect();
            columns.extend(cols(&["value", "timestamp"]));
            Rows {
                what,
                columns,
                rows,
            }
        }
        QueryData::Matrix(series) => {
            let mut columns = label_columns(series.iter().map(|s| &s.metric));
            let mut rows = Vec::new();
            for s in &series {
                let labels = labels_object(&s.metric, &columns);
                for (t, v) in &s.values {
                    let mut row = labels.clone();
                    row.insert("timestamp".into(), Value::String(rfc3339(*t)));
                    row.insert("value".into(), number_or_text(v));
                    rows.push(Value::Object(row));
                }
                for (t, h) in &s.histograms {
                    let mut row = labels.clone();
                    row.insert("timestamp".into(), Value::String(rfc3339(*t)));
                    row.insert("value".into(), h.clone());
                    rows.push(Value::Object(row));
                }
            }
            columns.extend(cols(&["timestamp", "value"]));
            Rows {
                what,
                columns,
                rows,
            }
        }
        QueryData::Scalar((t, v)) | QueryData::String((t, v)) => Rows {
            what,
            columns: cols(&["value", "timestamp"]),
            rows: vec![json!({"value": number_or_text(&v), "timestamp": rfc3339(t)})],
        },
    }
}

/// The label names of these series: `__name__` first, then in name order.
fn label_columns<'a>(metrics: impl Iterator<Item = &'a prom::Labels>) -> Vec<String> {
    let mut names = BTreeSet::new();
    for m in metrics {
        names.extend(m.keys().cloned());
    }
    let mut out = Vec::with_capacity(names.len());
    if names.remove("__name__") {
        out.push("__name__".to_owned());
    }
    out.extend(names);
    out
}

/// A series' labels as an object in column order (a label it lacks is left out).
fn labels_object(labels: &prom::Labels, columns: &[String]) -> Map<String, Value> {
    columns
        .iter()
        .filter_map(|c| labels.get(c).map(|v| (c.clone(), Value::String(v.clone()))))
        .collect()
}

/// A sample value as a JSON number when it is one (`1`, `0.25`, `1e+00`), else the text
/// (`NaN`, `+Inf`).
fn number_or_text(v: &str) -> Value {
    match serde_json::from_str::<Value>(v) {
        Ok(n @ Value::Number(_)) => n,
        _ => Value::String(v.to_owned()),
    }
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {}", crate::peer_text::line(w));
    }
}

fn time_flag(flag: &str, text: &str, now: f64) -> anyhow::Result<f64> {
    parse_time(text, now).map_err(|e| Failure::usage(format!("{flag}: {e}")).into())
}

fn window_of(w: &WindowArgs, now: f64) -> anyhow::Result<Window> {
    let end = w
        .end
        .as_deref()
        .map(|t| time_flag("--end", t, now))
        .transpose()?;
    let start = match (&w.start, w.since) {
        (Some(t), _) => Some(time_flag("--start", t, now)?),
        (None, Some(d)) => Some(end.unwrap_or(now) - d.as_secs_f64()),
        (None, None) => None,
    };
    Ok(Window { start, end })
}

/// About 250 points per series, whole seconds, at least 1 s.
fn auto_step(range_secs: f64) -> Duration {
    Duration::from_secs(((range_secs / 250.0).round() as u64).max(1))
}

/// A Prometheus error about the expression: `bad_data` is the user's input (exit 2), shown with
/// the expression and a caret under the position Prometheus names.
fn prom_error(e: opskit_apis::Error, expr: &str) -> anyhow::Error {
    match &e {
        opskit_apis::Error::Api { kind, message, .. } if kind == "bad_data" => {
            let mut f = Failure::usage(e.to_string());
            if let Some((line, col)) = prom::error_position(message)
                && let Some(text) = expr.lines().nth(line.saturating_sub(1))
            {
                let pad: String = text
                    .chars()
                    .take(col.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                f = f.with_hint(format!(
                    "line {line}, column {col} of the expression:\n      {}\n      {pad}^",
                    crate::peer_text::line(text)
                ));
            } else {
                f = f.with_hint("check the PromQL syntax: https://prometheus.io/docs/prometheus/latest/querying/basics/");
            }
            f.into()
        }
        _ => crate::failure::apis(e),
    }
}
