//! `checkpoint pending`: what the next run would read from landing, and what is still settling.

use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;

use super::table::Table;
use super::{PendingArgs, PendingJson};
use crate::checkpoint::CheckpointStore;
use crate::cli::load_config;
use crate::cli::output::{blocking, emit, emit_json, fmt_time, human_bytes, open_read};
use crate::config::Config;
use crate::source::listing::{
    plan_dataset, plan_listing, Change, LandingFile, PlanOptions, MODIFIED_IN_THE_FUTURE,
};
use crate::store::StoreLocation;

pub(super) async fn pending(a: PendingArgs) -> anyhow::Result<()> {
    let mut config = load_config(&a.common.locations)?;
    if let Some(s) = a.settle_time {
        config.settle_time = s;
    }
    let datasets = chosen_datasets(&config, a.common.dataset.as_ref())?;
    let landing = StoreLocation::open_with(&config.landing, &config.storage)
        .context("while opening landing")?;
    let store = open_read(&config).await?;
    warn_other_landing(&store, &landing).await?;
    let now = Utc::now();
    // A worker's checkpoint lists only its own files: the assignment it is bound to, else the configured one.
    let worker =
        crate::modes::workers::bound_worker(&store).or_else(|| config.worker_spec().ok().flatten());
    let no_settle = PlanOptions {
        settle_time: Duration::ZERO,
        latest_first: false,
        now,
        worker,
        ..crate::modes::plan_options(&config, false)
    };
    let mut found = Found::default();
    if a.common.dataset.is_none() {
        for name in crate::source::top::report_stray_files(&landing).await {
            found
                .skipped
                .push((String::new(), name, crate::source::top::STRAY_REASON.into()));
        }
    }
    for ds in &datasets {
        found
            .list_dataset(&landing, &store, ds, &no_settle, config.settle_time)
            .await?;
    }
    if let (Some(w), true) = (worker, found.other_workers > 0) {
        let _ = writeln!(
            std::io::stderr(),
            "{} file(s) in landing belong to other workers (this checkpoint is worker {w}) and are not listed",
            found.other_workers
        );
    }
    if a.common.json {
        return emit_json(&found.into_json());
    }
    print_skipped(found.skipped)?;
    print_rows(&found.rows, &landing)
}

/// The datasets `--dataset` names (refused when it is not configured), else every configured one.
fn chosen_datasets(config: &Config, dataset: Option<&String>) -> anyhow::Result<Vec<String>> {
    Ok(match dataset {
        Some(d) if !config.datasets.contains_key(d) => {
            return Err(crate::cli::UsageError(format!(
                "--dataset {d}: no such dataset is configured"
            )))
            .context("while choosing datasets")
        }
        Some(d) => vec![d.clone()],
        None => config.datasets.keys().cloned().collect(),
    })
}

/// What `checkpoint pending` found in landing so far.
#[derive(Default)]
struct Found {
    /// Files the next runs will read (ready, settling, or modified in the future).
    rows: Vec<PendingJson>,
    /// (dataset, path, why): entries never read until fixed; files at the top of landing belong to no dataset.
    skipped: Vec<(String, String, String)>,
    /// Files listed but left to other workers.
    other_workers: usize,
}

impl Found {
    /// Lists dataset `ds`: everything the next runs will read (`no_settle`), then what a run now would read
    /// (`settle_time`): the difference is still settling.
    async fn list_dataset(
        &mut self,
        landing: &StoreLocation,
        store: &CheckpointStore,
        ds: &str,
        no_settle: &PlanOptions,
        settle_time: Duration,
    ) -> anyhow::Result<()> {
        let plan = plan_listing(landing, store, ds, no_settle)
            .await
            .with_context(|| format!("while listing {ds} in landing"))?;
        self.skipped.extend(
            plan.skipped
                .into_iter()
                .map(|(p, r)| (ds.to_string(), p, r)),
        );
        self.other_workers += plan.other_workers;
        // With no settle time, only a file modified in the future is not ready: say so, as `run` does.
        self.rows.extend(
            modified_in_the_future(landing, store, ds, plan.not_ready, no_settle.now).await,
        );
        let all = plan.files;
        if all.is_empty() {
            return Ok(());
        }
        let settled = PlanOptions {
            settle_time,
            ..no_settle.clone()
        };
        let ready: HashSet<String> = plan_dataset(landing, store, ds, &settled)
            .await
            .with_context(|| format!("while listing {ds} in landing"))?
            .into_iter()
            .map(|f| f.path)
            .collect();
        self.rows.extend(all.into_iter().map(|f| {
            let ready = ready.contains(&f.path);
            pending_row(f, ready)
        }));
        Ok(())
    }

    /// The rows of `--json`: the files, then the skipped entries.
    fn into_json(self) -> Vec<PendingJson> {
        let mut rows = self.rows;
        rows.extend(
            self.skipped
                .into_iter()
                .map(|(dataset, path, reason)| PendingJson {
                    dataset,
                    path,
                    change: "skipped",
                    size: 0,
                    pending_bytes: 0,
                    start_offset: 0,
                    modified: None,
                    ready: false,
                    reason: Some(reason),
                }),
        );
        rows
    }
}

/// The row of a file the next runs will read; `ready`: a run now would read it (it is not settling).
fn pending_row(f: LandingFile, ready: bool) -> PendingJson {
    PendingJson {
        ready,
        dataset: f.dataset.clone(),
        change: match f.change {
            Change::New => "new",
            Change::Appended => "appended",
            Change::Replaced => "rewritten",
        },
        size: f.size,
        pending_bytes: f.pending_bytes(),
        start_offset: f.start_offset,
        modified: Some(f.modified),
        path: f.path,
        reason: None,
    }
}

/// Prints the entries never read until fixed (a table on stdout, their count on stderr), if any.
fn print_skipped(skipped: Vec<(String, String, String)>) -> anyhow::Result<()> {
    if skipped.is_empty() {
        return Ok(());
    }
    let never = skipped.len();
    let mut t = Table::new(&[("SKIPPED (NEVER READ UNTIL FIXED)", false), ("WHY", false)]);
    // A control character (often why it is skipped) would break the table.
    let shown = |s: String| {
        if s.chars().any(char::is_control) {
            s.escape_debug().to_string()
        } else {
            s
        }
    };
    for (_, path, reason) in skipped {
        t.row(vec![shown(path), shown(reason)]);
    }
    emit(&t.render())?;
    let _ = writeln!(
        std::io::stderr(),
        "{never} entr{} in landing will not be read as {}",
        if never == 1 { "y" } else { "ies" },
        if never == 1 { "it is" } else { "they are" }
    );
    Ok(())
}

/// Prints the files the next runs will read (a table on stdout, totals on stderr), or that nothing is pending.
fn print_rows(rows: &[PendingJson], landing: &StoreLocation) -> anyhow::Result<()> {
    if rows.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "nothing pending in {}",
            landing.describe("")
        );
        return Ok(());
    }
    let future = rows.iter().filter(|r| r.reason.is_some()).count();
    let mut t = Table::new(&[
        ("PATH", false),
        ("CHANGE", false),
        ("SIZE", true),
        ("PENDING", true),
        ("MODIFIED (UTC)", false),
        ("READY", false),
    ]);
    for r in rows {
        t.row(vec![
            r.path.clone(),
            r.change.to_string(),
            human_bytes(r.size),
            human_bytes(r.pending_bytes),
            r.modified.map(fmt_time).unwrap_or_default(),
            match (r.ready, r.reason.is_some()) {
                (true, _) => "yes",
                (false, true) => "no: modified in the future",
                (false, false) => "settling",
            }
            .to_string(),
        ]);
    }
    emit(&t.render())?;
    if future > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "{future} file(s) {MODIFIED_IN_THE_FUTURE}"
        );
    }
    let total: u64 = rows.iter().map(|r| r.pending_bytes).sum();
    let _ = writeln!(
        std::io::stderr(),
        "{} file(s), {} to read",
        rows.len(),
        human_bytes(total)
    );
    Ok(())
}

/// Rows for files not ready with no settle time (`not_ready`, landing-relative): those whose modification time
/// lies after `now`. They never settle by age, so they are not called settling; `reason` says what they are.
async fn modified_in_the_future(
    landing: &StoreLocation,
    store: &CheckpointStore,
    ds: &str,
    not_ready: Vec<String>,
    now: chrono::DateTime<Utc>,
) -> Vec<PendingJson> {
    use object_store::ObjectStoreExt as _;
    let mut rows = Vec::new();
    for rel in not_ready {
        let Ok(meta) = landing.store.head(&landing.path(&rel)).await else {
            continue;
        };
        if meta.last_modified <= now {
            continue;
        }
        let known = matches!(store.file(ds, &rel), Ok(Some(_)));
        rows.push(PendingJson {
            dataset: ds.to_string(),
            change: if known { "rewritten" } else { "new" },
            size: meta.size,
            pending_bytes: meta.size,
            start_offset: 0,
            modified: Some(meta.last_modified),
            ready: false,
            reason: Some(MODIFIED_IN_THE_FUTURE.to_string()),
            path: rel,
        });
    }
    rows
}

/// Says on stderr when the checkpoint is bound to another landing: the list then compares this landing with the
/// records of the other one (and `run` would refuse the pair without `--rebind`). Bronze is not looked at here.
async fn warn_other_landing(
    store: &crate::checkpoint::CheckpointStore,
    landing: &StoreLocation,
) -> anyhow::Result<()> {
    let cp = store.clone();
    let bound = blocking(move || cp.binding())
        .await
        .context("while reading the checkpoint's binding")?;
    let given = crate::modes::binding::location_key(landing);
    let bronze = bound.bronze.clone().unwrap_or_default();
    for m in bound.mismatches(&given, &bronze, &[]) {
        let _ = writeln!(
            std::io::stderr(),
            "warning: checkpoint {} does not belong to this landing: {m}; what follows compares {given} with the \
             records of the other landing, and `lander run` refuses this pair (exit 2) unless --rebind",
            store.dir().display()
        );
    }
    Ok(())
}
