//! `--timing`: where the time of one request went — DNS lookup, connect, TLS, waiting for the
//! first byte, reading the body — like `curl -w` or httpstat, on stderr (stdout keeps the body).
//!
//! Only what was measured is shown. The engine reports each DNS lookup (a timing resolver) and
//! each new connection (a timing connector layer) when asked ([`engine::Observer::times_connections`]),
//! with the TLS handshake's part of the connection apart (marked when rustls builds its
//! ClientHello, right after the TCP connect): `connect_ms` is the TCP connect (and a proxy's
//! tunnel), `tls_ms` the handshake. No lookup happens for an IP address, and no connect for a
//! reused connection: then the phase says so instead of showing a number. With several
//! requests (retries, redirects) the phases are the last request's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opskit_http as engine;
use serde_json::{Value, json};

/// `--timing[=FORMAT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimingFormat {
    /// Lines for a person (the default).
    Text,
    /// One JSON object on one line.
    Json,
}

/// What was seen of the request, as the engine reported it.
#[derive(Debug, Default)]
struct Seen {
    /// The first request of the command (retries and redirects follow it).
    start: Option<Instant>,
    /// Requests sent (attempts and redirect hops).
    requests: u32,
    /// The last request: when it was handed to the transport, and its URL.
    hop_start: Option<Instant>,
    hop_url: String,
    method: String,
    /// The last request's DNS lookup and new connection, when it made them.
    dns: Option<engine::DnsEvent>,
    connect: Option<(engine::ConnectEvent, Instant)>,
    /// The last request's response headers: when, the status, from the cache or not.
    headers: Option<(Instant, u16, bool)>,
}

/// Collects the timings of one command and prints them at its end.
pub struct Timing {
    format: TimingFormat,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timing")
            .field("format", &self.format)
            .finish()
    }
}

impl Timing {
    pub fn new(format: TimingFormat) -> Arc<Timing> {
        Arc::new(Timing {
            format,
            seen: Mutex::new(Seen::default()),
        })
    }

    /// An observer that records the timings and passes every event on to `inner`.
    pub fn observer(
        self: &Arc<Self>,
        inner: Option<Arc<dyn engine::Observer>>,
    ) -> Arc<dyn engine::Observer> {
        Arc::new(Recorder {
            timing: self.clone(),
            inner,
        })
    }

    fn with<F: FnOnce(&mut Seen)>(&self, f: F) {
        if let Ok(mut s) = self.seen.lock() {
            f(&mut s);
        }
    }

    /// The measured phases, as a JSON object (milliseconds; `null` with a note when a phase was
    /// not measured). `end` is when the command finished.
    pub fn summary(&self, end: Instant) -> Value {
        let Ok(s) = self.seen.lock() else {
            return json!({});
        };
        let ms = |d: Duration| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let Some(start) = s.start else {
            return json!({
                "requests": 0,
                "total_ms": null,
                "notes": {"total": "no request was sent"},
            });
        };
        let hop_start = s.hop_start.unwrap_or(start);
        let https = s.hop_url.starts_with("https://");
        let mut notes = serde_json::Map::new();
        let mut note = |k: &str, v: String| {
            notes.insert(k.to_owned(), Value::String(v));
        };
        let from_cache = s.headers.is_some_and(|(_, _, c)| c);

        let dns = s.dns.as_ref().map(|d| d.elapsed);
        match (&s.dns, &s.connect) {
            (Some(d), _) => {
                if let Err(e) = &d.result {
                    note("dns", format!("the lookup of {} failed: {e}", d.host));
                }
            }
            (None, Some(_)) => note(
                "dns",
                "no lookup: the host is an IP address (or a proxy's)".into(),
            ),
            (None, None) if from_cache => note("dns", "none: served from the cache".into()),
            (None, None) => note("dns", "none: an open connection was reused".into()),
        }
        // the connector's span holds the lookup and, for https, the TLS handshake at its end:
        // the rest of it is the TCP connect (and a proxy's tunnel)
        let tls = s.connect.as_ref().and_then(|(c, _)| c.tls_handshake);
        let connect = s.connect.as_ref().map(|(c, _)| {
            c.elapsed
                .saturating_sub(dns.unwrap_or_default())
                .saturating_sub(tls.unwrap_or_default())
        });
        match &s.connect {
            Some((c, _)) if !c.ok && tls.is_some() => {
                note("tls", "the TLS handshake failed".into())
            }
            Some((c, _)) if !c.ok => note("connect", "the connection could not be opened".into()),
            _ => {}
        }
        match &s.connect {
            _ if !https => note("tls", "none: http://".into()),
            Some(_) if tls.is_some() => {}
            Some(_) => note("tls", "none: no TLS handshake started".into()),
            None if from_cache => note("tls", "none: served from the cache".into()),
            None => note("tls", "none: an open connection was reused".into()),
        }
        match &s.connect {
            Some(_) => {}
            None if from_cache => note("connect", "none: served from the cache".into()),
            None => note("connect", "none: an open connection was reused".into()),
        }
        // a cache hit has no first byte: nothing was sent
        let answered = s.headers.filter(|(_, _, cached)| !cached);
        let first_byte = answered.map(|(t, _, _)| t.saturating_duration_since(hop_start));
        let ready = s.connect.as_ref().map_or(hop_start, |(_, t)| *t);
        let wait = answered.map(|(t, _, _)| t.saturating_duration_since(ready));
        let transfer = s.headers.map(|(t, _, _)| end.saturating_duration_since(t));
        if from_cache {
            note("first_byte", "none: served from the cache".into());
        } else if first_byte.is_none() {
            note("first_byte", "no response came".into());
        }
        let total = end.saturating_duration_since(start);
        if s.requests > 1 {
            note(
                "total",
                format!(
                    "{} requests (retries or redirects): the phases are the last one's, the \
                     total is all of them",
                    s.requests
                ),
            );
        }
        json!({
            "method": s.method,
            "url": s.hop_url,
            "status": s.headers.map(|(_, st, _)| st),
            "requests": s.requests,
            "dns_ms": dns.map(ms),
            "connect_ms": connect.map(ms),
            "tls_ms": tls.map(ms),
            "wait_ms": wait.map(ms),
            "first_byte_ms": first_byte.map(ms),
            "transfer_ms": transfer.map(ms),
            "total_ms": ms(total),
            "notes": notes,
        })
    }

    /// Prints the summary on stderr in the chosen format.
    pub fn report(&self, end: Instant) {
        let v = self.summary(end);
        let text = match self.format {
            TimingFormat::Json => format!("{v}\n"),
            TimingFormat::Text => text(&v),
        };
        use std::io::Write;
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// The summary as lines for a person, like httpstat's.
fn text(v: &Value) -> String {
    let num = |k: &str| v.get(k).and_then(Value::as_f64);
    let note = |k: &str| {
        v.get("notes")
            .and_then(|n| n.get(k))
            .and_then(Value::as_str)
            .map(crate::peer_text::line)
            .map(|s| s.into_owned())
    };
    let mut out = String::new();
    let status = v
        .get("status")
        .and_then(Value::as_u64)
        .map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}"));
    out.push_str(&format!(
        "timing: {} {} → {status}\n",
        v.get("method").and_then(Value::as_str).unwrap_or(""),
        crate::peer_text::line(v.get("url").and_then(Value::as_str).unwrap_or("")),
    ));
    let rows: [(&str, &str, &str); 7] = [
        ("dns lookup", "dns_ms", "dns"),
        ("tcp connect", "connect_ms", "connect"),
        ("tls handshake", "tls_ms", "tls"),
        ("server wait", "wait_ms", "wait"),
        ("first byte", "first_byte_ms", "first_byte"),
        ("body", "transfer_ms", "transfer"),
        ("total", "total_ms", "total"),
    ];
    for (label, key, note_key) in rows {
        let value = match num(key) {
            Some(ms) => format!("{ms:>10.3} ms"),
            None => format!("{:>10}   ", "-"),
        };
        let why = note(note_key)
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        out.push_str(&format!("  {label:<14}{value}{why}\n"));
    }
    out
}

/// The observer `--timing` puts in front of the command's own.
struct Recorder {
    timing: Arc<Timing>,
    inner: Option<Arc<dyn engine::Observer>>,
}

impl engine::Observer for Recorder {
    fn on_request(&self, ev: &engine::RequestEvent) {
        let now = Instant::now();
        self.timing.with(|s| {
            s.start.get_or_insert(now);
            s.requests += 1;
            s.hop_start = Some(now);
            s.hop_url = ev.url.clone();
            s.method = ev.method.to_string();
            s.dns = None;
            s.connect = None;
            s.headers = None;
        });
        if let Some(o) = &self.inner {
            o.on_request(ev);
        }
    }

    fn on_response(&self, ev: &engine::ResponseEvent) {
        let now = Instant::now();
        self.timing.with(|s| {
            if ev.from_cache {
                // a cache hit sends nothing: it is the whole "request"
                s.start.get_or_insert(now);
                s.requests += 1;
                s.hop_start = Some(now);
                s.hop_url = ev.url.clone();
                s.method = ev.method.to_string();
            }
            s.headers = Some((now, ev.status.as_u16(), ev.from_cache));
        });
        if let Some(o) = &self.inner {
            o.on_response(ev);
        }
    }

    fn on_wait(&self, ev: &engine::WaitEvent) {
        if let Some(o) = &self.inner {
            o.on_wait(ev);
        }
    }

    fn on_quota_low(&self, host: &str, remaining: u64) {
        if let Some(o) = &self.inner {
            o.on_quota_low(host, remaining);
        }
    }

    fn times_connections(&self) -> bool {
        true
    }

    fn on_dns(&self, ev: &engine::DnsEvent) {
        self.timing.with(|s| s.dns = Some(ev.clone()));
    }

    fn on_connect(&self, ev: &engine::ConnectEvent) {
        let now = Instant::now();
        self.timing.with(|s| s.connect = Some((ev.clone(), now)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_address_and_plain_http_say_why_there_is_no_number() {
        let t = Timing::new(TimingFormat::Json);
        let o = t.observer(None);
        o.on_request(&engine::RequestEvent {
            attempt: 1,
            method: engine::Method::GET,
            url: "http://127.0.0.1:1/x".into(),
            headers: vec![],
            body_len: None,
        });
        o.on_connect(&engine::ConnectEvent {
            elapsed: Duration::from_millis(2),
            ok: true,
            tls_handshake: None,
        });
        let v = t.summary(Instant::now());
        assert!(v["dns_ms"].is_null());
        assert!(v["notes"]["dns"].as_str().unwrap().contains("IP address"));
        assert!(v["connect_ms"].as_f64().unwrap() >= 2.0);
        assert!(v["notes"]["tls"].as_str().unwrap().contains("http://"));
        assert!(v["first_byte_ms"].is_null());
        assert!(text(&v).contains("tcp connect"));
    }
}
