//! Running as one of N workers: which worker this process is, and the checkpoint's binding to it.
//!
//! Worker `I/N` takes the landing files whose stable hash mod `N` is `I` (`crate::source::assign`; filtered in
//! the listing). Each worker has its own checkpoint, so its `txn` app id (`lander-<dataset>-<writer id>`, the
//! writer id being a random id drawn once per checkpoint) already differs from every other worker's; the worker
//! is written into each commit's `commitInfo` (`lander.worker`) so the log shows who wrote what. The app id
//! deliberately does not contain `I/N`: it must stay the same when `N` changes, because recovery and
//! `checkpoint verify` find a checkpoint's batches in the table by it.
//!
//! A checkpoint remembers the assignment it ingested with ([`bind_worker`]). Another assignment would leave the
//! files it read to another worker while it skips files it never read, so it is refused (exit 2) unless
//! `--rebind`, which is the documented way to change `N` (docs/scaling.md): stop all workers, start the new set
//! with `--rebind`; a file that moves to another worker is read again by it, and the cross-worker dedup check
//! (`super::cross_check`) drops what the table already holds.

use crate::checkpoint::binding::{BindingError, Mismatch};
use crate::modes::RunError;
use crate::source::assign::{AssignError, WorkerSpec};

use super::context::{blocking, Context};

/// The worker of `count` that this host is: from `$HOSTNAME` (set in every Kubernetes container to the pod
/// name), else the system's host name.
///
/// # Errors
/// [`AssignError::Hostname`] when the name does not end in `-<index>` below `count`.
pub fn worker_from_host(count: u32) -> Result<WorkerSpec, AssignError> {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(system_hostname)
        .unwrap_or_default();
    WorkerSpec::from_hostname(&host, count)
}

fn system_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Checks the run's worker assignment against the checkpoint's and records it. A checkpoint that never
/// committed a batch takes any assignment; otherwise another one (including none vs some) fails with
/// [`BindingError`] (exit 2) unless `rebind`.
///
/// # Errors
/// [`BindingError`], checkpoint failures.
pub async fn bind_worker(ctx: &Context, datasets: &[String], rebind: bool) -> Result<(), RunError> {
    let given = ctx.config.worker_spec()?.map(|w| w.to_string());
    let cp = ctx.checkpoint.clone();
    let ds = datasets.to_vec();
    let (mut binding, used) = blocking(move || -> Result<_, RunError> {
        let used = ds
            .iter()
            .map(|d| cp.last_batch_id(d))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .any(|id| id > 0);
        Ok((cp.binding()?, used))
    })
    .await?;
    if binding.worker == given {
        return Ok(());
    }
    if used {
        let mismatch = Mismatch::Worker {
            bound: binding.worker.clone(),
            given: given.clone(),
        };
        if !rebind {
            return Err(BindingError {
                dir: ctx.checkpoint.dir().display().to_string(),
                mismatches: vec![mismatch],
            }
            .into());
        }
        tracing::warn!(checkpoint = %ctx.checkpoint.dir().display(), "--rebind: {mismatch}; ingesting as the given worker from now on");
    }
    binding.worker = given;
    let cp = ctx.checkpoint.clone();
    blocking(move || cp.set_binding(&binding)).await?;
    Ok(())
}

/// The worker the checkpoint at `cp` ingests as (its binding), for read-only commands (`explain`, `checkpoint
/// pending`); `None` for a single process or an unreadable binding.
pub fn bound_worker(cp: &crate::checkpoint::CheckpointStore) -> Option<WorkerSpec> {
    cp.binding().ok()?.worker?.parse().ok()
}
