//! lander: an incremental file-landing ingestion daemon.
//!
//! It discovers files that land in a *landing* zone (GH Archive hourly gzip NDJSON, sales CSVs, any CSV declared in
//! `lander.toml`), decodes them to Arrow, drops duplicate records, and writes zstd Parquet partitioned by each
//! record's UTC event date (`year=YYYY/month=MM/day=DD`) into a *bronze* layer, recording in a sled checkpoint what
//! was processed so that every record lands exactly once across restarts and crashes.
//!
//! # Crates
//! The workspace's crate graph is the architecture: a crate can only import from the crates below it, so an import
//! running back up does not compile (docs/layout.md has the tour).
//! - `lander-core` (`crates/core`): the base layers: [`store`], [`decode`], [`dedup`], [`sink`], [`metrics`] (names
//!   and types only) and the landing name rule (`lander_core::names`, also [`source::names`]). No clap, no
//!   configuration file, no checkpoint, no Delta kernel.
//! - `lander-fetch` (`crates/fetch`, [`fetch`]): the side entrance that only *writes into* landing. It depends on
//!   `lander-core` alone: it never reads the config file or the checkpoint ([`cli::fetch`] hands it plain values),
//!   and it compiles in parallel with the Delta kernel.
//! - `lander-ingest` (`crates/ingest`): [`source`] (listing landing), [`checkpoint`], [`config`], [`table`] (Delta
//!   Lake through `delta_kernel`) and [`modes`] (the commit protocol and the run modes).
//! - `lander` (this package): [`cli`], the metrics server and the binary. This library is a facade that re-exports
//!   the member crates under the module names the code always had (`lander::store`, `lander::modes`, ...).
//!
//! Within `lander-ingest`, data still flows one way: `source` -> `checkpoint` -> `table` -> `modes`; `modes` is the
//! only module that runs the stages in order.
#![warn(missing_docs)]
// The API docs are for whoever carries this code on: `scripts/test` builds them with `--document-private-items`,
// where a module doc naming a crate-private function or constant is a working link.
#![allow(rustdoc::private_intra_doc_links)]
// The doc comments of clap arguments are also their `--help` text, where `<landing>/<dataset>` and bare URLs are
// meant literally, not as HTML or links.
#![allow(rustdoc::invalid_html_tags, rustdoc::bare_urls)]

pub use lander_core::{decode, dedup, metrics, sink, store};
pub use lander_fetch as fetch;
#[cfg(feature = "failpoints")]
pub use lander_ingest::faults;
pub use lander_ingest::{checkpoint, config, modes, source, table};

pub mod cli;
