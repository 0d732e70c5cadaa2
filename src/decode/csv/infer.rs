//! Fixing a CSV dataset's schema from its first file: declared types win, the rest is inferred from a sample.

use super::records::{RecordStream, Text};
use super::types::{normalize_name, parse_bool, parse_timestamp, parse_timezone, ColumnType, Zone};
use super::{CsvOptions, StoredColumn, StoredSchema};
use crate::decode::{DecodeError, LineSource};

/// Reads the header and up to `options.infer_rows` records of a first file and fixes the schema: declared
/// types win, the event-time column is a timestamp, other columns get the narrowest type every sampled value
/// fits (`int64` unless a value has a leading zero, `float64`, `bool`, `timestamp`, else `string`).
///
/// # Errors
/// [`DecodeError`] when the stream cannot be read or has no header.
pub fn infer_schema(
    lines: LineSource,
    options: &CsvOptions,
    dataset: &str,
) -> Result<StoredSchema, DecodeError> {
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
        if let Some(len) = rec.too_long {
            return Err(header_err(format!(
                "the header is {len} bytes, over max_record_bytes"
            )));
        }
        rec.fields
            .iter()
            .map(|f| text.decode(f).map(|s| s.trim().to_string()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                header_err("header is not valid text in the configured encoding".into())
            })?
    } else {
        Vec::new()
    };
    let mut samples: Vec<Vec<String>> = Vec::new();
    while samples.len() < options.infer_rows {
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
        let mut name = if options.normalize_names {
            normalize_name(h)
        } else {
            h.clone()
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
        columns.push(StoredColumn {
            source: h.clone(),
            name: unique,
            ty: ty.name(),
        });
    }
    Ok(StoredSchema { columns })
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
    let leading_zero = |v: &str| {
        let d = v.trim_start_matches(['-', '+']);
        d.len() > 1 && d.starts_with('0') && !d.starts_with("0.")
    };
    if non_empty
        .clone()
        .all(|v| v.parse::<i64>().is_ok() && !leading_zero(v))
    {
        return ColumnType::Int64;
    }
    let numeric = |v: &str| {
        v.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && v.parse::<f64>().is_ok()
    };
    if non_empty.clone().all(|v| numeric(v) && !leading_zero(v)) {
        return ColumnType::Float64;
    }
    if non_empty.clone().all(|v| parse_bool(v).is_some()) {
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
