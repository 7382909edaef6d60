//! The file name of a download: `-o`, else `Content-Disposition`, else the URL's last segment.
//! A server-chosen name is reduced to a bare file name: no directories, no `..`, no hidden
//! files, no control characters — a hostile `filename="../../.bashrc"` becomes `bashrc`.

use std::path::PathBuf;

/// Picks the file name from `Content-Disposition` (RFC 6266, `filename*` preferred) or the URL.
pub fn pick(content_disposition: Option<&str>, url: &url::Url) -> PathBuf {
    let from_header = content_disposition.and_then(from_disposition);
    let from_url = url
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_owned))
        .map(|s| percent_decode(&s))
        .and_then(|s| sanitize(&s));
    PathBuf::from(
        from_header
            .or(from_url)
            .unwrap_or_else(|| "download".into()),
    )
}

fn from_disposition(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value) {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        if k == "filename*" {
            // charset'lang'percent-encoded
            let mut it = v.splitn(3, '\'');
            if let (Some(_charset), Some(_lang), Some(enc)) = (it.next(), it.next(), it.next()) {
                extended = Some(percent_decode(enc));
            }
        } else if k == "filename" {
            plain = Some(unquote(v));
        }
    }
    extended
        .and_then(|s| sanitize(&s))
        .or_else(|| plain.and_then(|s| sanitize(&s)))
}

fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        v.to_owned()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reduces a server-chosen name to a safe bare file name, or `None` when nothing is left.
pub fn sanitize(name: &str) -> Option<String> {
    // keep only the last path component, whatever the separator
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        // controls, and bidi overrides (U+202E makes `invoice\u{202e}fdp.exe` look like a PDF)
        .filter(|c| !crate::peer_text::is_dangerous(*c) && *c != ':')
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        None
    } else {
        Some(cleaned.chars().take(200).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn header_name_wins_and_is_sanitized() {
        let url = u("http://h/files/x.bin");
        assert_eq!(
            pick(Some("attachment; filename=\"report.csv\""), &url),
            PathBuf::from("report.csv")
        );
        assert_eq!(
            pick(Some("attachment; filename=\"../../etc/passwd\""), &url),
            PathBuf::from("passwd")
        );
        assert_eq!(
            pick(Some("attachment; filename=\"..\\\\..\\\\win.ini\""), &url),
            PathBuf::from("win.ini")
        );
        assert_eq!(
            pick(Some("attachment; filename=\".bashrc\""), &url),
            PathBuf::from("bashrc")
        );
        assert_eq!(
            pick(
                Some("attachment; filename=\"a.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
                &url
            ),
            PathBuf::from("résumé.pdf")
        );
        assert_eq!(
            pick(Some("attachment; filename=\"..\""), &url),
            PathBuf::from("x.bin")
        );
    }

    #[test]
    fn bidi_overrides_are_removed() {
        assert_eq!(
            sanitize("invoice\u{202e}fdp.exe").as_deref(),
            Some("invoicefdp.exe")
        );
        assert_eq!(sanitize("a\u{2066}b\u{200f}c").as_deref(), Some("abc"));
    }

    #[test]
    fn url_name_and_fallback() {
        assert_eq!(
            pick(None, &u("http://h/a/b/image%20v2.iso")),
            PathBuf::from("image v2.iso")
        );
        assert_eq!(pick(None, &u("http://h/")), PathBuf::from("download"));
    }
}
