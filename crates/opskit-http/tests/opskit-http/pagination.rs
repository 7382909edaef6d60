use futures::{StreamExt, TryStreamExt};
use opskit_http::{Client, Error, PageStyle, Paginator};
use serde_json::Value;

use crate::fixture::Fixture;
use crate::support::config;

fn ids(items: &[Value]) -> Vec<u64> {
    items.iter().map(|v| v["id"].as_u64().unwrap()).collect()
}

async fn walk(client: &Client, path: &str, pager: Paginator) -> Vec<Value> {
    client.paginate(path, pager).try_collect().await.unwrap()
}

#[tokio::test]
async fn page_number_stops_on_short_page() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let items = walk(
        &client,
        "pages/number",
        Paginator::new(PageStyle::page_number("page", "per_page", 10)).items_at("/data"),
    )
    .await;
    assert_eq!(ids(&items), (1..=23).collect::<Vec<_>>());
    assert_eq!(fx.state.hits("/pages/number").len(), 3);
}

#[tokio::test]
async fn page_number_stops_at_total_pages() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    // 23 items, pages of 23: the page is full, so only total_pages stops it
    let style = PageStyle::PageNumber {
        page_param: "page".into(),
        size_param: Some("per_page".into()),
        page_size: Some(23),
        first_page: 1,
        total_pages_pointer: Some("/total_pages".into()),
    };
    let items = walk(
        &client,
        "pages/number",
        Paginator::new(style).items_at("/data"),
    )
    .await;
    assert_eq!(items.len(), 23);
    assert_eq!(fx.state.hits("/pages/number").len(), 1);
}

#[tokio::test]
async fn offset_limit() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let items = walk(
        &client,
        "pages/offset",
        Paginator::new(PageStyle::offset_limit("offset", "limit", 5)),
    )
    .await;
    assert_eq!(ids(&items), (1..=23).collect::<Vec<_>>());
    let queries: Vec<_> = fx
        .state
        .hits("/pages/offset")
        .iter()
        .map(|h| h.query.clone().unwrap())
        .collect();
    assert_eq!(queries[1], "offset=5&limit=5");
}

#[tokio::test]
async fn link_header_next() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let items = walk(&client, "pages/link", Paginator::new(PageStyle::LinkHeader)).await;
    assert_eq!(ids(&items), (1..=23).collect::<Vec<_>>());
    assert_eq!(fx.state.hits("/pages/link").len(), 3);
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let results: Vec<Result<Value, Error>> = client
        .paginate("pages/evil", Paginator::new(PageStyle::LinkHeader))
        .collect()
        .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
    assert!(matches!(
        results.last().unwrap(),
        Err(Error::Pagination { .. })
    ));
    assert!(fx.state.hits("/pages/link").is_empty());
}

#[tokio::test]
async fn cursor_in_body() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let pager = Paginator::new(PageStyle::cursor("/meta/next", "cursor")).items_at("/items");
    let items = walk(&client, "pages/cursor", pager).await;
    assert_eq!(ids(&items), (1..=23).collect::<Vec<_>>());
    assert_eq!(fx.state.hits("/pages/cursor").len(), 5);
}

#[tokio::test]
async fn next_url_in_body_with_auto_detected_items() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let items = walk(
        &client,
        "pages/next",
        Paginator::new(PageStyle::next_url("/next")),
    )
    .await;
    assert_eq!(ids(&items), (1..=23).collect::<Vec<_>>());
    assert_eq!(fx.state.hits("/pages/next").len(), 4);
}

#[tokio::test]
async fn caps_on_pages_and_items() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let style = PageStyle::page_number("page", "per_page", 10);
    let items = walk(
        &client,
        "pages/number",
        Paginator::new(style.clone()).items_at("/data").max_pages(2),
    )
    .await;
    assert_eq!(items.len(), 20);
    let items = walk(
        &client,
        "pages/offset",
        Paginator::new(PageStyle::offset_limit("offset", "limit", 5)).max_items(7),
    )
    .await;
    assert_eq!(ids(&items), (1..=7).collect::<Vec<_>>());
    assert_eq!(fx.state.hits("/pages/offset").len(), 2);
}

#[tokio::test]
async fn items_are_yielded_as_pages_arrive() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let mut stream = Box::pin(client.paginate(
        "pages/cursor",
        Paginator::new(PageStyle::cursor("/meta/next", "cursor")).items_at("/items"),
    ));
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first["id"], 1);
    assert_eq!(fx.state.hits("/pages/cursor").len(), 1);
}

#[tokio::test]
async fn a_missing_items_array_is_a_clear_error() {
    let fx = Fixture::start().await;
    let client = Client::new(config(&fx.base())).unwrap();
    let r: Result<Vec<Value>, Error> = client
        .paginate(
            "pages/cursor",
            Paginator::new(PageStyle::cursor("/meta/next", "cursor")).items_at("/nope"),
        )
        .try_collect()
        .await;
    let err = r.unwrap_err();
    assert!(matches!(err, Error::Pagination { .. }));
    assert!(err.to_string().contains("/nope"));
}
