//! OpenAPI, Swagger UI, health and metrics.

use reqwest::Method;
use serde_json::Value;

use crate::both;
use crate::support::TestApp;

both!(docs::openapi_describes_every_route);
pub async fn openapi_describes_every_route(app: TestApp) {
    let doc: Value = app
        .req(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/servers",
        "/api/v1/servers/{id}",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/me",
        "/health",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let item = &doc["paths"]["/api/v1/servers/{id}"];
    for m in ["get", "put", "patch", "delete"] {
        assert!(item[m].is_object(), "{m}");
        assert_eq!(
            item[m]["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
    }
    assert!(item["patch"]["responses"]["412"].is_object());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for s in ["bearerAuth", "apiKeyAuth", "basicAuth"] {
        assert!(schemes.contains_key(s), "{s}");
    }
    for s in [
        "Server",
        "ServerInput",
        "ServerPage",
        "Problem",
        "FieldError",
        "TokenResponse",
    ] {
        assert!(doc["components"]["schemas"][s].is_object(), "schema {s}");
    }
    // the badge (served beside the status page, outside the API router) is documented too
    let badge = &doc["paths"]["/api/v1/monitors/{id}/badge.svg"]["get"];
    assert!(
        badge["responses"]["200"]["content"]["image/svg+xml"].is_object(),
        "{badge}"
    );
    let params: Vec<&str> = badge["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["id", "type", "window"], "{badge}");
    // public routes say so
    assert_eq!(
        doc["paths"]["/health"]["get"]["security"],
        serde_json::json!([{}])
    );
}

both!(docs::swagger_ui_is_served_from_the_binary);
pub async fn swagger_ui_is_served_from_the_binary(app: TestApp) {
    let html = app
        .req(Method::GET, "/docs/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("swagger"), "{html}");
    assert!(!html.contains("https://"), "no CDN: {html}");
    let js = app
        .req(Method::GET, "/docs/swagger-ui-bundle.js")
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.unwrap().len() > 100_000);
}

both!(docs::health_and_metrics);
pub async fn health_and_metrics(app: TestApp) {
    let h: Value = app
        .req(Method::GET, "/health")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"], "ok");
    app.admin_req(Method::GET, "/api/v1/servers/nope")
        .send()
        .await
        .unwrap();
    let text = app
        .admin_req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"opskit_http_requests_total{method="GET",route="/api/v1/servers/{id}",status="404"} 1"#), "{text}");
    assert!(text.contains(
        r#"opskit_http_request_duration_seconds_bucket{route="/api/v1/servers/{id}",le="+Inf"} 1"#
    ));
    assert!(text.contains("# TYPE opskit_http_request_duration_seconds histogram"));
}
