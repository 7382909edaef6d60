//! The one output rendering (table, JSON, NDJSON, CSV) of every command family (`http`, `net`,
//! `ssh`), and the one stdout writer.
//!
//! Every byte of data goes through [`stdout`]: its write errors are marked as stdout errors, so
//! the one reporter ([`crate::exit::report`]) can end the command quietly with success when the
//! reader went away (`| head`), and say "cannot write to stdout" with exit 1 when the disk is full
//! (`> /dev/full`), without confusing either with a network peer that closed its socket.
//!
//! Rows are written by a [`Sink`], as they arrive (except the table, which needs every row to
//! size its columns): JSON and NDJSON keep every field in the order it came; CSV and the table
//! use the columns a command names ([`render_rows`]) or, for free-form data (`opskit http`), the
//! columns as first seen, nested objects flattened into dotted columns (`net.ip`). Text in CSV
//! and table cells is peer text: control characters are escaped, never written raw.

use std::fmt;
use std::io::{self, IsTerminal as _, Write};

use clap::ValueEnum;
use serde_json::Value;

/// `--output` of the row-printing commands (`net`, `ssh`; `opskit http` adds `raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A text table (the default on a terminal).
    Table,
    /// A JSON array of objects (the default when stdout is not a terminal).
    Json,
    /// One compact JSON object per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// The format to use when none was asked for: a table on a terminal, JSON otherwise.
    pub fn or_default(choice: Option<Format>) -> Format {
        choice.unwrap_or(if io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        })
    }
}

/// A write to stdout failed; carried inside the `io::Error` that [`Stdout`] returns.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to stdout: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

/// The stdout whose errors are marked as [`StdoutError`]s. Not held locked: each write takes the
/// lock, so an observer printing from another thread (`opskit http -v`) never waits on it.
pub struct Stdout(io::Stdout);

/// The stdout every command writes its data to.
pub fn stdout() -> Stdout {
    Stdout(io::stdout())
}

fn mark(e: io::Error) -> io::Error {
    let kind = e.kind();
    io::Error::new(kind, StdoutError(e))
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(mark)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

/// The stdout error in `err`'s chain, if writing to stdout is what failed.
pub fn stdout_error(err: &anyhow::Error) -> Option<&io::Error> {
    err.chain().find_map(|c| {
        if let Some(s) = c.downcast_ref::<StdoutError>() {
            return Some(&s.0);
        }
        c.downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<StdoutError>())
            .map(|s| &s.0)
    })
}

/// Whether JSON on stdout is coloured: a terminal, and `NO_COLOR` unset.
pub fn color_stdout() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes `value` as indented JSON (coloured on a terminal) and a newline.
pub fn write_json(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    if color_stdout() {
        write_json_colored(out, value, 0)?;
    } else {
        serde_json::to_writer_pretty(&mut *out, value)?;
    }
    writeln!(out)
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
    format: Format,
    /// The table and CSV columns a command named ([`Sink::with_columns`]); else those first seen.
    columns: Option<Vec<String>>,
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
    pub fn new(format: Format, color: bool, items_mode: bool, tty: bool, out: W) -> Self {
        Sink {
            format,
            columns: None,
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

    /// The table and CSV show these columns, in this order (a row's value of a column that holds
    /// an object or array is its JSON text); JSON and NDJSON still keep every field.
    pub fn with_columns(mut self, columns: &[&str]) -> Self {
        self.columns = Some(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// A row's (column, cell) pairs: the named columns, or the row flattened.
    fn cells(&self, row: &Value) -> Vec<(String, String)> {
        match &self.columns {
            Some(cols) => cols
                .iter()
                .map(|c| (c.clone(), row.get(c).map(cell).unwrap_or_default()))
                .collect(),
            None => flatten(row),
        }
    }

    /// Writes a batch of values (one page, or one response's filter output).
    pub fn push(&mut self, values: Vec<Value>) -> io::Result<()> {
        match self.format {
            Format::Json => {
                for v in values {
                    self.push_json(&v)?;
                }
            }
            Format::Ndjson => {
                for v in values {
                    let rows = if self.items_mode { vec![v] } else { rows_of(v) };
                    for row in rows {
                        serde_json::to_writer(&mut self.out, &row)?;
                        self.out.write_all(b"\n")?;
                    }
                }
            }
            Format::Csv => {
                let rows: Vec<Vec<(String, String)>> = values
                    .into_iter()
                    .flat_map(|v| if self.items_mode { vec![v] } else { rows_of(v) })
                    .map(|r| self.cells(&r))
                    .collect();
                self.push_csv(rows)?;
            }
            Format::Table => {
                for v in values {
                    let rows = if self.items_mode { vec![v] } else { rows_of(v) };
                    let cells: Vec<_> = rows.iter().map(|r| self.cells(r)).collect();
                    self.table_rows.extend(cells);
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
        if self.csv_columns.is_none() && self.items_mode && self.columns.is_none() {
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
        if rows.is_empty() && self.columns.is_none() {
            return Ok(());
        }
        if self.csv_columns.is_none() {
            // The header: the named columns, else the union of the first batch's columns, in
            // first-seen order.
            let cols = self.columns.clone().unwrap_or_else(|| first_seen(&rows));
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
        if self.format == Format::Csv {
            // named columns: the header even when no row came
            self.write_csv_rows(pending)?;
        }
        match self.format {
            Format::Json if self.items_mode => {
                if self.json_count == 0 {
                    self.out.write_all(b"[]\n")?;
                } else {
                    self.out.write_all(b"\n]\n")?;
                }
            }
            Format::Table if !self.table_rows.is_empty() => {
                let cols = self
                    .columns
                    .clone()
                    .unwrap_or_else(|| first_seen(&self.table_rows));
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
                writeln!(self.out, "{table}")?;
            }
            _ => {}
        }
        self.out.flush()?;
        Ok(self.dropped)
    }
}

/// The columns of `rows`, in first-seen order.
fn first_seen(rows: &[Vec<(String, String)>]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for row in rows {
        for (k, _) in row {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    cols
}

fn indent_json(v: &Value, level: usize) -> io::Result<Vec<u8>> {
    let text = serde_json::to_string_pretty(v)?;
    let pad = "  ".repeat(level);
    Ok(text.replace('\n', &format!("\n{pad}")).into_bytes())
}

/// Writes rows (JSON objects) in `format` with the one [`Sink`]: `columns`, in that order, for the
/// table and CSV (JSON and NDJSON keep every field of a row), then flushes.
pub fn render_rows(
    out: &mut dyn Write,
    columns: &[&str],
    rows: &[Value],
    format: Format,
) -> io::Result<()> {
    let mut sink = Sink::new(
        format,
        color_stdout(),
        true,
        io::stdout().is_terminal(),
        out,
    )
    .with_columns(columns);
    sink.push(rows.to_vec())?;
    sink.finish()?;
    Ok(())
}

/// English plural: `1 port`, `2 ports`.
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_and_ndjson_rows() {
        let rows = vec![
            serde_json::json!({"a": 1, "b": "x,y"}),
            serde_json::json!({"a": 2}),
        ];
        let mut buf = Vec::new();
        render_rows(&mut buf, &["a", "b"], &rows, Format::Csv).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "a,b\n1,\"x,y\"\n2,\n");
        let mut buf = Vec::new();
        render_rows(&mut buf, &["a", "b"], &rows, Format::Ndjson).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"a\":1,\"b\":\"x,y\"}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn named_columns_in_every_row_format() {
        let rows = vec![json!({"host": "a\u{1b}[2J", "n": {"x": 1}, "extra": true})];
        let text = |format| {
            let mut buf = Vec::new();
            render_rows(&mut buf, &["n", "host"], &rows, format).unwrap();
            String::from_utf8(buf).unwrap()
        };
        // the named columns, in their order; an object cell is its JSON; no raw escape
        assert_eq!(text(Format::Csv), "n,host\n\"{\"\"x\"\":1}\",a\\x1b[2J\n");
        let table = text(Format::Table);
        assert!(
            table.contains("\\x1b[2J") && !table.contains('\u{1b}'),
            "{table}"
        );
        // JSON and NDJSON keep every field, in the row's order
        assert_eq!(
            text(Format::Ndjson),
            "{\"host\":\"a\\u001b[2J\",\"n\":{\"x\":1},\"extra\":true}\n"
        );
        let v: Value = serde_json::from_str(&text(Format::Json)).unwrap();
        assert_eq!(v, Value::Array(rows.clone()));
        // no rows: CSV still has its header, the table prints nothing, JSON an empty array
        let empty = |format| {
            let mut buf = Vec::new();
            render_rows(&mut buf, &["a", "b"], &[], format).unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(empty(Format::Csv), "a,b\n");
        assert_eq!(empty(Format::Table), "");
        assert_eq!(empty(Format::Json), "[]\n");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1u32, "port", "ports"), "1 port");
        assert_eq!(plural(0u32, "port", "ports"), "0 ports");
        assert_eq!(plural(2u32, "attempt", "attempts"), "2 attempts");
    }

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
        let mut sink = Sink::new(Format::Csv, false, false, false, &mut out);
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
        let mut sink = Sink::new(Format::Csv, false, true, false, &mut out);
        sink.push(vec![json!({"a": 1})]).unwrap();
        sink.push(vec![json!({"a": 2, "b": {"c": 3}})]).unwrap();
        assert!(sink.finish().unwrap().is_empty());
        assert_eq!(String::from_utf8(out).unwrap(), "a,b.c\n1,\n2,3\n");
    }

    #[test]
    fn json_items_stream_as_one_array() {
        let mut out = Vec::new();
        let mut sink = Sink::new(Format::Json, false, true, false, &mut out);
        sink.push(vec![json!({"a": 1})]).unwrap();
        sink.push(vec![json!(2)]).unwrap();
        sink.finish().unwrap();
        let parsed: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, json!([{"a": 1}, 2]));
    }

    #[test]
    fn table_has_dotted_headers() {
        let mut out = Vec::new();
        let mut sink = Sink::new(Format::Table, false, false, false, &mut out);
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
