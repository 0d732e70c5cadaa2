//! Unit tests of the decoder under each [`SchemaEvolution`] mode (see `evolve`): headers with a new column, a
//! dropped column, a reordered order, values of the wrong type, and a growing file read from past its header.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};

use super::*;
use crate::decode::LineSource;

fn opts() -> CsvOptions {
    let mut o = CsvOptions {
        key: vec!["id".into()],
        event_time: "when".into(),
        ..CsvOptions::default()
    };
    o.columns.insert("amount".into(), "decimal(12,2)".into());
    o.columns.insert("qty".into(), "int64".into());
    o
}

/// The schema every test starts from: `id, when, qty, amount, note`.
fn stored() -> StoredSchema {
    let data = b"id,when,qty,amount,note\n1,2025-10-01 10:00:00,2,1.50,x\n";
    let inp = input(0);
    infer_schema(
        LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
        &opts(),
        "ds",
    )
    .expect("infer")
}

fn input(start: u64) -> DecodeInput {
    DecodeInput {
        path: "ds/a.csv".into(),
        start_offset: start,
        start_line: 0,
        gzip: false,
        is_final: true,
        ingested_at: 1_760_000_000_000_000,
        file_bytes: 0,
        limits: crate::decode::Limits::default(),
        continues_line: false,
    }
}

struct Out {
    rows: Vec<RecordBatch>,
    bad: Vec<QuarantineRecord>,
}

fn decode_with(dec: &CsvDecoder, data: &[u8], start: u64) -> Result<Out, DecodeError> {
    let inp = input(start);
    let mut out = Out {
        rows: Vec::new(),
        bad: Vec::new(),
    };
    dec.decode(
        LineSource::new(
            Box::new(std::io::Cursor::new(data[start as usize..].to_vec())),
            &inp,
        )
        .expect("src"),
        &inp,
        &mut |item| {
            match item {
                DecodeItem::Rows(d) => out.rows.push(d.batch),
                DecodeItem::Quarantine(q) => out.bad.extend(q),
            }
            true
        },
    )?;
    Ok(out)
}

fn decoder(schema: &StoredSchema, mode: SchemaEvolution) -> CsvDecoder {
    CsvDecoder::new("ds", &opts(), schema)
        .expect("decoder")
        .with_evolution(mode, HashMap::new())
}

/// Column `name` of `b` as text (`None` for null).
fn text_of(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = b.column_by_name(name).expect(name);
    let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).expect("cast");
    let s = c.as_string::<i32>();
    (0..s.len())
        .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
        .collect()
}

const MODES: [SchemaEvolution; 3] = [
    SchemaEvolution::Fail,
    SchemaEvolution::AddColumns,
    SchemaEvolution::Rescue,
];

#[test]
fn a_reordered_header_lands_by_name_in_every_mode() {
    let data = b"note,amount,id,qty,when\ny,2.25,7,3,2025-10-02 11:00:00\n";
    for mode in MODES {
        let out = decode_with(&decoder(&stored(), mode), data, 0).expect("decodes");
        assert!(out.bad.is_empty(), "{mode:?} {:?}", out.bad);
        let b = &out.rows[0];
        assert_eq!(text_of(b, "id"), [Some("7".into())]);
        assert_eq!(text_of(b, "qty"), [Some("3".into())]);
        assert_eq!(text_of(b, "amount"), [Some("2.25".into())]);
        assert_eq!(text_of(b, "note"), [Some("y".into())]);
    }
}

#[test]
fn a_dropped_column_reads_null_except_in_fail() {
    // `note` (a string) and `qty` (a number) dropped: null, not an empty string or zero.
    let data = b"id,when,amount\n7,2025-10-02 11:00:00,2.25\n8,2025-10-02 12:00:00,\n";
    for mode in [SchemaEvolution::AddColumns, SchemaEvolution::Rescue] {
        let out = decode_with(&decoder(&stored(), mode), data, 0).expect("decodes");
        let b = &out.rows[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(text_of(b, "note"), [None, None], "{mode:?}");
        assert_eq!(text_of(b, "qty"), [None, None]);
        assert_eq!(text_of(b, "amount"), [Some("2.25".into()), None]);
    }
    let err = decode_with(&decoder(&stored(), SchemaEvolution::Fail), data, 0)
        .err()
        .expect("fail rejects the file");
    assert!(
        matches!(&err, DecodeError::Header { reason, .. } if reason.contains("\"qty\" is missing")),
        "{err}"
    );
}

#[test]
fn a_new_column_fails_asks_to_evolve_or_is_rescued() {
    let data = b"id,when,qty,amount,note,channel\n7,2025-10-02 11:00:00,3,2.25,y,web\n8,2025-10-02 12:00:00,1,1.00,z,\n";
    let err = decode_with(&decoder(&stored(), SchemaEvolution::Fail), data, 0)
        .err()
        .expect("fail");
    assert!(matches!(err, DecodeError::Header { .. }), "{err}");
    let err = decode_with(&decoder(&stored(), SchemaEvolution::AddColumns), data, 0)
        .err()
        .expect("asks");
    assert!(
        matches!(&err, DecodeError::NewColumns { columns, .. } if columns == &["channel"]),
        "{err}"
    );
    // With the column added, the file lands with it.
    let evolved = with_new_columns(&stored(), &["channel".into()], &opts()).expect("types");
    let out =
        decode_with(&decoder(&evolved, SchemaEvolution::AddColumns), data, 0).expect("evolved");
    assert_eq!(
        text_of(&out.rows[0], "channel"),
        [Some("web".into()), Some(String::new())]
    );
    // Rescue keeps the schema and the value, under its header name; an empty extra field is not rescued.
    let out = decode_with(&decoder(&stored(), SchemaEvolution::Rescue), data, 0).expect("rescued");
    let b = &out.rows[0];
    assert!(b.column_by_name("channel").is_none());
    assert_eq!(
        text_of(b, RESCUED_COLUMN),
        [Some(r#"{"channel":"web"}"#.into()), None]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_rescued_or_quarantined_never_coerced() {
    let data = b"id,when,qty,amount,note\n7,2025-10-02 11:00:00,3,12;5x,y\n8,2025-10-02 12:00:00,2.5,1.00,z\n9,2025-10-02 13:00:00,4,4.00,w\nx10,2025-10-02 13:00:00,4,4.00,w\n11,yesterday,4,4.00,w\n";
    for mode in [SchemaEvolution::Fail, SchemaEvolution::AddColumns] {
        let out = decode_with(&decoder(&stored(), mode), data, 0).expect("decodes");
        assert_eq!(out.rows[0].num_rows(), 1, "{mode:?}");
        assert_eq!(out.bad.len(), 4);
        assert!(
            out.bad[0]
                .reason
                .contains("invalid decimal(12,2) \"12;5x\""),
            "{}",
            out.bad[0].reason
        );
        assert!(out.bad[1].reason.contains("invalid int64 \"2.5\""));
    }
    let out = decode_with(&decoder(&stored(), SchemaEvolution::Rescue), data, 0).expect("decodes");
    let b = &out.rows[0];
    assert_eq!(
        text_of(b, "id"),
        [Some("7".into()), Some("8".into()), Some("9".into())]
    );
    assert_eq!(
        text_of(b, "amount"),
        [None, Some("1.00".into()), Some("4.00".into())]
    );
    assert_eq!(
        text_of(b, "qty"),
        [Some("3".into()), None, Some("4".into())]
    );
    assert_eq!(
        text_of(b, RESCUED_COLUMN),
        [
            Some(r#"{"amount":"12;5x"}"#.into()),
            Some(r#"{"qty":"2.5"}"#.into()),
            None
        ]
    );
    // A bad key or event time still quarantines the row: it could be neither deduplicated nor partitioned.
    assert_eq!(out.bad.len(), 2);
    assert_eq!(out.bad[0].raw, b"x10,2025-10-02 13:00:00,4,4.00,w");
    assert!(
        out.bad[1].reason.contains("timestamp"),
        "{}",
        out.bad[1].reason
    );
}

#[test]
fn a_growing_file_maps_its_tail_by_its_own_header() {
    // Reordered and without `note`: the tail (read from past the header) must map by name, not by position.
    let head = b"qty,when,id,amount\n3,2025-10-02 11:00:00,7,2.25\n".to_vec();
    let mut data = head.clone();
    data.extend(b"4,2025-10-02 12:00:00,8,1.75\n");
    let header: Vec<String> = ["qty", "when", "id", "amount"].map(String::from).into();
    for mode in [SchemaEvolution::AddColumns, SchemaEvolution::Rescue] {
        let dec = CsvDecoder::new("ds", &opts(), &stored())
            .expect("decoder")
            .with_evolution(
                mode,
                HashMap::from([("ds/a.csv".to_string(), header.clone())]),
            );
        let out = decode_with(&dec, &data, head.len() as u64).expect("tail");
        assert!(out.bad.is_empty(), "{:?}", out.bad);
        let b = &out.rows[0];
        assert_eq!(text_of(b, "id"), [Some("8".into())]);
        assert_eq!(text_of(b, "qty"), [Some("4".into())]);
        assert_eq!(text_of(b, "note"), [None]);
    }
}
