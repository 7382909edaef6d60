//! Renderers: pretty (coloured on a TTY) JSON, NDJSON, CSV, table and raw.
//!
//! CSV and table flatten nested objects into dotted columns (`net.ip`); arrays become their JSON
//! text in one cell. Items are written as they arrive, except for the table, which needs every
//! row to size its columns.

use std::io::{self, Write};

use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Indented JSON (coloured on a terminal).
    Json,
    /// One compact JSON value per line; arrays are split into their elements.
    Ndjson,
    /// Comma-separated values with a header row; nested objects become dotted columns.
    Csv,
    /// A text table; nested objects become dotted columns.
    Table,
    /// The response body exactly as received.
    Raw,
}

/// Flattens a value into (column, cell) pairs: objects recurse with dotted names, arrays are
/// written as JSON, `null` is an empty cell. A non-object becomes the single column `value`.
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match v {
        Value::Object(_) => flatten_into(v, "", &mut out),
        other => out.push(("value".into(), cell(other))),
    }
    out
}

fn flatten_into(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                // a key is the server's text too: a `\u001b` in it stays escaped
                let k = crate::peer_text::text(k);
                let key = if prefix.is_empty() {
                    k.into_owned()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(child, &key, out);
            }
        }
        other => out.push((prefix.to_owned(), cell(other))),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        // CSV and table cells are raw text, unlike JSON: control and bidi characters from the
        // server are escaped (`\x1b`), never written as the real thing
        Value::String(s) => crate::peer_text::text(s).into_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Quotes one CSV field (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The rows a value contributes: the elements of an array, or the value itself.
pub fn rows_of(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => vec![other],
    }
}

/// Writes JSON with ANSI colours (keys blue, strings green, numbers cyan, literals magenta).
pub fn write_json_colored(w: &mut dyn Write, v: &Value, indent: usize) -> io::Result<()> {
    const KEY: &str = "\x1b[34;1m";
    const STR: &str = "\x1b[32m";
    const NUM: &str = "\x1b[36m";
    const LIT: &str = "\x1b[35m";
    const RESET: &str = "\x1b[0m";
    let pad = "  ".repeat(indent + 1);
    let end_pad = "  ".repeat(indent);
    match v {
        Value::Null | Value::Bool(_) => write!(w, "{LIT}{v}{RESET}"),
        Value::Number(_) => write!(w, "{NUM}{v}{RESET}"),
        Value::String(_) => write!(w, "{STR}{v}{RESET}"),
        Value::Array(a) if a.is_empty() => w.write_all(b"[]"),
        Value::Object(o) if o.is_empty() => w.write_all(b"{}"),
        Value::Array(a) => {
            w.write_all(b"[\n")?;
            for (i, item) in a.iter().enumerate() {
                w.write_all(pad.as_bytes())?;
                write_json_colored(w, item, indent + 1)?;
                w.write_all(if i + 1 < a.len() { b",\n" } else { b"\n" })?;
            }
            write!(w, "{end_pad}]")
        }
        Value::Object(o) => {
            w.write_all(b"{\n")?;
            for (i, (k, item)) in o.iter().enumerate() {
                write!(w, "{pad}{KEY}{}{RESET}: ", Value::String(k.clone()))?;
                write_json_colored(w, item, indent + 1)?;
                w.write_all(if i + 1 < o.len() { b",\n" } else { b"\n" })?;
            }
            write!(w, "{end_pad}}}")
        }
    }
}

/// How many paged items the CSV header is chosen from.
const CSV_HEADER_SAMPLE: usize = 100;

/// Writes values in one format, as they arrive.
pub struct Sink<W: Write> {
    format: OutputFormat,
    color: bool,
    /// Items mode (paging): JSON is written as one array streamed element by element.
    items_mode: bool,
    out: W,
    json_count: usize,
    csv_columns: Option<Vec<String>>,
    csv_pending: Vec<Vec<(String, String)>>,
    dropped: Vec<String>,
    table_rows: Vec<Vec<(String, String)>>,
    tty: bool,
}

impl<W: Write> Sink<W> {
    pub fn new(format: OutputFormat, color: bool, items_mode: bool, tty: bool, out: W) -> Self {
        Sink {
            format,
            color,
            items_mode,
            out,
            json_count: 0,
            csv_columns: None,
            csv_pending: Vec::new(),
            dropped: Vec::new(),
            table_rows: Vec::new(),
            tty,
        }
    }

    /// Writes a batch of values (one page, or one response's filter output).
    pub fn push(&mut self, values: Vec<Value>) -> io::Result<()> {
        match self.format {
            OutputFormat::Json | OutputFormat::Raw => {
                for v in values {
                    self.push_json(&v)?;
                }
            }
            OutputFormat::Ndjson => {
                for v in values {
                    let rows = if self.items_mode { vec![v] } else { rows_of(v) };
                    for row in rows {
                        serde_json::to_writer(&mut self.out, &row)?;
                        self.out.write_all(b"\n")?;
                    }
                }
            }
            OutputFormat::Csv => {
                let rows: Vec<Vec<(String, String)>> = values
                    .into_iter()
                    .flat_map(|v| if self.items_mode { vec![v] } else { rows_of(v) })
                    .map(|r| flatten(&r))
                    .collect();
                self.push_csv(rows)?;
            }
            OutputFormat::Table => {
                for v in values {
                    let rows = if self.items_mode { vec![v] } else { rows_of(v) };
                    self.table_rows.extend(rows.iter().map(flatten));
                }
            }
        }
        self.out.flush()
    }

    fn push_json(&mut self, v: &Value) -> io::Result<()> {
        if self.items_mode {
            self.out.write_all(if self.json_count == 0 {
                b"[\n  "
            } else {
                b",\n  "
            })?;
            let text = if self.color {
                let mut buf = Vec::new();
                write_json_colored(&mut buf, v, 1)?;
                buf
            } else {
                indent_json(v, 1)?
            };
            self.out.write_all(&text)?;
        } else {
            if self.color {
                write_json_colored(&mut self.out, v, 0)?;
            } else {
                serde_json::to_writer_pretty(&mut self.out, v)?;
            }
            self.out.write_all(b"\n")?;
        }
        self.json_count += 1;
        Ok(())
    }

    fn push_csv(&mut self, rows: Vec<Vec<(String, String)>>) -> io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut rows = rows;
        if self.csv_columns.is_none() && self.items_mode {
            // Items arrive one by one: hold the first ones back so the header covers the
            // columns of a whole page or so, not of the first item only.
            self.csv_pending.append(&mut rows);
            if self.csv_pending.len() < CSV_HEADER_SAMPLE {
                return Ok(());
            }
            rows = std::mem::take(&mut self.csv_pending);
        }
        self.write_csv_rows(rows)
    }

    fn write_csv_rows(&mut self, rows: Vec<Vec<(String, String)>>) -> io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.csv_columns.is_none() {
            // The header is the union of the first batch's columns, in first-seen order.
            let mut cols: Vec<String> = Vec::new();
            for row in &rows {
                for (k, _) in row {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
            let header: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
            writeln!(self.out, "{}", header.join(","))?;
            self.csv_columns = Some(cols);
        }
        let cols = self.csv_columns.as_deref().unwrap_or(&[]);
        for row in rows {
            let line: Vec<String> = cols
                .iter()
                .map(|c| {
                    row.iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| csv_field(v))
                        .unwrap_or_default()
                })
                .collect();
            writeln!(self.out, "{}", line.join(","))?;
            for (k, _) in &row {
                if !cols.contains(k) && !self.dropped.contains(k) {
                    self.dropped.push(k.clone());
                }
            }
        }
        Ok(())
    }

    /// Finishes the output (closes a JSON array, draws the table). Returns the columns that
    /// appeared after the CSV header was written and had to be left out.
    pub fn finish(mut self) -> io::Result<Vec<String>> {
        let pending = std::mem::take(&mut self.csv_pending);
        self.write_csv_rows(pending)?;
        match self.format {
            OutputFormat::Json | OutputFormat::Raw if self.items_mode => {
                if self.json_count == 0 {
                    self.out.write_all(b"[]\n")?;
                } else {
                    self.out.write_all(b"\n]\n")?;
                }
            }
            OutputFormat::Table => {
                let mut cols: Vec<String> = Vec::new();
                for row in &self.table_rows {
                    for (k, _) in row {
                        if !cols.contains(k) {
                            cols.push(k.clone());
                        }
                    }
                }
                let mut table = comfy_table::Table::new();
                table.load_preset(if self.tty {
                    comfy_table::presets::UTF8_FULL_CONDENSED
                } else {
                    comfy_table::presets::ASCII_FULL_CONDENSED
                });
                table.set_header(cols.clone());
                for row in &self.table_rows {
                    table.add_row(cols.iter().map(|c| {
                        row.iter()
                            .find(|(k, _)| k == c)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    }));
                }
                if !cols.is_empty() {
                    writeln!(self.out, "{table}")?;
                }
            }
            _ => {}
        }
        self.out.flush()?;
        Ok(self.dropped)
    }
}

fn indent_json(v: &Value, level: usize) -> io::Result<Vec<u8>> {
    let text = serde_json::to_string_pretty(v)?;
    let pad = "  ".repeat(level);
    Ok(text.replace('\n', &format!("\n{pad}")).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening_nested_objects_to_dotted_columns() {
        let v = json!({"name": "web", "net": {"ip": "10.0.0.1", "dns": {"ttl": 60}},
                       "tags": ["a", "b"], "owner": null, "meta": {}});
        let flat = flatten(&v);
        let get = |k: &str| flat.iter().find(|(c, _)| c == k).map(|(_, v)| v.as_str());
        assert_eq!(get("net.ip"), Some("10.0.0.1"));
        assert_eq!(get("net.dns.ttl"), Some("60"));
        assert_eq!(get("tags"), Some("[\"a\",\"b\"]"));
        assert_eq!(get("owner"), Some(""));
        assert_eq!(get("meta"), Some("{}"));
        assert_eq!(flatten(&json!(3)), vec![("value".into(), "3".into())]);
    }

    #[test]
    fn csv_quotes_and_streams_with_a_fixed_header() {
        let mut out = Vec::new();
        let mut sink = Sink::new(OutputFormat::Csv, false, false, false, &mut out);
        sink.push(vec![json!({"a": "x,y", "b": {"c": "say \"hi\""}})])
            .unwrap();
        sink.push(vec![json!({"a": 1, "z": 2})]).unwrap();
        let dropped = sink.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b.c\n\"x,y\",\"say \"\"hi\"\"\"\n1,\n"
        );
        assert_eq!(dropped, vec!["z".to_string()]);
    }

    #[test]
    fn paged_csv_header_covers_the_first_items() {
        let mut out = Vec::new();
        let mut sink = Sink::new(OutputFormat::Csv, false, true, false, &mut out);
        sink.push(vec![json!({"a": 1})]).unwrap();
        sink.push(vec![json!({"a": 2, "b": {"c": 3}})]).unwrap();
        assert!(sink.finish().unwrap().is_empty());
        assert_eq!(String::from_utf8(out).unwrap(), "a,b.c\n1,\n2,3\n");
    }

    #[test]
    fn json_items_stream_as_one_array() {
        let mut out = Vec::new();
        let mut sink = Sink::new(OutputFormat::Json, false, true, false, &mut out);
        sink.push(vec![json!({"a": 1})]).unwrap();
        sink.push(vec![json!(2)]).unwrap();
        sink.finish().unwrap();
        let parsed: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, json!([{"a": 1}, 2]));
    }

    #[test]
    fn table_has_dotted_headers() {
        let mut out = Vec::new();
        let mut sink = Sink::new(OutputFormat::Table, false, false, false, &mut out);
        sink.push(vec![json!([{"n": "a", "x": {"y": 1}}, {"n": "b"}])])
            .unwrap();
        sink.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("x.y"), "{text}");
        assert!(text.contains("| b "), "{text}");
    }

    #[test]
    fn colored_json_is_still_json_without_escapes() {
        let mut out = Vec::new();
        write_json_colored(&mut out, &json!({"a": [1, "x", null]}), 0).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\x1b["));
        let stripped: String = {
            let mut s = String::new();
            let mut in_esc = false;
            for c in text.chars() {
                if c == '\x1b' {
                    in_esc = true;
                } else if in_esc && c == 'm' {
                    in_esc = false;
                } else if !in_esc {
                    s.push(c);
                }
            }
            s
        };
        let v: Value = serde_json::from_str(&stripped).unwrap();
        assert_eq!(v, json!({"a": [1, "x", null]}));
    }
}
