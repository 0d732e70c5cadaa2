//! `lander config check`: validate `lander.toml` plus `LANDER_*` environment variables plus flags, and print the
//! effective configuration with where each value came from.
//!
//! Takes the same flags as `lander run` and builds the configuration exactly as `run` does ([`load_config`], the
//! run overrides, `validate`), so what it prints is what a run would use. Sources, highest first: `flag` (given on
//! the command line), `env` (`LANDER_<KEY>`), `file` (a key of the config file), `default` (`built-in` for the
//! built-in datasets). An unknown key in the file is an error with the closest known key as a hint (exit 2);
//! `LANDER_*` variables that set nothing are warned about, with a hint when they look like a typo.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{parser::ValueSource, Args, CommandFactory, Subcommand};
use serde::Serialize;

use super::output::{emit, emit_json};
use super::{apply_run_overrides, load_config, Cli, RunArgs};
use crate::config::{keys, Config};

/// Longest value shown whole in the text table.
const TEXT_VALUE_CHARS: usize = 60;

/// `lander config`.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate lander.toml, LANDER_* variables and flags; print the effective value of every key and its source.
    Check(Box<ConfigCheckArgs>),
}

/// `lander config check`.
#[derive(Debug, Args)]
pub(crate) struct ConfigCheckArgs {
    /// Every flag of `lander run`, checked and shown as a run would apply it.
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The report (`--json`).
#[derive(Debug, Serialize)]
pub(crate) struct ConfigReport {
    /// The config file read, null when none (no `-c` and no `./lander.toml`).
    pub(crate) config_file: Option<PathBuf>,
    /// Every key, in file order of the schema.
    pub(crate) values: Vec<ValueJson>,
    /// `LANDER_*` variables that set nothing (with a hint when one looks like a typo).
    pub(crate) warnings: Vec<String>,
}

/// One effective value.
#[derive(Debug, Serialize)]
pub(crate) struct ValueJson {
    /// The key (`settle_time`, `datasets.sales`, `storage.aws_region`).
    pub(crate) key: String,
    /// The value as TOML text (secrets in `storage` masked).
    pub(crate) value: String,
    /// `default`, `built-in`, `file`, `env` or `flag`.
    pub(crate) source: &'static str,
    /// The variable or flag that set it, or the file.
    pub(crate) origin: Option<String>,
}

/// Runs a `lander config` subcommand.
///
/// # Errors
/// Configuration errors (exit 2), stdout failures.
pub(crate) async fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check(a) => check(*a),
    }
}

fn check(a: ConfigCheckArgs) -> anyhow::Result<()> {
    let mut config = load_config(&a.run.locations)?;
    apply_run_overrides(&mut config, &a.run);
    config
        .validate()
        .context("while validating the configuration")?;
    let file = a
        .run
        .locations
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("lander.toml")).filter(|p| p.exists()));
    let file_table: toml::Table = match &file {
        // load_config read and parsed it already; a failure here would have failed there.
        Some(p) => std::fs::read_to_string(p)
            .ok()
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default(),
        None => toml::Table::new(),
    };
    let values = effective_values(&config, &file_table, file.as_ref())?;
    let warnings: Vec<String> = keys::unknown_env_vars()
        .into_iter()
        .map(|(var, hint)| match hint {
            Some(h) => format!("{var} sets nothing (did you mean {h}?)"),
            None => format!("{var} sets nothing"),
        })
        .collect();
    let report = ConfigReport {
        config_file: file,
        values,
        warnings,
    };
    for w in &report.warnings {
        // A failed warning must not fail the command.
        let _ = writeln!(std::io::stderr(), "warning: {w}");
    }
    if a.json {
        return emit_json(&report);
    }
    emit(&render(&report))
}

/// Every key's effective value and where it came from (`file_table`: the config file `file` as parsed), in the
/// order of [`keys::top_level_keys`]; one entry per dataset and per storage option.
fn effective_values(
    config: &Config,
    file_table: &toml::Table,
    file: Option<&PathBuf>,
) -> anyhow::Result<Vec<ValueJson>> {
    let flags = command_line_flags();
    let env = keys::env_overrides();
    let effective = toml::Table::try_from(config).context("while encoding the configuration")?;
    let file_origin = file.map(|p| p.display().to_string());
    let mut values = Vec::new();
    for key in keys::top_level_keys() {
        match *key {
            "datasets" => dataset_values(config, file_table, &file_origin, &mut values),
            "storage" => storage_values(config, &file_origin, &mut values),
            key => {
                let value = effective
                    .get(key)
                    .map_or_else(|| "(none)".to_string(), |v| show_value(key, v));
                let (source, origin) = if let Some(f) = flags.iter().find(|(k, _)| k == key) {
                    ("flag", Some(f.1.clone()))
                } else if let Some((_, var, _)) = env.iter().find(|(k, _, _)| *k == key) {
                    ("env", Some(var.clone()))
                } else if file_table.contains_key(key) {
                    ("file", file_origin.clone())
                } else {
                    ("default", None)
                };
                values.push(ValueJson {
                    key: key.to_string(),
                    value,
                    source,
                    origin,
                });
            }
        }
    }
    Ok(values)
}

/// One entry per dataset: from the config file, or built in.
fn dataset_values(
    config: &Config,
    file_table: &toml::Table,
    file_origin: &Option<String>,
    values: &mut Vec<ValueJson>,
) {
    let in_file = file_table.get("datasets").and_then(toml::Value::as_table);
    for (name, ds) in &config.datasets {
        let from_file = in_file.is_some_and(|t| t.contains_key(name));
        values.push(ValueJson {
            key: format!("datasets.{name}"),
            value: toml::Value::try_from(ds).map_or_else(|e| e.to_string(), |v| v.to_string()),
            source: if from_file { "file" } else { "built-in" },
            origin: from_file.then(|| file_origin.clone()).flatten(),
        });
    }
}

/// One entry per storage option (from the config file), secrets masked.
fn storage_values(config: &Config, file_origin: &Option<String>, values: &mut Vec<ValueJson>) {
    for (k, v) in &config.storage {
        let secret = ["secret", "password", "token", "key_id"]
            .iter()
            .any(|s| k.to_ascii_lowercase().contains(s));
        values.push(ValueJson {
            key: format!("storage.{k}"),
            value: if secret {
                "\"***\"".into()
            } else {
                toml::Value::String(v.clone()).to_string()
            },
            source: "file",
            origin: file_origin.clone(),
        });
    }
}

/// Config keys whose value is a duration (`humantime_serde` in `Config`).
const DURATION_KEYS: [&str; 10] = [
    "settle_time",
    "dedup_horizon",
    "dedup_retention",
    "interval",
    "max_batch_delay",
    "poll_interval",
    "max_file_age",
    "event_time_max_future",
    "partial_line_timeout",
    "compact_quiet",
];

/// A value as TOML text; durations as an operator writes them (`"35d"`), not as humantime re-formats them
/// (`"1month 4days 13h 26m 24s"`).
fn show_value(key: &str, v: &toml::Value) -> String {
    match v.as_str().map(crate::config::parse_duration) {
        Some(Ok(d)) if DURATION_KEYS.contains(&key) => {
            toml::Value::String(super::output::fmt_duration(d)).to_string()
        }
        _ => v.to_string(),
    }
}

/// Config keys given on this command line (`lander config check ...`), with the flag as typed. Flags map one to
/// one onto keys (`--settle-time` sets `settle_time`), so clap's own record of where each value came from
/// answers this for every flag, including ones added later.
fn command_line_flags() -> Vec<(String, String)> {
    let Ok(matches) = Cli::command().try_get_matches_from(std::env::args_os()) else {
        return Vec::new();
    };
    let Some(("config", m)) = matches.subcommand() else {
        return Vec::new();
    };
    let Some(("check", m)) = m.subcommand() else {
        return Vec::new();
    };
    keys::top_level_keys()
        .iter()
        .filter(|k| {
            m.try_contains_id(k).unwrap_or(false)
                && matches!(m.value_source(k), Some(ValueSource::CommandLine))
        })
        .map(|k| (k.to_string(), format!("--{}", k.replace('_', "-"))))
        .collect()
}

fn render(r: &ConfigReport) -> String {
    let mut s = match &r.config_file {
        Some(p) => format!("config file: {}\n", p.display()),
        None => "config file: none (no -c and no ./lander.toml): defaults, LANDER_* variables and flags\n".into(),
    };
    let kw = r
        .values
        .iter()
        .map(|v| v.key.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let vw = r
        .values
        .iter()
        .map(|v| v.value.chars().count().min(TEXT_VALUE_CHARS + 3))
        .max()
        .unwrap_or(0)
        .max(5);
    s += &format!("{:<kw$}  {:<vw$}  SOURCE\n", "KEY", "VALUE");
    for v in &r.values {
        let source = match &v.origin {
            Some(o) => format!("{} ({o})", v.source),
            None => v.source.to_string(),
        };
        // Long values (a dataset's whole table) are cut in the table; --json has them whole.
        let value = match v.value.char_indices().nth(TEXT_VALUE_CHARS) {
            Some((at, _)) => format!("{}...", &v.value[..at]),
            None => v.value.clone(),
        };
        s += &format!("{:<kw$}  {value:<vw$}  {source}\n", v.key);
    }
    s += "ok: the configuration is valid\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key whose default is a duration is listed, and only those: a new duration key must be added.
    #[test]
    fn duration_keys_are_exactly_the_duration_fields() {
        // Optional durations have no default: give one so that the key appears.
        let config = crate::config::Config {
            max_file_age: Some(std::time::Duration::from_secs(7 * 86_400)),
            dedup_retention: Some(std::time::Duration::from_secs(400 * 86_400)),
            ..Default::default()
        };
        let table = toml::Table::try_from(&config).expect("encode");
        let found: Vec<&str> = keys::top_level_keys()
            .iter()
            .copied()
            .filter(|k| {
                table
                    .get(*k)
                    .and_then(toml::Value::as_str)
                    .is_some_and(|v| crate::config::parse_duration(v).is_ok())
            })
            .collect();
        assert_eq!(found, DURATION_KEYS);
        assert_eq!(
            show_value("dedup_horizon", &table["dedup_horizon"]),
            "\"35d\""
        );
        assert_eq!(show_value("max_file_age", &table["max_file_age"]), "\"7d\"");
    }
}
