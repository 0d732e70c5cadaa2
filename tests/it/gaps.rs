//! `lander checkpoint gaps`: three consecutive GH Archive hours are cut from the bundled fixture, the middle one is
//! removed before the run, and the report finds it missing (and only it), with the fetch command that re-tries it.

use std::io::Write;

use serde_json::Value;

use crate::common::*;
use crate::explain::fixture_lines;

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
    let missing: Vec<&Value> = v["hours"]
        .as_array()
        .expect("hours")
        .iter()
        .filter(|h| h["state"] == "missing")
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["hour"], "2015-01-01T01:00:00Z");
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
    assert!(text.contains("2015-01-01T01   missing"), "{text}");
    assert!(
        text.contains("hint: lander fetch gharchive --from 2015-01-01T01 --to 2015-01-01T01"),
        "{text}"
    );
}
