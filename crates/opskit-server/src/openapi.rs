//! The OpenAPI 3.1 document, generated from the handlers, plus what every operation can answer
//! with when things go wrong.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{ResponseBuilder, Responses};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref, RefOr, SecurityRequirement};
use utoipa::{Modify, OpenApi};

use crate::problem::{FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "opskit inventory API",
        description = "The server inventory: servers with hostname, ip, env, status, os_type, tags and labels. \
Authenticate with a bearer token from POST /auth/login, an API key (X-API-Key or Bearer), or HTTP Basic. \
Every error is application/problem+json (RFC 9457).",
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&Security),
    tags(
        (name = "servers", description = "The inventory"),
        (name = "auth", description = "Log in, refresh, log out"),
        (name = "operations", description = "Health and metrics"),
        (name = "monitors", description = "The monitor engine running in this server (`opskit serve --monitor`): monitors from monitor.toml and inventory templates (read-only here) and those created through the API, their results, uptime and incidents; 404 on every route when the monitor is off"),
        (name = "events", description = "Received webhook events: POST them (signed per Standard Webhooks when the server has --events-secret, e.g. by `opskit notify webhook`), GET to list them"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut Doc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or opk_ API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKeyAuth",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "basicAuth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        openapi.security = Some(vec![
            SecurityRequirement::new("bearerAuth", Vec::<String>::new()),
            SecurityRequirement::new("apiKeyAuth", Vec::<String>::new()),
            SecurityRequirement::new("basicAuth", Vec::<String>::new()),
        ]);
    }
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            crate::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn add(responses: &mut Responses, code: &str, description: &str) {
    responses
        .responses
        .entry(code.to_owned())
        .or_insert_with(|| problem(description));
}

fn add_errors(op: &mut Operation, path: &str, method: &str) {
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &SecurityRequirement::default()));
    let r = &mut op.responses;
    if !public {
        add(r, "401", "Missing, invalid or expired credentials");
        add(r, "403", "The role does not allow this");
    }
    if path.starts_with("/api/") || path.starts_with("/auth/") {
        add(r, "429", "Rate limit exceeded; see Retry-After");
        add(r, "400", "Malformed request (bad JSON, bad header)");
        add(
            r,
            "422",
            "Validation failed; `errors` lists every bad field",
        );
    }
    if path == "/auth/login" {
        add(r, "401", "Wrong username or password");
    }
    if path == "/auth/refresh" || path == "/auth/logout" {
        add(r, "401", "Unknown, expired, used or revoked refresh token");
    }
    let monitors = path.starts_with("/api/v1/monitors");
    if path.contains("{id}") {
        if monitors {
            add(
                r,
                "404",
                "No such monitor (by UUID or name), or the monitor is not running in this server",
            );
        } else if path.starts_with("/api/v1/servers/") {
            add(r, "404", "No such server");
        } else {
            add(r, "404", "Not found");
        }
    }
    if matches!(method, "post" | "put" | "patch") {
        add(r, "413", "Body too large");
        add(r, "415", "Body is not JSON");
    }
    if matches!(method, "put" | "patch" | "delete") && path.contains("{id}") {
        add(r, "412", "If-Match does not match the current ETag");
    }
    if monitors && matches!(method, "post" | "put" | "patch" | "delete") {
        add(
            r,
            "409",
            "The name is taken by a monitor of any origin, or the monitor is read-only here (monitor.toml or an inventory template)",
        );
    } else if matches!(method, "post" | "put" | "patch") && path.starts_with("/api/v1/servers") {
        add(r, "409", "Hostname already taken");
    } else if matches!(method, "post" | "put" | "patch") && path.starts_with("/api/") {
        add(r, "409", "Conflicts with the current state");
    }
    add(r, "500", "Internal error (details in the server log)");
    add(r, "503", "Request timed out or the service is unavailable");
}

/// Adds the problem responses every operation can produce.
pub fn finish(mut doc: Doc) -> Doc {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("get", item.get.as_mut()),
            ("post", item.post.as_mut()),
            ("put", item.put.as_mut()),
            ("patch", item.patch.as_mut()),
            ("delete", item.delete.as_mut()),
        ] {
            if let Some(op) = op {
                add_errors(op, path, method);
            }
        }
    }
    doc
}
