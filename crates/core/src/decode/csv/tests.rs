//! Unit tests of the CSV decoder.
use super::*;
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;

fn input(path: &str) -> DecodeInput {
    DecodeInput {
        path: path.into(),
        start_offset: 0,
        start_line: 0,
        gzip: false,
        is_final: true,
        ingested_at: 1_700_000_000_000_000,
        file_bytes: 0,
        limits: crate::decode::Limits::default(),
        continues_line: false,
    }
}

fn run(
    data: &[u8],
    opts: &CsvOptions,
    is_final: bool,
) -> (Vec<Decoded>, Vec<QuarantineRecord>, DecodeEnd) {
    let mut inp = input("ds/a.csv");
    inp.is_final = is_final;
    run_with(data, opts, &inp)
}

/// Infers the schema of `data`, then decodes it with `inp`: rows, quarantined records and where it stopped.
fn run_with(
    data: &[u8],
    opts: &CsvOptions,
    inp: &DecodeInput,
) -> (Vec<Decoded>, Vec<QuarantineRecord>, DecodeEnd) {
    let inp = inp.clone();
    let schema = infer_schema(
        LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
        opts,
        "ds",
    )
    .expect("infer");
    let dec = CsvDecoder::new("ds", opts, &schema).expect("decoder");
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let end = dec
        .decode(
            LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
            &inp,
            &mut |item| {
                match item {
                    DecodeItem::Rows(d) => rows.push(d),
                    DecodeItem::Quarantine(q) => bad.extend(q),
                }
                true
            },
        )
        .expect("decode");
    (rows, bad, end)
}

fn opts() -> CsvOptions {
    CsvOptions {
        key: vec!["Row ID".into()],
        event_time: "Order Date".into(),
        timestamp_formats: vec!["%m/%d/%Y".into()],
        ..CsvOptions::default()
    }
}

#[test]
fn bom_crlf_quoted_commas_and_us_dates() {
    let data = b"\xEF\xBB\xBFRow ID,Order Date,Name,Postal Code,Sales\r\n1,11/8/2018,\"Smith, Jo\",04101,2.5\r\n2,1/2/2019,Ann,90036,3\r\n";
    let (rows, bad, end) = run(data, &opts(), true);
    assert!(bad.is_empty(), "{bad:?}");
    let b = &rows[0].batch;
    assert_eq!(b.num_rows(), 2);
    let names: Vec<_> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        &names[..5],
        &["row_id", "order_date", "name", "postal_code", "sales"]
    );
    assert_eq!(b.column(2).as_string::<i32>().value(0), "Smith, Jo");
    // Leading zero keeps postal codes as text.
    assert_eq!(b.column(3).data_type(), &DataType::Utf8);
    assert_eq!(b.column(4).data_type(), &DataType::Float64);
    let t = b
        .column(1)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(
        t.value(0),
        parse_timestamp(
            "2018-11-08 00:00:00",
            &["%Y-%m-%d %H:%M:%S".into()],
            Zone::Utc
        )
        .expect("t")
    );
    // Offsets point past the BOM; the header is line 1.
    let off = b
        .column(b.num_columns() - 2)
        .as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(off.value(0), 3 + 42);
    assert_eq!(end.end_offset, data.len() as u64);
}

#[test]
fn bad_rows_are_quarantined_with_raw_bytes() {
    let data = b"Row ID,Order Date,Qty\n1,1/1/2020,5\n2,notadate,6\n3,1/3/2020\n,1/4/2020,7\n4,1/5/2020,8\n";
    let mut o = opts();
    o.columns.insert("Qty".into(), "int64".into());
    let (rows, bad, _) = run(data, &o, true);
    assert_eq!(rows.iter().map(|d| d.batch.num_rows()).sum::<usize>(), 2);
    assert_eq!(bad.len(), 3);
    assert_eq!(bad[0].raw, b"2,notadate,6");
    assert_eq!(bad[0].line, 3);
    assert!(bad[0].reason.contains("timestamp"), "{}", bad[0].reason);
    assert!(bad[1].reason.contains("expected 3 fields"));
    assert!(bad[2].reason.contains("missing key"));
}

#[test]
fn partial_last_line_waits_unless_final() {
    let data = b"Row ID,Order Date\n1,1/1/2020\n2,1/2/20";
    let (rows, _, end) = run(data, &opts(), false);
    assert_eq!(rows[0].batch.num_rows(), 1);
    assert_eq!(end.end_offset, 29);
    let (rows, bad, end) = run(data, &opts(), true);
    assert_eq!(rows[0].batch.num_rows(), 1);
    // Final: the cut line is a record; `1/2/20` is year 20 AD, which the event-time floor rejects.
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0]
            .reason
            .contains("before the earliest accepted event time"),
        "{}",
        bad[0].reason
    );
    assert_eq!(end.end_offset, data.len() as u64);
}

#[test]
fn over_long_records_are_skipped_and_the_rest_keeps_its_offsets() {
    let mut data = b"Row ID,Order Date,Note\n1,1/1/2020,short\n2,1/2/2020,\"".to_vec();
    let long_start = data.len() - 12;
    // A quoted field with escaped quotes and commas, far over the limit, on one line (a quoted field that
    // spans lines and runs over the limit is cut back to its first line instead: see `resync_tests`).
    // Longer than the parser's 256 KiB buffer, so the recorder has to skip it.
    for i in 0..20000 {
        data.extend(format!("line {i} with a \"\"quote\"\", and a comma ").as_bytes());
    }
    data.extend(b"end\"\r\n3,1/3/2020,after\n\n4,1/4/2020,unquoted");
    let long_end = data.windows(5).position(|w| w == b"end\"\r").expect("end") + 4;
    for _ in 0..3000 {
        data.extend(b" long");
    }
    data.extend(b"\n5,1/5/2020,last\n");
    let mut inp = input("ds/a.csv");
    inp.limits.max_record_bytes = 1000;
    let (rows, bad, end) = run_with(&data, &opts(), &inp);
    assert_eq!(end.end_offset, data.len() as u64);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(bad[0].offset, long_start as u64);
    assert_eq!(bad[0].line, 3);
    assert_eq!(
        bad[1].reason,
        RecordError::TooLong {
            len: 15019,
            max: 1000,
            kept: 4096
        }
        .to_string()
    );
    assert!(
        bad[0]
            .reason
            .contains(&format!("record is {} bytes", long_end - long_start)),
        "{} (want {})",
        bad[0].reason,
        long_end - long_start
    );
    assert_eq!(&bad[0].raw[..16], b"2,1/2/2020,\"line");
    assert_eq!(bad[0].raw.len(), 4096);
    // Line numbers are those of the file: the skipped record does not shift them, and the `\n` of its CRLF
    // counts.
    assert_eq!(bad[1].line, 6);
    let b = &rows[0].batch;
    assert_eq!(b.num_rows(), 3);
    let note = b.column(2).as_string::<i32>();
    assert_eq!(
        (0..3).map(|i| note.value(i)).collect::<Vec<_>>(),
        vec!["short", "after", "last"]
    );
    let lines = b
        .column(b.num_columns() - 3)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let offsets = b
        .column(b.num_columns() - 2)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let after = data.windows(5).position(|w| w == b"3,1/3").expect("row 3");
    let last = data.windows(5).position(|w| w == b"5,1/5").expect("row 5");
    assert_eq!(offsets.value(1), after as i64);
    assert_eq!(offsets.value(2), last as i64);
    assert_eq!(lines.value(1), 4);
    assert_eq!(lines.value(2), 7);
    assert_eq!(bad[1].offset, (after + 18) as u64);
}

#[test]
fn record_key_column_holds_each_rows_key_and_reads_back_to_it() {
    let data = b"Row ID,Order Date,Qty\n1,1/1/2020,5\n2,1/2/2020,6\n";
    let inp = input("ds/a.csv");
    let schema = infer_schema(
        LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
        &opts(),
        "ds",
    )
    .expect("infer");
    let plain = CsvDecoder::new("ds", &opts(), &schema).expect("decoder");
    let dec = CsvDecoder::new("ds", &opts(), &schema)
        .expect("decoder")
        .with_record_key(true);
    assert_eq!(
        dec.schema().fields().len(),
        plain.schema().fields().len() + 1
    );
    let mut rows = Vec::new();
    dec.decode(
        LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src"),
        &inp,
        &mut |item| {
            if let DecodeItem::Rows(d) = item {
                rows.push(d);
            }
            true
        },
    )
    .expect("decode");
    let d = &rows[0];
    let col = d.batch.column_by_name("_record_key").expect("column");
    let col = col.as_string::<i32>();
    assert_eq!(col.len(), 2);
    for (i, k) in d.keys.iter().enumerate() {
        assert_eq!(col.value(i).len(), 32);
        assert_eq!(crate::decode::key_of_record_key(col.value(i)), *k);
    }
    // The key is the hash of the raw key field, as without the column.
    assert_eq!(d.keys[0], key_hash(b"csv", b"1\x1f"));
    assert_ne!(crate::decode::key_of_record_key("not hex"), d.keys[0]);
}

#[test]
fn latin1_fields_decode() {
    let data = b"id;when;city\n1;2020-01-01 10:00:00;M\xe1laga\n";
    let o = CsvOptions {
        delimiter: ';',
        encoding: "latin-1".into(),
        key: vec!["id".into()],
        event_time: "when".into(),
        ..CsvOptions::default()
    };
    let (rows, bad, _) = run(data, &o, true);
    assert!(bad.is_empty());
    assert_eq!(
        rows[0].batch.column(2).as_string::<i32>().value(0),
        "Málaga"
    );
    assert!(rows[0].batch.column(0).is_valid(0));
}
