//! Integration tests: one binary, one module per user-visible behaviour. They run the real `lander` binary.

mod checkpoint_cmd;
mod common;
mod crash_kill;
mod faulty_storage;
mod fetch;
mod hostile;
mod modes;
mod run_once;
