//! Output rendering shared by the command families that print rows (`net`, `ssh`), and the one
//! stdout writer.
//!
//! Every byte of data goes through [`stdout`]: its write errors are marked as stdout errors, so
//! the one reporter ([`crate::exit::report`]) can end the command quietly with success when the
//! reader went away (`| head`), and say "cannot write to stdout" with exit 1 when the disk is full
//! (`> /dev/full`), without confusing either with a network peer that closed its socket.
//!
//! The http family has its own streaming renderer (`cli/http/render.rs`, which this module
//! borrows the CSV quoting and JSON colouring from); the formats and their flags are the same.

use std::fmt;
use std::io::{self, IsTerminal as _, Write};

use clap::ValueEnum;
use serde_json::Value;

use crate::cli::http::render::{csv_field, write_json_colored};

/// `--output` of the `net` commands (and the row formats of `ssh`).
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

/// The locked stdout whose errors are marked as [`StdoutError`]s.
pub struct Stdout(io::StdoutLock<'static>);

/// The stdout every command writes its data to.
pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
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

fn cell(row: &Value, col: &str) -> String {
    match row.get(col) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Writes rows (JSON objects) in `format`, with `columns` in that order for the table and CSV
/// (JSON and NDJSON keep every field of a row), then flushes.
pub fn render_rows(
    out: &mut dyn Write,
    columns: &[&str],
    rows: &[Value],
    format: Format,
) -> io::Result<()> {
    match format {
        Format::Json => write_json(out, &Value::Array(rows.to_vec()))?,
        Format::Ndjson => {
            for row in rows {
                serde_json::to_writer(&mut *out, row)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            writeln!(out, "{}", columns.join(","))?;
            for row in rows {
                let line: Vec<String> = columns.iter().map(|c| csv_field(&cell(row, c))).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        Format::Table => {
            if !rows.is_empty() {
                let mut table = comfy_table::Table::new();
                table.load_preset(if io::stdout().is_terminal() {
                    comfy_table::presets::UTF8_FULL_CONDENSED
                } else {
                    comfy_table::presets::ASCII_FULL_CONDENSED
                });
                table.set_header(columns.to_vec());
                for row in rows {
                    table.add_row(columns.iter().map(|c| cell(row, c)));
                }
                writeln!(out, "{table}")?;
            }
        }
    }
    out.flush()
}

/// English plural: `1 port`, `2 ports`.
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn plurals() {
        assert_eq!(plural(1u32, "port", "ports"), "1 port");
        assert_eq!(plural(0u32, "port", "ports"), "0 ports");
        assert_eq!(plural(2u32, "attempt", "attempts"), "2 attempts");
    }
}
