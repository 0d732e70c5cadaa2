//! Integration tests: one binary, one module per user-visible behaviour. They run the real `lander` binary.

mod common;
mod run_once;
