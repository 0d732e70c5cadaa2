//! Integration tests: one binary, one module per user-visible behaviour. They run the real `lander` binary.

mod backends;
mod checkpoint_cmd;
mod common;
mod config_check;
mod conformance;
mod crash_kill;
mod dashboard;
mod dedup;
mod explain;
mod faulty_storage;
mod fetch;
mod fixtures;
mod gaps;
mod hostile;
mod listing_cost;
mod many_days;
mod modes;
mod operate;
mod quarantine_bound;
mod queries;
mod run_once;
mod stale_temps;
