//! The clap definitions of `opskit http`, the method shortcuts and `opskit config`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::profile::KeyLocation;
use super::render::OutputFormat;
use super::values::{ByteSize, PageStyle, Rate, SecretRef, Span};

const ITEMS_HELP: &str = "\
Request items:
  Header:Value      request header            Accept:application/json
  Header:           remove a header           User-Agent:
  Header;           empty header              X-Empty;
  name==value       query parameter           status==active
  field=value       JSON string field         name=web01
  field:=json       raw JSON field            port:=8080  tags:='[\"a\"]'
  field@path        file part (multipart)     cert@./ca.pem
  field=@path       string field from a file  description=@notes.txt
  field:=@path      JSON field from a file    spec:=@server.json
  @path, @-         whole body from a file or stdin
A backslash makes a separator literal: key\\=with\\=equals=value.
Piped stdin is the body of POST/PUT/PATCH when no field item is given (--ignore-stdin to stop).

Secrets (--auth, --bearer, --api-key, profiles) may be env:VAR, file:PATH or cmd:COMMAND.

Exit codes: 0 success, 2 bad flag/item/profile, 3 connection failure or timeout,
4 HTTP 4xx and 5 HTTP 5xx with --check-status, 130 interrupted, 1 anything else.";

/// `opskit http …`, the method shortcuts and `opskit config …`.
#[derive(Debug, Subcommand)]
pub enum HttpCommand {
    /// Send an HTTP request: opskit http METHOD URL [ITEM]...
    #[command(after_help = ITEMS_HELP)]
    Http(HttpArgs),
    /// GET a URL (shortcut for `opskit http GET`).
    #[command(after_help = ITEMS_HELP)]
    Get(ShortcutArgs),
    /// POST to a URL (shortcut for `opskit http POST`).
    #[command(after_help = ITEMS_HELP)]
    Post(ShortcutArgs),
    /// PUT to a URL (shortcut for `opskit http PUT`).
    #[command(after_help = ITEMS_HELP)]
    Put(ShortcutArgs),
    /// PATCH a URL (shortcut for `opskit http PATCH`).
    #[command(after_help = ITEMS_HELP)]
    Patch(ShortcutArgs),
    /// DELETE a URL (shortcut for `opskit http DELETE`).
    #[command(after_help = ITEMS_HELP)]
    Delete(ShortcutArgs),
    /// Show or check the config file with the http profiles.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `opskit config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the path of the config file (OPSKIT_CONFIG, else the XDG config dir).
    Path,
    /// Print the parsed config with inline secrets redacted.
    Show,
    /// Validate the config file; errors name the key and line.
    Check,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, …).
    pub method: String,
    #[command(flatten)]
    pub rest: ShortcutArgs,
}

#[derive(Debug, Args)]
pub struct ShortcutArgs {
    /// URL: absolute, `:PORT/path` for localhost, or relative to the profile's base_url.
    #[arg(
        required_unless_present = "input",
        default_value = "",
        hide_default_value = true
    )]
    pub url: String,
    /// Request items (see below).
    pub items: Vec<String>,
    #[command(flatten)]
    pub opts: HttpOptions,
}

#[derive(Debug, Args, Default)]
pub struct HttpOptions {
    /// Profile from the config file (base URL, headers, auth, paging, …).
    #[arg(long, env = "OPSKIT_PROFILE", help_heading = "Profile")]
    pub profile: Option<String>,

    /// Send fields as a URL-encoded form (multipart once a file item is given).
    #[arg(short = 'f', long, conflicts_with = "multipart", help_heading = "Body")]
    pub form: bool,
    /// Send fields as multipart/form-data.
    #[arg(long, help_heading = "Body")]
    pub multipart: bool,
    /// Never read the request body from stdin.
    #[arg(short = 'I', long, help_heading = "Body")]
    pub ignore_stdin: bool,

    /// Basic auth: USER or USER:PASS (prompts for the password on a terminal when omitted).
    #[arg(short = 'a', long, value_name = "USER[:PASS]", help_heading = "Auth")]
    pub auth: Option<String>,
    /// Bearer token (or env:VAR, file:PATH, cmd:COMMAND).
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with = "auth",
        help_heading = "Auth"
    )]
    pub bearer: Option<SecretRef>,
    /// API key NAME=VALUE (VALUE may be env:VAR, file:PATH, cmd:COMMAND).
    #[arg(long, value_name = "NAME=VALUE", conflicts_with_all = ["auth", "bearer"], help_heading = "Auth")]
    pub api_key: Option<String>,
    /// Where --api-key goes.
    #[arg(long, value_enum, default_value = "header", help_heading = "Auth")]
    pub api_key_in: KeyLocation,

    /// Keep cookies and the profile's login tokens between runs under NAME, owner-only in
    /// $XDG_STATE_HOME/opskit/sessions (default ~/.local/state); a NAME with a `/` is the file.
    #[arg(long, value_name = "NAME", help_heading = "Session")]
    pub session: Option<String>,
    /// Start --session NAME afresh: what it holds is ignored, then replaced.
    #[arg(long, requires = "session", help_heading = "Session")]
    pub session_reset: bool,

    /// Deadline for each attempt (e.g. 30s, 500ms).
    #[arg(long, value_name = "DURATION", help_heading = "Reliability")]
    pub timeout: Option<Span>,
    /// Deadline for opening the connection.
    #[arg(long, value_name = "DURATION", help_heading = "Reliability")]
    pub connect_timeout: Option<Span>,
    /// Deadline for the whole command, body and retries included (a --download from a server
    /// that drips one byte a second ends here).
    #[arg(long, value_name = "DURATION", help_heading = "Reliability")]
    pub max_time: Option<Span>,
    /// Largest body held in memory, for output that needs all of it (JSON pretty-printing,
    /// --filter, csv/table/ndjson of one response); default 256M. Raw, non-JSON and -o/--download
    /// bodies are streamed and not limited.
    #[arg(long, value_name = "SIZE", help_heading = "Reliability")]
    pub max_body: Option<ByteSize>,
    /// Retries (default 3) on connection errors, 408, 429 and 500/502/503/504; honours Retry-After.
    #[arg(long, value_name = "N", help_heading = "Reliability")]
    pub retries: Option<u32>,
    /// Longest time spent waiting for retries, in all (default 2m); a server whose Retry-After
    /// asks for a longer wait is not waited for, and stderr says so.
    #[arg(long, value_name = "DURATION", help_heading = "Reliability")]
    pub retry_max_wait: Option<Span>,
    /// Also retry POST/PATCH, with an automatic Idempotency-Key header.
    #[arg(long, help_heading = "Reliability")]
    pub retry_unsafe: bool,
    /// Client-side rate limit, e.g. 10/s or 100/m.
    #[arg(long, value_name = "N/s", help_heading = "Reliability")]
    pub rate: Option<Rate>,
    /// Exit 4 on a 4xx and 5 on a 5xx response (like raise_for_status).
    #[arg(long, help_heading = "Reliability")]
    pub check_status: bool,
    /// Extra CA certificates (PEM) to trust, e.g. an internal CA (like requests' verify=PATH).
    #[arg(long, value_name = "FILE", help_heading = "Reliability")]
    pub ca_bundle: Option<PathBuf>,
    /// Cache successful GET responses on disk for this long (e.g. 5m).
    #[arg(long, value_name = "TTL", help_heading = "Reliability")]
    pub cache: Option<Span>,

    /// Client certificate (PEM) for mutual TLS, like curl --cert; its key in the same file or in
    /// --key.
    #[arg(long, value_name = "FILE", help_heading = "TLS, proxy, redirects")]
    pub cert: Option<PathBuf>,
    /// The unencrypted private key (PEM: PKCS#8, PKCS#1 or SEC1) of --cert, like curl --key.
    #[arg(long, value_name = "FILE", help_heading = "TLS, proxy, redirects")]
    pub key: Option<PathBuf>,
    /// Do not verify the server's certificate (like curl -k). Anyone on the path can read and
    /// change the traffic: stderr says so on every run.
    #[arg(short = 'k', long, help_heading = "TLS, proxy, redirects")]
    pub insecure: bool,
    /// Send the request through this HTTP proxy, e.g. http://user:pass@proxy:3128 (like curl -x;
    /// the password is never printed). Without it HTTPS_PROXY/HTTP_PROXY/ALL_PROXY are used;
    /// NO_PROXY lists the hosts that go direct either way.
    #[arg(long, value_name = "URL", help_heading = "TLS, proxy, redirects")]
    pub proxy: Option<String>,
    /// Do not follow redirects: the 30x response itself is the answer (curl's default).
    #[arg(
        long,
        conflicts_with = "max_redirects",
        help_heading = "TLS, proxy, redirects"
    )]
    pub no_follow: bool,
    /// Follow at most N redirects (default 10); a longer chain is an error (exit 1).
    #[arg(long, value_name = "N", help_heading = "TLS, proxy, redirects")]
    pub max_redirects: Option<usize>,
    /// Print strings unquoted, as jq -r (with --filter, or a response that is a JSON string);
    /// other values stay JSON.
    #[arg(short = 'r', long, help_heading = "Output")]
    pub raw_output: bool,

    /// Follow pages and stream every item.
    #[arg(long, help_heading = "Paging")]
    pub paginate: bool,
    /// How the next page is found (default: the profile's, else link).
    #[arg(long, value_enum, help_heading = "Paging")]
    pub page_style: Option<PageStyle>,
    /// JSON pointer to the item array in each page (e.g. /data); the body itself by default.
    #[arg(long, value_name = "POINTER", help_heading = "Paging")]
    pub page_items: Option<String>,
    /// Page-number parameter for --page-style page (default page).
    #[arg(long, value_name = "NAME", help_heading = "Paging")]
    pub page_param: Option<String>,
    /// First page number for --page-style page (default 1).
    #[arg(long, value_name = "N", help_heading = "Paging")]
    pub page_start: Option<u64>,
    /// Offset parameter for --page-style offset (default offset).
    #[arg(long, value_name = "NAME", help_heading = "Paging")]
    pub offset_param: Option<String>,
    /// Page-size parameter (e.g. per_page, limit).
    #[arg(long, value_name = "NAME", help_heading = "Paging")]
    pub page_size_param: Option<String>,
    /// Page size to ask for.
    #[arg(long, value_name = "N", help_heading = "Paging")]
    pub page_size: Option<u64>,
    /// Cursor parameter for --page-style cursor (default cursor).
    #[arg(long, value_name = "NAME", help_heading = "Paging")]
    pub cursor_param: Option<String>,
    /// JSON pointer to the next cursor in each page (e.g. /meta/next_cursor).
    #[arg(long, value_name = "POINTER", help_heading = "Paging")]
    pub cursor_pointer: Option<String>,
    /// JSON pointer to the total page count, to stop without an extra request.
    #[arg(long, value_name = "POINTER", help_heading = "Paging")]
    pub total_pages: Option<String>,
    /// Stop after this many pages.
    #[arg(long, value_name = "N", help_heading = "Paging")]
    pub max_pages: Option<u64>,
    /// Stop after this many items.
    #[arg(long, value_name = "N", help_heading = "Paging")]
    pub max_items: Option<u64>,

    /// Output format (default: JSON for JSON responses, the raw body otherwise).
    #[arg(
        long = "output",
        value_enum,
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub format: Option<OutputFormat>,
    /// jq program applied to each response (or each item with --paginate).
    #[arg(long, value_name = "JQ", help_heading = "Output")]
    pub filter: Option<String>,
    /// Print the request and the response headers too (same as --print HBhb), secrets redacted.
    #[arg(short = 'v', long, help_heading = "Output")]
    pub verbose: bool,
    /// Parts to print: H request headers, B request body, h response headers, b response body.
    #[arg(short = 'p', long, value_name = "WHAT", help_heading = "Output")]
    pub print: Option<String>,
    /// Print the request that would be sent, without sending it.
    #[arg(long, help_heading = "Output")]
    pub offline: bool,
    /// Print the equivalent curl command, without sending the request.
    #[arg(long, conflicts_with = "offline", help_heading = "Output")]
    pub curl: bool,

    /// Save the body to a file (name from -o, Content-Disposition or the URL) with a progress bar.
    #[arg(short = 'd', long, help_heading = "Download")]
    pub download: bool,
    /// Write the body (as --output formats it) to FILE instead of stdout; with --download, the
    /// file to save to. An existing FILE is never replaced without --overwrite (exit 1).
    #[arg(
        short = 'o',
        long = "out-file",
        value_name = "FILE",
        help_heading = "Download"
    )]
    pub out_file: Option<PathBuf>,
    /// Let -o replace an existing file.
    #[arg(long, requires = "out_file", help_heading = "Download")]
    pub overwrite: bool,
    /// Resume a partial download (Range request).
    #[arg(
        short = 'c',
        long = "continue",
        requires = "download",
        help_heading = "Download"
    )]
    pub resume: bool,

    /// Send the request to every URL in FILE, one per line (`-`: read the URLs from stdin;
    /// blank lines and `#` comments are skipped), and print one ndjson line per URL: line, url,
    /// status, latency_ms, size, error {kind, message}. Exit 0 when every URL answered (2xx/3xx
    /// with --check-status), else the first that applies of 2 (a line is not a URL), 3 (refused,
    /// TLS, timeout), 5, 4 (--check-status), 1. Positional request items apply to every URL.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["paginate", "download", "out_file", "offline", "curl", "filter", "verbose", "print"],
        help_heading = "Many URLs"
    )]
    pub input: Option<PathBuf>,
    /// How many --input URLs are in flight at once (default 32, at most 1024).
    #[arg(long, value_name = "N", requires = "input", help_heading = "Many URLs")]
    pub concurrency: Option<usize>,
    /// Print the --input results in input order (a slow URL holds back the lines after it);
    /// by default each result is printed as soon as it is known.
    #[arg(long, requires = "input", help_heading = "Many URLs")]
    pub ordered: bool,
    /// Time the request's phases (DNS lookup, connect, TLS, first byte, total) and print them on
    /// stderr, like curl -w or httpstat; --timing=json prints one JSON object. Stdout keeps the
    /// body. A phase that was not measured says so instead of showing a number.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "text",
        conflicts_with = "input",
        help_heading = "Output"
    )]
    pub timing: Option<super::timing::TimingFormat>,
}
