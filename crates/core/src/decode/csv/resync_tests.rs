//! Unit tests of the resynchronisation after an unbalanced quote (see `records`): wherever a stray quote sits,
//! and whichever limit its runaway field crosses first, only its line is quarantined, with its exact bytes,
//! line and offset, and every other row lands.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use super::*;
use crate::decode::{Limits, LineSource, TOO_LONG_HEAD_BYTES};

/// Sales row `i` (its id is `i`, so the ids that land say which rows landed).
fn row(i: usize) -> String {
    format!(
        "{i},2025-10-{:02} 10:00:00,{},{},Deportes,{},1.50,{}.00,Tarjeta,Completada",
        1 + i % 28,
        100 + i,
        200 + i,
        1 + i % 9,
        3 * (1 + i % 9)
    )
}

/// How a row is made unbalanced.
#[derive(Clone, Copy, Debug)]
enum Stray {
    /// A quote opens the category field.
    Category,
    /// A quote opens the record.
    RowStart,
    /// A quote opens the last field.
    LastField,
}

impl Stray {
    fn apply(self, line: &str) -> String {
        match self {
            Stray::Category => line.replacen(",Deportes,", ",\"Deportes,", 1),
            Stray::RowStart => format!("\"{line}"),
            Stray::LastField => line.replacen(",Completada", ",\"Completada", 1),
        }
    }
}

/// A file of `n` rows where the rows in `bad` carry a stray quote and row `multi` (if any) has a category that
/// legitimately spans three lines. Returns the bytes, the bad lines (exact bytes, 1-based line, offset) and the
/// ids that should land.
struct Input {
    data: Vec<u8>,
    bad: Vec<(Vec<u8>, u64, u64)>,
    good: Vec<i64>,
}

fn input_file(
    n: usize,
    bad: &[(usize, Stray)],
    multi: Option<usize>,
    eol: &str,
    final_eol: bool,
) -> Input {
    let mut data = SALES_HEADER.as_bytes().to_vec();
    data.extend(eol.as_bytes());
    let (mut out_bad, mut good) = (Vec::new(), Vec::new());
    let mut line = 2u64;
    for i in 1..=n {
        let mut text = row(i);
        if let Some((_, s)) = bad.iter().find(|(r, _)| *r == i) {
            text = s.apply(&text);
            out_bad.push((text.as_bytes().to_vec(), line, data.len() as u64));
        } else {
            good.push(i as i64);
        }
        if multi == Some(i) {
            text = text.replacen(",Deportes,", &format!(",\"Deportes{eol}y{eol}Ocio\","), 1);
            line += 2;
        }
        data.extend(text.as_bytes());
        if i < n || final_eol {
            data.extend(eol.as_bytes());
        }
        line += 1;
    }
    Input {
        data,
        bad: out_bad,
        good,
    }
}

const SALES_HEADER: &str = "transaction_id,timestamp,customer_id,product_id,category,quantity,unit_price,total,payment_method,status";

/// Decodes `data` as the `sales` dataset: landed ids, quarantine, where it stopped.
fn decode(
    data: &[u8],
    opts: &CsvOptions,
    limits: Limits,
) -> (Vec<i64>, Vec<QuarantineRecord>, DecodeEnd) {
    decode_growing(data, opts, limits, true)
}

/// [`decode`], of a file that may still grow (`is_final` false).
fn decode_growing(
    data: &[u8],
    opts: &CsvOptions,
    limits: Limits,
    is_final: bool,
) -> (Vec<i64>, Vec<QuarantineRecord>, DecodeEnd) {
    let inp = DecodeInput {
        path: "sales/a.csv".into(),
        start_offset: 0,
        start_line: 0,
        gzip: false,
        is_final,
        ingested_at: 1_800_000_000_000_000,
        file_bytes: data.len() as u64,
        limits,
        continues_line: false,
    };
    let src = || LineSource::new(Box::new(std::io::Cursor::new(data.to_vec())), &inp).expect("src");
    let schema = infer_schema(src(), opts, "sales").expect("infer");
    let dec = CsvDecoder::new("sales", opts, &schema).expect("decoder");
    let (mut ids, mut bad) = (Vec::new(), Vec::new());
    let end = dec
        .decode(src(), &inp, &mut |item| {
            match item {
                DecodeItem::Rows(d) => ids.extend(
                    d.batch
                        .column(0)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                ),
                DecodeItem::Quarantine(q) => bad.extend(q),
            }
            true
        })
        .expect("decode");
    (ids, bad, end)
}

fn check(case: &str, input: &Input, opts: &CsvOptions, limits: Limits) -> DecodeEnd {
    let (ids, bad, end) = decode(&input.data, opts, limits);
    assert_eq!(ids, input.good, "{case}: landed ids");
    let got: Vec<(Vec<u8>, u64, u64)> = bad
        .iter()
        .map(|q| (q.raw.clone(), q.line, q.offset))
        .collect();
    assert_eq!(
        got,
        input.bad,
        "{case}: quarantine {:?}",
        bad.iter().map(|q| &q.reason).collect::<Vec<_>>()
    );
    assert_eq!(end.end_offset, input.data.len() as u64, "{case}: end");
    end
}

#[test]
fn a_stray_quote_costs_only_its_line_wherever_it_is() {
    let opts = CsvOptions::sales();
    let n = 300;
    let placements: Vec<(&str, Vec<(usize, Stray)>)> = vec![
        ("first row", vec![(1, Stray::Category)]),
        ("row 10", vec![(10, Stray::Category)]),
        ("middle", vec![(150, Stray::RowStart)]),
        ("near the end", vec![(297, Stray::Category)]),
        ("last field near the end", vec![(297, Stray::LastField)]),
        ("last row", vec![(n, Stray::Category)]),
        ("last field", vec![(120, Stray::LastField)]),
        (
            "two apart",
            vec![(20, Stray::Category), (200, Stray::LastField)],
        ),
        (
            "two adjacent",
            vec![(40, Stray::Category), (41, Stray::Category)],
        ),
    ];
    for (name, bad) in &placements {
        for eol in ["\n", "\r\n"] {
            for final_eol in [true, false] {
                for multi in [None, Some(60)] {
                    let case =
                        format!("{name}, eol {eol:?}, final eol {final_eol}, multi {multi:?}");
                    let input = input_file(n, bad, multi, eol, final_eol);
                    let end = check(&case, &input, &opts, Limits::default());
                    assert_eq!(end.truncated, 0, "{case}");
                }
            }
        }
    }
}

/// Every row unbalanced: each costs its own line only, and nothing lands.
#[test]
fn a_file_of_stray_quotes_is_quarantined_line_by_line() {
    let n = 500;
    let bad: Vec<(usize, Stray)> = (1..=n).map(|i| (i, Stray::Category)).collect();
    let input = input_file(n, &bad, None, "\n", true);
    check("all rows", &input, &CsvOptions::sales(), Limits::default());
}

/// The three limits a runaway record can cross first (field count, lines, bytes), both when the parser sees
/// the whole file at once and when the file is larger than its read-ahead (the recorder then stops it early).
#[test]
fn each_limit_ends_a_runaway_quote() {
    for n in [300, 6000] {
        for (limit, max_lines, max_bytes) in [
            ("lines", 100, 16 << 20),
            ("bytes", 100_000, 2000),
            // A field of three lines (row 250) still fits.
            ("lines, small", 3, 16 << 20),
        ] {
            let mut opts = CsvOptions::sales();
            opts.max_quoted_lines = max_lines;
            let limits = Limits {
                max_record_bytes: max_bytes,
                ..Limits::default()
            };
            let input = input_file(n, &[(10, Stray::Category)], Some(250), "\n", true);
            let case = format!("{n} rows, {limit}");
            check(&case, &input, &opts, limits);
            let (_, bad, _) = decode(&input.data, &opts, limits);
            let want = match limit {
                "bytes" => "max_record_bytes",
                _ => "max_quoted_lines",
            };
            assert!(bad[0].reason.contains(want), "{case}: {}", bad[0].reason);
        }
    }
    // Near the end, the record the quote makes runs into the end of the file with too few fields.
    let input = input_file(300, &[(298, Stray::Category)], None, "\n", true);
    let (_, bad, _) = decode(&input.data, &CsvOptions::sales(), Limits::default());
    assert!(
        bad[0]
            .reason
            .contains("makes a record of 5 fields over 3 lines (expected 10 fields)"),
        "{}",
        bad[0].reason
    );
}

/// A line over `max_record_bytes` whose quoted field does not close on it: only that line is skipped (its head
/// kept, counted as truncated), not the rest of the file.
#[test]
fn an_over_long_line_with_a_stray_quote_is_skipped_to_its_own_end() {
    let n = 400;
    let mut input = input_file(n, &[], None, "\n", true);
    let long = format!("7,2025-10-01 10:00:00,1,2,\"{}", "x".repeat(300_000));
    let at = input
        .data
        .windows(3)
        .position(|w| w == b"\n7,")
        .expect("row 7")
        + 1;
    let end_of_row = at
        + input.data[at..]
            .iter()
            .position(|b| *b == b'\n')
            .expect("eol");
    input.data.splice(at..end_of_row, long.bytes());
    input.good.retain(|i| *i != 7);
    let limits = Limits {
        max_record_bytes: 1000,
        ..Limits::default()
    };
    let (ids, bad, end) = decode(&input.data, &CsvOptions::sales(), limits);
    assert_eq!(ids, input.good);
    assert_eq!(bad.len(), 1);
    assert_eq!((bad[0].line, bad[0].offset), (8, at as u64));
    assert_eq!(bad[0].raw, long.as_bytes()[..TOO_LONG_HEAD_BYTES].to_vec());
    assert_eq!(end.truncated, 1);
    assert_eq!(end.end_offset, input.data.len() as u64);
}

/// A growing file whose last record is in the middle of a multi-line quoted field (the writer paused there) is
/// not read past the record before it; once the field is complete, the record lands whole.
#[test]
fn a_growing_file_waits_for_an_open_quoted_field() {
    let full = input_file(20, &[], Some(15), "\n", true);
    let text = String::from_utf8(full.data.clone()).expect("utf-8");
    let cut = text.find("\"Deportes\ny\n").expect("the multi-line field") + "\"Deportes\ny\n".len();
    let row15 = text.find("\n15,").expect("row 15") + 1;
    let (ids, bad, end) = decode_growing(
        &full.data[..cut],
        &CsvOptions::sales(),
        Limits::default(),
        false,
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ids, (1..15).collect::<Vec<i64>>());
    assert_eq!(end.end_offset, row15 as u64);
    let (ids, bad, _) = decode_growing(&full.data, &CsvOptions::sales(), Limits::default(), false);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ids, full.good);
}
