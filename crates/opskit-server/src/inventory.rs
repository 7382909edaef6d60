//! The servers table as the monitor's inventory (issue 14, inventory-driven monitors), and as
//! the targets of `opskit ssh run --inventory SELECTOR --inventory-database URL`.
//!
//! What counts as "in the inventory" for monitor templates: every server except those whose
//! status is `decommissioned` (a server on its way out is not checked, and its checks go when
//! it is marked so). `offline`, `maintenance` and `provisioning` servers stay in: a template's
//! selector (`status=active`) narrows it further when that is wanted. The ssh path reads the
//! servers exactly as `GET /api/v1/servers` would list them with the selector's filters (no
//! status is left out unless the selector says so), so both ways of `ssh run --inventory` give
//! the same hosts.

use std::sync::Arc;

use futures::future::BoxFuture;
use opskit_monitor::inventory::{Inventory, InventoryServer, InventorySource, Selector};
use opskit_monitor::service::MonitorSource;

use crate::Error;
use crate::model::{ListQuery, Server, SortField, Status};
use crate::store::{Db, Store};

/// One page holds them all: one query is one consistent snapshot (paging by offset while
/// servers are deleted would skip one, and its checks would flap).
const ALL: u32 = u32::MAX;

/// The inventory of an `opskit serve` database (see the module docs for what is in it).
#[derive(Clone, Debug)]
pub struct StoreInventory {
    db: Db,
}

impl StoreInventory {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl Inventory for StoreInventory {
    fn servers(&self) -> BoxFuture<'_, opskit_monitor::Result<Vec<InventoryServer>>> {
        Box::pin(async move {
            let all = list_all(&self.db, &Selector::any())
                .await
                .map_err(|e| opskit_monitor::Error::Other(format!("reading the inventory: {e}")))?;
            Ok(all
                .into_iter()
                .filter(|s| s.status != Status::Decommissioned)
                .map(|s| inventory_server(&s))
                .collect())
        })
    }
}

/// The monitor source of `opskit serve`: the monitor file's `[[template]]`s over this
/// database's servers, re-read with the other sources (every `--monitor-refresh`, and after
/// each write through the servers API).
pub fn monitor_source(db: Db) -> Arc<dyn MonitorSource> {
    Arc::new(InventorySource::new(StoreInventory::new(db)))
}

/// A server as the monitor sees it.
pub fn inventory_server(s: &Server) -> InventoryServer {
    InventoryServer {
        id: s.id.to_string(),
        hostname: s.hostname.clone(),
        ip: s.ip.clone(),
        env: s.env.clone(),
        tags: s.tags.clone(),
        status: s.status.as_str().to_owned(),
        os_type: s.os_type.clone(),
    }
}

/// Every server the selector selects, with the filters of `GET /api/v1/servers`, in the order
/// of creation.
pub async fn list_all(db: &Db, selector: &Selector) -> Result<Vec<Server>, Error> {
    let q = ListQuery {
        page: 1,
        per_page: ALL,
        env: selector.get("env").map(str::to_owned),
        status: match selector.get("status") {
            Some(s) => Some(
                Status::parse(s).ok_or_else(|| Error::Invalid(format!("unknown status {s:?}")))?,
            ),
            None => None,
        },
        os_type: selector.get("os_type").map(str::to_owned),
        tag: selector.get("tag").map(str::to_owned),
        q: None,
        sort: SortField::CreatedAt,
        descending: false,
    };
    let (servers, _) = db.list_servers(&q).await?;
    Ok(servers)
}

/// `url` with the database told to refuse writes: SQLite opened `mode=ro`, PostgreSQL sessions
/// `default_transaction_read_only` (unless the URL sets its own `options`).
pub fn read_only_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    if url.starts_with("sqlite:") {
        if url.contains("mode=") {
            url.to_owned()
        } else {
            format!("{url}{sep}mode=ro")
        }
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        if url.contains("options=") {
            url.to_owned()
        } else {
            format!("{url}{sep}options=-c%20default_transaction_read_only%3Don")
        }
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monitor_knows_every_status_of_the_inventory() {
        let ours: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(ours, opskit_monitor::inventory::STATUSES);
    }

    #[test]
    fn read_only_urls() {
        assert_eq!(read_only_url("sqlite://a.db"), "sqlite://a.db?mode=ro");
        assert_eq!(
            read_only_url("sqlite://a.db?x=1"),
            "sqlite://a.db?x=1&mode=ro"
        );
        assert_eq!(
            read_only_url("postgres://u@h/db"),
            "postgres://u@h/db?options=-c%20default_transaction_read_only%3Don"
        );
    }
}
