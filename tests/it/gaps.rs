//! `lander checkpoint gaps`: three consecutive GH Archive hours are cut from the bundled fixture, the middle one is
//! removed before the run, and the report finds it missing (and only it), with the fetch command that re-tries it.
//! The bundled sample (single hours years apart) gives a few range lines and no fetch of years; a real gap of
//! three hours inside a day gives one range line and the fetch command for exactly those hours.

use std::io::Write;

use serde_json::Value;

use crate::common::data::fixture_lines;
use crate::common::*;

/// Writes `lines` gzipped as `landing/gharchive/<name>`.
fn land_hour(wd: &Workdir, name: &str, lines: &[String]) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in lines {
        writeln!(gz, "{l}").expect("gzip");
    }
    wd.land_bytes("gharchive", name, &gz.finish().expect("gzip"));
}

fn gaps(wd: &Workdir, extra: &[&str]) -> Value {
    let mut args: Vec<String> = vec!["checkpoint".into(), "gaps".into(), "--json".into()];
    args.extend(wd.location_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = wd.run_ok(&refs);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("gaps --json is not JSON: {e}\n{text}"))
}

#[test]
fn gaps_finds_a_removed_hour() {
    let wd = Workdir::new();
    let lines = fixture_lines();
    let third = lines.len() / 3;
    for (h, chunk) in lines.chunks(third).take(3).enumerate() {
        land_hour(&wd, &format!("2015-01-01-{h}.json.gz"), chunk);
    }
    std::fs::remove_file(wd.landing().join("gharchive/2015-01-01-1.json.gz")).expect("remove");
    wd.run_once(&[]);

    let v = gaps(&wd, &[]);
    assert_eq!(v["from"], "2015-01-01T00:00:00Z");
    assert_eq!(v["to"], "2015-01-01T02:00:00Z");
    assert_eq!(v["expected"], 3);
    assert_eq!(v["ingested"], 2);
    assert_eq!(v["missing"], 1);
    assert_eq!(v["failed"], 0);
    // Committed years after the hours ended: both ingested hours are late.
    assert_eq!(v["late"], 2);
    assert_eq!(
        v["ranges"],
        serde_json::json!([{"from": "2015-01-01T01:00:00Z", "to": "2015-01-01T01:00:00Z", "hours": 1, "kind": "missing"}])
    );
    // Missing hours are summarised in `ranges`, not listed one by one.
    assert!(v["hours"]
        .as_array()
        .expect("hours")
        .iter()
        .all(|h| h["state"] != "missing"));
    let landing = wd.landing().display().to_string();
    assert_eq!(
        v["fetch_commands"],
        serde_json::json!([format!(
            "lander fetch gharchive --from 2015-01-01T01 --to 2015-01-01T01 --landing {landing}"
        )])
    );

    // A wider range: the hour before and two after are missing too, re-tried as two runs of hours.
    let v = gaps(&wd, &["--from", "2015-01-01T00", "--to", "2015-01-01-4"]);
    assert_eq!(v["missing"], 3);
    let cmds = v["fetch_commands"].as_array().expect("commands");
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert!(cmds[1]
        .as_str()
        .expect("command")
        .starts_with("lander fetch gharchive --from 2015-01-01T03 --to 2015-01-01T04 "));

    // The text report names the hour and prints the hint.
    let mut args = vec!["checkpoint".to_string(), "gaps".into()];
    args.extend(wd.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = wd.run_ok(&refs);
    assert!(
        text.contains("2015-01-01T01 .. 2015-01-01T01        1  missing\n"),
        "{text}"
    );
    assert!(
        text.contains("total: 1 hour(s) missing in 1 range(s)"),
        "{text}"
    );
    assert!(
        text.contains("hint: lander fetch gharchive --from 2015-01-01T01 --to 2015-01-01T01"),
        "{text}"
    );
}

/// Lands the three hours of the bundled sample (2011-02-15T00, 2013-02-15T00, 2015-01-01T00) under their names.
fn land_bundled_sample(wd: &Workdir) -> Vec<String> {
    let dir = fixtures_landing().join("gharchive");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json.gz"))
        .collect();
    names.sort();
    for n in &names {
        wd.land(&dir.join(n), "gharchive", n);
    }
    names
}

#[test]
fn gaps_of_the_bundled_sample_are_spans_not_expected() {
    let wd = Workdir::new();
    let names = land_bundled_sample(&wd);
    assert_eq!(names.len(), 3, "{names:?}");
    wd.run_once(&[]);

    let v = gaps(&wd, &[]);
    // Hours between the sample hours, computed here from the names: every one is in a span, none is a gap.
    let hours: Vec<chrono::DateTime<chrono::Utc>> = names
        .iter()
        .map(|n| {
            let stem = n.trim_end_matches(".json.gz");
            let (d, h) = stem.rsplit_once('-').expect("hour");
            let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date");
            date.and_hms_opt(h.parse().expect("h"), 0, 0)
                .expect("time")
                .and_utc()
        })
        .collect();
    let between: i64 = hours
        .windows(2)
        .map(|w| (w[1] - w[0]).num_hours() - 1)
        .sum();
    assert_eq!(v["missing"], 0, "{v}");
    assert_eq!(v["not_expected"], between);
    assert_eq!(v["expected"], 3);
    assert_eq!(v["ingested"], 3);
    assert_eq!(v["fetch_commands"], serde_json::json!([]));
    let ranges = v["ranges"].as_array().expect("ranges");
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert!(
        ranges.iter().all(|r| r["kind"] == "not_expected"),
        "{ranges:?}"
    );
    assert_eq!(ranges[0]["from"], "2011-02-15T01:00:00Z");
    assert_eq!(ranges[1]["to"], "2014-12-31T23:00:00Z");

    let mut args = vec!["checkpoint".to_string(), "gaps".into()];
    args.extend(wd.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = wd.run_ok(&refs);
    assert!(text.lines().count() < 15, "a short report:\n{text}");
    assert!(!text.contains("hint: lander fetch"), "{text}");
    assert!(text.contains("not expected"), "{text}");
    assert!(
        text.contains(&format!("{between} hour(s) not expected in 2 span(s)")),
        "{text}"
    );

    // A longer --max-gap counts the spans as gaps again (the user asks for a series).
    let v = gaps(&wd, &["--max-gap", "100000h"]);
    assert_eq!(v["missing"], between);
    assert_eq!(v["fetch_commands"].as_array().expect("commands").len(), 2);
}

#[test]
fn gaps_of_three_hours_inside_a_day_give_one_range_and_one_fetch() {
    let wd = Workdir::new();
    let lines = fixture_lines();
    let chunk = lines.len() / 8;
    // Hours 0..=9 of one day, without 4, 5 and 6.
    for h in (0..10).filter(|h| !(4..=6).contains(h)) {
        let part = &lines[(h % 8) * chunk..(h % 8 + 1) * chunk];
        land_hour(&wd, &format!("2015-01-01-{h}.json.gz"), part);
    }
    wd.run_once(&[]);
    let v = gaps(&wd, &[]);
    assert_eq!(v["missing"], 3);
    assert_eq!(v["not_expected"], 0);
    assert_eq!(v["expected"], 10);
    assert_eq!(
        v["ranges"],
        serde_json::json!([{"from": "2015-01-01T04:00:00Z", "to": "2015-01-01T06:00:00Z", "hours": 3, "kind": "missing"}])
    );
    let landing = wd.landing().display().to_string();
    let cmd = format!(
        "lander fetch gharchive --from 2015-01-01T04 --to 2015-01-01T06 --landing {landing}"
    );
    assert_eq!(v["fetch_commands"], serde_json::json!([cmd]));

    let mut args = vec!["checkpoint".to_string(), "gaps".into()];
    args.extend(wd.location_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = wd.run_ok(&refs);
    let range_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" .. ") && l.ends_with("missing"))
        .collect();
    assert_eq!(
        range_lines,
        ["2015-01-01T04 .. 2015-01-01T06        3  missing"],
        "{text}"
    );
    assert!(text.contains(&format!("hint: {cmd}\n")), "{text}");
    assert!(!text.contains("not expected ("), "{text}");
}
