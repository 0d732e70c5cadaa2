//! Fetch (TEMPORARY STUB so the crate compiles; the fetch helper replaces this whole file).
/// Fetch errors.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {}
/// Stub.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum FetchCommand {
    /// Stub.
    Gharchive,
}
/// Stub.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum GenerateCommand {
    /// Stub.
    Sales,
}
/// Stub.
#[derive(Debug, Default)]
pub struct FetchSummary {
    /// Stub.
    pub failed: usize,
}
impl std::fmt::Display for FetchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stub")
    }
}
/// Stub.
pub async fn run_fetch(
    _c: FetchCommand,
    _t: tokio_util::sync::CancellationToken,
) -> Result<FetchSummary, FetchError> {
    Ok(FetchSummary::default())
}
/// Stub.
pub async fn run_generate(
    _c: GenerateCommand,
    _t: tokio_util::sync::CancellationToken,
) -> Result<(), FetchError> {
    Ok(())
}
