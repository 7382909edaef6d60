//! The SQL behind both stores. One macro body generates the SQLite and the PostgreSQL store, so
//! the two cannot drift apart; only the pool type, the substring function and the migrations
//! differ.

use std::collections::BTreeMap;

use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{CreateOutcome, RefreshUse, ServerRef, Store, WriteOutcome, parse_ts, ts};
use crate::Error;
use crate::model::{
    ApiKey, IdempotencyRecord, ListQuery, RefreshToken, Role, Server, Status, User,
};

const SERVER_COLUMNS: &str =
    "id, hostname, ip, env, status, os_type, tags, labels, created_at, updated_at, version";

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

fn tags_index(tags: &[String]) -> String {
    let mut s = String::from(",");
    for t in tags {
        s.push_str(t);
        s.push(',');
    }
    s
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

macro_rules! sql_store {
    ($name:ident, $db:ty, $row:ty, $contains:literal, $migrations:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug)]
        pub struct $name {
            pool: sqlx::Pool<$db>,
        }

        impl $name {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool }
            }

            pub fn pool(&self) -> &sqlx::Pool<$db> {
                &self.pool
            }

            fn server_from_row(row: &$row) -> Result<Server, Error> {
                let id: String = row.try_get("id")?;
                let status: String = row.try_get("status")?;
                let tags: String = row.try_get("tags")?;
                let labels: String = row.try_get("labels")?;
                let created: String = row.try_get("created_at")?;
                let updated: String = row.try_get("updated_at")?;
                Ok(Server {
                    id: Uuid::parse_str(&id).map_err(|e| corrupt("server id", e))?,
                    hostname: row.try_get("hostname")?,
                    ip: row.try_get("ip")?,
                    env: row.try_get("env")?,
                    status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
                    os_type: row.try_get("os_type")?,
                    tags: serde_json::from_str::<Vec<String>>(&tags)
                        .map_err(|e| corrupt("tags", e))?,
                    labels: serde_json::from_str::<BTreeMap<String, String>>(&labels)
                        .map_err(|e| corrupt("labels", e))?,
                    created_at: parse_ts(&created)?,
                    updated_at: parse_ts(&updated)?,
                    version: row.try_get("version")?,
                })
            }

            fn user_from_row(row: &$row) -> Result<User, Error> {
                let id: String = row.try_get("id")?;
                let role: String = row.try_get("role")?;
                let created: String = row.try_get("created_at")?;
                Ok(User {
                    id: Uuid::parse_str(&id).map_err(|e| corrupt("user id", e))?,
                    username: row.try_get("username")?,
                    password_hash: row.try_get("password_hash")?,
                    role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
                    created_at: parse_ts(&created)?,
                })
            }

            fn key_from_row(row: &$row) -> Result<ApiKey, Error> {
                let id: String = row.try_get("id")?;
                let role: String = row.try_get("role")?;
                let created: String = row.try_get("created_at")?;
                let revoked: Option<String> = row.try_get("revoked_at")?;
                Ok(ApiKey {
                    id: Uuid::parse_str(&id).map_err(|e| corrupt("key id", e))?,
                    name: row.try_get("name")?,
                    prefix: row.try_get("prefix")?,
                    key_hash: row.try_get("key_hash")?,
                    role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
                    created_at: parse_ts(&created)?,
                    revoked_at: revoked.as_deref().map(parse_ts).transpose()?,
                })
            }

            fn push_filters(qb: &mut QueryBuilder<$db>, q: &ListQuery) {
                qb.push(" WHERE 1=1");
                if let Some(env) = &q.env {
                    qb.push(" AND env = ").push_bind(env.clone());
                }
                if let Some(status) = q.status {
                    qb.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(os) = &q.os_type {
                    qb.push(" AND os_type = ").push_bind(os.clone());
                }
                if let Some(tag) = &q.tag {
                    qb.push(concat!(" AND ", $contains, "(tags_index, "))
                        .push_bind(format!(",{tag},"))
                        .push(") > 0");
                }
                if let Some(text) = &q.q {
                    qb.push(concat!(" AND ", $contains, "(hostname, "))
                        .push_bind(text.to_ascii_lowercase())
                        .push(") > 0");
                }
            }

            fn push_server_values(qb: &mut QueryBuilder<$db>, s: &Server) -> Result<(), Error> {
                let tags = serde_json::to_string(&s.tags).map_err(|e| corrupt("tags", e))?;
                let labels = serde_json::to_string(&s.labels).map_err(|e| corrupt("labels", e))?;
                let mut sep = qb.separated(", ");
                sep.push_bind(s.id.to_string())
                    .push_bind(s.hostname.clone())
                    .push_bind(s.ip.clone())
                    .push_bind(s.env.clone())
                    .push_bind(s.status.as_str())
                    .push_bind(s.os_type.clone())
                    .push_bind(tags)
                    .push_bind(tags_index(&s.tags))
                    .push_bind(labels)
                    .push_bind(ts(s.created_at))
                    .push_bind(ts(s.updated_at))
                    .push_bind(s.version);
                Ok(())
            }
        }

        impl Store for $name {
            async fn migrate(&self) -> Result<(), Error> {
                sqlx::migrate!($migrations).run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), Error> {
                QueryBuilder::<$db>::new("SELECT 1")
                    .build()
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_servers(&self, q: &ListQuery) -> Result<(Vec<Server>, u64), Error> {
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) AS n FROM servers");
                Self::push_filters(&mut count, q);
                let total: i64 = count.build().fetch_one(&self.pool).await?.try_get("n")?;

                let mut qb = QueryBuilder::<$db>::new(format!("SELECT {SERVER_COLUMNS} FROM servers"));
                Self::push_filters(&mut qb, q);
                let dir = if q.descending { "DESC" } else { "ASC" };
                qb.push(format!(" ORDER BY {} {dir}, id {dir}", q.sort.column()));
                qb.push(" LIMIT ")
                    .push_bind(i64::from(q.per_page))
                    .push(" OFFSET ")
                    .push_bind((i64::from(q.page) - 1) * i64::from(q.per_page));
                let rows = qb.build().fetch_all(&self.pool).await?;
                let servers = rows
                    .iter()
                    .map(Self::server_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((servers, u64::try_from(total).unwrap_or(0)))
            }

            async fn get_server(&self, r: &ServerRef) -> Result<Option<Server>, Error> {
                let mut qb = QueryBuilder::<$db>::new(format!("SELECT {SERVER_COLUMNS} FROM servers WHERE "));
                match r {
                    ServerRef::Id(id) => qb.push("id = ").push_bind(id.to_string()),
                    ServerRef::Hostname(h) => qb.push("hostname = ").push_bind(h.clone()),
                };
                let row = qb.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::server_from_row).transpose()
            }

            async fn create_server(
                &self,
                server: &Server,
                idem: Option<&IdempotencyRecord>,
            ) -> Result<CreateOutcome, Error> {
                let mut tx = self.pool.begin().await?;
                if let Some(rec) = idem {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO idempotency_keys (principal, idem_key, request_hash, status, body, created_at) VALUES (",
                    );
                    qb.separated(", ")
                        .push_bind(rec.principal.clone())
                        .push_bind(rec.key.clone())
                        .push_bind(rec.request_hash.clone())
                        .push_bind(i64::from(rec.status))
                        .push_bind(rec.body.clone())
                        .push_bind(ts(server.created_at));
                    qb.push(")");
                    match qb.build().execute(&mut *tx).await {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => {
                            return Ok(CreateOutcome::IdempotencyKeyTaken);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                // column order must match push_server_values
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO servers (id, hostname, ip, env, status, os_type, tags, tags_index, labels, created_at, updated_at, version) VALUES (");
                Self::push_server_values(&mut qb, server)?;
                qb.push(")");
                match qb.build().execute(&mut *tx).await {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(Error::Conflict(format!(
                            "a server with hostname {:?} already exists",
                            server.hostname
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
                tx.commit().await?;
                Ok(CreateOutcome::Created)
            }

            async fn get_idempotency(
                &self,
                principal: &str,
                key: &str,
            ) -> Result<Option<IdempotencyRecord>, Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT principal, idem_key, request_hash, status, body FROM idempotency_keys WHERE principal = ",
                );
                qb.push_bind(principal.to_owned())
                    .push(" AND idem_key = ")
                    .push_bind(key.to_owned());
                let Some(row) = qb.build().fetch_optional(&self.pool).await? else {
                    return Ok(None);
                };
                let status: i64 = row.try_get("status")?;
                Ok(Some(IdempotencyRecord {
                    principal: row.try_get("principal")?,
                    key: row.try_get("idem_key")?,
                    request_hash: row.try_get("request_hash")?,
                    status: u16::try_from(status).map_err(|e| corrupt("status", e))?,
                    body: row.try_get("body")?,
                }))
            }

            async fn update_server(
                &self,
                s: &Server,
                expected_version: i64,
            ) -> Result<WriteOutcome, Error> {
                let tags = serde_json::to_string(&s.tags).map_err(|e| corrupt("tags", e))?;
                let labels = serde_json::to_string(&s.labels).map_err(|e| corrupt("labels", e))?;
                let mut qb = QueryBuilder::<$db>::new("UPDATE servers SET hostname = ");
                qb.push_bind(s.hostname.clone())
                    .push(", ip = ").push_bind(s.ip.clone())
                    .push(", env = ").push_bind(s.env.clone())
                    .push(", status = ").push_bind(s.status.as_str())
                    .push(", os_type = ").push_bind(s.os_type.clone())
                    .push(", tags = ").push_bind(tags)
                    .push(", tags_index = ").push_bind(tags_index(&s.tags))
                    .push(", labels = ").push_bind(labels)
                    .push(", updated_at = ").push_bind(ts(s.updated_at))
                    .push(", version = ").push_bind(s.version)
                    .push(" WHERE id = ").push_bind(s.id.to_string())
                    .push(" AND version = ").push_bind(expected_version);
                let done = match qb.build().execute(&self.pool).await {
                    Ok(r) => r.rows_affected(),
                    Err(e) if is_unique_violation(&e) => {
                        return Err(Error::Conflict(format!(
                            "a server with hostname {:?} already exists",
                            s.hostname
                        )));
                    }
                    Err(e) => return Err(e.into()),
                };
                if done > 0 {
                    return Ok(WriteOutcome::Done);
                }
                Ok(match self.get_server(&ServerRef::Id(s.id)).await? {
                    Some(_) => WriteOutcome::VersionMismatch,
                    None => WriteOutcome::NotFound,
                })
            }

            async fn delete_server(
                &self,
                id: Uuid,
                expected_version: Option<i64>,
            ) -> Result<WriteOutcome, Error> {
                let mut qb = QueryBuilder::<$db>::new("DELETE FROM servers WHERE id = ");
                qb.push_bind(id.to_string());
                if let Some(v) = expected_version {
                    qb.push(" AND version = ").push_bind(v);
                }
                if qb.build().execute(&self.pool).await?.rows_affected() > 0 {
                    return Ok(WriteOutcome::Done);
                }
                Ok(match self.get_server(&ServerRef::Id(id)).await? {
                    Some(_) => WriteOutcome::VersionMismatch,
                    None => WriteOutcome::NotFound,
                })
            }

            async fn count_users(&self) -> Result<u64, Error> {
                let n: i64 = QueryBuilder::<$db>::new("SELECT COUNT(*) AS n FROM users")
                    .build()
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn create_user(&self, u: &User) -> Result<(), Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO users (id, username, password_hash, role, created_at) VALUES (",
                );
                qb.separated(", ")
                    .push_bind(u.id.to_string())
                    .push_bind(u.username.clone())
                    .push_bind(u.password_hash.clone())
                    .push_bind(u.role.as_str())
                    .push_bind(ts(u.created_at));
                qb.push(")");
                match qb.build().execute(&self.pool).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_unique_violation(&e) => Err(Error::Conflict(format!(
                        "user {:?} already exists",
                        u.username
                    ))),
                    Err(e) => Err(e.into()),
                }
            }

            async fn user_by_name(&self, name: &str) -> Result<Option<User>, Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, username, password_hash, role, created_at FROM users WHERE username = ",
                );
                qb.push_bind(name.to_owned());
                let row = qb.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, username, password_hash, role, created_at FROM users WHERE id = ",
                );
                qb.push_bind(id.to_string());
                let row = qb.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn list_users(&self) -> Result<Vec<User>, Error> {
                let rows = QueryBuilder::<$db>::new(
                    "SELECT id, username, password_hash, role, created_at FROM users ORDER BY username",
                )
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::user_from_row).collect()
            }

            async fn set_password(&self, name: &str, hash: &str) -> Result<bool, Error> {
                // the new password and the end of every login made with the old one, together
                let mut tx = self.pool.begin().await?;
                let mut qb = QueryBuilder::<$db>::new("UPDATE users SET password_hash = ");
                qb.push_bind(hash.to_owned())
                    .push(" WHERE username = ")
                    .push_bind(name.to_owned());
                let changed = qb.build().execute(&mut *tx).await?.rows_affected() > 0;
                let mut qb = QueryBuilder::<$db>::new("UPDATE refresh_tokens SET revoked_at = ");
                qb.push_bind(ts(OffsetDateTime::now_utc()))
                    .push(" WHERE revoked_at IS NULL AND user_id IN (SELECT id FROM users WHERE username = ")
                    .push_bind(name.to_owned())
                    .push(")");
                qb.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(changed)
            }

            async fn session_active(&self, family: Uuid) -> Result<bool, Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT 1 AS live FROM refresh_tokens WHERE revoked_at IS NULL AND family_id = ",
                );
                qb.push_bind(family.to_string()).push(" LIMIT 1");
                Ok(qb.build().fetch_optional(&self.pool).await?.is_some())
            }

            async fn delete_user(&self, name: &str) -> Result<bool, Error> {
                let Some(user) = self.user_by_name(name).await? else {
                    return Ok(false);
                };
                let mut tx = self.pool.begin().await?;
                let mut qb = QueryBuilder::<$db>::new("UPDATE refresh_tokens SET revoked_at = ");
                qb.push_bind(ts(OffsetDateTime::now_utc()))
                    .push(" WHERE user_id = ")
                    .push_bind(user.id.to_string());
                qb.build().execute(&mut *tx).await?;
                let mut qb = QueryBuilder::<$db>::new("DELETE FROM users WHERE id = ");
                qb.push_bind(user.id.to_string());
                let n = qb.build().execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n > 0)
            }

            async fn create_api_key(&self, k: &ApiKey) -> Result<(), Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO api_keys (id, name, prefix, key_hash, role, created_at, revoked_at) VALUES (",
                );
                qb.separated(", ")
                    .push_bind(k.id.to_string())
                    .push_bind(k.name.clone())
                    .push_bind(k.prefix.clone())
                    .push_bind(k.key_hash.clone())
                    .push_bind(k.role.as_str())
                    .push_bind(ts(k.created_at))
                    .push_bind(k.revoked_at.map(ts));
                qb.push(")");
                qb.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, name, prefix, key_hash, role, created_at, revoked_at FROM api_keys WHERE key_hash = ",
                );
                qb.push_bind(hash.to_owned());
                let row = qb.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::key_from_row).transpose()
            }

            async fn list_api_keys(&self) -> Result<Vec<ApiKey>, Error> {
                let rows = QueryBuilder::<$db>::new(
                    "SELECT id, name, prefix, key_hash, role, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
                )
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::key_from_row).collect()
            }

            async fn revoke_api_key(&self, id_or_name: &str) -> Result<u64, Error> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE api_keys SET revoked_at = ");
                qb.push_bind(ts(OffsetDateTime::now_utc()))
                    .push(" WHERE revoked_at IS NULL AND (id = ")
                    .push_bind(id_or_name.to_owned())
                    .push(" OR name = ")
                    .push_bind(id_or_name.to_owned())
                    .push(")");
                Ok(qb.build().execute(&self.pool).await?.rows_affected())
            }

            async fn insert_refresh(&self, t: &RefreshToken) -> Result<(), Error> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES (",
                );
                qb.separated(", ")
                    .push_bind(t.token_hash.clone())
                    .push_bind(t.family_id.to_string())
                    .push_bind(t.user_id.to_string())
                    .push_bind(ts(t.expires_at));
                qb.push(")");
                qb.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn use_refresh(&self, hash: &str, now: OffsetDateTime) -> Result<RefreshUse, Error> {
                // Consume atomically: only one caller can flip used_at from NULL.
                let mut qb = QueryBuilder::<$db>::new("UPDATE refresh_tokens SET used_at = ");
                qb.push_bind(ts(now))
                    .push(" WHERE token_hash = ")
                    .push_bind(hash.to_owned())
                    .push(" AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ")
                    .push_bind(ts(now));
                let consumed = qb.build().execute(&self.pool).await?.rows_affected() > 0;
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT token_hash, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ",
                );
                qb.push_bind(hash.to_owned());
                let Some(row) = qb.build().fetch_optional(&self.pool).await? else {
                    return Ok(RefreshUse::Invalid);
                };
                let family: String = row.try_get("family_id")?;
                let user: String = row.try_get("user_id")?;
                let expires: String = row.try_get("expires_at")?;
                let token = RefreshToken {
                    token_hash: row.try_get("token_hash")?,
                    family_id: Uuid::parse_str(&family).map_err(|e| corrupt("family id", e))?,
                    user_id: Uuid::parse_str(&user).map_err(|e| corrupt("user id", e))?,
                    expires_at: parse_ts(&expires)?,
                };
                if consumed {
                    return Ok(RefreshUse::Valid(token));
                }
                let used: Option<String> = row.try_get("used_at")?;
                let revoked: Option<String> = row.try_get("revoked_at")?;
                if revoked.is_some() {
                    // logged out, password changed, user removed or family already revoked
                    return Ok(RefreshUse::Revoked);
                }
                if used.is_some() {
                    // Reuse of a spent token: someone has a copy. Revoke the whole family.
                    let mut qb = QueryBuilder::<$db>::new("UPDATE refresh_tokens SET revoked_at = ");
                    qb.push_bind(ts(now))
                        .push(" WHERE revoked_at IS NULL AND family_id = ")
                        .push_bind(family);
                    qb.build().execute(&self.pool).await?;
                    return Ok(RefreshUse::Reused(token.family_id));
                }
                Ok(RefreshUse::Invalid)
            }

            async fn revoke_refresh_family(&self, hash: &str) -> Result<Option<Uuid>, Error> {
                let mut qb = QueryBuilder::<$db>::new("SELECT family_id FROM refresh_tokens WHERE token_hash = ");
                qb.push_bind(hash.to_owned());
                let Some(row) = qb.build().fetch_optional(&self.pool).await? else {
                    return Ok(None);
                };
                let family: String = row.try_get("family_id")?;
                let id = Uuid::parse_str(&family).map_err(|e| corrupt("family id", e))?;
                let mut qb = QueryBuilder::<$db>::new("UPDATE refresh_tokens SET revoked_at = ");
                qb.push_bind(ts(OffsetDateTime::now_utc()))
                    .push(" WHERE revoked_at IS NULL AND family_id = ")
                    .push_bind(family);
                qb.build().execute(&self.pool).await?;
                Ok(Some(id))
            }

            async fn get_setting(&self, name: &str) -> Result<Option<String>, Error> {
                let mut qb = QueryBuilder::<$db>::new("SELECT value FROM settings WHERE name = ");
                qb.push_bind(name.to_owned());
                let row = qb.build().fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn init_setting(&self, name: &str, value: &str) -> Result<String, Error> {
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO settings (name, value) VALUES (");
                qb.push_bind(name.to_owned())
                    .push(", ")
                    .push_bind(value.to_owned())
                    .push(") ON CONFLICT (name) DO NOTHING");
                qb.build().execute(&self.pool).await?;
                self.get_setting(name)
                    .await?
                    .ok_or_else(|| Error::Corrupt(format!("setting {name} vanished")))
            }
        }
    };
}

sql_store!(
    SqliteStore,
    Sqlite,
    sqlx::sqlite::SqliteRow,
    "instr",
    "migrations/sqlite",
    "The SQLite store (WAL journal, `synchronous=FULL`)."
);
sql_store!(
    PgStore,
    Postgres,
    sqlx::postgres::PgRow,
    "strpos",
    "migrations/postgres",
    "The PostgreSQL store."
);
