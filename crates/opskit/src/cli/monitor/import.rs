//! `opskit monitor import-gatus gatus.yaml > monitor.toml`.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::exit::{Failure, code};

#[derive(Debug, Args)]
pub struct ImportGatusArgs {
    /// The Gatus configuration (YAML); `-` reads stdin.
    pub file: PathBuf,
}

impl ImportGatusArgs {
    pub fn run(self) -> anyhow::Result<u8> {
        let text = if self.file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?
        } else {
            std::fs::read_to_string(&self.file)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", self.file.display())))?
        };
        let conv = opskit_monitor::gatus::convert(&text)
            .map_err(|e| Failure::usage(format!("{}: {e}", self.file.display())))?;
        let mut out = crate::output::stdout();
        out.write_all(conv.toml.as_bytes())?;
        out.flush()?;
        for n in &conv.notes {
            eprintln!("{}: {n}", self.file.display());
        }
        let skipped = conv.not_converted();
        if skipped > 0 {
            eprintln!(
                "{}: {} not converted (listed above and at the top of the output); exit {}",
                self.file.display(),
                crate::output::plural(skipped as u64, "item", "items"),
                code::PARTLY_CONVERTED
            );
            return Ok(code::PARTLY_CONVERTED);
        }
        Ok(code::OK)
    }
}
