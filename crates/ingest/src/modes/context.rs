//! What every step of a run shares: the run's [`Context`], the blocking-task helper, the crash-injection
//! points ([`failpoint`]) and the intent writes. A leaf of `modes`: `batch`, `stage`, `commit` and the rest
//! import it, it imports none of them.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{BatchIntent, CheckpointStore};
use crate::config::Config;
use crate::dedup::index::DedupIndex;
use crate::modes::RunError;
use crate::store::StoreLocation;
use crate::table::Tables;

/// Everything a batch needs, shared by all batches of a run.
#[derive(Clone)]
pub struct Context {
    /// Configuration.
    pub config: Arc<Config>,
    /// Landing.
    pub landing: StoreLocation,
    /// Bronze.
    pub bronze: StoreLocation,
    /// Checkpoint.
    pub checkpoint: CheckpointStore,
    /// Committed dedup keys (run files beside the checkpoint).
    pub dedup: Arc<DedupIndex>,
    /// Decode slots shared by all datasets (`parallelism`).
    pub decode_slots: Arc<Semaphore>,
    /// Fires on shutdown.
    pub cancel: CancellationToken,
    /// Snapshots of the Delta tables this run commits to (`table_format = "delta"`).
    pub tables: Tables,
}

/// Test-only crash injection: with the `failpoints` feature, `LANDER_FAIL_AFTER=<step>` aborts the process
/// right after `step` (`intent`, `staged`, `publishing`, `published`, `runs`, `committed`; for Delta, see
/// `super::delta`: `runs`, `publishing` (intent `Committing`), `published` (data table commit), `quarantined`
/// (quarantine table commit), `committed`).
pub(crate) fn failpoint(step: &str) {
    #[cfg(feature = "failpoints")]
    crate::faults::abort_after(step);
    let _ = step;
}

pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking checkpoint/encode tasks do not panic")
}

/// Durably records the in-flight batch (steps 1 and 3).
pub(super) async fn write_intent(ctx: &Context, intent: &BatchIntent) -> Result<(), RunError> {
    let cp = ctx.checkpoint.clone();
    let i = intent.clone();
    Ok(blocking(move || cp.write_intent(&i)).await?)
}

/// Removes the in-flight batch of `dataset` (rolled back, abandoned, or empty).
pub(super) async fn clear_intent(ctx: &Context, dataset: &str) -> Result<(), RunError> {
    let cp = ctx.checkpoint.clone();
    let ds = dataset.to_string();
    Ok(blocking(move || cp.clear_intent(&ds)).await?)
}
