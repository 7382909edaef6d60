//! Hostile servers on loopback (issue 18): redirects that try to steal secrets, loops, endless
//! bodies, paging that never ends, hundreds of headers, `Retry-After: 0`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use opskit_http::{ApiKeyLocation, Auth, Client, Error, PageStyle, Paginator, Secret};

use crate::support::{config, observed};

/// What one server received: (path and query, headers).
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A server that records every request and answers from `route`.
async fn hostile<F>(route: F) -> (String, Seen)
where
    F: Fn(&str, &str) -> Response + Send + Sync + 'static,
{
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let route = Arc::new(route);
    let rec = seen.clone();
    let me = base.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let rec = rec.clone();
        let route = route.clone();
        let me = me.clone();
        async move {
            let pq = uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            rec.lock().unwrap().push((pq.clone(), headers));
            route(&me, &pq)
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [("location", to.to_string())]).into_response()
}

fn ok(body: &'static str) -> Response {
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// Server B: records and answers 200 (the attacker's origin).
async fn attacker() -> (String, Seen) {
    hostile(|_, _| ok("{}")).await
}

#[tokio::test]
async fn secrets_never_follow_a_redirect_to_another_origin() {
    let (b, b_seen) = attacker().await;
    let target = format!("{b}/stolen");
    let (a, a_seen) = hostile(move |_, pq| {
        if pq.starts_with("/redir") {
            redirect(&target)
        } else if pq.starts_with("/same") {
            redirect("/landed")
        } else {
            ok("{}")
        }
    })
    .await;
    let client = Client::new(
        config(&a)
            .auth(Auth::ApiKey {
                name: "X-API-Key".into(),
                value: Secret::value("k-123"),
                location: ApiKeyLocation::Header,
            })
            .header("X-Profile-Secret", "p-456")
            .secret_header("X-Profile-Secret")
            .header("Cookie", "session=c-789"),
    )
    .unwrap();

    // same origin: the key goes along
    let r = client.get("same").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let a_hits = a_seen.lock().unwrap().clone();
    let landed = &a_hits.iter().find(|(p, _)| p == "/landed").unwrap().1;
    assert_eq!(landed["x-api-key"], "k-123");
    assert_eq!(landed["x-profile-secret"], "p-456");

    // another origin: none of them
    let r = client
        .get("redir")
        .header("Authorization", "Bearer t-000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the redirect is followed");
    let b_hits = b_seen.lock().unwrap().clone();
    assert_eq!(b_hits.len(), 1);
    let (path, h) = &b_hits[0];
    assert_eq!(path, "/stolen");
    for name in [
        "x-api-key",
        "x-profile-secret",
        "cookie",
        "authorization",
        "referer",
    ] {
        assert!(
            !h.contains_key(name),
            "{name} reached the other origin: {h:?}"
        );
    }
    let all = format!("{h:?}");
    for secret in ["k-123", "p-456", "c-789", "t-000"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}

#[tokio::test]
async fn a_query_key_leaks_neither_by_referer_nor_by_query() {
    let (b, b_seen) = attacker().await;
    let target = format!("{b}/stolen?x=1");
    let (a, _) = hostile(move |_, pq| {
        if pq.starts_with("/redir") {
            redirect(&target)
        } else {
            ok("{}")
        }
    })
    .await;
    let client = Client::new(config(&a).auth(Auth::ApiKey {
        name: "api_key".into(),
        value: Secret::value("q-123"),
        location: ApiKeyLocation::Query,
    }))
    .unwrap();
    client.get("redir").send().await.unwrap();
    let b_hits = b_seen.lock().unwrap().clone();
    assert_eq!(b_hits.len(), 1);
    let (path, h) = &b_hits[0];
    assert!(!path.contains("q-123"), "{path}");
    assert!(h.get("referer").is_none(), "Referer sent: {h:?}");
    assert!(!format!("{h:?}").contains("q-123"));
}

#[tokio::test]
async fn a_server_echoing_the_query_key_into_location_does_not_carry_it_away() {
    let (b, b_seen) = attacker().await;
    let target = b.clone();
    let (a, _) = hostile(move |_, pq| {
        // a careless server copies the query into the Location of another origin
        let q = pq.split_once('?').map(|(_, q)| q).unwrap_or("");
        redirect(&format!("{target}/stolen?{q}"))
    })
    .await;
    let client = Client::new(
        config(&a)
            .auth(Auth::ApiKey {
                name: "api_key".into(),
                value: Secret::value("q-123"),
                location: ApiKeyLocation::Query,
            })
            .secret_query_param("sig"),
    )
    .unwrap();
    client.get("redir?sig=s-456&page=2").send().await.unwrap();
    let (path, _) = b_seen.lock().unwrap()[0].clone();
    assert!(!path.contains("q-123") && !path.contains("s-456"), "{path}");
    assert!(path.contains("page=2"), "{path}");
}

#[tokio::test]
async fn a_redirect_loop_is_one_request_and_not_a_connection_problem() {
    let (a, a_seen) = hostile(|_, _| redirect("/loop")).await;
    let client = Client::new(config(&a)).unwrap();
    let e = client.get("loop").send().await.unwrap_err();
    assert!(matches!(e, Error::Redirect { .. }), "{e:?}");
    assert!(e.to_string().contains("redirect loop"), "{e}");
    assert!(!e.is_connection());
    assert_eq!(a_seen.lock().unwrap().len(), 1, "a loop is not retried");

    // a chain that never repeats still ends at the redirect cap, not retried either
    let (c, c_seen) = hostile(|_, pq| {
        let n: u32 = pq.trim_start_matches("/n").parse().unwrap_or(0);
        redirect(&format!("/n{}", n + 1))
    })
    .await;
    let client = Client::new(config(&c)).unwrap();
    let e = client.get("n0").send().await.unwrap_err();
    assert!(e.to_string().contains("more than 10 redirects"), "{e}");
    assert_eq!(c_seen.lock().unwrap().len(), 11);
}

#[tokio::test]
async fn a_redirect_to_a_file_url_is_refused() {
    let (a, _) = hostile(|_, _| redirect("file:///etc/passwd")).await;
    let e = Client::new(config(&a))
        .unwrap()
        .get("x")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Redirect { .. }), "{e:?}");
}

#[tokio::test]
async fn a_response_with_hundreds_of_headers_is_read() {
    let (a, a_seen) = hostile(|_, _| {
        let mut r = ok("{\"ok\":true}");
        for i in 0..300 {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                "v".parse().unwrap(),
            );
        }
        r
    })
    .await;
    let r = Client::new(config(&a))
        .unwrap()
        .get("many")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().len() > 300, "{}", r.headers().len());
    assert_eq!(a_seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_endless_body_hits_the_cap_instead_of_filling_memory() {
    let (a, _) = hostile(|_, _| {
        let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let s = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        Response::new(Body::from_stream(s))
    })
    .await;
    let mut cfg = config(&a);
    cfg.max_body = 1024 * 1024;
    let e = Client::new(cfg)
        .unwrap()
        .get("endless")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::BodyTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{e:?}"
    );

    // a declared Content-Length over the cap is refused before reading
    let (b, _) = hostile(|_, _| (StatusCode::OK, vec![b'y'; 4096]).into_response()).await;
    let mut cfg = config(&b);
    cfg.max_body = 1000;
    let e = Client::new(cfg)
        .unwrap()
        .get("big")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1000-byte cap"), "{e}");
}

#[tokio::test]
async fn paging_stops_when_the_next_link_repeats() {
    let (a, a_seen) = hostile(|me, _| {
        let mut r = ok("[1,2]");
        r.headers_mut().insert(
            "link",
            format!("<{me}/items>; rel=\"next\"").parse().unwrap(),
        );
        r
    })
    .await;
    let client = Client::new(config(&a)).unwrap();
    let got: Vec<Result<serde_json::Value, Error>> = client
        .paginate("items", Paginator::new(PageStyle::LinkHeader))
        .collect_all()
        .await;
    let err = got.iter().find_map(|r| r.as_ref().err()).expect("an error");
    assert!(err.to_string().contains("same next link twice"), "{err}");
    assert!(a_seen.lock().unwrap().len() <= 3);
}

#[tokio::test]
async fn paging_stops_when_the_cursor_repeats() {
    let (a, a_seen) = hostile(|_, _| ok(r#"{"data":[1],"next":"abc"}"#)).await;
    let client = Client::new(config(&a)).unwrap();
    let r: Result<Vec<serde_json::Value>, Error> = client
        .paginate(
            "items",
            Paginator::new(PageStyle::cursor("/next", "cursor")).items_at("/data"),
        )
        .try_collect()
        .await;
    let err = r.unwrap_err();
    assert!(err.to_string().contains("same cursor twice"), "{err}");
    assert!(a_seen.lock().unwrap().len() <= 3);
}

#[tokio::test]
async fn retry_after_zero_still_waits_the_backoff() {
    let (a, a_seen) = hostile(|_, _| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            "slow down",
        )
            .into_response()
    })
    .await;
    let (client, rec) = observed(
        config(&a).retry(
            opskit_http::RetryPolicy::default()
                .jitter(false)
                .total(2)
                .backoff(Duration::from_millis(50), Duration::from_secs(1)),
        ),
    );
    let _ = client.get("x").send().await;
    assert_eq!(a_seen.lock().unwrap().len(), 3);
    let waits = rec.retry_waits();
    assert_eq!(
        waits,
        vec![Duration::from_millis(50), Duration::from_millis(100)]
    );
}

/// Collect every item of a stream, errors included.
trait CollectAll {
    async fn collect_all(self) -> Vec<Result<serde_json::Value, Error>>;
}

impl<S> CollectAll for S
where
    S: futures::Stream<Item = Result<serde_json::Value, Error>> + Send,
{
    async fn collect_all(self) -> Vec<Result<serde_json::Value, Error>> {
        use futures::StreamExt;
        self.collect().await
    }
}
