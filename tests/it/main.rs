//! Integration tests: one binary, one module per user-visible behaviour. They run the real `lander` binary.

mod backends;
mod checkpoint_cmd;
mod common;
mod conformance;
mod dedup;
mod fetch;
mod listing_cost;
mod modes;
mod run_once;
