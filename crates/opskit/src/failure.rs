//! Error → exit code: one mapping per library error type, used by every command that calls the
//! library (beside [`crate::exit`], which holds the codes and the one reporter).
//!
//! The same library error gives the same code and hint whichever command met it: a connect
//! failure is 3 in `net check` as in `net send`, a port that cannot be bound is 1 in `net echo
//! serve` as in `opskit serve`, a bad input is 2 everywhere.

use crate::exit::{Failure, code};

/// `opskit_net::Error` → exit code and hint.
pub fn net(e: opskit_net::Error) -> anyhow::Error {
    use opskit_net::Error as E;
    use opskit_net::transfer::FailureKind;
    let text = e.to_string();
    let failure = match &e {
        E::InvalidInput(_) => Failure::usage(text).with_hint("see `opskit net <command> --help`"),
        E::TooManyHosts { .. } => Failure::usage(text),
        E::BadFile { .. } | E::MessageTooLarge { .. } => Failure::usage(text),
        E::Connect { .. } => Failure::new(code::NETWORK, text)
            .with_hint("is the peer running and listening on that address and port?"),
        E::Timeout { .. } => Failure::new(code::NETWORK, text)
            .with_hint("the peer did not answer in time; raise --timeout if it is just slow"),
        // Local, like `opskit serve`'s: not a connection failure.
        E::Bind { .. } => Failure::new(code::FAILURE, text)
            .with_hint("is the port in use or below 1024? choose another with --bind HOST:PORT"),
        E::ResourcesExhausted { .. } => Failure::new(code::FAILURE, text)
            .with_hint("raise the open-file limit (`ulimit -n`) or lower --concurrency"),
        E::Rejected { kind, .. } => {
            let hint = match kind {
                FailureKind::Exists => {
                    "remove the file on the receiver, or start the receiver with --overwrite"
                }
                FailureKind::Checksum => "the data changed on the way or on disk; send it again",
                FailureKind::BadName => "rename the file to a plain file name",
                _ => "see the receiver's message above",
            };
            Failure::new(code::FAILURE, text).with_hint(hint)
        }
        E::Transfer { kind, .. } => Failure::new(code::FAILURE, text).with_hint(format!(
            "{kind}; the sender was told the same and nothing was stored"
        )),
        E::Protocol(_) => Failure::new(code::FAILURE, text)
            .with_hint("is the peer an `opskit net receive` of the same version?"),
        // Resolve (no such name), Dns, DnsNoRecords: an answer, documented as 1 for `net dns`.
        _ => Failure::new(code::FAILURE, text),
    };
    failure.into()
}

/// `opskit_ssh::Error` → exit code and hint. Every one of them stops a run before it starts and
/// is about what the user gave (a target, the ssh config, a key, a file): exit 2.
pub fn ssh(e: opskit_ssh::Error) -> anyhow::Error {
    use opskit_ssh::Error as E;
    let text = e.to_string();
    let failure = match &e {
        E::Unsupported { .. } => Failure::usage(text).with_hint(
            "opskit ssh supports Host, HostName, User, Port, IdentityFile, ProxyJump and Include; \
             use -F FILE or -F none to choose another config",
        ),
        E::Key { .. } | E::KeyEncrypted { .. } => {
            Failure::usage(text).with_hint("check the -i path and --passphrase")
        }
        _ => Failure::usage(text),
    };
    failure.into()
}

/// `opskit_notify::Error` → exit code: 2 bad input or secret; for a failed delivery 3 network or
/// timeout, 4 a 4xx, 5 a 5xx; 1 otherwise.
pub fn notify(e: opskit_notify::Error) -> anyhow::Error {
    use opskit_notify::Error as E;
    use opskit_notify::deliver::FailureKind;
    let text = e.to_string();
    let failure = match &e {
        E::Delivery { kind, .. } => {
            let c = match kind {
                FailureKind::Status(s) if (400..500).contains(s) => code::HTTP_4XX,
                FailureKind::Status(s) if *s >= 500 => code::HTTP_5XX,
                FailureKind::Timeout | FailureKind::Connection => code::NETWORK,
                _ => code::FAILURE,
            };
            let f = Failure::new(c, text);
            match kind {
                FailureKind::Status(401 | 403) => {
                    f.with_hint("check the credentials or the webhook URL")
                }
                FailureKind::Status(404) => {
                    f.with_hint("the webhook URL is wrong or the webhook was deleted")
                }
                _ => f,
            }
        }
        E::InvalidInput(_) | E::InvalidSecret(_) => Failure::usage(text),
        _ => Failure::new(code::FAILURE, text),
    };
    failure.into()
}

/// `opskit_apis::Error` → exit code and hint (`opskit prom`, `opskit github`): the engine's
/// errors as `opskit http` maps them (3 connection or timeout, 1 a status), an API's error
/// document 2 when the API calls the request bad (400, 422) and 1 otherwise, a used-up quota 1
/// (the message says when it resets), input opskit cannot send 2.
pub fn apis(e: opskit_apis::Error) -> anyhow::Error {
    use opskit_apis::Error as E;
    let text = e.to_string();
    let failure = match e {
        E::Http(h) => return crate::cli::http::exchange::failure(h, false),
        E::Api { status, .. } => {
            let f = Failure::new(
                if matches!(status, 400 | 422) {
                    code::USAGE
                } else {
                    code::FAILURE
                },
                text,
            );
            match status {
                401 => f.with_hint("the credential was refused: check the token"),
                403 => f.with_hint("the credential may not do this, or a rate limit was hit"),
                404 => f.with_hint("check the name or path (private resources also answer 404)"),
                _ => f,
            }
        }
        E::RateLimited { .. } => Failure::new(code::FAILURE, text)
            .with_hint("wait until the quota resets, or use a token with a larger quota"),
        E::InvalidInput(_) => Failure::usage(text),
        _ => Failure::new(code::FAILURE, text),
    };
    failure.into()
}
