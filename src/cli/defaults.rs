//! `[default: ...]` in the help of the flags whose default lives in the library, not in clap.
//!
//! `lander run`'s flags, and `--landing`, `--bronze` and `--checkpoint`, override `lander.toml` and the `LANDER_*`
//! variables, so clap holds no default for them: each is an `Option`, `None` when not given. Their help still
//! shows the default, read here from [`Config::default`], the one place it is defined: the structs apply
//! [`location_defaults`] and [`run_defaults`] with `#[command(mut_args(...))]`, after their own arguments.
//!
//! A flag whose default is not a value (`--parallelism`: the number of CPUs, `--worker`: every file) says so in
//! its own help text.

use std::fmt::Display;

use clap::Arg;

use super::output::fmt_duration;
use crate::config::Config;
use crate::fetch::gharchive;

/// Appends ` [default: <value>]` to `arg`'s help, the way clap shows a default of its own.
pub(crate) fn show_default(arg: Arg, value: impl Display) -> Arg {
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    arg.help(format!("{help} [default: {value}]"))
}

/// A byte size in the largest binary unit that holds it exactly (`4GiB`, `256MiB`), as the flags accept it back.
fn fmt_binary_bytes(n: u64) -> String {
    [("GiB", 30), ("MiB", 20), ("KiB", 10)]
        .iter()
        .find(|(_, shift)| n != 0 && n.trailing_zeros() >= *shift)
        .map_or_else(
            || n.to_string(),
            |(unit, shift)| format!("{}{unit}", n >> shift),
        )
}

/// The defaults of [`super::LocationArgs`].
pub(crate) fn location_defaults(arg: Arg) -> Arg {
    let d = Config::default();
    let value = match arg.get_id().as_str() {
        "landing" => d.landing,
        "bronze" => d.bronze,
        "checkpoint" => d.checkpoint.display().to_string(),
        _ => return arg,
    };
    show_default(arg, value)
}

/// The defaults of [`super::RunArgs`]: values of [`Config`], and the `--fetch-*` flags' (the fetch library's, which
/// `run --fetch` starts from). Byte sizes keep the form their help always had: binary units for the
/// budgets, plain byte counts for the limits.
pub(crate) fn run_defaults(arg: Arg) -> Arg {
    let d = Config::default();
    let value = match arg.get_id().as_str() {
        "settle_time" => fmt_duration(d.settle_time),
        "dedup_horizon" => fmt_duration(d.dedup_horizon),
        "dedup_cache_bytes" => fmt_binary_bytes(d.dedup_cache_bytes),
        "max_files_per_batch" => d.max_files_per_batch.to_string(),
        "max_bytes_per_batch" => fmt_binary_bytes(d.max_bytes_per_batch),
        "interval" => fmt_duration(d.interval),
        "max_batch_delay" => fmt_duration(d.max_batch_delay),
        "poll_interval" => fmt_duration(d.poll_interval),
        "clean_source" => d.clean_source,
        "target_file_bytes" => d.target_file_bytes.to_string(),
        // The serde name, as `lander.toml` and the flag spell it.
        "table_format" => format!("{:?}", d.table_format).to_lowercase(),
        "max_record_bytes" => d.max_record_bytes.to_string(),
        "max_file_bytes" => d.max_file_bytes.to_string(),
        "max_decompressed_bytes" => d.max_decompressed_bytes.to_string(),
        "max_decompression_ratio" => d.max_decompression_ratio.to_string(),
        "event_time_min" => d.event_time_min,
        "event_time_max_future" => fmt_duration(d.event_time_max_future),
        "partial_line_timeout" => fmt_duration(d.partial_line_timeout),
        "fetch_base_url" => gharchive::DEFAULT_BASE_URL.to_string(),
        "fetch_poll_interval" => gharchive::DEFAULT_POLL_INTERVAL.to_string(),
        "fetch_from" => {
            let behind = gharchive::FOLLOW_START_BEHIND.to_std().unwrap_or_default();
            format!("the current hour minus {}", fmt_duration(behind))
        }
        _ => return arg,
    };
    show_default(arg, value)
}

/// `--settle-time` of the commands that judge a file as `lander run` does (`explain`, `checkpoint pending`): the
/// config file's value, else [`Config::default`]'s.
pub(crate) fn settle_time_default(arg: Arg) -> Arg {
    if arg.get_id() != "settle_time" {
        return arg;
    }
    let value = fmt_duration(Config::default().settle_time);
    show_default(arg, format!("from the config, {value}"))
}

/// `table vacuum --retain`: [`crate::table::vacuum::DEFAULT_RETENTION`].
pub(crate) fn retain_default(arg: Arg) -> Arg {
    show_default(arg, fmt_duration(crate::table::vacuum::DEFAULT_RETENTION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_bytes_use_the_largest_exact_unit() {
        assert_eq!(fmt_binary_bytes(4 << 30), "4GiB");
        assert_eq!(fmt_binary_bytes(256 << 20), "256MiB");
        assert_eq!(fmt_binary_bytes(2048), "2KiB");
        assert_eq!(fmt_binary_bytes(1536), "1536");
        assert_eq!(fmt_binary_bytes(0), "0");
    }
}
