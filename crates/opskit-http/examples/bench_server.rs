//! The loopback server of `bench/http-client/run.sh`: small JSON items and pages.
//!
//! Binds 127.0.0.1:0 and prints the port on the first line of stdout.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const PAGES: usize = 100;
const PER_PAGE: usize = 50;

struct Data {
    pages: Vec<bytes::Bytes>,
    empty: bytes::Bytes,
}

#[derive(serde::Deserialize)]
struct PageQ {
    page: Option<usize>,
}

async fn item(Path(id): Path<u64>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"id":{id},"name":"server-{id}","status":"up","region":"eu-west-1"}}"#),
    )
}

async fn page(State(d): State<Arc<Data>>, Query(q): Query<PageQ>) -> impl IntoResponse {
    let p = q.page.unwrap_or(1);
    let body = if (1..=PAGES).contains(&p) {
        d.pages[p - 1].clone()
    } else {
        d.empty.clone()
    };
    ([(header::CONTENT_TYPE, "application/json")], body)
}

fn main() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let pages = (0..PAGES)
            .map(|p| {
                let items: Vec<serde_json::Value> = (0..PER_PAGE)
                    .map(|i| {
                        let id = p * PER_PAGE + i + 1;
                        serde_json::json!({"id": id, "name": format!("server-{id}"), "status": "up"})
                    })
                    .collect();
                bytes::Bytes::from(
                    serde_json::to_vec(&serde_json::json!({"data": items, "page": p + 1, "total_pages": PAGES}))
                        .unwrap_or_default(),
                )
            })
            .collect();
        let data = Arc::new(Data {
            pages,
            empty: bytes::Bytes::from_static(br#"{"data":[],"total_pages":100}"#),
        });
        let app = Router::new()
            .route("/items/{id}", get(item))
            .route("/pages", get(page))
            .with_state(data);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        axum::serve(listener, app).await
    })
}
