//! `opskit http --output`: the row formats of every family ([`crate::output::Format`], rendered by
//! the one [`crate::output::Sink`]) plus `raw`, the body exactly as received.

use crate::output::Format;

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
