//! Text output of `lander checkpoint`: aligned tables, key/value blocks, times and byte sizes; and the `--since`
//! parser.

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

pub(super) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

pub(super) fn kv_block(kv: &[(&str, String)]) -> String {
    let width = kv.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    kv.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// An aligned text table: columns separated by two spaces, numbers right-aligned, no trailing spaces.
pub(super) struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(headers: &[(&str, bool)]) -> Self {
        Self {
            headers: headers.iter().map(|(h, _)| h.to_string()).collect(),
            right: headers.iter().map(|(_, r)| *r).collect(),
            rows: Vec::new(),
        }
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(super) fn render(&self) -> String {
        self.render_indented("")
    }

    pub(super) fn render_indented(&self, indent: &str) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, c) in r.iter().enumerate().take(n) {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i] - c.chars().count();
                if self.right[i] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
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
