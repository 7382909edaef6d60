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

/// The text of an ADF document (or of any ADF node): paragraphs and other blocks separated by a
/// blank line, hard breaks as newlines, list items on their own lines (`- `), mentions, emoji,
/// dates and links by their text. A plain string (Jira Data Center's rich-text fields) is
/// returned as it is; anything else gives an empty string.
pub fn to_plain_text(doc: &Value) -> String {
    if let Some(s) = doc.as_str() {
        return s.to_owned();
    }
    let mut blocks = Vec::new();
    collect_blocks(doc, &mut blocks);
    blocks
        .into_iter()
        .filter(|b| !b.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn collect_blocks(node: &Value, out: &mut Vec<String>) {
    let kind = node.get("type").and_then(Value::as_str).unwrap_or("");
    let children = node
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    match kind {
        "doc" | "blockquote" | "panel" | "expand" | "nestedExpand" | "layoutSection"
        | "layoutColumn" | "table" | "tableRow" | "tableCell" | "tableHeader" => {
            for c in children {
                collect_blocks(c, out);
            }
        }
        "bulletList" | "orderedList" | "taskList" => {
            let items: Vec<String> = children
                .iter()
                .map(|item| {
                    let mut inner = Vec::new();
                    collect_blocks(item, &mut inner);
                    format!("- {}", inner.join("\n  "))
                })
                .collect();
            out.push(items.join("\n"));
        }
        "listItem" | "taskItem" => {
            if children.iter().all(is_inline) {
                out.push(inline_text(children));
            } else {
                for c in children {
                    collect_blocks(c, out);
                }
            }
        }
        "rule" => out.push("---".into()),
        _ if is_inline(node) => out.push(inline_text(std::slice::from_ref(node))),
        _ => out.push(inline_text(children)),
    }
}

fn is_inline(node: &Value) -> bool {
    matches!(
        node.get("type").and_then(Value::as_str),
        Some("text" | "hardBreak" | "mention" | "emoji" | "date" | "status" | "inlineCard")
    )
}

fn inline_text(nodes: &[Value]) -> String {
    let mut s = String::new();
    for n in nodes {
        let attr = |k: &str| {
            n.pointer(&format!("/attrs/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        match n.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => s.push_str(n.get("text").and_then(Value::as_str).unwrap_or("")),
            "hardBreak" => s.push('\n'),
            "mention" | "status" => s.push_str(&attr("text")),
            "emoji" => s.push_str(&attr("shortName")),
            "date" => s.push_str(&attr("timestamp")),
            "inlineCard" => s.push_str(&attr("url")),
            _ => s.push_str(&inline_text(
                n.get("content")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            )),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_text_round_trip() {
        let text = "Disk full on web01\nsince 03:00\n\nCheck /var/log.";
        assert_eq!(to_plain_text(&from_plain_text(text)), text);
        assert_eq!(to_plain_text(&json!("a DC string")), "a DC string");
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]},
                {"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "mention", "attrs": {"id": "x", "text": "@ana"}}, {"type": "text", "text": " two"}]}]}
            ]}
        ]});
        assert_eq!(to_plain_text(&doc), "- one\n- @ana two");
    }
}
