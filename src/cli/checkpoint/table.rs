//! Text output of `lander checkpoint`: aligned tables and key/value blocks; and the `--since` parser. Times,
//! durations and byte sizes are formatted by `crate::cli::output`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub(super) fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Ok(d) = humantime::parse_duration(s) {
        if let Ok(d) = chrono::Duration::from_std(d) {
            return Ok(Utc::now() - d);
        }
    }
    Err(format!(
        "invalid time {s:?}: expected RFC 3339 (2025-01-31T12:00:00Z), a UTC date (2025-01-31) or a duration ago (90m, 2d)"
    ))
}

pub(super) fn kv_block(kv: &[(&str, String)]) -> String {
    let width = kv.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    kv.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// An aligned text table (comfy-table without borders): columns separated by two spaces, numbers right-aligned,
/// no trailing spaces.
pub(super) struct Table {
    table: comfy_table::Table,
}

impl Table {
    /// A table with these headers; `true` right-aligns a column.
    pub(super) fn new(headers: &[(&str, bool)]) -> Self {
        let mut table = comfy_table::Table::new();
        table
            .load_style(comfy_table::presets::NOTHING)
            .set_header(headers.iter().map(|(h, _)| *h));
        let last = headers.len().saturating_sub(1);
        for (i, (_, right)) in headers.iter().enumerate() {
            if let Some(column) = table.column_mut(i) {
                column.set_padding((0, if i == last { 0 } else { 2 }));
                if *right {
                    column.set_cell_alignment(comfy_table::CellAlignment::Right);
                }
            }
        }
        Self { table }
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.table.add_row(cells);
    }

    pub(super) fn render(&self) -> String {
        self.render_indented("")
    }

    pub(super) fn render_indented(&self, indent: &str) -> String {
        self.table
            .lines()
            .map(|line| format!("{indent}{}\n", line.trim_end()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(&[("A", false), ("N", true), ("Z", false)]);
        t.row(vec!["long".into(), "1".into(), "".into()]);
        t.row(vec!["x".into(), "100".into(), "end".into()]);
        assert_eq!(t.render(), "A       N  Z\nlong    1\nx     100  end\n");
    }

    #[test]
    fn since_accepts_dates_times_and_durations() {
        assert_eq!(
            parse_since("2025-01-31").expect("date").to_rfc3339(),
            "2025-01-31T00:00:00+00:00"
        );
        assert!(parse_since("2025-01-31T12:00:00Z").is_ok());
        assert!(parse_since("2h").expect("ago") < Utc::now());
        assert!(parse_since("yesterday-ish").is_err());
    }
}
