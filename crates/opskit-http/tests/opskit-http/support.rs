use std::sync::{Arc, Mutex};
use std::time::Duration;

use opskit_http::{
    Client, ClientConfig, Observer, RequestEvent, ResponseEvent, RetryPolicy, WaitEvent,
};

/// Records what the client reports.
#[derive(Default)]
pub struct Recorder {
    pub waits: Mutex<Vec<WaitEvent>>,
    pub requests: Mutex<Vec<RequestEvent>>,
    pub responses: Mutex<Vec<ResponseEvent>>,
    pub low: Mutex<Vec<u64>>,
}

impl Observer for Recorder {
    fn on_request(&self, e: &RequestEvent) {
        self.requests.lock().unwrap().push(e.clone());
    }
    fn on_response(&self, e: &ResponseEvent) {
        self.responses.lock().unwrap().push(e.clone());
    }
    fn on_wait(&self, e: &WaitEvent) {
        self.waits.lock().unwrap().push(e.clone());
    }
    fn on_quota_low(&self, _host: &str, remaining: u64) {
        self.low.lock().unwrap().push(remaining);
    }
}

impl Recorder {
    pub fn retry_waits(&self) -> Vec<Duration> {
        self.waits
            .lock()
            .unwrap()
            .iter()
            .filter(|w| matches!(w.reason, opskit_http::WaitReason::Retry { .. }))
            .map(|w| w.wait)
            .collect()
    }
}

/// A config for the fixture with deterministic backoff (no jitter, 100 ms factor).
pub fn config(base: &str) -> ClientConfig {
    ClientConfig::new(base).retry(
        RetryPolicy::default()
            .jitter(false)
            .backoff(Duration::from_millis(100), Duration::from_secs(10)),
    )
}

pub fn observed(cfg: ClientConfig) -> (Client, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let client = Client::new(cfg.observer(rec.clone())).unwrap();
    (client, rec)
}
