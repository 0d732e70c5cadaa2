//! Schema evolution of a CSV dataset: how one file's header maps onto the dataset's schema under its
//! [`SchemaEvolution`] mode, the schema with the columns a header adds, and the `_rescued_data` JSON of the
//! values that do not fit.
//!
//! Pure functions: the decoder calls [`map_header`] once per file, the ingest layer [`with_new_columns`] when a
//! header brought columns the schema lacks (`add_columns`), before it decodes the batch again.

use super::options::{CsvOptions, SchemaEvolution, StoredColumn, StoredSchema};
use super::records::RecordStream;
use super::records::Text;
use super::types::{normalize_name, ColumnType, TypeError};
use crate::decode::{DecodeError, LineSource};

/// The column that holds, in `rescue` mode, what did not fit the schema: a JSON object of header name -> text,
/// or null when the whole row fit. Its leading underscore keeps it apart from normalized column names, which
/// never start with one.
pub(crate) const RESCUED_COLUMN: &str = "_rescued_data";

/// How the fields of one file map onto the schema's columns.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HeaderMap {
    /// Per schema column, its field index in the file; `None` when the file lacks it (read as null).
    pub(super) columns: Vec<Option<usize>>,
    /// Fields the schema has no column for, with their header names (`rescue` mode only).
    pub(super) extra: Vec<(usize, String)>,
    /// Fields a record of the file has (the header's length).
    pub(super) fields: usize,
}

/// Why a header does not map onto the schema.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum HeaderMismatch {
    /// The file is rejected whole, for this reason.
    Reject(String),
    /// `add_columns`: the header has these columns (header names, in header order) that the schema lacks.
    NewColumns(Vec<String>),
}

/// Maps `header` onto `columns` under `mode`. `required` are the header names of the event-time and key
/// columns: a file without one of them is rejected in every mode (its rows could be neither partitioned nor
/// deduplicated).
pub(super) fn map_header(
    columns: &[StoredColumn],
    required: &[&str],
    header: &[String],
    mode: SchemaEvolution,
) -> Result<HeaderMap, HeaderMismatch> {
    let mut mapped = Vec::with_capacity(columns.len());
    for c in columns {
        let at = header.iter().position(|h| *h == c.source);
        if at.is_none() && (mode == SchemaEvolution::Fail || required.contains(&c.source.as_str()))
        {
            let why = if mode == SchemaEvolution::Fail {
                String::new()
            } else {
                " (it is the event time or a key, which every file must have)".to_string()
            };
            return Err(HeaderMismatch::Reject(format!(
                "column {:?} is missing from the header {header:?}{why}",
                c.source
            )));
        }
        mapped.push(at);
    }
    let extra: Vec<(usize, String)> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| !columns.iter().any(|c| c.source == **h))
        .map(|(i, h)| (i, h.clone()))
        .collect();
    if !extra.is_empty() {
        match mode {
            SchemaEvolution::Fail => {
                return Err(HeaderMismatch::Reject(format!(
                    "unexpected column {:?} (schema_evolution = \"fail\" keeps the dataset's schema fixed; use add_columns or rescue, or declare a new dataset)",
                    extra[0].1
                )))
            }
            SchemaEvolution::AddColumns => {
                return Err(HeaderMismatch::NewColumns(
                    extra.into_iter().map(|(_, h)| h).collect(),
                ))
            }
            SchemaEvolution::Rescue => {}
        }
    }
    Ok(HeaderMap {
        columns: mapped,
        extra,
        fields: header.len(),
    })
}

/// `schema` with the header names `new` appended as columns (those it does not have yet), typed as declared in
/// `options.columns`, else `string` (like Auto Loader without type inference: a later file cannot make an early
/// guess wrong), and named like inferred columns (normalized, made unique).
///
/// # Errors
/// A [`TypeError`] for a declared type that does not parse.
pub fn with_new_columns(
    schema: &StoredSchema,
    new: &[String],
    options: &CsvOptions,
) -> Result<StoredSchema, TypeError> {
    let mut out = schema.clone();
    for h in new {
        if out.columns.iter().any(|c| c.source == *h) {
            continue;
        }
        let ty = match options.columns.get(h) {
            Some(t) => ColumnType::parse(t)?,
            None => ColumnType::String,
        };
        let mut name = if options.normalize_names {
            normalize_name(h)
        } else {
            h.clone()
        };
        if name.is_empty() {
            name = format!("c{}", out.columns.len() + 1);
        }
        let mut unique = name.clone();
        let mut n = 2;
        while out.columns.iter().any(|c| c.name == unique) || unique == RESCUED_COLUMN {
            unique = format!("{name}_{n}");
            n += 1;
        }
        out.columns.push(StoredColumn {
            source: h.clone(),
            name: unique,
            ty: ty.name(),
        });
    }
    Ok(out)
}

/// The `_rescued_data` value of one row: a JSON object of header name -> text (keys sorted).
pub(super) fn rescued_json(pairs: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Reads the header of a CSV stream that starts at byte 0 of its file (for a file read from past its start:
/// its fields still map by the names of its own header). `None` for an empty stream.
///
/// # Errors
/// [`DecodeError`] when the stream cannot be read, or its header is over `max_record_bytes` or not text.
pub fn read_header(
    lines: LineSource,
    options: &CsvOptions,
    dataset: &str,
) -> Result<Option<Vec<String>>, DecodeError> {
    let path = lines.path().to_string();
    let text = Text::from_options(options);
    let mut stream = RecordStream::new(lines, options, true)?;
    let header_err = |reason: String| DecodeError::Header {
        path: path.clone(),
        dataset: dataset.to_string(),
        reason,
    };
    let Some(rec) = stream.next()? else {
        return Ok(None);
    };
    rec.header_names(&text).map(Some).map_err(header_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<StoredColumn> {
        names
            .iter()
            .map(|n| StoredColumn {
                source: n.to_string(),
                name: normalize_name(n),
                ty: "string".into(),
            })
            .collect()
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    const MODES: [SchemaEvolution; 3] = [
        SchemaEvolution::Fail,
        SchemaEvolution::AddColumns,
        SchemaEvolution::Rescue,
    ];

    #[test]
    fn a_reordered_header_maps_by_name_in_every_mode() {
        let c = cols(&["id", "when", "amount"]);
        for mode in MODES {
            let m = map_header(
                &c,
                &["id", "when"],
                &header(&["amount", "id", "when"]),
                mode,
            )
            .expect("same columns");
            assert_eq!(m.columns, vec![Some(1), Some(2), Some(0)], "{mode:?}");
            assert!(m.extra.is_empty());
            assert_eq!(m.fields, 3);
        }
    }

    #[test]
    fn a_dropped_column_is_null_unless_fail_or_required() {
        let c = cols(&["id", "when", "amount", "note"]);
        let h = header(&["note", "when", "id"]);
        for mode in [SchemaEvolution::AddColumns, SchemaEvolution::Rescue] {
            let m = map_header(&c, &["id", "when"], &h, mode).expect("nullable");
            assert_eq!(m.columns, vec![Some(2), Some(1), None, Some(0)]);
        }
        let Err(HeaderMismatch::Reject(why)) =
            map_header(&c, &["id", "when"], &h, SchemaEvolution::Fail)
        else {
            panic!("fail rejects a missing column")
        };
        assert!(why.contains("\"amount\" is missing"), "{why}");
        for dropped in ["id", "when"] {
            let h: Vec<String> = ["id", "when", "amount", "note"]
                .iter()
                .filter(|n| **n != dropped)
                .map(|s| s.to_string())
                .collect();
            for mode in MODES {
                assert!(
                    matches!(
                        map_header(&c, &["id", "when"], &h, mode),
                        Err(HeaderMismatch::Reject(_))
                    ),
                    "{dropped} {mode:?}"
                );
            }
        }
    }

    #[test]
    fn an_added_column_fails_evolves_or_is_rescued() {
        let c = cols(&["id", "when"]);
        let h = header(&["channel", "id", "when", "store"]);
        assert!(matches!(
            map_header(&c, &["id"], &h, SchemaEvolution::Fail),
            Err(HeaderMismatch::Reject(why)) if why.contains("unexpected column \"channel\"")
        ));
        assert_eq!(
            map_header(&c, &["id"], &h, SchemaEvolution::AddColumns),
            Err(HeaderMismatch::NewColumns(header(&["channel", "store"])))
        );
        let m = map_header(&c, &["id"], &h, SchemaEvolution::Rescue).expect("rescued");
        assert_eq!(m.columns, vec![Some(1), Some(2)]);
        assert_eq!(m.extra, vec![(0, "channel".into()), (3, "store".into())]);
        assert_eq!(m.fields, 4);
    }

    #[test]
    fn new_columns_are_strings_unless_declared_and_get_unique_names() {
        let schema = StoredSchema {
            columns: cols(&["id", "Sales Channel"]),
        };
        let mut o = CsvOptions::default();
        o.columns.insert("Qty".into(), "int64".into());
        let s = with_new_columns(
            &schema,
            &header(&["id", "Qty", "sales-channel", "Note"]),
            &o,
        )
        .expect("types");
        let got: Vec<_> = s
            .columns
            .iter()
            .map(|c| format!("{}|{}|{}", c.source, c.name, c.ty))
            .collect();
        assert_eq!(
            got,
            [
                "id|id|string",
                "Sales Channel|sales_channel|string",
                "Qty|qty|int64",
                "sales-channel|sales_channel_2|string",
                "Note|note|string"
            ]
        );
        o.columns.insert("Bad".into(), "int13".into());
        assert!(with_new_columns(&schema, &header(&["Bad"]), &o).is_err());
    }

    #[test]
    fn rescued_json_is_an_object_of_header_names() {
        let j = rescued_json(&[
            ("channel".into(), "web".into()),
            ("amount".into(), "12,5x".into()),
        ]);
        assert_eq!(j, r#"{"amount":"12,5x","channel":"web"}"#);
        let v: serde_json::Value =
            serde_json::from_str(&rescued_json(&[("quote\"d".into(), "a\nb".into())]))
                .expect("valid json");
        assert_eq!(v["quote\"d"], "a\nb");
    }
}
