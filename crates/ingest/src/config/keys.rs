//! Config keys: which keys `lander.toml` accepts (read from the serde types themselves), "did you mean" hints for
//! unknown ones, and the `LANDER_<KEY>` environment variables that override top-level keys.
//!
//! Takes a parsed TOML table (or the process environment) and produces [`ConfigError::UnknownKey`] with the
//! closest known key, or the table with environment overrides applied. The key lists are the field lists serde
//! derives for [`Config`], [`CsvOptions`] and [`TableOverrides`], so a new field is known here without any list
//! to keep in step.

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::{Config, ConfigError, CsvOptions, TableOverrides};

/// Prefix of the environment variables that override top-level keys (`LANDER_SETTLE_TIME` sets `settle_time`).
pub(crate) const ENV_PREFIX: &str = "LANDER_";

/// `LANDER_*` variables that are not config keys (test and storage knobs read elsewhere); never reported as typos.
const OTHER_ENV: [&str; 5] = [
    "LANDER_STORE_TIMEOUT",
    "LANDER_FAIL_AFTER",
    "LANDER_FAIL_STORE",
    "LANDER_TEST_DATA",
    "LANDER_KILLS",
];

/// Top-level keys that are tables, not values: no environment variable sets them.
const TABLE_KEYS: [&str; 2] = ["storage", "datasets"];

/// Highest normalized Damerau-Levenshtein distance at which a known key is offered as a hint: close enough for
/// a typo or a dropped letter (`settle_tim`), far enough not to suggest nonsense for an unrelated key.
const HINT_MIN_SIMILARITY: f64 = 0.7;

/// The field names serde derives for `T` (a struct), read by asking `T` to deserialize itself from a
/// deserializer that only records the field list it is offered.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Introspect<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("field introspection only"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field introspection only"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the introspecting deserializer refuses to produce a value.
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

/// Every top-level key of `lander.toml`.
pub fn top_level_keys() -> &'static [&'static str] {
    field_names::<Config>()
}

/// Top-level keys that `LANDER_<KEY>` can set (all but the `storage` and `datasets` tables).
pub(crate) fn env_keys() -> impl Iterator<Item = &'static str> {
    top_level_keys()
        .iter()
        .copied()
        .filter(|k| !TABLE_KEYS.contains(k))
}

/// The environment variable that overrides `key`.
pub(crate) fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The closest of `known` to `key`, when it is close enough to be a typo of it.
pub(crate) fn suggest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| {
            let score = strsim::normalized_damerau_levenshtein(&key, &k.to_ascii_lowercase());
            (score, k)
        })
        .filter(|(score, _)| *score >= HINT_MIN_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Checks every key of a parsed `lander.toml`: top-level keys, and the keys of each `[datasets.NAME]` table
/// (`format`, the dataset's table settings, plus the CSV options for a CSV dataset; `[storage]` takes any key).
///
/// # Errors
/// [`ConfigError::UnknownKey`] for the first unknown key, with the closest known key as a hint;
/// [`ConfigError::DatasetKey`] for an unknown `format`, a `gharchive` dataset redeclared with another format, or a
/// CSV option or table setting of the wrong type (at the key's own line of `text`, the file's contents).
pub(crate) fn check_keys(
    path: &std::path::Path,
    text: &str,
    table: &toml::Table,
) -> Result<(), ConfigError> {
    let unknown = |key: String, suggestion: Option<&str>| ConfigError::UnknownKey {
        path: path.to_path_buf(),
        key,
        suggestion: suggestion.map(str::to_string),
    };
    let top = top_level_keys();
    for key in table.keys() {
        if !top.contains(&key.as_str()) {
            return Err(unknown(key.clone(), suggest(key, top.iter().copied())));
        }
    }
    let Some(toml::Value::Table(datasets)) = table.get("datasets") else {
        return Ok(());
    };
    let csv = field_names::<CsvOptions>();
    let table_keys = field_names::<TableOverrides>();
    for (name, ds) in datasets {
        let toml::Value::Table(ds) = ds else { continue };
        check_dataset(path, text, name, ds)?;
        let is_csv = ds.get("format").and_then(toml::Value::as_str) == Some("csv");
        let known: Vec<&str> = std::iter::once("format")
            .chain(table_keys.iter().copied())
            .chain(csv.iter().copied().filter(|_| is_csv))
            .collect();
        for key in ds.keys() {
            if !known.contains(&key.as_str()) {
                // A CSV option under another format is as wrong as a typo; hint among all keys either way.
                let all = std::iter::once("format")
                    .chain(table_keys.iter().copied())
                    .chain(csv.iter().copied());
                return Err(unknown(format!("datasets.{name}.{key}"), suggest(key, all)));
            }
        }
    }
    Ok(())
}

/// The formats a `[datasets.NAME]` table accepts.
const FORMATS: [&str; 2] = ["csv", "gharchive"];

/// Checks the `format` of one dataset table and the type of each table setting and CSV option, before serde's
/// internally tagged enum buffers the table and loses every span but the table's own.
fn check_dataset(
    path: &std::path::Path,
    text: &str,
    name: &str,
    ds: &toml::Table,
) -> Result<(), ConfigError> {
    let err = |key: &str, message: String| ConfigError::DatasetKey {
        path: path.to_path_buf(),
        key: format!("datasets.{name}.{key}"),
        line: key_line(text, name, key),
        message,
    };
    let accepted = FORMATS.map(|f| format!("\"{f}\"")).join(", ");
    let format = match ds.get("format") {
        Some(toml::Value::String(f)) if FORMATS.contains(&f.as_str()) => f.as_str(),
        Some(toml::Value::String(f)) => {
            return Err(err(
                "format",
                format!("unknown format \"{f}\" (accepted: {accepted})"),
            ))
        }
        Some(other) => {
            return Err(err(
                "format",
                format!(
                    "format must be a string ({accepted}), not {}",
                    other.type_str()
                ),
            ))
        }
        None => return Ok(()),
    };
    if name == "gharchive" && format != "gharchive" {
        return Err(err(
            "format",
            format!(
                "`gharchive` is the built-in GH Archive dataset and cannot be redeclared as \"{format}\"; \
                 give this dataset another name (e.g. [datasets.my_{format}]) and land its files under that name"
            ),
        ));
    }
    for (key, value) in ds.iter().filter(|(k, _)| *k != "format") {
        // Alone in a table, a key is checked against its own type; the other options take their defaults.
        let single = toml::Value::Table(std::iter::once((key.clone(), value.clone())).collect());
        let checked = if field_names::<TableOverrides>().contains(&key.as_str()) {
            single.try_into::<TableOverrides>().map(drop)
        } else if format == "csv" {
            single.try_into::<CsvOptions>().map(drop)
        } else {
            continue;
        };
        if let Err(e) = checked {
            let message = e.message().lines().next().unwrap_or_default().to_string();
            if !message.starts_with("unknown field") {
                return Err(err(key, message));
            }
        }
    }
    Ok(())
}

/// The 1-based line of `key = ...` under the `[datasets.NAME]` header of `text`, if written that way.
fn key_line(text: &str, name: &str, key: &str) -> Option<usize> {
    let headers = [
        format!("[datasets.{name}]"),
        format!("[datasets.\"{name}\"]"),
    ];
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = headers.iter().any(|h| t.replace(' ', "") == *h);
            continue;
        }
        let Some(rest) = t.strip_prefix(key) else {
            continue;
        };
        if inside && rest.trim_start().starts_with('=') {
            return Some(i + 1);
        }
    }
    None
}

/// The `LANDER_<KEY>` variables set in the environment: (key, variable, value).
pub fn env_overrides() -> Vec<(&'static str, String, String)> {
    env_keys()
        .filter_map(|k| {
            let var = env_var(k);
            std::env::var(&var).ok().map(|v| (k, var, v))
        })
        .collect()
}

/// `LANDER_*` variables that set no key and are not known knobs either, each with the closest variable that
/// does (likely typos).
pub fn unknown_env_vars() -> Vec<(String, Option<String>)> {
    let known: Vec<String> = env_keys().map(env_var).collect();
    let mut out: Vec<(String, Option<String>)> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(ENV_PREFIX))
        .filter(|k| !known.contains(k) && !OTHER_ENV.contains(&k.as_str()))
        .map(|k| {
            let hint = suggest(&k, known.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .map(str::to_string);
            (k, hint)
        })
        .collect();
    out.sort();
    out
}

/// Applies `LANDER_<KEY>` overrides to a config table: each value is typed like the key's default (integer,
/// boolean, or text for strings and durations).
///
/// # Errors
/// [`ConfigError::Env`] naming the variable whose value does not fit its key.
pub(crate) fn apply_env(
    table: &mut toml::Table,
    overrides: &[(&'static str, String, String)],
) -> Result<Config, ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let mut config = None;
    for (key, var, raw) in overrides {
        let env_err = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        let value = match defaults.get(*key) {
            Some(toml::Value::Integer(_)) => raw
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| env_err(format!("{raw:?} is not a whole number")))?,
            Some(toml::Value::Boolean(_)) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" => toml::Value::Boolean(false),
                _ => return Err(env_err(format!("{raw:?} is not true or false"))),
            },
            _ => toml::Value::String(raw.clone()),
        };
        table.insert((*key).to_string(), value);
        // Deserialize after each variable, so that an error names the variable that caused it.
        config = Some(
            toml::Value::Table(table.clone())
                .try_into::<Config>()
                .map_err(|e| env_err(e.message().to_string()))?,
        );
    }
    match config {
        Some(c) => Ok(c),
        None => toml::Value::Table(table.clone())
            .try_into::<Config>()
            .map_err(|e| ConfigError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_serde_types() {
        let top = top_level_keys();
        assert!(top.contains(&"settle_time") && top.contains(&"max_file_age"));
        assert!(top.contains(&"datasets") && !env_keys().any(|k| k == "datasets"));
        assert!(field_names::<CsvOptions>().contains(&"event_time"));
        assert_eq!(env_var("settle_time"), "LANDER_SETTLE_TIME");
    }

    #[test]
    fn typos_get_the_closest_key() {
        assert_eq!(
            suggest("settle_tim", top_level_keys().iter().copied()),
            Some("settle_time")
        );
        assert_eq!(
            suggest("landig", top_level_keys().iter().copied()),
            Some("landing")
        );
        assert_eq!(suggest("zebra", top_level_keys().iter().copied()), None);
        let text = "[datasets.s]\nformat = 'csv'\nevent_tme = 'x'";
        let t: toml::Table = toml::from_str(text).expect("toml");
        let e = check_keys(std::path::Path::new("l.toml"), text, &t).expect_err("typo");
        assert!(e.to_string().contains("did you mean `event_time`?"), "{e}");
    }

    #[test]
    fn every_format_takes_the_table_settings_checked_at_their_line() {
        let path = std::path::Path::new("l.toml");
        let ok = "[datasets.gharchive]\nformat = 'gharchive'\ncompact_min_files = 0\ncompact_quiet = '1m'\n\
                  [datasets.s]\nformat = 'csv'\nevent_time = 't'\ntarget_file_bytes = 1000\n";
        let t: toml::Table = toml::from_str(ok).expect("toml");
        check_keys(path, ok, &t).expect("known keys");
        let typo = "[datasets.gharchive]\nformat = 'gharchive'\ncompact_min_file = 4";
        let t: toml::Table = toml::from_str(typo).expect("toml");
        let e = check_keys(path, typo, &t).expect_err("typo");
        assert!(
            e.to_string().contains("did you mean `compact_min_files`?"),
            "{e}"
        );
        for format in ["gharchive", "csv"] {
            let bad = format!("[datasets.x]\nformat = '{format}'\ncompact_max_files = 'many'");
            let t: toml::Table = toml::from_str(&bad).expect("toml");
            let e = check_keys(path, &bad, &t).expect_err("wrong type");
            assert!(
                e.to_string()
                    .contains("line 3: `datasets.x.compact_max_files`: invalid type"),
                "{e}"
            );
        }
    }

    #[test]
    fn env_values_are_typed_like_their_keys() {
        let mut t = toml::Table::new();
        let o = vec![
            (
                "max_files_per_batch",
                "LANDER_MAX_FILES_PER_BATCH".to_string(),
                "7".to_string(),
            ),
            (
                "settle_time",
                "LANDER_SETTLE_TIME".to_string(),
                "250ms".to_string(),
            ),
            (
                "latest_first",
                "LANDER_LATEST_FIRST".to_string(),
                "true".to_string(),
            ),
            (
                "max_file_age",
                "LANDER_MAX_FILE_AGE".to_string(),
                "2d".to_string(),
            ),
        ];
        let c = apply_env(&mut t, &o).expect("applies");
        assert_eq!(c.max_files_per_batch, 7);
        assert_eq!(c.settle_time, std::time::Duration::from_millis(250));
        assert!(c.latest_first);
        assert_eq!(
            c.max_file_age,
            Some(std::time::Duration::from_secs(2 * 86_400))
        );
        let bad = vec![(
            "parallelism",
            "LANDER_PARALLELISM".to_string(),
            "many".to_string(),
        )];
        let e = apply_env(&mut toml::Table::new(), &bad).expect_err("not a number");
        assert!(e.to_string().contains("LANDER_PARALLELISM"), "{e}");
    }
}
