//! Atlassian Document Format (ADF), the rich-text JSON Jira Cloud REST API v3 takes for
//! descriptions and comments.
//!
//! Reference: <https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/> —
//! a `doc` node (`version: 1`) holds block nodes (`paragraph`), which hold inline nodes (`text`
//! with a non-empty `text`, `hardBreak`).

use serde_json::{Value, json};

/// Turns plain text into an ADF document: blank lines separate paragraphs, single newlines become
/// hard breaks. Empty text gives a document with one empty paragraph (valid ADF).
pub fn from_plain_text(text: &str) -> Value {
    let normalised = text.replace("\r\n", "\n");
    let mut paragraphs = Vec::new();
    for block in normalised.split("\n\n") {
        if block.trim().is_empty() {
            continue;
        }
        let mut inline = Vec::new();
        for (i, line) in block.trim_matches('\n').split('\n').enumerate() {
            if i > 0 {
                inline.push(json!({ "type": "hardBreak" }));
            }
            if !line.is_empty() {
                inline.push(json!({ "type": "text", "text": line }));
            }
        }
        paragraphs.push(json!({ "type": "paragraph", "content": inline }));
    }
    if paragraphs.is_empty() {
        paragraphs.push(json!({ "type": "paragraph", "content": [] }));
    }
    json!({ "type": "doc", "version": 1, "content": paragraphs })
}
