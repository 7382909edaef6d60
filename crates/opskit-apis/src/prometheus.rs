//! The Prometheus HTTP API (`/api/v1`), as the seeds' `PrometheusClient` uses it and more.
//!
//! Every answer is Prometheus' envelope `{status, data, errorType, error, warnings, infos}`; an
//! error document becomes [`Error::Api`] with its `errorType` (`bad_data`, `execution`, …) and
//! text (a bad PromQL expression's text carries its position, see [`error_position`]). A server
//! that is not ready answers 503 with plain text: that is an [`Error::Http`] status error, which
//! the engine retries like any 503.
//!
//! The base URL may carry a path (a route prefix: `http://h/prometheus`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), opskit_apis::Error> {
//! use opskit_apis::prometheus::{Prometheus, QueryData};
//! let prom = Prometheus::new("http://127.0.0.1:9090", opskit_http::ClientConfig::default())?;
//! let answer = prom.query("up", None).await?;
//! if let QueryData::Vector(samples) = answer.data {
//!     for s in samples {
//!         println!("{:?} {}", s.metric, s.value.1);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use opskit_http::{Client, ClientConfig, Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::time_arg;

const API: &str = "Prometheus";

/// Queries longer than this (URL-encoded) are sent as a form POST, which no URL length limit
/// of a server or proxy cuts.
const LONGEST_GET_QUERY: usize = 4000;

/// Labels of a series.
pub type Labels = BTreeMap<String, String>;

/// A client of one Prometheus server.
#[derive(Debug, Clone)]
pub struct Prometheus {
    client: Client,
}

/// An answer with the warnings and infos Prometheus attached to it.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The `data` of the envelope.
    pub data: T,
    /// `warnings` (the query ran, but the result may be incomplete).
    pub warnings: Vec<String>,
    /// `infos` (notes about the query).
    pub infos: Vec<String>,
}

/// The `data` of a query: one of the four result types.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    /// An instant vector: one sample per series.
    Vector(Vec<Sample>),
    /// A range vector: many samples per series.
    Matrix(Vec<Series>),
    /// A scalar: `[time, "value"]`.
    Scalar(Point),
    /// A string: `[time, "text"]`.
    String(Point),
}

impl QueryData {
    /// Whether the result holds nothing (no series; a scalar or string is never empty).
    pub fn is_empty(&self) -> bool {
        match self {
            QueryData::Vector(v) => v.is_empty(),
            QueryData::Matrix(m) => m.is_empty(),
            QueryData::Scalar(_) | QueryData::String(_) => false,
        }
    }
}

/// `[unix_time, "value"]`: the value is a string so that `NaN` and `±Inf` survive.
pub type Point = (f64, String);

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Sample {
    /// The series' labels (`__name__` included when the series has one).
    pub metric: Labels,
    /// The sample (absent for a native histogram).
    #[serde(default)]
    pub value: Point,
    /// A native histogram sample instead of `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<(f64, Value)>,
}

/// One series of a range vector.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Series {
    /// The series' labels.
    pub metric: Labels,
    /// The samples, oldest first.
    #[serde(default)]
    pub values: Vec<Point>,
    /// Native histogram samples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histograms: Vec<(f64, Value)>,
}

/// An alert (`/api/v1/alerts`, and inside an alerting rule).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    /// `pending` or `firing`.
    pub state: String,
    /// RFC 3339, absent when the alert is not active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_at: Option<String>,
    /// The value of the alert expression, as text (`1e+00`).
    #[serde(default)]
    pub value: String,
}

/// A rule group (`/api/v1/rules`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleGroup {
    pub name: String,
    pub file: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Evaluation interval in seconds.
    #[serde(default)]
    pub interval: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<String>,
}

/// An alerting or recording rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub name: String,
    pub query: String,
    /// `alerting` or `recording`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ok`, `err` or `unknown`.
    #[serde(default)]
    pub health: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Alerting rules: `inactive`, `pending` or `firing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Alerting rules: the `for` duration in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Labels,
    /// Alerting rules: the alerts the rule has now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation: Option<String>,
}

/// Which rules `/api/v1/rules` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Alerting rules only.
    Alert,
    /// Recording rules only.
    Record,
}

/// A scrape target (`/api/v1/targets`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default)]
    pub labels: Labels,
    pub scrape_pool: String,
    #[serde(default)]
    pub scrape_url: String,
    #[serde(default)]
    pub global_url: String,
    #[serde(default)]
    pub last_error: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_scrape: String,
    /// Seconds.
    #[serde(default)]
    pub last_scrape_duration: f64,
    /// `up`, `down` or `unknown`.
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub scrape_interval: String,
    #[serde(default)]
    pub scrape_timeout: String,
}

/// The active and dropped targets.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    #[serde(default)]
    pub active_targets: Vec<Target>,
    #[serde(default)]
    pub dropped_targets: Vec<Value>,
}

/// The envelope of every answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQueryData {
    result_type: String,
    result: Value,
}

/// A time window of the metadata endpoints (`series`, `labels`): Unix seconds, either end open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

impl Prometheus {
    /// A client of the server at `base_url` (a path is kept as the route prefix); `config`'s
    /// deadlines, retries, TLS and auth apply, its `base_url` is replaced.
    pub fn new(base_url: &str, mut config: ClientConfig) -> Result<Self, Error> {
        config.base_url = Some(base_url.to_owned());
        if !config
            .default_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            config
                .default_headers
                .push(("Accept".into(), "application/json".into()));
        }
        Ok(Prometheus {
            client: Client::new(config)?,
        })
    }

    /// The engine client (shared connections, quotas and cache).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// An instant query at `time` (Unix seconds; the server's now when `None`).
    pub async fn query(&self, expr: &str, time: Option<f64>) -> Result<Answer<QueryData>, Error> {
        let mut params = vec![("query", expr.to_owned())];
        if let Some(t) = time {
            params.push(("time", unix_param(t)));
        }
        let answer = self.call::<RawQueryData>("api/v1/query", &params).await?;
        query_data(answer)
    }

    /// A range query from `start` to `end` (Unix seconds, inclusive) every `step`.
    pub async fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Answer<QueryData>, Error> {
        if end < start {
            return Err(Error::InvalidInput(format!(
                "the range ends ({}) before it starts ({})",
                time_arg::rfc3339(end),
                time_arg::rfc3339(start)
            )));
        }
        if step.is_zero() {
            return Err(Error::InvalidInput(
                "the step must be more than zero".into(),
            ));
        }
        let points = (end - start) / step.as_secs_f64();
        if points > 11_000.0 {
            return Err(Error::InvalidInput(format!(
                "the range would have {} points per series; Prometheus allows 11,000: \
                 use a larger step or a shorter range",
                points.floor() + 1.0
            )));
        }
        let params = vec![
            ("query", expr.to_owned()),
            ("start", unix_param(start)),
            ("end", unix_param(end)),
            ("step", time_arg::seconds(step)),
        ];
        let answer = self
            .call::<RawQueryData>("api/v1/query_range", &params)
            .await?;
        query_data(answer)
    }

    /// The active alerts.
    pub async fn alerts(&self) -> Result<Answer<Vec<Alert>>, Error> {
        #[derive(Deserialize)]
        struct Data {
            alerts: Vec<Alert>,
        }
        let a = self.call::<Data>("api/v1/alerts", &[]).await?;
        Ok(Answer {
            data: a.data.alerts,
            warnings: a.warnings,
            infos: a.infos,
        })
    }

    /// The rule groups, with only alerting or recording rules when `kind` says so.
    pub async fn rules(&self, kind: Option<RuleKind>) -> Result<Answer<Vec<RuleGroup>>, Error> {
        #[derive(Deserialize)]
        struct Data {
            groups: Vec<RuleGroup>,
        }
        let mut params = Vec::new();
        match kind {
            Some(RuleKind::Alert) => params.push(("type", "alert".to_owned())),
            Some(RuleKind::Record) => params.push(("type", "record".to_owned())),
            None => {}
        }
        let a = self.call::<Data>("api/v1/rules", &params).await?;
        Ok(Answer {
            data: a.data.groups,
            warnings: a.warnings,
            infos: a.infos,
        })
    }

    /// The scrape targets (active and dropped).
    pub async fn targets(&self) -> Result<Answer<Targets>, Error> {
        self.call::<Targets>("api/v1/targets", &[]).await
    }

    /// The series matching any of `matchers` (at least one, e.g. `up` or `{job="node"}`).
    pub async fn series(
        &self,
        matchers: &[String],
        window: Window,
    ) -> Result<Answer<Vec<Labels>>, Error> {
        if matchers.is_empty() {
            return Err(Error::InvalidInput(
                "series needs at least one selector, e.g. up or {job=\"node\"}".into(),
            ));
        }
        let params = metadata_params(matchers, window);
        self.call::<Vec<Labels>>("api/v1/series", &params).await
    }

    /// The label names (of the series matching `matchers`, when given).
    pub async fn labels(
        &self,
        matchers: &[String],
        window: Window,
    ) -> Result<Answer<Vec<String>>, Error> {
        let params = metadata_params(matchers, window);
        self.call::<Vec<String>>("api/v1/labels", &params).await
    }

    /// The values of the label `name` (of the series matching `matchers`, when given).
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[String],
        window: Window,
    ) -> Result<Answer<Vec<String>>, Error> {
        if name.is_empty() {
            return Err(Error::InvalidInput("the label name is empty".into()));
        }
        let params = metadata_params(matchers, window);
        let path = format!("api/v1/label/{}/values", escape_label_name(name));
        self.call_get::<Vec<String>>(&path, &params).await
    }

    /// A call of an endpoint that takes a form POST as well as a GET: GET unless the query is
    /// too long for a URL.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Answer<T>, Error> {
        let encoded: usize = params.iter().map(|(k, v)| k.len() + v.len() * 3 + 2).sum();
        let post_ok = matches!(
            path,
            "api/v1/query" | "api/v1/query_range" | "api/v1/series" | "api/v1/labels"
        );
        if post_ok && encoded > LONGEST_GET_QUERY {
            let form: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            // a query changes nothing: safe to send again after a lost answer
            let rb = self
                .client
                .request(Method::POST, path)
                .form(&form)
                .retry_non_idempotent(true);
            return self.answer(rb).await;
        }
        self.call_get(path, params).await
    }

    async fn call_get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Answer<T>, Error> {
        let mut rb = self.client.get(path);
        for (k, v) in params {
            rb = rb.query_pair(*k, v.clone());
        }
        self.answer(rb).await
    }

    /// Sends and decodes the envelope: `data` on success, [`Error::Api`] for an error document,
    /// the engine's status error for anything else that is not a success.
    async fn answer<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<Answer<T>, Error> {
        let resp = rb.send().await?;
        let status = resp.status();
        let url = resp.url().to_string();
        if !status.is_success() {
            let is_json = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("json"));
            if !is_json {
                return Err(resp.error_for_status().await.err().map_or_else(
                    || Error::Decode {
                        url: url.clone(),
                        message: format!("HTTP {status} without an error document"),
                    },
                    Error::Http,
                ));
            }
        }
        let body = resp.bytes().await?;
        let env: Envelope = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            url: url.clone(),
            message: format!("not a Prometheus API answer (HTTP {status}): {e}"),
        })?;
        if env.status != "success" {
            return Err(Error::Api {
                api: API,
                status: status.as_u16(),
                kind: env.error_type.unwrap_or_else(|| "error".into()),
                message: env.error.unwrap_or_else(|| format!("HTTP {status}")),
                details: Vec::new(),
            });
        }
        let data = env.data.unwrap_or(Value::Null);
        let data = serde_json::from_value::<T>(data).map_err(|e| Error::Decode {
            url,
            message: format!("unexpected data: {e}"),
        })?;
        Ok(Answer {
            data,
            warnings: env.warnings,
            infos: env.infos,
        })
    }
}

fn query_data(a: Answer<RawQueryData>) -> Result<Answer<QueryData>, Error> {
    let bad = |e: serde_json::Error| Error::Decode {
        url: "the query".into(),
        message: format!("unexpected {} result: {e}", a.data.result_type),
    };
    let data = match a.data.result_type.as_str() {
        "vector" => QueryData::Vector(serde_json::from_value(a.data.result.clone()).map_err(bad)?),
        "matrix" => QueryData::Matrix(serde_json::from_value(a.data.result.clone()).map_err(bad)?),
        "scalar" => QueryData::Scalar(serde_json::from_value(a.data.result.clone()).map_err(bad)?),
        "string" => QueryData::String(serde_json::from_value(a.data.result.clone()).map_err(bad)?),
        other => {
            return Err(Error::Decode {
                url: "the query".into(),
                message: format!("unknown resultType {other:?}"),
            });
        }
    };
    Ok(Answer {
        data,
        warnings: a.warnings,
        infos: a.infos,
    })
}

fn metadata_params(matchers: &[String], window: Window) -> Vec<(&'static str, String)> {
    let mut params: Vec<(&str, String)> = matchers.iter().map(|m| ("match[]", m.clone())).collect();
    if let Some(s) = window.start {
        params.push(("start", unix_param(s)));
    }
    if let Some(e) = window.end {
        params.push(("end", unix_param(e)));
    }
    params
}

/// Unix seconds with at most millisecond precision (what Prometheus keeps).
fn unix_param(t: f64) -> String {
    let ms = (t * 1000.0).round() / 1000.0;
    if ms.fract() == 0.0 {
        format!("{}", ms as i64)
    } else {
        format!("{ms:.3}")
    }
}

/// A label name in a URL path: names outside `[a-zA-Z_][a-zA-Z0-9_]*` use Prometheus' `U__`
/// escaping (`http.status` → `U__http_2e_status`).
fn escape_label_name(name: &str) -> String {
    let plain = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if plain {
        return name.to_owned();
    }
    let mut out = String::from("U__");
    for (i, c) in name.chars().enumerate() {
        if c == '_' {
            out.push_str("__");
        } else if c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()) {
            out.push(c);
        } else {
            out.push_str(&format!("_{:x}_", c as u32));
        }
    }
    out
}

/// Where in the expression a `bad_data` parse error points: (line, column), both from 1, from
/// Prometheus' text `invalid parameter "query": 1:5: parse error: …`.
pub fn error_position(message: &str) -> Option<(usize, usize)> {
    let rest = message
        .split_once("\"query\": ")
        .map_or(message, |(_, r)| r);
    let mut parts = rest.splitn(3, ':');
    let line = parts.next()?.trim().parse().ok()?;
    let col_text = parts.next()?;
    // a range `1:5-1:9`: the start
    let col = col_text.split('-').next()?.trim().parse().ok()?;
    parts.next()?;
    Some((line, col))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_error_positions() {
        assert_eq!(
            error_position(
                "invalid parameter \"query\": 1:5: parse error: unexpected end of input"
            ),
            Some((1, 5))
        );
        assert_eq!(
            error_position("invalid parameter \"query\": 2:13: parse error: bad"),
            Some((2, 13))
        );
        assert_eq!(
            error_position("invalid parameter \"query\": 1:1-1:4: parse error: x"),
            Some((1, 1))
        );
        assert_eq!(error_position("expanding series: context canceled"), None);
    }

    #[test]
    fn label_names_in_paths() {
        assert_eq!(escape_label_name("job"), "job");
        assert_eq!(
            escape_label_name("http.status_code"),
            "U__http_2e_status__code"
        );
        assert_eq!(unix_param(1_796_050_141.867_9), "1796050141.868");
        assert_eq!(unix_param(1_796_050_141.0), "1796050141");
    }

    #[test]
    fn every_result_type_decodes() {
        let a = |t: &str, r: Value| Answer {
            data: RawQueryData {
                result_type: t.into(),
                result: r,
            },
            warnings: vec![],
            infos: vec![],
        };
        let v = query_data(a(
            "vector",
            serde_json::json!([{"metric": {"__name__": "up", "job": "p"}, "value": [1.5, "1"]}]),
        ))
        .unwrap();
        let QueryData::Vector(s) = v.data else {
            panic!()
        };
        assert_eq!(s[0].value, (1.5, "1".into()));
        assert_eq!(s[0].metric["job"], "p");
        let m = query_data(a(
            "matrix",
            serde_json::json!([{"metric": {}, "values": [[1, "NaN"], [2, "+Inf"]]}]),
        ))
        .unwrap();
        let QueryData::Matrix(m) = m.data else {
            panic!()
        };
        assert_eq!(m[0].values[1].1, "+Inf");
        let s = query_data(a("scalar", serde_json::json!([3, "4"]))).unwrap();
        assert_eq!(s.data, QueryData::Scalar((3.0, "4".into())));
        assert!(query_data(a("tensor", Value::Null)).is_err());
    }
}
