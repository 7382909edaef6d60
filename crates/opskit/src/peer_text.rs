//! The one printer of text that came from a peer.
//!
//! A server, a webhook endpoint or a `net` peer controls bytes that opskit shows: error bodies
//! ("gave up after 4 attempts: HTTP 503 …"), a receiver's refusal, an echo reply, CSV/table
//! cells, header values. Raw, they can move the cursor, rewrite the title, clear the screen or,
//! with `\r\n`, forge a whole line ("sent legit.txt"). Everything such goes through here:
//!
//! - [`line`]: one line: every control character (C0 including `\r` and `\n`, DEL, C1) and every
//!   bidirectional-override or invisible-direction character (U+202A–U+202E, U+2066–U+2069,
//!   U+200E, U+200F, U+061C) is written as a visible escape (`\x1b`, `\r`, `\u{202e}`);
//! - [`text`]: the same but keeps `\n` and `\t` (multi-line text such as an echo reply);
//! - [`is_binary`]: whether bytes are not text (a NUL, or invalid UTF-8), for refusing to dump
//!   a binary body on a terminal as curl does;
//! - [`file_name`]: a name from a peer with those characters removed (not escaped: a file name
//!   must stay a plain name).

use std::borrow::Cow;

/// Whether `c` must never reach a terminal raw.
pub fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || c == '\u{feff}'
}

fn escape(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

fn clean<'a>(s: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !s.chars().any(|c| is_dangerous(c) && !keep.contains(&c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_dangerous(c) && !keep.contains(&c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line of peer text, safe on a terminal: no control or bidi character survives.
///
/// ```
/// assert_eq!(opskit::peer_text::line("ok\r\nsent legit.txt\x1b[2K"), "ok\\r\\nsent legit.txt\\x1b[2K");
/// ```
pub fn line(s: &str) -> Cow<'_, str> {
    clean(s, &[])
}

/// Multi-line peer text, safe on a terminal: like [`line`] but `\n` and `\t` are kept.
pub fn text(s: &str) -> Cow<'_, str> {
    clean(s, &['\n', '\t'])
}

/// Peer bytes as safe text: lossy UTF-8, then [`text`].
pub fn bytes(b: &[u8]) -> String {
    text(&String::from_utf8_lossy(b)).into_owned()
}

/// Whether `b` (the start of a body) is binary: it holds a NUL byte or is not UTF-8 (an
/// incomplete character at the very end, cut by a chunk boundary, is allowed).
pub fn is_binary(b: &[u8]) -> bool {
    if b.contains(&0) {
        return true;
    }
    match std::str::from_utf8(b) {
        Ok(_) => false,
        Err(e) => e.error_len().is_some(),
    }
}

/// Peer bytes streamed to a terminal in chunks: each chunk comes out as safe text ([`text`]),
/// with a UTF-8 character cut by a chunk boundary carried to the next chunk.
#[derive(Default)]
pub struct Stream {
    carry: Vec<u8>,
}

impl Stream {
    /// The safe text of `chunk` (plus what was carried).
    pub fn push(&mut self, chunk: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let cut = match std::str::from_utf8(&buf) {
            Ok(_) => buf.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => buf.len(),
        };
        self.carry = buf.split_off(cut);
        bytes(&buf)
    }

    /// What is left at the end.
    pub fn finish(&mut self) -> String {
        bytes(&std::mem::take(&mut self.carry))
    }
}

/// A file name chosen by a peer with every control and bidi character removed.
pub fn file_name(s: &str) -> String {
    s.chars().filter(|c| !is_dangerous(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(line("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(line("x\u{202e}txt.exe"), "x\\u{202e}txt.exe");
        assert_eq!(line("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(text("two\nlines\r\n"), "two\nlines\\r\n");
        assert!(matches!(line("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn binary_is_nul_or_not_utf8() {
        assert!(is_binary(b"PK\x03\x04\x00"));
        assert!(is_binary(&[0xff, 0xfe, b'a']));
        assert!(!is_binary("h\u{e9}llo".as_bytes()));
        assert!(
            !is_binary(&"h\u{e9}".as_bytes()[..2]),
            "cut inside a character"
        );
    }

    #[test]
    fn file_names_lose_bidi_and_controls() {
        assert_eq!(file_name("invoice\u{202e}fdp.exe"), "invoicefdp.exe");
        assert_eq!(file_name("a\x1b[31mb"), "a[31mb");
    }
}
