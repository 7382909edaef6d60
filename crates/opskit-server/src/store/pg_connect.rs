//! The first connection to PostgreSQL, made before the pool is built: an unreachable server, an
//! unknown host, a refused login or a missing database is said at once, naming `HOST:PORT` (never
//! the password), instead of the pool retrying in silence until "pool timed out".

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;

use crate::Error;

/// How long the first connection (name lookup, TCP, TLS, login) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the options point: `HOST:PORT`, or the Unix socket path.
pub fn target(opts: &PgConnectOptions) -> String {
    match opts.get_socket() {
        Some(socket) => socket.display().to_string(),
        None if opts.get_host().contains(':') => {
            format!("[{}]:{}", opts.get_host(), opts.get_port())
        }
        None => format!("{}:{}", opts.get_host(), opts.get_port()),
    }
}

/// Opens one connection (and closes it) within [`CONNECT_TIMEOUT`], or says why it could not.
pub async fn check(opts: &PgConnectOptions) -> Result<(), Error> {
    let target = target(opts);
    let attempt = async {
        if opts.get_socket().is_none() && opts.get_host().parse::<std::net::IpAddr>().is_err() {
            let host = opts.get_host();
            let unknown = |why: String| {
                Error::DatabaseConnect(format!("cannot resolve the database host {host:?}: {why}"))
            };
            let mut addrs = tokio::net::lookup_host((host, opts.get_port()))
                .await
                .map_err(|e| unknown(e.to_string()))?;
            if addrs.next().is_none() {
                return Err(unknown("no address".into()));
            }
        }
        let conn = opts
            .connect()
            .await
            .map_err(|e| describe(&target, opts, &e))?;
        let _ = conn.close().await;
        Ok(())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::DatabaseConnect(format!(
            "no answer from {target} within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// A failed first connection, in words.
fn describe(target: &str, opts: &PgConnectOptions, e: &sqlx::Error) -> Error {
    let text = match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => format!("connection refused to {target}"),
            std::io::ErrorKind::TimedOut => format!("connection to {target} timed out"),
            _ => format!("cannot connect to {target}: {io}"),
        },
        sqlx::Error::Tls(tls) => format!("TLS with {target} failed: {tls}"),
        sqlx::Error::Database(db) => refusal(
            target,
            opts.get_username(),
            opts.get_database().unwrap_or(opts.get_username()),
            db.code().as_deref().unwrap_or(""),
            db.message(),
        ),
        other => format!("cannot connect to {target}: {other}"),
    };
    Error::DatabaseConnect(text)
}

/// What PostgreSQL's refusal of a login means (`code` is the SQLSTATE).
fn refusal(target: &str, user: &str, database: &str, code: &str, message: &str) -> String {
    match code {
        "28P01" => format!("PostgreSQL at {target} refused the password of user {user:?}"),
        "28000" => format!("PostgreSQL at {target} refused user {user:?}: {message}"),
        "3D000" => format!("database {database:?} does not exist on {target}"),
        "53300" => format!("PostgreSQL at {target} has too many connections: {message}"),
        _ => format!("PostgreSQL at {target} refused the connection: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn refusals_name_the_target_and_never_a_password() {
        let t = "db.example.com:5432";
        let m = refusal(
            t,
            "app",
            "inv",
            "28P01",
            "password authentication failed for user \"app\"",
        );
        assert_eq!(
            m,
            "PostgreSQL at db.example.com:5432 refused the password of user \"app\""
        );
        let m = refusal(t, "app", "inv", "3D000", "database \"inv\" does not exist");
        assert_eq!(m, "database \"inv\" does not exist on db.example.com:5432");
        let m = refusal(
            t,
            "nobody",
            "inv",
            "28000",
            "role \"nobody\" does not exist",
        );
        assert!(
            m.contains("refused user \"nobody\"") && m.contains(t),
            "{m}"
        );
    }
}
