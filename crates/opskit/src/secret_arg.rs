//! Secret arguments, the one way every command family takes a secret on the command line:
//! `env:VAR`, `file:PATH`, `cmd:COMMAND` (run by `sh -c` with the library's deadline),
//! `vault:MOUNT/PATH#FIELD` (a field of a Vault KV secret), `prompt`
//! (asked on the terminal), or, where the command allows it, the value itself.
//!
//! Reading is done by [`opskit_http::Secret`] (the same deadline and checks everywhere: an empty
//! value, a missing file or a failing command is refused); this module turns its errors into
//! usage errors (exit 2) that name the flag and the source, never the value.

use std::io::IsTerminal as _;

use opskit_http::Secret;
use secrecy::SecretString;

use crate::exit::Failure;

/// Whether a spec that is none of `env:`, `file:`, `cmd:`, `prompt` is taken as the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal {
    /// The spec is the secret itself (webhook URLs, tokens of `notify`).
    Allowed,
    /// Refused: such secrets are never taken from the command line, where `ps` and shell history
    /// see them (`ssh --password`, `--passphrase`).
    Refused,
}

/// Reads the secret `spec` given for `what` (a flag name or a description, used in messages).
/// `prompt_text` is shown when the spec is `prompt`.
pub async fn resolve(
    spec: &str,
    what: &str,
    prompt_text: &str,
    literal: Literal,
) -> anyhow::Result<SecretString> {
    if spec == "prompt" {
        return prompt(what, prompt_text);
    }
    let is_reference = ["env:", "file:", "cmd:", "vault:"]
        .iter()
        .any(|p| spec.starts_with(p));
    if !is_reference && literal == Literal::Refused {
        return Err(Failure::usage(format!(
            "{what} must be env:VAR, file:PATH, cmd:COMMAND, vault:MOUNT/PATH#FIELD or prompt"
        ))
        .with_hint(
            "secrets are never taken from the command line, where `ps` and shell history see them",
        )
        .into());
    }
    Secret::parse(spec)
        .resolve()
        .await
        .map_err(|e| read_failure(what, &e))
}

/// [`resolve`] for callers outside a runtime.
pub fn resolve_blocking(
    spec: &str,
    what: &str,
    prompt_text: &str,
    literal: Literal,
) -> anyhow::Result<SecretString> {
    crate::block_on(resolve(spec, what, prompt_text, literal))?
}

/// Asks for a secret on the terminal; without one, a usage error that says what to use instead.
pub fn prompt(what: &str, prompt_text: &str) -> anyhow::Result<SecretString> {
    if !std::io::stdin().is_terminal() {
        return Err(
            Failure::usage(format!("{what}: cannot prompt, stdin is not a terminal"))
                .with_hint("give it as env:VAR, file:PATH or cmd:COMMAND")
                .into(),
        );
    }
    let v = rpassword::prompt_password(prompt_text)
        .map_err(|e| Failure::usage(format!("{what}: cannot read the prompt: {e}")))?;
    if v.is_empty() {
        return Err(Failure::usage(format!("{what}: nothing was entered")).into());
    }
    Ok(SecretString::from(v))
}

/// The library's reading error, worded as what it is: a source that could not be read (its
/// `Auth` wording, "authentication failed", is for refused credentials, not for a failed `cmd:`).
fn read_failure(what: &str, e: &opskit_http::Error) -> anyhow::Error {
    let detail = match e {
        opskit_http::Error::Auth { message } => message.clone(),
        opskit_http::Error::Timeout { after, url, .. } => {
            format!("{url} did not finish within {after:?}")
        }
        other => other.to_string(),
    };
    Failure::usage(format!("cannot read {what}: {detail}"))
        .with_hint("give it as env:VAR, file:PATH or cmd:COMMAND")
        .into()
}
