//! lander's ingestion: from files in landing to committed bronze tables, exactly once.
//!
//! - [`source`]: listing landing, readiness, fingerprints, watching for new files (the name rule itself is
//!   `lander_core::names`, re-exported as `source::names`).
//! - [`checkpoint`]: the sled store of processed files, committed batches, the in-flight intent and the dedup
//!   watermark. `source` reads it; only `modes` writes it.
//! - [`config`]: `lander.toml` plus overrides.
//! - [`table`]: bronze datasets as Delta Lake tables through `delta_kernel` over lander's stores.
//! - [`modes`]: the scheduler (`once`, `available-now`, `micro-batch`, `continuous`) and the commit protocol; the
//!   only module that runs the stages in order.
//! - `faults` (feature `failpoints` only): storage fault injection for tests.
//!
//! It builds on `lander-core` (store, decode, dedup, sink, metrics), which is re-exported inside this crate under
//! the same module names, and knows nothing of `lander-fetch` or the command line.
#![warn(missing_docs)]
// The API docs are for whoever carries this code on: `scripts/test` builds them with `--document-private-items`,
// where a module doc naming a crate-private function or constant is a working link.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) use lander_core::{decode, dedup, metrics, sink, store};

pub mod checkpoint;
pub mod config;
#[cfg(feature = "failpoints")]
pub mod faults;
pub mod modes;
pub mod source;
pub mod table;
