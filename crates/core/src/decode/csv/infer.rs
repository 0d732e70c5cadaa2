//! Fixing a CSV dataset's schema from its first file: declared types win, the rest is inferred from a sample.

use super::records::{RecordStream, Text};
use super::types::{normalize_name, parse_timestamp, parse_timezone, ColumnType, Zone};
use super::{CsvOptions, StoredColumn, StoredSchema};
use crate::decode::{DecodeError, LineSource};

/// [`infer_schema_sampled`] without the count (the tests' shorthand).
#[cfg(test)]
pub(crate) fn infer_schema(
    lines: LineSource,
    options: &CsvOptions,
    dataset: &str,
) -> Result<StoredSchema, DecodeError> {
    infer_schema_sampled(lines, options, dataset).map(|(schema, _)| schema)
}

/// Reads the header and up to `options.infer_rows` records of a first file and fixes the schema: declared
/// types win, the event-time column is a timestamp, other columns get the narrowest type every sampled value
/// fits and keeps exactly: `int64` (no leading zeros), `decimal(38,0)` for wider integers, `float64` when every
/// value is finite and reads back as the same number, `bool` from `true`/`false` only, `timestamp`, else `string`.
/// Also returns the number of records sampled: a schema from zero records (a header-only file) has every
/// undeclared column as `string` and should not be fixed for the dataset.
///
/// # Errors
/// [`DecodeError`] when the stream cannot be read or has no header.
pub fn infer_schema_sampled(
    lines: LineSource,
    options: &CsvOptions,
    dataset: &str,
) -> Result<(StoredSchema, usize), DecodeError> {
    let path = lines.path().to_string();
    let text = Text::from_options(options);
    let mut stream = RecordStream::new(lines, options, true)?;
    let header_err = |reason: String| DecodeError::Header {
        path: path.clone(),
        dataset: dataset.to_string(),
        reason,
    };
    let header: Vec<String> = if options.has_header {
        let rec = stream
            .next()?
            .ok_or_else(|| header_err("the file is empty (no header)".into()))?;
        rec.header_names(&text).map_err(header_err)?
    } else {
        Vec::new()
    };
    let samples = read_samples(&mut stream, &text, options.infer_rows)?;
    let header = if options.has_header {
        header
    } else {
        let n = samples.first().map(|r| r.len()).unwrap_or(0);
        (1..=n).map(|i| format!("c{i}")).collect()
    };
    if !header.contains(&options.event_time) {
        return Err(header_err(format!(
            "event_time column {:?} is not in the header {header:?}",
            options.event_time
        )));
    }
    for k in &options.key {
        if !header.contains(k) {
            return Err(header_err(format!(
                "key column {k:?} is not in the header {header:?}"
            )));
        }
    }
    let zone = parse_timezone(&options.timezone).map_err(|e| header_err(e.to_string()))?;
    let mut used = std::collections::HashSet::new();
    let mut columns = Vec::with_capacity(header.len());
    for (i, h) in header.iter().enumerate() {
        let ty = if *h == options.event_time {
            ColumnType::Timestamp
        } else if let Some(t) = options.columns.get(h) {
            ColumnType::parse(t).map_err(|e| header_err(e.to_string()))?
        } else {
            infer_type(
                samples.iter().filter_map(|r| r.get(i)).map(|s| s.trim()),
                options,
                zone,
            )
        };
        columns.push(StoredColumn {
            source: h.clone(),
            name: column_name(h, i, options.normalize_names, &mut used),
            ty: ty.name(),
        });
    }
    Ok((StoredSchema { columns }, samples.len()))
}

/// Up to `rows` records after the header, decoded to text (records over the length limit are left out).
fn read_samples(
    stream: &mut RecordStream,
    text: &Text,
    rows: usize,
) -> Result<Vec<Vec<String>>, DecodeError> {
    let mut samples: Vec<Vec<String>> = Vec::new();
    while samples.len() < rows {
        match stream.next()? {
            None => break,
            Some(r) if r.too_long.is_some() => {}
            Some(r) => samples.push(
                r.fields
                    .iter()
                    .map(|f| text.decode(f).unwrap_or_default().into_owned())
                    .collect(),
            ),
        }
    }
    Ok(samples)
}

/// The bronze name of header column `h` (the `i`th, from 0): normalized when asked, `c<i+1>` when empty, and
/// suffixed `_2`, `_3`, ... when an earlier column took it (`used` holds the names taken).
fn column_name(
    h: &str,
    i: usize,
    normalize: bool,
    used: &mut std::collections::HashSet<String>,
) -> String {
    let mut name = if normalize {
        normalize_name(h)
    } else {
        h.to_string()
    };
    if name.is_empty() {
        name = format!("c{}", i + 1);
    }
    let mut unique = name.clone();
    let mut n = 2;
    while !used.insert(unique.clone()) {
        unique = format!("{name}_{n}");
        n += 1;
    }
    unique
}

fn infer_type<'a>(
    values: impl Iterator<Item = &'a str> + Clone,
    options: &CsvOptions,
    zone: Zone,
) -> ColumnType {
    let non_empty = values.filter(|v| !v.is_empty());
    if non_empty.clone().next().is_none() {
        return ColumnType::String;
    }
    if non_empty
        .clone()
        .all(|v| v.parse::<i64>().is_ok() && !leading_zero(v))
    {
        return ColumnType::Int64;
    }
    // Integers past i64 keep every digit as a decimal; a float64 would round them.
    if non_empty
        .clone()
        .all(|v| wide_integer(v) && !leading_zero(v))
    {
        return ColumnType::Decimal(38, 0);
    }
    if non_empty
        .clone()
        .all(|v| float_round_trips(v) && !leading_zero(v))
    {
        return ColumnType::Float64;
    }
    // Only the words `true`/`false`: `y`, `t` or `1` in a sample are as likely codes as booleans.
    if non_empty
        .clone()
        .all(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"))
    {
        return ColumnType::Bool;
    }
    if non_empty
        .clone()
        .all(|v| parse_timestamp(v, &options.timestamp_formats, zone).is_some())
    {
        return ColumnType::Timestamp;
    }
    ColumnType::String
}

/// `007` or `-01.5`: a leading zero is part of a code or an identifier, which a number would drop.
fn leading_zero(v: &str) -> bool {
    let d = v.trim_start_matches(['-', '+']);
    d.len() > 1 && d.starts_with('0') && !d.starts_with("0.")
}

/// An integer of up to 38 digits (what `decimal(38,0)` holds).
fn wide_integer(v: &str) -> bool {
    let d = v.strip_prefix(['-', '+']).unwrap_or(v);
    !d.is_empty() && d.len() <= 38 && d.bytes().all(|b| b.is_ascii_digit())
}

/// A decimal number that parses to a finite `f64` whose shortest form is the same number: `0.1` and `1.50`
/// qualify, `1e400` (infinite) and `12345678901234567.5` (rounded) do not.
fn float_round_trips(v: &str) -> bool {
    if !v
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return false;
    }
    let Ok(f) = v.parse::<f64>() else {
        return false;
    };
    f.is_finite() && canonical(v).is_some() && canonical(v) == canonical(&format!("{f:e}"))
}

/// A decimal numeral as (negative, significant digits, exponent of the last digit); zero has no digits.
fn canonical(v: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits: String = format!("{int}{frac}");
    let frac_len = i64::try_from(frac.len()).ok()?;
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let dropped = i64::try_from(trimmed.len() - significant.len()).ok()?;
    Some((neg, significant.to_string(), exp - frac_len + dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> ColumnType {
        let options = CsvOptions::default();
        infer_type(values.iter().copied(), &options, Zone::Utc)
    }

    #[test]
    fn integers_past_i64_become_decimal_not_float() {
        assert_eq!(
            infer(&["12345678901234567890", "1"]),
            ColumnType::Decimal(38, 0)
        );
        assert_eq!(
            infer(&["-99999999999999999999999999999999999999"]),
            ColumnType::Decimal(38, 0)
        );
        assert_eq!(
            infer(&["9223372036854775807", "-9223372036854775808"]),
            ColumnType::Int64
        );
        // 39 digits do not fit decimal(38,0), and a float would round them
        assert_eq!(
            infer(&["123456789012345678901234567890123456789"]),
            ColumnType::String
        );
    }

    #[test]
    fn floats_only_when_every_value_round_trips() {
        assert_eq!(
            infer(&["0.1", "1.50", "-2.5e-3", "1e300", "3"]),
            ColumnType::Float64
        );
        assert_eq!(infer(&["1.5", "1e400"]), ColumnType::String);
        assert_eq!(infer(&["1e-400"]), ColumnType::String);
        assert_eq!(infer(&["12345678901234567.5"]), ColumnType::String);
        assert_eq!(infer(&["0.1", "12345678901234567890"]), ColumnType::String);
        assert_eq!(infer(&["1.5", "inf"]), ColumnType::String);
        assert_eq!(infer(&["1.5", "NaN"]), ColumnType::String);
        assert_eq!(infer(&["007.5"]), ColumnType::String);
    }

    #[test]
    fn booleans_only_from_true_and_false() {
        assert_eq!(infer(&["true", "FALSE", "True"]), ColumnType::Bool);
        for codes in [&["y", "n"][..], &["yes", "no"], &["t", "f"], &["true", "y"]] {
            assert_eq!(infer(codes), ColumnType::String, "{codes:?}");
        }
        assert_eq!(infer(&["1", "0"]), ColumnType::Int64);
    }

    #[test]
    fn canonical_forms_compare_numbers_not_spellings() {
        assert_eq!(canonical("1.50"), canonical("15e-1"));
        assert_eq!(canonical("0.0"), canonical("0"));
        assert_ne!(
            canonical("1.2345678901234567e19"),
            canonical("12345678901234567890")
        );
        assert_eq!(canonical("."), None);
    }
}
