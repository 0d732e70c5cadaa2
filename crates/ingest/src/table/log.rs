//! One Delta table through `delta_kernel`: snapshots (log replay from the newest log checkpoint), the live files
//! and `txn` versions, put-if-absent commits with a rebuild on a lost version race, and log checkpoints. Only
//! version 0 is written by hand (see the module doc of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::snapshot::SnapshotRef;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::Engine;
use object_store::{PutMode, PutOptions};

use super::actions::{
    self, Add, Format, MetaData, Protocol, MIN_READER_VERSION, MIN_WRITER_VERSION,
    PARTITION_COLUMNS,
};
use super::{kernel, TableError};
use crate::store::StoreLocation;

/// Attempts at committing one batch before giving up: each lost race means another writer committed, so this
/// many in a row only happens under a storm of writers (or a broken put-if-absent).
pub(super) const MAX_COMMIT_ATTEMPTS: u32 = 200;

/// Upper bound of the random pause before retrying a lost race (spreads writers that collide in lockstep).
pub(super) const RETRY_JITTER: Duration = Duration::from_millis(20);

/// A Delta table: a root directory (relative to bronze) holding `_delta_log/`.
#[derive(Clone)]
pub struct DeltaTable {
    pub(super) bronze: StoreLocation,
    pub(super) root: String,
    pub(super) engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for DeltaTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTable")
            .field("bronze", &self.bronze.display)
            .field("root", &self.root)
            .finish()
    }
}

/// The state of a table at one version: what lander needs to commit, recover and verify. Read through the
/// kernel; kept up to date by [`DeltaTable::update`] and [`DeltaTable::commit`].
#[derive(Clone)]
pub struct Snapshot {
    /// The version read.
    pub version: u64,
    /// The table's protocol.
    pub(crate) protocol: Protocol,
    /// The table's metadata (id, schema, partitioning).
    pub(crate) metadata: MetaData,
    /// Data files in the table, by path relative to the table root. Their `stats` hold `numRecords` (the kernel's
    /// scan does not hand back min/max); those lander committed through this snapshot keep all of theirs.
    pub files: BTreeMap<String, Add>,
    /// `txn` versions known at `version` (a cache of the kernel's answers and of this writer's commits).
    txns: HashMap<String, i64>,
    pub(super) kernel: SnapshotRef,
    engine: Arc<dyn Engine>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("protocol", &self.protocol)
            .field("metadata", &self.metadata)
            .field("files", &self.files.len())
            .finish()
    }
}

impl Snapshot {
    /// The last version application `app_id` committed (for lander: the last committed batch id of one
    /// checkpoint), if any. Asks the kernel (`Snapshot::get_app_id_version`: a read of the log since its newest
    /// checkpoint) unless this snapshot already knows; a log that cannot be read counts as "no version", which
    /// makes recovery roll a batch back and re-read its files rather than skip them.
    pub(crate) fn app_version(&self, app_id: &str) -> Option<i64> {
        if let Some(v) = self.txns.get(app_id) {
            return Some(*v);
        }
        match self.kernel.get_app_id_version(app_id, self.engine.as_ref()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(app_id, error = %e, "could not read the txn version from the delta log");
                None
            }
        }
    }

    fn from_kernel(
        kernel: SnapshotRef,
        engine: Arc<dyn Engine>,
        files: BTreeMap<String, Add>,
    ) -> Self {
        let config = kernel.table_configuration();
        let p = config.protocol();
        let features = |f: Option<&[delta_kernel::table_features::TableFeature]>| {
            f.map(|f| f.iter().map(|x| x.as_ref().to_string()).collect())
        };
        let metadata = metadata_of(&kernel);
        let protocol = Protocol {
            min_reader_version: p.min_reader_version(),
            min_writer_version: p.min_writer_version(),
            reader_features: features(p.reader_features()),
            writer_features: features(p.writer_features()),
        };
        Self {
            version: kernel.version(),
            protocol,
            metadata,
            files,
            txns: HashMap::new(),
            kernel,
            engine,
        }
    }
}

/// The `metaData` of the kernel's snapshot `kernel`.
fn metadata_of(kernel: &SnapshotRef) -> MetaData {
    let m = kernel.table_configuration().metadata();
    MetaData {
        id: m.id().to_string(),
        name: m.name().map(String::from),
        description: m.description().map(String::from),
        format: Format {
            provider: m.format_provider().to_string(),
            options: BTreeMap::new(),
        },
        schema_string: m.schema_string().clone(),
        partition_columns: m.partition_columns().to_vec(),
        configuration: m
            .configuration()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created_time: m.created_time(),
    }
}

/// Everything one commit adds: the batch's parts, its `txn`, and a `commitInfo` body.
#[derive(Debug, Clone)]
pub struct Commit {
    /// `add` actions.
    pub(crate) adds: Vec<Add>,
    /// `txn`: app id and version (the batch id).
    pub(crate) txn: (String, i64),
    /// lander's fields of `commitInfo` (a JSON object: `{"lander": {...}}`), merged by the kernel with its own
    /// (timestamp, operation, engineInfo, ...).
    pub(crate) info: serde_json::Value,
    /// The Delta schema (`schemaString`) of the batch's parts, when it may add columns to the table's: the
    /// columns the table lacks are added, nullable, by a `metaData` action in the same commit (checked again
    /// on every attempt, against the snapshot it is built on). `None`: the parts have the table's schema.
    pub(crate) schema: Option<String>,
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The batch is the table's version `v`.
    At(u64),
    /// The table already had the batch (its `txn` version is at least the batch's): nothing written.
    Already,
}

/// How one commit attempt (on the blocking pool) ended.
enum Attempt {
    Done(Committed, Option<SnapshotRef>),
    Lost(u64),
}

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl DeltaTable {
    /// The table at `root` (relative to bronze, e.g. the dataset name).
    pub fn new(bronze: &StoreLocation, root: &str) -> Self {
        Self {
            bronze: bronze.clone(),
            root: root.trim_matches('/').to_string(),
            engine: kernel::engine(bronze),
        }
    }

    /// The table root, relative to bronze.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The table root as messages name it (bronze plus the root).
    pub(super) fn describe(&self) -> String {
        self.bronze.describe(&self.root)
    }

    fn kernel_error(&self, action: &'static str, source: delta_kernel::KernelError) -> TableError {
        TableError::Kernel {
            action,
            root: self.describe(),
            source: Box::new(source),
        }
    }

    pub(super) fn log_path(&self, name: &str) -> object_store::path::Path {
        self.bronze
            .path(&format!("{}/_delta_log/{name}", self.root))
    }

    /// Runs kernel work `f` (synchronous, blocking on the store) on tokio's blocking pool.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        action: &'static str,
        f: impl FnOnce(&dyn Engine) -> Result<T, delta_kernel::KernelError> + Send + 'static,
    ) -> Result<T, TableError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(engine.as_ref()))
            .await
            .map_err(|e| TableError::Corrupt {
                path: self.describe(),
                message: format!("the delta kernel task failed: {e}"),
            })?
            .map_err(|e| self.kernel_error(action, e))
    }

    /// Whether `_delta_log/` holds anything (a table whose log cannot be listed counts as existing, so the
    /// kernel's error is the one reported).
    /// Whether the log holds a version (a commit or a checkpoint), not merely something: a crash or a lost race
    /// while writing version 0 on HDFS leaves the put's temporary (`.00000000000000000000.json.tmp.N`) there.
    async fn has_log(&self) -> bool {
        use futures::StreamExt;
        let prefix = self.log_path("");
        let mut list = self.bronze.store.list(Some(&prefix));
        while let Some(item) = list.next().await {
            let Ok(meta) = item else {
                // A listing that fails says nothing about the table: let the kernel's error stand.
                return true;
            };
            let name = meta.location.filename().unwrap_or_default();
            let version = name.split('.').next().unwrap_or_default();
            if version.len() == 20 && version.bytes().all(|b| b.is_ascii_digit()) {
                return true;
            }
        }
        false
    }

    /// Reads the table from its log through the kernel: the newest log checkpoint, then every later commit.
    /// `None` when the table has no version 0.
    ///
    /// # Errors
    /// [`TableError`] when the log cannot be read or is not valid Delta.
    pub async fn load(&self) -> Result<Option<Snapshot>, TableError> {
        // Asked first: the kernel logs a missing table at ERROR level, which a first run must not print.
        if !self.has_log().await {
            return Ok(None);
        }
        let url =
            kernel::table_url(&self.bronze, &self.root).map_err(|message| TableError::Corrupt {
                path: self.describe(),
                message,
            })?;
        let read = self
            .blocking("read", move |engine| {
                let snap = delta_kernel::Snapshot::builder_for(url.as_str()).build(engine)?;
                let files = kernel::live_files(&snap, engine)?;
                Ok((snap, files))
            })
            .await;
        match read {
            Ok((snap, files)) => Ok(Some(Snapshot::from_kernel(
                snap,
                self.engine.clone(),
                files,
            ))),
            Err(_) if !self.has_log().await => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Brings `snap` up to the table's latest version (the kernel lists only the log entries after it; the
    /// files are replayed again only when other writers committed).
    ///
    /// # Errors
    /// [`TableError`] reading the log.
    pub(crate) async fn update(&self, snap: &mut Snapshot) -> Result<(), TableError> {
        let old = snap.kernel.clone();
        let next = self
            .blocking("read", move |engine| {
                let next = delta_kernel::Snapshot::builder_from(old.clone()).build(engine)?;
                if next.version() == old.version() {
                    return Ok((next, None));
                }
                let files = kernel::live_files(&next, engine)?;
                Ok((next, Some(files)))
            })
            .await?;
        match next {
            (k, None) => snap.kernel = k,
            (k, Some(files)) => *snap = Snapshot::from_kernel(k, self.engine.clone(), files),
        }
        Ok(())
    }

    /// Creates the table (version 0: `protocol` 1/2 and `metaData` with `schema` plus the partition columns),
    /// or, when another writer created it first, reads it. Returns the snapshot.
    ///
    /// Written by hand, put-if-absent: the kernel's table creation (0.30, behind its `internal-api`) always
    /// writes the table-features protocol (reader 3 / writer 7), higher than the 1/2 lander promises readers.
    ///
    /// # Errors
    /// [`TableError`]: the store failed, or the schema has a type Delta cannot hold at protocol 1/2.
    pub(crate) async fn create(
        &self,
        schema: &arrow::datatypes::Schema,
    ) -> Result<Snapshot, TableError> {
        self.create_with(schema, &PARTITION_COLUMNS).await
    }

    /// [`DeltaTable::create`] with the partition columns `partitions` (none: the quarantine table).
    ///
    /// # Errors
    /// As [`DeltaTable::create`].
    pub(crate) async fn create_with(
        &self,
        schema: &arrow::datatypes::Schema,
        partitions: &[&str],
    ) -> Result<Snapshot, TableError> {
        let (protocol, metadata) = version_zero_actions(schema, partitions)?;
        let info = serde_json::json!({"commitInfo": {
            "timestamp": now_ms(),
            "operation": "CREATE TABLE",
            "operationParameters": {"partitionBy": serde_json::to_string(partitions).unwrap_or_default()},
            "engineInfo": engine_info(),
            "isBlindAppend": true,
        }});
        let body = [
            info,
            serde_json::json!({ "protocol": protocol }),
            serde_json::json!({ "metaData": metadata }),
        ];
        if self.put_version_zero(&body).await? {
            tracing::info!(table = %self.describe(), id = %metadata.id, "created the delta table");
        } else {
            tracing::debug!(table = %self.root, "another writer created the delta table first");
        }
        self.load().await?.ok_or_else(|| TableError::Corrupt {
            path: self.describe(),
            message: "version 0 vanished right after it was written".into(),
        })
    }

    /// Writes `_delta_log/00000000000000000000.json` unless it exists; `Ok(false)` when another writer has it.
    pub(super) async fn put_version_zero(
        &self,
        lines: &[serde_json::Value],
    ) -> Result<bool, TableError> {
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(l.to_string().as_bytes());
            body.push(b'\n');
        }
        let name = format!("{:020}.json", 0);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .bronze
            .store
            .put_opts(&self.log_path(&name), Bytes::from(body).into(), opts)
            .await
        {
            Ok(_) => Ok(true),
            // object_store maps S3's 412 on a conditional put to AlreadyExists; Precondition is kept for stores
            // that pass it through.
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(source) => Err(TableError::Store {
                action: "write",
                path: self
                    .bronze
                    .describe(&format!("{}/_delta_log/{name}", self.root)),
                source,
            }),
        }
    }

    /// Fails unless lander may write to a table with `snap`'s protocol.
    pub(crate) fn check_writable(&self, snap: &Snapshot) -> Result<(), TableError> {
        let p = &snap.protocol;
        if p.min_reader_version > MIN_READER_VERSION || p.min_writer_version > MIN_WRITER_VERSION {
            return Err(TableError::Protocol {
                root: self.describe(),
                reader: p.min_reader_version,
                writer: p.min_writer_version,
            });
        }
        Ok(())
    }

    /// One attempt at committing `commit` on top of `kernel` (blocking: runs on the blocking pool).
    fn attempt(
        engine: &dyn Engine,
        kernel: &SnapshotRef,
        commit: &Commit,
    ) -> Result<Attempt, delta_kernel::KernelError> {
        let (app, version) = &commit.txn;
        let rows = |e: String| delta_kernel::KernelError::generic(format!("lander's rows: {e}"));
        if kernel
            .get_app_id_version(app, engine)?
            .is_some_and(|v| v >= *version)
        {
            return Ok(Attempt::Done(Committed::Already, None));
        }
        let (info, info_schema) = kernel::commit_info(&commit.info).map_err(rows)?;
        let added = match &commit.schema {
            Some(batch) => {
                let table = kernel.table_configuration().metadata().schema_string();
                let added = actions::new_columns(table, batch).map_err(|e| {
                    delta_kernel::KernelError::generic(format!("the batch's schema: {e}"))
                })?;
                kernel::struct_fields(added).map_err(rows)?
            }
            None => Vec::new(),
        };
        let mut builder =
            kernel
                .clone()
                .update_table(UpdateTableOperation::Write, engine_info(), true);
        // The kernel refuses a blind append without files, and one that changes the schema; a batch with no
        // data still records its `txn`.
        if !commit.adds.is_empty() && added.is_empty() {
            builder = builder.with_blind_append();
        }
        // Schema evolution: the kernel writes the table's `metaData` (same id) with the columns appended.
        for f in added {
            builder = builder.add_column(f);
        }
        let mut txn = builder
            .with_transaction_id(app.clone(), *version)
            .with_operation_parameters([("mode", Some("Append"))])
            .with_commit_info(info, info_schema)
            .build(engine, Box::new(FileSystemCommitter::new()))?;
        if !commit.adds.is_empty() {
            txn.add_files(kernel::add_files(&commit.adds).map_err(rows)?);
        }
        match txn.commit(engine)? {
            CommitResult::Committed(c) => Ok(Attempt::Done(
                Committed::At(c.commit_version()),
                c.post_commit_snapshot().cloned(),
            )),
            CommitResult::Conflicted(c) => Ok(Attempt::Lost(c.conflict_version())),
            // The commit file may or may not exist: the caller asks the table again.
            CommitResult::Retryable(r) => Err(r.error),
        }
    }

    /// Commits `commit` as the next version of the table through the kernel's transaction (put-if-absent).
    /// When another writer took the version the transaction is rebuilt from a fresh snapshot (the kernel does
    /// not re-base one), after checking the `txn`: a batch the table already has is never committed twice.
    /// `snap` is the table's state after the commit.
    ///
    /// # Errors
    /// [`TableError`]: the store failed (the commit may or may not exist: the caller asks the table again), or
    /// [`TableError::TooManyConflicts`].
    pub(crate) async fn commit(
        &self,
        snap: &mut Snapshot,
        commit: &Commit,
    ) -> Result<Committed, TableError> {
        for _ in 1..=MAX_COMMIT_ATTEMPTS {
            if let Some(done) = self.try_commit(snap, commit).await? {
                return Ok(done);
            }
        }
        Err(self.too_many_conflicts())
    }

    /// The error of a commit that lost `MAX_COMMIT_ATTEMPTS` races in a row.
    pub(crate) fn too_many_conflicts(&self) -> TableError {
        TableError::TooManyConflicts {
            root: self.describe(),
            attempts: MAX_COMMIT_ATTEMPTS,
        }
    }

    /// One attempt of [`DeltaTable::commit`] at version `snap.version + 1`: `None` when another writer took that
    /// version, after a short random pause and with `snap` brought up to the table's latest version (the
    /// caller may look at what was committed meanwhile before it tries again).
    ///
    /// # Errors
    /// As [`DeltaTable::commit`].
    pub(crate) async fn try_commit(
        &self,
        snap: &mut Snapshot,
        commit: &Commit,
    ) -> Result<Option<Committed>, TableError> {
        self.check_writable(snap)?;
        let (app, version) = commit.txn.clone();
        if snap.txns.get(&app).is_some_and(|v| *v >= version) {
            return Ok(Some(Committed::Already));
        }
        let (kernel, c) = (snap.kernel.clone(), commit.clone());
        let outcome = self
            .blocking("commit to", move |engine| {
                Self::attempt(engine, &kernel, &c)
            })
            .await?;
        match outcome {
            Attempt::Done(Committed::Already, _) => {
                snap.txns.insert(app, version);
                Ok(Some(Committed::Already))
            }
            Attempt::Done(Committed::At(v), post) => {
                match post {
                    Some(k) => snap.kernel = k,
                    None => self.update(snap).await?,
                }
                // A commit that added columns changed the metadata the snapshot holds.
                snap.metadata = metadata_of(&snap.kernel);
                for a in &commit.adds {
                    snap.files.insert(a.path.clone(), a.clone());
                }
                snap.version = v;
                snap.txns.insert(app, version);
                Ok(Some(Committed::At(v)))
            }
            Attempt::Lost(v) => {
                tracing::debug!(table = %self.root, version = v, "lost the race for a delta version; retrying");
                let jitter = rand::random::<u64>() % (RETRY_JITTER.as_millis() as u64 + 1);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                self.update(snap).await?;
                // Another writer may have committed this very batch (the same checkpoint elsewhere).
                snap.txns.clear();
                Ok(None)
            }
        }
    }

    /// The names of the columns that parts of schema `schema` add to the table (none: the same schema, in any
    /// order); fails unless they are an evolution of it (every table column, with its type; new ones nullable).
    ///
    /// # Errors
    /// [`TableError::SchemaMismatch`], or [`TableError::UnsupportedType`] for a type Delta cannot hold.
    pub(crate) fn check_schema(
        &self,
        snap: &Snapshot,
        schema: &arrow::datatypes::Schema,
    ) -> Result<Vec<String>, TableError> {
        let batch = actions::schema_string(schema)?;
        let mismatch = |reason: String| TableError::SchemaMismatch {
            root: self.describe(),
            reason,
            table: snap.metadata.schema_string.clone(),
            batch: batch.clone(),
        };
        let added = actions::new_columns(&snap.metadata.schema_string, &batch).map_err(mismatch)?;
        Ok(added
            .iter()
            .map(|f| f["name"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    /// Writes a log checkpoint of `snap` through the kernel's checkpoint writer (classic single-file
    /// `<version>.checkpoint.parquet` plus `_last_checkpoint`) when `snap.version` is a multiple of `interval`,
    /// and moves `snap` onto it, so later reads of the `txn` start from the checkpoint.
    ///
    /// # Errors
    /// [`TableError`] writing it (the table stays valid without it).
    pub(crate) async fn maybe_checkpoint(
        &self,
        snap: &mut Snapshot,
        interval: u64,
    ) -> Result<bool, TableError> {
        if interval == 0 || snap.version == 0 || !snap.version.is_multiple_of(interval) {
            return Ok(false);
        }
        let kernel = snap.kernel.clone();
        let (_, next) = self
            .blocking("checkpoint", move |engine| kernel.checkpoint(engine, None))
            .await?;
        snap.kernel = next;
        Ok(true)
    }
}

/// The `protocol` (1/2) and `metaData` (a new id, `schema` plus the partition columns `partitions`) of a new
/// table's version 0.
///
/// # Errors
/// [`TableError::UnsupportedType`] for a column Delta cannot hold at protocol 1/2.
pub(super) fn version_zero_actions(
    schema: &arrow::datatypes::Schema,
    partitions: &[&str],
) -> Result<(Protocol, MetaData), TableError> {
    let metadata = MetaData {
        id: uuid_v4(),
        name: None,
        description: None,
        format: Format {
            provider: "parquet".into(),
            options: BTreeMap::new(),
        },
        schema_string: actions::schema_string_with(schema, partitions)?,
        partition_columns: partitions.iter().map(|p| p.to_string()).collect(),
        configuration: BTreeMap::new(),
        created_time: Some(now_ms()),
    };
    let protocol = Protocol {
        min_reader_version: MIN_READER_VERSION,
        min_writer_version: MIN_WRITER_VERSION,
        reader_features: None,
        writer_features: None,
    };
    Ok((protocol, metadata))
}

/// `engineInfo` of lander's commits.
pub(super) fn engine_info() -> String {
    format!("lander/{}", env!("CARGO_PKG_VERSION"))
}

/// A random (version 4) UUID, for `metaData.id`.
pub(crate) fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests;
