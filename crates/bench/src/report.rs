//! The one table everything is printed in.

use std::fmt::Write as _;

/// One line of the table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The item number of the brief (`1` … `8`).
    pub item: String,
    pub what: String,
    pub measure: String,
    pub gateway: String,
    pub baseline: String,
    pub comparison: String,
    pub target: String,
}

impl Row {
    pub fn new(item: u8, what: impl Into<String>, measure: impl Into<String>) -> Row {
        Row {
            item: item.to_string(),
            what: what.into(),
            measure: measure.into(),
            ..Row::default()
        }
    }

    pub fn gateway(mut self, s: impl Into<String>) -> Row {
        self.gateway = s.into();
        self
    }

    pub fn baseline(mut self, s: impl Into<String>) -> Row {
        self.baseline = s.into();
        self
    }

    pub fn comparison(mut self, s: impl Into<String>) -> Row {
        self.comparison = s.into();
        self
    }

    pub fn target(mut self, s: impl Into<String>) -> Row {
        self.target = s.into();
        self
    }
}

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| # | Measurement | Figure | Gateway | Baseline | Gateway vs baseline | Target |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---|");
    for r in rows {
        let cells = [
            &r.item,
            &r.what,
            &r.measure,
            &r.gateway,
            &r.baseline,
            &r.comparison,
            &r.target,
        ];
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}
