//! The inventory's data types: what a server is, what a client may send, and how input is
//! checked (every bad field reported at once, with FastAPI-style locations).

use std::collections::BTreeMap;
use std::net::IpAddr;

use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::FieldError;

/// Most tags a server may carry.
pub const MAX_TAGS: usize = 32;
/// Most labels a server may carry.
pub const MAX_LABELS: usize = 64;

/// Lifecycle status of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Active,
    Provisioning,
    Maintenance,
    Offline,
    Decommissioned,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Active,
        Status::Provisioning,
        Status::Maintenance,
        Status::Offline,
        Status::Decommissioned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Provisioning => "provisioning",
            Status::Maintenance => "maintenance",
            Status::Offline => "offline",
            Status::Decommissioned => "decommissioned",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A server in the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Server {
    /// Server id (UUID v7), assigned by the API.
    pub id: Uuid,
    /// Hostname (RFC 1123), unique, stored in lower case.
    #[schema(example = "web01.example.com")]
    pub hostname: String,
    /// IPv4 or IPv6 address.
    #[schema(example = "10.0.0.11")]
    pub ip: String,
    /// Environment, e.g. `prod`, `staging`, `dev`.
    #[schema(example = "prod")]
    pub env: String,
    pub status: Status,
    /// Operating system family, e.g. `linux`, `windows`.
    #[schema(example = "linux")]
    pub os_type: Option<String>,
    /// Tags, sorted and without duplicates.
    pub tags: Vec<String>,
    /// Free-form key/value labels.
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Internal revision counter behind the `ETag`.
    #[serde(skip)]
    #[schema(ignore)]
    pub version: i64,
}

impl Server {
    /// The strong entity tag of this revision.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id.simple(), self.version)
    }

    /// The writable fields of this server, as a client would send them.
    pub fn to_input(&self) -> ServerInput {
        ServerInput {
            hostname: self.hostname.clone(),
            ip: self.ip.clone(),
            env: self.env.clone(),
            status: self.status,
            os_type: self.os_type.clone(),
            tags: self.tags.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// What a client sends to create (POST) or replace (PUT) a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ServerInput {
    /// Hostname (RFC 1123: dot-separated labels of letters, digits and hyphens, at most 253
    /// characters). Stored in lower case; must not look like a UUID.
    #[garde(length(min = 1, max = 253), custom(check_hostname))]
    #[schema(
        example = "web01.example.com",
        max_length = 253,
        min_length = 1,
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
    )]
    pub hostname: String,
    /// IPv4 or IPv6 address.
    #[garde(custom(check_ip))]
    #[schema(schema_with = ip_schema)]
    pub ip: String,
    /// Environment: lower-case letters, digits, `_` and `-`, at most 32 characters.
    #[garde(custom(check_token))]
    #[schema(
        example = "prod",
        pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$",
        max_length = 32
    )]
    pub env: String,
    #[serde(default)]
    #[garde(skip)]
    pub status: Status,
    /// Operating system family (same rules as `env`), or null.
    #[serde(default)]
    #[garde(inner(custom(check_token)))]
    #[schema(
        example = "linux",
        pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$",
        max_length = 32
    )]
    pub os_type: Option<String>,
    /// Tags: lower-case letters, digits, `_ . : -`, at most 63 characters each, at most 32 tags.
    #[serde(default)]
    #[garde(length(max = MAX_TAGS), inner(custom(check_tag)))]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    /// Labels: keys of 1 to 63 characters, values of at most 1024 characters, at most 64 labels.
    #[serde(default)]
    #[garde(length(max = MAX_LABELS), custom(check_labels))]
    #[schema(schema_with = labels_schema)]
    pub labels: BTreeMap<String, String>,
}

/// A JSON Merge Patch (RFC 7396) of a server: fields present are set, `null` resets a field to
/// its default (hostname, ip and env cannot be removed), labels are merged key by key (a `null`
/// label value removes that label). Documentation type; the handler applies the patch to the
/// stored server and validates the result as a [`ServerInput`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ServerPatch {
    #[schema(
        nullable = false,
        max_length = 253,
        min_length = 1,
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
    )]
    hostname: Option<String>,
    #[schema(schema_with = ip_schema)]
    ip: Option<String>,
    #[schema(
        nullable = false,
        pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$",
        max_length = 32
    )]
    env: Option<String>,
    status: Option<Status>,
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$", max_length = 32)]
    os_type: Option<String>,
    #[schema(schema_with = tags_schema)]
    tags: Option<Vec<String>>,
    #[schema(schema_with = labels_patch_schema)]
    labels: Option<BTreeMap<String, Option<String>>>,
}

fn labels_patch_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::SchemaType;
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(63)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .max_length(Some(1024))
                .into(),
        )))
        .max_properties(Some(MAX_LABELS))
        .into()
}

fn ip_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))),
        )
        .description(Some("IPv4 or IPv6 address"))
        .examples([serde_json::json!("10.0.0.11")])
        .into()
}

fn tags_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[a-z0-9][a-z0-9_.:-]{0,62}$"))
                .max_length(Some(63)),
        )
        .max_items(Some(MAX_TAGS))
        .into()
}

fn labels_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(63)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(1024))
                .into(),
        )))
        .max_properties(Some(MAX_LABELS))
        .into()
}

/// A hostname as RFC 1123 allows it (letters, digits, hyphens; labels of 1–63 characters).
pub fn is_rfc1123_hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

fn check_hostname(value: &str, _: &()) -> garde::Result {
    if !is_rfc1123_hostname(value) {
        return Err(garde::Error::new(
            "not a valid hostname (RFC 1123: dot-separated labels of 1-63 letters, digits or hyphens, not starting or ending with a hyphen)",
        ));
    }
    if Uuid::parse_str(value).is_ok() {
        return Err(garde::Error::new(
            "a hostname must not look like a UUID (it would be ambiguous in /servers/{id})",
        ));
    }
    Ok(())
}

fn check_ip(value: &str, _: &()) -> garde::Result {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| garde::Error::new("not a valid IPv4 or IPv6 address"))
}

/// An `env` or `os_type` value: 1-32 lower-case letters, digits, `_` or `-`, starting with a
/// letter or digit (the one check, for bodies and for list filters).
pub fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !value.starts_with(['_', '-'])
}

fn check_token(value: &str, _: &()) -> garde::Result {
    if is_token(value) {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must be 1-32 characters: lower-case letters, digits, '_' or '-', starting with a letter or digit",
        ))
    }
}

pub fn is_tag(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
        && value.as_bytes()[0].is_ascii_alphanumeric()
}

fn check_tag(value: &str, _: &()) -> garde::Result {
    if is_tag(value) {
        Ok(())
    } else {
        Err(garde::Error::new(
            "must be 1-63 characters: lower-case letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
        ))
    }
}

/// Characters refused in free text (label keys and values): control characters (NUL, CR, LF,
/// tab, DEL, C1) and the bidirectional marks and overrides that make text display in another
/// order than it is stored ("Trojan Source"). Hostnames and tags are plain ASCII already.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn check_labels(value: &BTreeMap<String, String>, _: &()) -> garde::Result {
    for (k, v) in value {
        if k.is_empty() || k.chars().count() > 63 {
            return Err(garde::Error::new(format!(
                "label key {k:?} must be 1-63 characters"
            )));
        }
        if v.chars().count() > 1024 {
            return Err(garde::Error::new(format!(
                "label {k:?} is longer than 1024 characters"
            )));
        }
    }
    Ok(())
}

impl ServerInput {
    /// Parses and validates a JSON value, reporting every problem at once: unknown fields,
    /// missing fields, wrong types, then the rules on each field.
    pub fn from_json(value: &Value) -> Result<ServerInput, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = value.as_object() else {
            return Err(vec![FieldError::new(
                vec!["body".into()],
                "Input should be a valid JSON object",
                "model_type",
            )]);
        };
        const FIELDS: [&str; 7] = [
            "hostname", "ip", "env", "status", "os_type", "tags", "labels",
        ];
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) {
                errors.push(FieldError::new(
                    vec!["body".into(), key.clone().into()],
                    "Extra inputs are not permitted",
                    "extra_forbidden",
                ));
            }
        }
        fn field<T: serde::de::DeserializeOwned>(
            obj: &serde_json::Map<String, Value>,
            name: &str,
            required: bool,
            expected: &str,
            errors: &mut Vec<FieldError>,
        ) -> Option<T> {
            match obj.get(name) {
                None => {
                    if required {
                        errors.push(FieldError::new(
                            vec!["body".into(), name.into()],
                            "Field required",
                            "missing",
                        ));
                    }
                    None
                }
                Some(v) => match serde_json::from_value::<T>(v.clone()) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        errors.push(FieldError::new(
                            vec!["body".into(), name.into()],
                            format!("Input should be {expected}"),
                            "type_error",
                        ));
                        None
                    }
                },
            }
        }
        let hostname: Option<String> = field(obj, "hostname", true, "a string", &mut errors);
        let ip: Option<String> = field(obj, "ip", true, "a string", &mut errors);
        let env: Option<String> = field(obj, "env", true, "a string", &mut errors);
        let status: Option<Status> = match obj.get("status") {
            None => Some(Status::Active),
            Some(v) => match v.as_str().and_then(Status::parse) {
                Some(s) => Some(s),
                None => {
                    errors.push(FieldError::new(
                        vec!["body".into(), "status".into()],
                        "Input should be 'active', 'provisioning', 'maintenance', 'offline' or 'decommissioned'",
                        "enum",
                    ));
                    None
                }
            },
        };
        let os_type: Option<Option<String>> =
            field(obj, "os_type", false, "a string or null", &mut errors);
        let tags: Option<Vec<String>> = field(obj, "tags", false, "a list of strings", &mut errors);
        let labels: Option<BTreeMap<String, String>> = field(
            obj,
            "labels",
            false,
            "an object whose values are strings",
            &mut errors,
        );
        // Fields that failed to parse are filled with a placeholder so the remaining rules can
        // still be checked; their rule errors are dropped below.
        let failed: Vec<String> = errors
            .iter()
            .filter_map(|e| e.loc.get(1).and_then(|l| l.as_str()).map(str::to_owned))
            .collect();
        let mut input = ServerInput {
            hostname: hostname.unwrap_or_else(|| "placeholder".into()),
            ip: ip.unwrap_or_else(|| "127.0.0.1".into()),
            env: env.unwrap_or_else(|| "placeholder".into()),
            status: status.unwrap_or_default(),
            os_type: os_type.flatten(),
            tags: tags.unwrap_or_default(),
            labels: labels.unwrap_or_default(),
        };
        if let Err(report) = input.validate() {
            for (path, err) in report.iter() {
                let mut loc: Vec<Value> = vec!["body".into()];
                for (kind, component) in path.__iter().rev() {
                    match kind {
                        garde::error::Kind::Index => match component.as_str().parse::<u64>() {
                            Ok(i) => loc.push(i.into()),
                            Err(_) => loc.push(component.as_str().into()),
                        },
                        _ => loc.push(component.as_str().into()),
                    }
                }
                let top = loc.get(1).and_then(|l| l.as_str()).unwrap_or_default();
                if failed.iter().any(|f| f == top) {
                    continue;
                }
                errors.push(FieldError::new(loc, err.message(), "value_error"));
            }
        }
        if !failed.iter().any(|f| f == "labels") {
            for (k, v) in &input.labels {
                if k.chars().any(is_unsafe_char) {
                    errors.push(FieldError::new(
                        vec!["body".into(), "labels".into()],
                        format!(
                            "label key \"{}\" contains a control or bidirectional-override character",
                            k.escape_debug()
                        ),
                        "value_error",
                    ));
                } else if v.chars().any(is_unsafe_char) {
                    errors.push(FieldError::new(
                        vec!["body".into(), "labels".into(), k.clone().into()],
                        "contains a control or bidirectional-override character (NUL, CR, LF, tab, U+202E, …)",
                        "value_error",
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        input.normalize();
        Ok(input)
    }

    /// Lower-cases the hostname, canonicalises the IP and sorts/dedupes tags.
    fn normalize(&mut self) {
        self.hostname = self.hostname.to_ascii_lowercase();
        if let Ok(ip) = self.ip.parse::<IpAddr>() {
            self.ip = ip.to_string();
        }
        self.tags.sort();
        self.tags.dedup();
    }
}

/// JSON Merge Patch (RFC 7396) applied to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(patch_obj) = patch {
        if !target.is_object() {
            *target = Value::Object(serde_json::Map::new());
        }
        if let Value::Object(target_obj) = target {
            for (k, v) in patch_obj {
                if v.is_null() {
                    target_obj.remove(k);
                } else {
                    let entry = target_obj.entry(k.clone()).or_insert(Value::Null);
                    merge_patch(entry, v);
                }
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// A page of servers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerPage {
    pub data: Vec<Server>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    pub total_pages: u64,
}

/// Sortable columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    Hostname,
    CreatedAt,
    UpdatedAt,
    Env,
    Status,
}

impl SortField {
    pub fn column(self) -> &'static str {
        match self {
            SortField::Hostname => "hostname",
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::Env => "env",
            SortField::Status => "status",
        }
    }
    pub fn parse(s: &str) -> Option<SortField> {
        Some(match s {
            "hostname" => SortField::Hostname,
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            "env" => SortField::Env,
            "status" => SortField::Status,
            _ => return None,
        })
    }
}

/// A validated list query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub page: u32,
    pub per_page: u32,
    pub env: Option<String>,
    pub status: Option<Status>,
    pub os_type: Option<String>,
    pub tag: Option<String>,
    pub q: Option<String>,
    pub sort: SortField,
    pub descending: bool,
}

/// A remembered response to a POST with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub principal: String,
    pub key: String,
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}
