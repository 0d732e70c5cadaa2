//! Column types, time zones and the value parsers of CSV fields.

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Why a column type or time zone of a CSV dataset (from the config or a stored schema) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// Not one of the type names.
    #[error(
        "unknown column type {0:?} (string, int64, float64, bool, timestamp, date, decimal(P,S))"
    )]
    Unknown(String),
    /// `decimal(...)` without a readable precision and scale.
    #[error("decimal needs (P,S) with numbers P and S: {0:?}")]
    Decimal(String),
    /// A precision or scale out of range.
    #[error("decimal precision must be 1..=38 and 0 <= scale <= precision: {0:?}")]
    DecimalRange(String),
    /// A malformed `+HH:MM` offset.
    #[error("invalid UTC offset {0:?} (use e.g. +02:00)")]
    Offset(String),
    /// Neither UTC, an offset nor an IANA name.
    #[error("unknown time zone {0:?} (use UTC, +02:00 or an IANA name like Europe/Madrid)")]
    Zone(String),
}

/// A column type of a CSV dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// `true/false`, `yes/no`, `1/0`.
    Bool,
    /// Timestamp (µs, UTC) parsed with the dataset's formats and time zone.
    Timestamp,
    /// Calendar date parsed with the dataset's formats.
    Date,
    /// Decimal with precision and scale.
    Decimal(u8, i8),
}

impl ColumnType {
    /// Parses `string`, `int64`, `float64`, `bool`, `timestamp`, `date`, `decimal(P,S)`.
    ///
    /// # Errors
    /// A [`TypeError`] naming the accepted types.
    pub fn parse(s: &str) -> Result<Self, TypeError> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" | "utf8" | "text" => Self::String,
            "int64" | "int" | "integer" | "bigint" => Self::Int64,
            "float64" | "float" | "double" => Self::Float64,
            "bool" | "boolean" => Self::Bool,
            "timestamp" => Self::Timestamp,
            "date" => Self::Date,
            _ => {
                let inner = t
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| TypeError::Unknown(s.to_string()))?;
                let (p, sc) = inner
                    .split_once(',')
                    .ok_or_else(|| TypeError::Decimal(s.to_string()))?;
                let p: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| TypeError::Decimal(s.to_string()))?;
                let sc: i8 = sc
                    .trim()
                    .parse()
                    .map_err(|_| TypeError::Decimal(s.to_string()))?;
                if p == 0 || p > 38 || sc < 0 || sc as u8 > p {
                    return Err(TypeError::DecimalRange(s.to_string()));
                }
                Self::Decimal(p, sc)
            }
        })
    }

    /// The canonical name (inverse of [`ColumnType::parse`]).
    pub(crate) fn name(&self) -> String {
        match self {
            Self::String => "string".into(),
            Self::Int64 => "int64".into(),
            Self::Float64 => "float64".into(),
            Self::Bool => "bool".into(),
            Self::Timestamp => "timestamp".into(),
            Self::Date => "date".into(),
            Self::Decimal(p, s) => format!("decimal({p},{s})"),
        }
    }

    pub(super) fn data_type(&self) -> DataType {
        match self {
            Self::String => DataType::Utf8,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Self::Date => DataType::Date32,
            Self::Decimal(p, s) => DataType::Decimal128(*p, *s),
        }
    }
}

/// A time zone for timestamps without an offset.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    /// UTC.
    Utc,
    /// A fixed offset.
    Fixed(FixedOffset),
    /// An IANA zone (DST-aware; an ambiguous local time takes the earlier instant).
    Named(chrono_tz::Tz),
}

/// Parses `UTC`, `+02:00`/`-0800`, or an IANA name.
///
/// # Errors
/// A [`TypeError`] naming the accepted forms.
pub fn parse_timezone(s: &str) -> Result<Zone, TypeError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(Zone::Utc);
    }
    if t.starts_with(['+', '-']) {
        let probe = format!("2000-01-01T00:00:00{t}");
        return DateTime::parse_from_str(&probe, "%Y-%m-%dT%H:%M:%S%z")
            .or_else(|_| DateTime::parse_from_str(&probe, "%Y-%m-%dT%H:%M:%S%:z"))
            .map(|d| Zone::Fixed(*d.offset()))
            .map_err(|_| TypeError::Offset(s.to_string()));
    }
    t.parse::<chrono_tz::Tz>()
        .map(Zone::Named)
        .map_err(|_| TypeError::Zone(s.to_string()))
}

fn localize(zone: Zone, naive: NaiveDateTime) -> Option<i64> {
    match zone {
        Zone::Utc => Some(naive.and_utc().timestamp_micros()),
        Zone::Fixed(o) => o
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.timestamp_micros()),
        Zone::Named(tz) => tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.timestamp_micros()),
    }
}

/// Parses a timestamp with the first matching format; µs since epoch, UTC.
pub(crate) fn parse_timestamp(s: &str, formats: &[String], zone: Zone) -> Option<i64> {
    for f in formats {
        if f.contains("%z") || f.contains("%:z") || f.contains("%#z") {
            if let Ok(d) = DateTime::parse_from_str(s, f) {
                return Some(d.with_timezone(&Utc).timestamp_micros());
            }
        } else if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return localize(zone, n);
        } else if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return localize(zone, d.and_hms_opt(0, 0, 0)?);
        }
    }
    None
}

pub(super) fn parse_date(s: &str, formats: &[String]) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    for f in formats {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return i32::try_from((d - epoch).num_days()).ok();
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return i32::try_from((n.date() - epoch).num_days()).ok();
        }
    }
    None
}

/// `Order Date` -> `order_date`: lower snake case, safe for Spark, Hive and DuckDB.
pub(crate) fn normalize_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" => Some(true),
        "false" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_zones_parse() {
        assert_eq!(
            ColumnType::parse("decimal(12,2)"),
            Ok(ColumnType::Decimal(12, 2))
        );
        assert!(ColumnType::parse("decimal(40,2)").is_err());
        assert!(parse_timezone("Europe/Madrid").is_ok());
        assert!(parse_timezone("+02:00").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
        let f = vec!["%Y-%m-%d %H:%M:%S".to_string()];
        let madrid = parse_timezone("Europe/Madrid").expect("tz");
        assert_eq!(
            parse_timestamp("2020-01-01 01:00:00", &f, madrid),
            parse_timestamp("2020-01-01 00:00:00", &f, Zone::Utc)
        );
        assert_eq!(normalize_name(" Sub-Category "), "sub_category");
    }
}
