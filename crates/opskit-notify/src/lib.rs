//! `opskit-notify`: alerts to Slack, Teams and Jira, and signed webhooks (send, sign, verify).
//!
//! Message building ([`slack`], [`teams`], [`jira`], [`adf`]) and signing ([`signing`]) are pure
//! functions, usable by anything that needs to tell a human; delivery goes through `opskit-http`.
//!
//! ```
//! use opskit_notify::signing::{WebhookSecret, Verifier, ReceivedHeaders, sign};
//! let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let body = br#"{"test": 2432232314}"#;
//! let headers = sign(&[secret.clone()], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
//! assert_eq!(headers.signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! let received = ReceivedHeaders::from_pairs(
//!     headers.pairs().iter().map(|(k, v)| (*k, v.as_str())),
//! );
//! Verifier::new(vec![secret]).unwrap().verify_at(&received, body, 1614265330).unwrap();
//! ```

pub mod adf;
pub mod alert;
pub mod deliver;
mod error;
pub mod jira;
pub mod pagerduty;
pub mod signing;
pub mod slack;
pub mod teams;

pub use alert::{Alert, Severity};
pub use deliver::{
    ChatSender, Delivered, DeliveryOptions, JiraClient, JiraOutcome, Signing, WebhookSender,
};
pub use error::Error;
pub use signing::{Rejection, Verifier, WebhookSecret};
