//! CRUD, filters, paging, ETag/If-Match, idempotent POST, merge patch, validation and error shapes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::support::{TestApp, problem};

both!(inventory::crud_by_id_and_hostname);
pub async fn crud_by_id_and_hostname(app: TestApp) {
    let r = app
        .create(json!({"hostname": "Web01.Example.com", "ip": "10.0.0.11", "env": "prod",
            "os_type": "linux", "tags": ["web", "edge", "web"], "labels": {"rack": "r1", "team": "ops"}}))
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/servers/{id}"));
    assert_eq!(created["hostname"], "web01.example.com");
    assert_eq!(created["status"], "active");
    assert_eq!(created["tags"], json!(["edge", "web"]));

    for key in [id.as_str(), "web01.example.com", "WEB01.example.com"] {
        let r = app
            .admin_req(Method::GET, &format!("/api/v1/servers/{key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {key}");
        assert!(r.headers().contains_key("etag"));
        let got: Value = r.json().await.unwrap();
        assert_eq!(got, created);
    }

    // PUT replaces: omitted fields go back to their defaults
    let r = app
        .admin_req(Method::PUT, &format!("/api/v1/servers/{id}"))
        .json(&json!({"hostname": "web01.example.com", "ip": "2001:db8::1", "env": "staging", "status": "maintenance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let put: Value = r.json().await.unwrap();
    assert_eq!(put["ip"], "2001:db8::1");
    assert_eq!(put["os_type"], Value::Null);
    assert_eq!(put["tags"], json!([]));
    assert_eq!(put["labels"], json!({}));
    assert_eq!(put["created_at"], created["created_at"]);

    // PATCH is a JSON merge patch: set, add a label, remove a field with null
    app.admin_req(Method::PATCH, &format!("/api/v1/servers/{id}"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"os_type": "windows", "labels": {"rack": "r9"}}"#)
        .send()
        .await
        .unwrap();
    let r = app
        .admin_req(Method::PATCH, "/api/v1/servers/web01.example.com")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"os_type": null, "labels": {"owner": "alice"}, "tags": ["db"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["os_type"], Value::Null);
    assert_eq!(patched["labels"], json!({"rack": "r9", "owner": "alice"}));
    assert_eq!(patched["tags"], json!(["db"]));
    assert_eq!(patched["env"], "staging");

    // an invalid patch is a 422 and changes nothing
    let r = app
        .admin_req(Method::PATCH, &format!("/api/v1/servers/{id}"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"ip": "not-an-ip", "hostname": null}"#)
        .send()
        .await
        .unwrap();
    let body = problem(r, 422).await;
    let locs: Vec<Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    assert!(locs.contains(&json!(["body", "ip"])), "{locs:?}");
    assert!(locs.contains(&json!(["body", "hostname"])), "{locs:?}");

    let r = app
        .admin_req(Method::DELETE, &format!("/api/v1/servers/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .admin_req(Method::GET, &format!("/api/v1/servers/{id}"))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = app
        .admin_req(Method::DELETE, &format!("/api/v1/servers/{id}"))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
}

both!(inventory::validation_reports_every_bad_field);
pub async fn validation_reports_every_bad_field(app: TestApp) {
    let r = app
        .create(
            json!({"hostname": "-bad-", "ip": "300.1.1.1", "env": "Prod!", "status": "on fire",
            "tags": ["ok", "NOT OK"], "labels": {"k": 5}, "colour": "blue"}),
        )
        .await;
    let body = problem(r, 422).await;
    let mut locs: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["msg"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(e["type"].is_string());
            e["loc"].to_string()
        })
        .collect();
    locs.sort();
    assert_eq!(
        locs,
        vec![
            r#"["body","colour"]"#,
            r#"["body","env"]"#,
            r#"["body","hostname"]"#,
            r#"["body","ip"]"#,
            r#"["body","labels"]"#,
            r#"["body","status"]"#,
            r#"["body","tags",1]"#,
        ]
    );
    // missing required fields are all listed
    let body = problem(app.create(json!({})).await, 422).await;
    let missing: Vec<Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].clone())
        .collect();
    assert_eq!(
        missing,
        vec![
            json!(["body", "hostname"]),
            json!(["body", "ip"]),
            json!(["body", "env"])
        ]
    );
    // a hostname that looks like a UUID would be ambiguous in /servers/{id}
    let body = problem(
        app.create(json!({"hostname": "3f2c1d7e-0000-4000-8000-000000000000", "ip": "10.0.0.1", "env": "prod"})).await,
        422,
    )
    .await;
    assert!(body["errors"][0]["msg"].as_str().unwrap().contains("UUID"));
}

both!(inventory::duplicate_hostname_is_a_conflict);
pub async fn duplicate_hostname_is_a_conflict(app: TestApp) {
    app.create_ok("db01", "prod").await;
    let other = app.create_ok("db02", "prod").await;
    problem(
        app.create(json!({"hostname": "DB01", "ip": "10.0.0.2", "env": "prod"}))
            .await,
        409,
    )
    .await;
    // renaming onto a taken hostname is a conflict too
    let r = app
        .admin_req(
            Method::PATCH,
            &format!("/api/v1/servers/{}", other["id"].as_str().unwrap()),
        )
        .json(&json!({"hostname": "db01"}))
        .send()
        .await
        .unwrap();
    problem(r, 409).await;
}

async fn list(app: &TestApp, query: &str) -> (Value, Option<String>) {
    let r = app
        .admin_req(Method::GET, &format!("/api/v1/servers{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "list {query}");
    let link = r
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.json().await.unwrap(), link)
}

fn hostnames(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap().to_owned())
        .collect()
}

both!(inventory::list_filters_sort_and_paging);
pub async fn list_filters_sort_and_paging(app: TestApp) {
    let rows = [
        ("web01", "prod", "active", "linux", vec!["web"]),
        ("web02", "prod", "maintenance", "linux", vec!["web", "edge"]),
        ("db01", "prod", "active", "linux", vec!["db"]),
        ("win01", "staging", "active", "windows", vec![]),
        ("cache01", "dev", "offline", "linux", vec!["cache"]),
    ];
    for (h, env, status, os, tags) in rows {
        let r = app
            .create(json!({"hostname": h, "ip": "10.1.1.1", "env": env, "status": status, "os_type": os, "tags": tags}))
            .await;
        assert_eq!(r.status(), 201);
    }
    let (all, _) = list(&app, "").await;
    assert_eq!(all["total"], 5);
    assert_eq!(all["page"], 1);
    assert_eq!(all["per_page"], 20);
    assert_eq!(all["total_pages"], 1);
    // default order is creation order
    assert_eq!(
        hostnames(&all),
        vec!["web01", "web02", "db01", "win01", "cache01"]
    );

    assert_eq!(
        hostnames(&list(&app, "?env=prod&sort=hostname").await.0),
        vec!["db01", "web01", "web02"]
    );
    assert_eq!(
        hostnames(&list(&app, "?status=active&sort=-hostname").await.0),
        vec!["win01", "web01", "db01"]
    );
    assert_eq!(
        hostnames(&list(&app, "?os_type=windows").await.0),
        vec!["win01"]
    );
    assert_eq!(
        hostnames(&list(&app, "?tag=web&sort=hostname").await.0),
        vec!["web01", "web02"]
    );
    assert_eq!(
        hostnames(&list(&app, "?tag=we").await.0),
        Vec::<String>::new()
    );
    assert_eq!(
        hostnames(&list(&app, "?q=EB0&sort=hostname").await.0),
        vec!["web01", "web02"]
    );
    assert_eq!(
        hostnames(&list(&app, "?env=prod&tag=edge").await.0),
        vec!["web02"]
    );

    let (p2, link) = list(&app, "?per_page=2&page=2&sort=hostname").await;
    assert_eq!(hostnames(&p2), vec!["web01", "web02"]);
    assert_eq!(p2["total"], 5);
    assert_eq!(p2["total_pages"], 3);
    let link = link.expect("Link header");
    assert!(
        link.contains(r#"</api/v1/servers?page=1&per_page=2&sort=hostname>; rel="first""#),
        "{link}"
    );
    assert!(
        link.contains(r#"</api/v1/servers?page=1&per_page=2&sort=hostname>; rel="prev""#),
        "{link}"
    );
    assert!(
        link.contains(r#"</api/v1/servers?page=3&per_page=2&sort=hostname>; rel="next""#),
        "{link}"
    );
    assert!(
        link.contains(r#"</api/v1/servers?page=3&per_page=2&sort=hostname>; rel="last""#),
        "{link}"
    );
    // following next keeps the filters
    let (p3, link3) = list(&app, "?per_page=2&page=3&sort=hostname").await;
    assert_eq!(hostnames(&p3), vec!["win01"]);
    assert!(!link3.unwrap().contains("rel=\"next\""));
    let (_, flink) = list(&app, "?env=prod&per_page=1").await;
    assert!(flink.unwrap().contains("env=prod"));

    // bad query parameters: every one reported, with its location
    let r = app
        .admin_req(
            Method::GET,
            "/api/v1/servers?per_page=1000&page=0&sort=ip&status=x",
        )
        .send()
        .await
        .unwrap();
    let body = problem(r, 422).await;
    let mut locs: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"].to_string())
        .collect();
    locs.sort();
    assert_eq!(
        locs,
        vec![
            r#"["query","page"]"#,
            r#"["query","per_page"]"#,
            r#"["query","sort"]"#,
            r#"["query","status"]"#
        ]
    );
}

both!(inventory::etag_and_if_match);
pub async fn etag_and_if_match(app: TestApp) {
    let s = app.create_ok("etag01", "prod").await;
    let path = format!("/api/v1/servers/{}", s["id"].as_str().unwrap());
    let r = app.admin_req(Method::GET, &path).send().await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();

    let r = app
        .admin_req(Method::PATCH, &path)
        .header("if-match", &etag)
        .json(&json!({"env": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);

    // the old ETag is stale now: 412 for PATCH, PUT and DELETE, and nothing changes
    let r = app
        .admin_req(Method::PATCH, &path)
        .header("if-match", &etag)
        .json(&json!({"env": "qa"}))
        .send()
        .await
        .unwrap();
    problem(r, 412).await;
    let r = app
        .admin_req(Method::PUT, &path)
        .header("if-match", &etag)
        .json(&json!({"hostname": "etag01", "ip": "10.0.0.1", "env": "qa"}))
        .send()
        .await
        .unwrap();
    problem(r, 412).await;
    let r = app
        .admin_req(Method::DELETE, &path)
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    problem(r, 412).await;
    let r = app.admin_req(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["env"], "dev");

    let r = app
        .admin_req(Method::DELETE, &path)
        .header("if-match", &new_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

both!(inventory::idempotent_post);
pub async fn idempotent_post(app: TestApp) {
    let body = json!({"hostname": "idem01", "ip": "10.0.0.1", "env": "prod"});
    let first = app
        .admin_req(Method::POST, "/api/v1/servers")
        .header("idempotency-key", "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // a retry (same key, same body, other formatting) replays the first response
    let again = app
        .admin_req(Method::POST, "/api/v1/servers")
        .header("idempotency-key", "k-1")
        .header("content-type", "application/json")
        .body(r#"{ "env": "prod", "ip": "10.0.0.1", "hostname": "idem01" }"#)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    // same key, another body: 422
    let other = app
        .admin_req(Method::POST, "/api/v1/servers")
        .header("idempotency-key", "k-1")
        .json(&json!({"hostname": "idem02", "ip": "10.0.0.1", "env": "prod"}))
        .send()
        .await
        .unwrap();
    problem(other, 422).await;
    let (page, _) = list(&app, "").await;
    assert_eq!(page["total"], 1);
}

both!(inventory::error_shapes_are_problem_json);
pub async fn error_shapes_are_problem_json(app: TestApp) {
    let r = app
        .admin_req(Method::POST, "/api/v1/servers")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let b = problem(r, 400).await;
    assert!(b["detail"].as_str().unwrap().contains("JSON"));
    let r = app
        .admin_req(Method::POST, "/api/v1/servers")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    let r = app
        .admin_req(Method::POST, "/api/v1/servers")
        .json(&json!([1, 2]))
        .send()
        .await
        .unwrap();
    problem(r, 422).await;
    let r = app
        .admin_req(Method::GET, "/api/v1/nothing-here")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = app
        .admin_req(Method::PATCH, "/api/v1/servers")
        .send()
        .await
        .unwrap();
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    problem(r, 405).await;
    assert!(allow.unwrap().contains("POST"));
    let big = format!(
        r#"{{"hostname":"big","ip":"10.0.0.1","env":"prod","labels":{{"x":"{}"}}}}"#,
        "a".repeat(200_000)
    );
    let r = app
        .admin_req(Method::POST, "/api/v1/servers")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    problem(r, 413).await;
}
