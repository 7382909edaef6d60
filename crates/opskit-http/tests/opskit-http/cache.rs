use std::time::Duration;

use opskit_http::{Auth, CacheConfig, Client, Secret, StatusCode};
use serde_json::Value;

use crate::fixture::Fixture;
use crate::support::config;

async fn get(client: &Client, path: &str) -> (Value, bool) {
    let r = client.get(path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cached = r.from_cache();
    (r.json().await.unwrap(), cached)
}

#[tokio::test(start_paused = true)]
async fn get_responses_are_served_from_memory_until_the_ttl() {
    let fx = Fixture::start().await;
    let client =
        Client::new(config(&fx.base()).cache(CacheConfig::new(Duration::from_secs(60)))).unwrap();
    let (a, hit_a) = get(&client, "whoami").await;
    let (b, hit_b) = get(&client, "whoami").await;
    assert!(!hit_a && hit_b);
    assert_eq!(a, b);
    assert_eq!(fx.state.count("whoami"), 1);
    // POST is never cached, and no_cache bypasses
    client.get("whoami").no_cache().send().await.unwrap();
    assert_eq!(fx.state.count("whoami"), 2);
    tokio::time::advance(Duration::from_secs(61)).await;
    let (_, hit) = get(&client, "whoami").await;
    assert!(!hit);
    assert_eq!(fx.state.count("whoami"), 3);
}

#[tokio::test]
async fn the_cache_never_crosses_auth_identities() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheConfig::new(Duration::from_secs(600)).dir(dir.path());
    let alice = Client::new(
        config(&fx.base())
            .cache(cache.clone())
            .auth(Auth::Bearer(Secret::value("alice"))),
    )
    .unwrap();
    let bob = Client::new(
        config(&fx.base())
            .cache(cache.clone())
            .auth(Auth::Bearer(Secret::value("bob"))),
    )
    .unwrap();
    let (a, _) = get(&alice, "whoami").await;
    let (b, hit) = get(&bob, "whoami").await;
    assert_eq!(a["who"], "Bearer alice");
    assert_eq!(b["who"], "Bearer bob");
    assert!(!hit);
    // per-request credentials are part of the key too
    let anon = Client::new(config(&fx.base()).cache(cache)).unwrap();
    let r: Value = anon
        .get("whoami")
        .header("Authorization", "Bearer carol")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["who"], "Bearer carol");
    let r: Value = anon
        .get("whoami")
        .header("Authorization", "Bearer dave")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["who"], "Bearer dave");
    // and the same identity does hit
    let (a2, hit) = get(&alice, "whoami").await;
    assert!(hit);
    assert_eq!(a2, a);
    // secrets never reach the disk
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(!text.contains("\"authorization\""));
    }
}

#[tokio::test]
async fn the_disk_cache_survives_a_restart() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheConfig::new(Duration::from_secs(600)).dir(dir.path());
    {
        let c = Client::new(config(&fx.base()).cache(cache.clone())).unwrap();
        get(&c, "whoami").await;
    }
    let c = Client::new(config(&fx.base()).cache(cache)).unwrap();
    let (v, hit) = get(&c, "whoami").await;
    assert!(hit);
    assert_eq!(v["served"], 1);
    assert_eq!(fx.state.count("whoami"), 1);
}

/// A cached answer to an authenticated request is nobody else's to read: the directory the
/// cache creates is 0700 and every file in it 0600, whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn the_disk_cache_is_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let fx = Fixture::start().await;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("opskit").join("http");
    let cache = CacheConfig::new(Duration::from_secs(600)).dir(&dir);
    let c = Client::new(config(&fx.base()).cache(cache)).unwrap();
    get(&c, "whoami").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&parent.path().join("opskit")), 0o700);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[tokio::test]
async fn no_store_is_respected() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(
        config(&fx.base()).cache(CacheConfig::new(Duration::from_secs(600)).dir(dir.path())),
    )
    .unwrap();
    for _ in 0..3 {
        let (_, hit) = get(&client, "nostore").await;
        assert!(!hit);
    }
    assert_eq!(fx.state.count("nostore"), 3);
    assert_eq!(
        std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn stale_entries_are_revalidated_with_etag_and_a_304_reuses_the_body() {
    let fx = Fixture::start().await;
    let client =
        Client::new(config(&fx.base()).cache(CacheConfig::new(Duration::from_secs(30)))).unwrap();
    let (first, _) = get(&client, "cached").await;
    tokio::time::advance(Duration::from_secs(31)).await;
    let (second, hit) = get(&client, "cached").await;
    assert!(hit);
    assert_eq!(first, second);
    assert_eq!(fx.state.count("cached-200"), 1);
    assert_eq!(fx.state.count("cached-304"), 1);
    let sent = fx.state.hits("/cached");
    assert_eq!(sent[1].headers.get("if-none-match").unwrap(), "\"v1\"");
    // revalidated: fresh again for another TTL
    let (_, hit) = get(&client, "cached").await;
    assert!(hit);
    assert_eq!(fx.state.hits("/cached").len(), 2);
}

/// A 304 refreshes the stored entry's headers and time on disk without writing its body again
/// (the body file is the same file), and a new process still reads body and headers from disk.
#[cfg(unix)]
#[tokio::test(start_paused = true)]
async fn a_304_rewrites_the_metadata_but_not_the_body_on_disk() {
    use std::os::unix::fs::MetadataExt as _;
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheConfig::new(Duration::from_secs(30)).dir(dir.path());
    let client = Client::new(config(&fx.base()).cache(cache.clone())).unwrap();
    let (first, _) = get(&client, "cached").await;
    let file = |ext: &str| {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == ext))
            .unwrap()
    };
    let (body, meta) = (file("body"), file("json"));
    let body_ino = std::fs::metadata(&body).unwrap().ino();
    let meta_ino = std::fs::metadata(&meta).unwrap().ino();
    tokio::time::advance(Duration::from_secs(31)).await;
    let (second, hit) = get(&client, "cached").await;
    assert!(hit);
    assert_eq!(first, second);
    assert_eq!(fx.state.count("cached-304"), 1);
    assert_eq!(
        std::fs::metadata(&body).unwrap().ino(),
        body_ino,
        "the body was written again"
    );
    assert_ne!(
        std::fs::metadata(&meta).unwrap().ino(),
        meta_ino,
        "the metadata was not refreshed"
    );
    let again = Client::new(config(&fx.base()).cache(cache)).unwrap();
    let (third, hit) = get(&again, "cached").await;
    assert!(hit);
    assert_eq!(third, first);
    assert_eq!(fx.state.count("cached-200"), 1);
}

#[tokio::test(start_paused = true)]
async fn stale_entries_are_revalidated_with_last_modified() {
    let fx = Fixture::start().await;
    let client =
        Client::new(config(&fx.base()).cache(CacheConfig::new(Duration::from_secs(30)))).unwrap();
    let (first, _) = get(&client, "lastmod").await;
    tokio::time::advance(Duration::from_secs(31)).await;
    let (second, hit) = get(&client, "lastmod").await;
    assert!(hit);
    assert_eq!(first, second);
    assert_eq!(fx.state.count("lastmod-200"), 1);
    assert_eq!(fx.state.count("lastmod-304"), 1);
}
