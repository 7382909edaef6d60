//! Storage of received webhook events (`/api/v1/events`), for both databases.
//!
//! Replay protection lives in the database: `events.webhook_id` is UNIQUE, so a second delivery
//! with an id already stored fails its insert — also when several server processes share one
//! PostgreSQL database.

use std::future::Future;

use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, PgStore, SqliteStore, parse_ts, ts};
use crate::Error;

/// One received event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: Uuid,
    /// The `webhook-id` header, when the sender gave one.
    pub webhook_id: Option<String>,
    pub source: String,
    pub received_at: OffsetDateTime,
    /// The `webhook-timestamp` of a signed delivery (Unix seconds).
    pub signed_at: Option<i64>,
    /// True when the Standard Webhooks signature was checked and matched.
    pub verified: bool,
    /// The body exactly as received (valid JSON).
    pub payload: String,
}

/// Filters and paging of the event list.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub page: u32,
    pub per_page: u32,
    pub source: Option<String>,
    /// Received at or after.
    pub since: Option<OffsetDateTime>,
    /// Received before.
    pub until: Option<OffsetDateTime>,
    pub webhook_id: Option<String>,
}

/// Outcome of storing an event.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertEvent {
    Stored,
    /// An event with the same `webhook-id` is already stored.
    Replayed,
}

/// What the events endpoint needs from a database.
pub trait EventStore: Send + Sync {
    /// Stores the event; a `webhook_id` already stored makes it [`InsertEvent::Replayed`].
    fn insert_event(
        &self,
        e: &StoredEvent,
    ) -> impl Future<Output = Result<InsertEvent, Error>> + Send;
    /// A page of events, newest first, and the total matching.
    fn list_events(
        &self,
        q: &EventQuery,
    ) -> impl Future<Output = Result<(Vec<StoredEvent>, u64), Error>> + Send;
}

const COLUMNS: &str = "id, webhook_id, source, received_at, signed_at, verified, payload";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

macro_rules! event_store {
    ($store:ty, $db:ty, $row:ty) => {
        impl $store {
            fn event_from_row(row: &$row) -> Result<StoredEvent, Error> {
                let id: String = row.try_get("id")?;
                let received: String = row.try_get("received_at")?;
                let verified: i64 = row.try_get("verified")?;
                Ok(StoredEvent {
                    id: Uuid::parse_str(&id)
                        .map_err(|e| Error::Corrupt(format!("event id: {e}")))?,
                    webhook_id: row.try_get("webhook_id")?,
                    source: row.try_get("source")?,
                    received_at: parse_ts(&received)?,
                    signed_at: row.try_get("signed_at")?,
                    verified: verified != 0,
                    payload: row.try_get("payload")?,
                })
            }

            fn push_event_filters(qb: &mut QueryBuilder<$db>, q: &EventQuery) {
                qb.push(" WHERE 1=1");
                if let Some(s) = &q.source {
                    qb.push(" AND source = ").push_bind(s.clone());
                }
                if let Some(t) = q.since {
                    qb.push(" AND received_at >= ").push_bind(ts(t));
                }
                if let Some(t) = q.until {
                    qb.push(" AND received_at < ").push_bind(ts(t));
                }
                if let Some(w) = &q.webhook_id {
                    qb.push(" AND webhook_id = ").push_bind(w.clone());
                }
            }
        }

        impl EventStore for $store {
            async fn insert_event(&self, e: &StoredEvent) -> Result<InsertEvent, Error> {
                let mut tx = self.pool().begin().await?;
                let mut qb =
                    QueryBuilder::<$db>::new(format!("INSERT INTO events ({COLUMNS}) VALUES ("));
                qb.separated(", ")
                    .push_bind(e.id.to_string())
                    .push_bind(e.webhook_id.clone())
                    .push_bind(e.source.clone())
                    .push_bind(ts(e.received_at))
                    .push_bind(e.signed_at)
                    .push_bind(i64::from(e.verified))
                    .push_bind(e.payload.clone());
                qb.push(")");
                match qb.build().execute(&mut *tx).await {
                    Ok(_) => {}
                    Err(err) if is_unique_violation(&err) => return Ok(InsertEvent::Replayed),
                    Err(err) => return Err(err.into()),
                }
                tx.commit().await?;
                Ok(InsertEvent::Stored)
            }

            async fn list_events(&self, q: &EventQuery) -> Result<(Vec<StoredEvent>, u64), Error> {
                let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) AS n FROM events");
                Self::push_event_filters(&mut count, q);
                let total: i64 = count.build().fetch_one(self.pool()).await?.try_get("n")?;
                let mut qb = QueryBuilder::<$db>::new(format!("SELECT {COLUMNS} FROM events"));
                Self::push_event_filters(&mut qb, q);
                qb.push(" ORDER BY received_at DESC, id DESC LIMIT ")
                    .push_bind(i64::from(q.per_page))
                    .push(" OFFSET ")
                    .push_bind((i64::from(q.page.max(1)) - 1) * i64::from(q.per_page));
                let rows = qb.build().fetch_all(self.pool()).await?;
                let events = rows
                    .iter()
                    .map(Self::event_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((events, u64::try_from(total).unwrap_or(0)))
            }
        }
    };
}

event_store!(SqliteStore, Sqlite, sqlx::sqlite::SqliteRow);
event_store!(PgStore, Postgres, sqlx::postgres::PgRow);

impl EventStore for Db {
    async fn insert_event(&self, e: &StoredEvent) -> Result<InsertEvent, Error> {
        match self {
            Db::Sqlite(s) => s.insert_event(e).await,
            Db::Postgres(s) => s.insert_event(e).await,
        }
    }
    async fn list_events(&self, q: &EventQuery) -> Result<(Vec<StoredEvent>, u64), Error> {
        match self {
            Db::Sqlite(s) => s.list_events(q).await,
            Db::Postgres(s) => s.list_events(q).await,
        }
    }
}
