//! `opskit http --output`: the row formats of every family ([`crate::output::Format`], rendered by
//! the one [`crate::output::Sink`]) plus `raw`, the body exactly as received.

use serde_json::Value;

use super::plan::Plan;
use crate::output::{Format, Sink};

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

impl OutputFormat {
    /// The format the [`crate::output::Sink`] writes parsed values in (`raw` bodies that are
    /// parsed at all, such as paged items, are JSON).
    pub fn rows(self) -> Format {
        match self {
            OutputFormat::Json | OutputFormat::Raw => Format::Json,
            OutputFormat::Ndjson => Format::Ndjson,
            OutputFormat::Csv => Format::Csv,
            OutputFormat::Table => Format::Table,
        }
    }
}

/// Where parsed values go: the row formats' [`Sink`], or [`RawLines`] for `-r/--raw-output` and
/// for `--output raw` with `--filter`.
pub enum Writer<W: std::io::Write> {
    Rows(Sink<W>),
    Lines(RawLines, W),
}

impl<W: std::io::Write> Writer<W> {
    /// The writer `plan` asks for; `items_mode` when paged items arrive one by one.
    pub fn new(plan: &Plan, items_mode: bool, out: W) -> Self {
        match RawLines::of(plan) {
            Some(lines) => Writer::Lines(lines, out),
            None => Writer::Rows(Sink::new(
                plan.format.unwrap_or(OutputFormat::Json).rows(),
                plan.color,
                items_mode,
                plan.stdout_tty,
                out,
            )),
        }
    }

    /// Writes a batch of values (one response's, or one page's).
    pub fn push(&mut self, values: Vec<Value>) -> std::io::Result<()> {
        match self {
            Writer::Rows(sink) => sink.push(values),
            Writer::Lines(lines, out) => {
                for v in &values {
                    lines.write(out, v)?;
                }
                out.flush()
            }
        }
    }

    /// Finishes the output; returns the CSV columns that had to be left out (see [`Sink`]).
    pub fn finish(self) -> std::io::Result<Vec<String>> {
        match self {
            Writer::Rows(sink) => sink.finish(),
            Writer::Lines(_, mut out) => {
                out.flush()?;
                Ok(Vec::new())
            }
        }
    }
}

/// Values one per line as `jq -r` writes them: a string bare, anything else as JSON, compact
/// for `--output ndjson` and `raw` (`jq -rc`), indented otherwise.
#[derive(Debug, Clone, Copy)]
pub struct RawLines {
    compact: bool,
    color: bool,
    /// On a terminal a string from the server is escaped ([`crate::peer_text::text`]).
    tty: bool,
}

impl RawLines {
    /// `Some` for `-r/--raw-output`, and for `--output raw` with `--filter` (`jq -rc`).
    pub fn of(plan: &Plan) -> Option<Self> {
        let raw_format = plan.format == Some(OutputFormat::Raw);
        (plan.raw_output || (raw_format && plan.filter.is_some())).then_some(RawLines {
            compact: raw_format || plan.format == Some(OutputFormat::Ndjson),
            color: plan.color,
            tty: plan.stdout_tty,
        })
    }

    pub fn write(&self, out: &mut dyn std::io::Write, v: &Value) -> std::io::Result<()> {
        match v {
            Value::String(s) if self.tty => out.write_all(crate::peer_text::text(s).as_bytes())?,
            Value::String(s) => out.write_all(s.as_bytes())?,
            v if self.compact => serde_json::to_writer(&mut *out, v)?,
            v if self.color => crate::output::write_json_colored(out, v, 0)?,
            v => serde_json::to_writer_pretty(&mut *out, v)?,
        }
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_lines_write_strings_bare_and_the_rest_as_json() {
        let l = RawLines {
            compact: true,
            color: false,
            tty: false,
        };
        let mut out = Vec::new();
        for v in [json!("a \"b\"\tc"), json!({"x": [1, 2]}), json!(null)] {
            l.write(&mut out, &v).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a \"b\"\tc\n{\"x\":[1,2]}\nnull\n"
        );
        // on a terminal a string cannot carry an escape sequence through
        let l = RawLines { tty: true, ..l };
        let mut out = Vec::new();
        l.write(&mut out, &json!("\u{1b}[2Jhi")).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\\x1b[2Jhi\n");
    }
}
