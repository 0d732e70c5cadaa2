//! Reading and writing the Delta log of one table: replay (log checkpoint, then commit files in order),
//! creation (version 0) and put-if-absent commits with retry on a lost version race.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions};

use super::actions::{
    self, Add, Format, LogLine, MetaData, Protocol, Txn, MIN_READER_VERSION, MIN_WRITER_VERSION,
    PARTITION_COLUMNS,
};
use super::TableError;
use crate::store::StoreLocation;

/// Attempts at committing one batch before giving up: each lost race means another writer committed, so this
/// many in a row only happens under a storm of writers (or a broken put-if-absent).
const MAX_COMMIT_ATTEMPTS: u32 = 200;

/// Upper bound of the random pause before retrying a lost race (spreads writers that collide in lockstep).
const RETRY_JITTER: Duration = Duration::from_millis(20);

/// A Delta table: a root directory (relative to bronze) holding `_delta_log/`.
#[derive(Clone, Debug)]
pub struct DeltaTable {
    bronze: StoreLocation,
    root: String,
}

/// The state of a table at one version: what lander needs to commit and to checkpoint the log.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The version read.
    pub version: u64,
    /// The table's protocol.
    pub protocol: Protocol,
    /// The table's metadata (id, schema, partitioning).
    pub metadata: MetaData,
    /// Last version per `txn` app id.
    pub txns: HashMap<String, Txn>,
    /// Data files in the table, by path.
    pub files: BTreeMap<String, Add>,
}

impl Snapshot {
    /// The last version application `app_id` committed (for lander: the last committed batch id of one
    /// checkpoint), if any.
    pub fn app_version(&self, app_id: &str) -> Option<i64> {
        self.txns.get(app_id).map(|t| t.version)
    }

    fn apply(&mut self, line: LogLine) {
        if let Some(a) = line.add {
            self.files.insert(a.path.clone(), a);
        }
        if let Some(r) = line.remove {
            self.files.remove(&r.path);
        }
        if let Some(t) = line.txn {
            self.txns.insert(t.app_id.clone(), t);
        }
        if let Some(m) = line.meta_data {
            self.metadata = m;
        }
        if let Some(p) = line.protocol {
            self.protocol = p;
        }
    }
}

/// Everything one commit adds: the batch's parts, its `txn`, and a `commitInfo` body.
#[derive(Debug, Clone)]
pub struct Commit {
    /// `add` actions.
    pub adds: Vec<Add>,
    /// `txn`: app id and version (the batch id).
    pub txn: (String, i64),
    /// The `commitInfo` object (lander's version, the batch's inputs).
    pub info: serde_json::Value,
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The batch is the table's version `v`.
    At(u64),
    /// The table already had the batch (its `txn` version is at least the batch's): nothing written.
    Already,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl DeltaTable {
    /// The table at `root` (relative to bronze, e.g. the dataset name).
    pub fn new(bronze: &StoreLocation, root: &str) -> Self {
        Self {
            bronze: bronze.clone(),
            root: root.trim_matches('/').to_string(),
        }
    }

    /// The table root, relative to bronze.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The store path of `name` inside `_delta_log/`.
    fn log_path(&self, name: &str) -> object_store::path::Path {
        self.bronze
            .path(&format!("{}/_delta_log/{name}", self.root))
    }

    fn commit_name(version: u64) -> String {
        format!("{version:020}.json")
    }

    fn store_error(
        &self,
        action: &'static str,
        name: &str,
        source: object_store::Error,
    ) -> TableError {
        TableError::Store {
            action,
            path: self
                .bronze
                .describe(&format!("{}/_delta_log/{name}", self.root)),
            source,
        }
    }

    /// The bytes of log object `name`, or `None` when it does not exist.
    pub(super) async fn read_log(&self, name: &str) -> Result<Option<Bytes>, TableError> {
        let got = match self.bronze.store.get(&self.log_path(name)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_error("read", name, e)),
        };
        got.bytes()
            .await
            .map(Some)
            .map_err(|e| self.store_error("read", name, e))
    }

    /// Writes log object `name` (overwriting: log checkpoints and `_last_checkpoint` only).
    pub(super) async fn write_log(&self, name: &str, bytes: Bytes) -> Result<(), TableError> {
        self.bronze
            .store
            .put(&self.log_path(name), bytes.into())
            .await
            .map_err(|e| self.store_error("write", name, e))?;
        Ok(())
    }

    fn parse_commit(&self, name: &str, bytes: &[u8]) -> Result<Vec<LogLine>, TableError> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(|l| {
                serde_json::from_slice::<LogLine>(l).map_err(|e| TableError::Corrupt {
                    path: self
                        .bronze
                        .describe(&format!("{}/_delta_log/{name}", self.root)),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Reads the table from its log: the newest log checkpoint, then every later commit. `None` when the table
    /// has no version 0.
    ///
    /// # Errors
    /// [`TableError`] when the log cannot be read or is not valid Delta.
    pub async fn load(&self) -> Result<Option<Snapshot>, TableError> {
        let mut snap = Snapshot {
            version: 0,
            protocol: Protocol {
                min_reader_version: 0,
                min_writer_version: 0,
                reader_features: None,
                writer_features: None,
            },
            metadata: MetaData {
                id: String::new(),
                name: None,
                description: None,
                format: Format {
                    provider: "parquet".into(),
                    options: BTreeMap::new(),
                },
                schema_string: String::new(),
                partition_columns: Vec::new(),
                configuration: BTreeMap::new(),
                created_time: None,
            },
            txns: HashMap::new(),
            files: BTreeMap::new(),
        };
        let from = match super::checkpoint::read_latest(self).await? {
            Some((version, lines)) => {
                for l in lines {
                    snap.apply(l);
                }
                snap.version = version;
                version + 1
            }
            None => 0,
        };
        let read = self.replay(&mut snap, from).await?;
        if from == 0 && read == 0 {
            return Ok(None);
        }
        Ok(Some(snap))
    }

    /// Applies commits `from`, `from + 1`, ... until one does not exist; returns how many were read.
    async fn replay(&self, snap: &mut Snapshot, from: u64) -> Result<u64, TableError> {
        let mut v = from;
        loop {
            let name = Self::commit_name(v);
            let Some(bytes) = self.read_log(&name).await? else {
                return Ok(v - from);
            };
            for l in self.parse_commit(&name, &bytes)? {
                snap.apply(l);
            }
            snap.version = v;
            v += 1;
        }
    }

    /// Brings `snap` up to the table's latest version (reads only the commits written since).
    ///
    /// # Errors
    /// [`TableError`] reading the log.
    pub async fn update(&self, snap: &mut Snapshot) -> Result<(), TableError> {
        self.replay(snap, snap.version + 1).await?;
        Ok(())
    }

    /// Creates the table (version 0: `protocol` 1/2 and `metaData` with `schema` plus the partition columns),
    /// or, when another writer created it first, reads it. Returns the snapshot.
    ///
    /// # Errors
    /// [`TableError`]: the store failed, or the schema has a type Delta cannot hold at protocol 1/2.
    pub async fn create(&self, schema: &arrow::datatypes::Schema) -> Result<Snapshot, TableError> {
        self.create_with(schema, &PARTITION_COLUMNS).await
    }

    /// [`DeltaTable::create`] with the partition columns `partitions` (none: the quarantine table).
    ///
    /// # Errors
    /// As [`DeltaTable::create`].
    pub async fn create_with(
        &self,
        schema: &arrow::datatypes::Schema,
        partitions: &[&str],
    ) -> Result<Snapshot, TableError> {
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
        match self.put_if_absent(0, &body).await? {
            true => {
                tracing::info!(table = %self.bronze.describe(&self.root), id = %metadata.id, "created the delta table")
            }
            false => {
                tracing::debug!(table = %self.root, "another writer created the delta table first")
            }
        }
        self.load().await?.ok_or_else(|| TableError::Corrupt {
            path: self.bronze.describe(&format!(
                "{}/_delta_log/{}",
                self.root,
                Self::commit_name(0)
            )),
            message: "version 0 vanished right after it was written".into(),
        })
    }

    /// Writes commit file `version` unless it exists; `Ok(false)` when another writer has that version.
    async fn put_if_absent(
        &self,
        version: u64,
        lines: &[serde_json::Value],
    ) -> Result<bool, TableError> {
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(l.to_string().as_bytes());
            body.push(b'\n');
        }
        let name = Self::commit_name(version);
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
            // S3 answers a lost conditional put with 412 (Precondition), the others with AlreadyExists.
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.store_error("write", &name, e)),
        }
    }

    /// Fails unless lander may write to a table with `snap`'s protocol.
    pub fn check_writable(&self, snap: &Snapshot) -> Result<(), TableError> {
        let p = &snap.protocol;
        if p.min_reader_version > MIN_READER_VERSION || p.min_writer_version > MIN_WRITER_VERSION {
            return Err(TableError::Protocol {
                root: self.bronze.describe(&self.root),
                reader: p.min_reader_version,
                writer: p.min_writer_version,
            });
        }
        Ok(())
    }

    /// Commits `commit` as the next version of the table, retrying at the following version whenever another
    /// writer took it (the snapshot is brought up to date first, and a batch whose `txn` the table already has
    /// is never committed twice). `snap` is the table's state after the commit.
    ///
    /// # Errors
    /// [`TableError`]: the store failed (the commit may or may not exist: the caller asks the table again), or
    /// [`TableError::TooManyConflicts`].
    pub async fn commit(
        &self,
        snap: &mut Snapshot,
        commit: &Commit,
    ) -> Result<Committed, TableError> {
        self.check_writable(snap)?;
        let (app, version) = &commit.txn;
        let now = now_ms();
        let mut info = commit.info.clone();
        if let Some(o) = info.as_object_mut() {
            o.insert("timestamp".into(), now.into());
            o.insert("operation".into(), "WRITE".into());
            o.insert(
                "operationParameters".into(),
                serde_json::json!({"mode": "Append"}),
            );
            o.insert("engineInfo".into(), engine_info().into());
            o.insert("isBlindAppend".into(), true.into());
        }
        let txn = Txn {
            app_id: app.clone(),
            version: *version,
            last_updated: Some(now),
        };
        let mut lines = vec![
            serde_json::json!({ "commitInfo": info }),
            serde_json::json!({ "txn": txn }),
        ];
        lines.extend(commit.adds.iter().map(|a| serde_json::json!({ "add": a })));
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            if snap.app_version(app).is_some_and(|v| v >= *version) {
                return Ok(Committed::Already);
            }
            let v = snap.version + 1;
            if self.put_if_absent(v, &lines).await? {
                for a in &commit.adds {
                    snap.files.insert(a.path.clone(), a.clone());
                }
                snap.txns.insert(app.clone(), txn.clone());
                snap.version = v;
                return Ok(Committed::At(v));
            }
            tracing::debug!(table = %self.root, version = v, attempt, "lost the race for a delta version; retrying");
            let jitter = rand::random::<u64>() % (RETRY_JITTER.as_millis() as u64 + 1);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
            self.update(snap).await?;
            self.check_writable(snap)?;
        }
        Err(TableError::TooManyConflicts {
            root: self.bronze.describe(&self.root),
            attempts: MAX_COMMIT_ATTEMPTS,
        })
    }

    /// Fails unless the table's schema is the one `schema` maps to.
    pub fn check_schema(
        &self,
        snap: &Snapshot,
        schema: &arrow::datatypes::Schema,
    ) -> Result<(), TableError> {
        let batch = actions::schema_string(schema)?;
        let same = serde_json::from_str::<serde_json::Value>(&batch).ok()
            == serde_json::from_str::<serde_json::Value>(&snap.metadata.schema_string).ok();
        if !same {
            return Err(TableError::SchemaMismatch {
                root: self.bronze.describe(&self.root),
                table: snap.metadata.schema_string.clone(),
                batch,
            });
        }
        Ok(())
    }

    /// Writes a log checkpoint of `snap` (when `snap.version` is a multiple of `interval`).
    ///
    /// # Errors
    /// [`TableError`] writing it (the table stays valid without it).
    pub async fn maybe_checkpoint(
        &self,
        snap: &Snapshot,
        interval: u64,
    ) -> Result<bool, TableError> {
        if interval == 0 || snap.version == 0 || !snap.version.is_multiple_of(interval) {
            return Ok(false);
        }
        super::checkpoint::write(self, snap).await?;
        Ok(true)
    }
}

/// `engineInfo` of lander's commits.
fn engine_info() -> String {
    format!("lander/{}", env!("CARGO_PKG_VERSION"))
}

/// A random (version 4) UUID, for `metaData.id`.
pub fn uuid_v4() -> String {
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
mod tests {
    use super::*;
    use crate::sink::{TimeRange, WrittenFile};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn schema() -> Schema {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Schema::new(vec![
            Field::new("event_key", DataType::Utf8, false),
            Field::new("created_at", ts, false),
        ])
    }

    fn part(name: &str, rows: u64) -> Add {
        let f = WrittenFile {
            staging: String::new(),
            final_path: format!("ds/year=2015/month=01/day=01/{name}"),
            rows,
            bytes: 10,
            time_range: Some(TimeRange {
                column: "created_at".into(),
                min: 1_420_070_400_000_000,
                max: 1_420_070_401_000_000,
                nulls: 0,
            }),
        };
        actions::add_of("ds", &f, 1).expect("below the root")
    }

    fn batch(app: &str, version: i64, name: &str) -> Commit {
        Commit {
            adds: vec![part(name, 3)],
            txn: (app.into(), version),
            info: serde_json::json!({"lander": {"batch": version}}),
        }
    }

    #[tokio::test]
    async fn racing_writers_both_commit_and_a_batch_never_commits_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bronze = StoreLocation::open(dir.path().to_str().expect("utf8")).expect("open");
        let table = DeltaTable::new(&bronze, "ds");
        assert!(table.load().await.expect("load").is_none(), "no table yet");
        let mut a = table.create(&schema()).await.expect("create");
        // A second creator finds version 0 taken and reads the table instead of failing.
        let mut b = table.create(&schema()).await.expect("create again");
        assert_eq!(a.metadata.id, b.metadata.id);

        assert_eq!(
            table
                .commit(&mut a, &batch("app-a", 1, "pa1"))
                .await
                .expect("a1"),
            Committed::At(1)
        );
        // B's snapshot is stale: version 1 is taken, so it retries at version 2.
        assert_eq!(
            table
                .commit(&mut b, &batch("app-b", 1, "pb1"))
                .await
                .expect("b1"),
            Committed::At(2)
        );
        // A retried batch that the table already has is not committed again.
        assert_eq!(
            table
                .commit(&mut b, &batch("app-a", 1, "pa1"))
                .await
                .expect("a1 again"),
            Committed::Already
        );
        let s = table.load().await.expect("load").expect("table");
        assert_eq!(s.version, 2);
        assert_eq!(
            (s.app_version("app-a"), s.app_version("app-b")),
            (Some(1), Some(1))
        );
        assert_eq!(s.files.len(), 2);
        assert!(table.check_schema(&s, &schema()).is_ok());
        let other = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        assert!(matches!(
            table.check_schema(&s, &other),
            Err(TableError::SchemaMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn a_log_checkpoint_holds_the_whole_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bronze = StoreLocation::open(dir.path().to_str().expect("utf8")).expect("open");
        let table = DeltaTable::new(&bronze, "ds");
        let mut s = table.create(&schema()).await.expect("create");
        for v in 1..=4 {
            table
                .commit(&mut s, &batch("app", v, &format!("p{v}")))
                .await
                .expect("commit");
            let wrote = table.maybe_checkpoint(&s, 2).await.expect("checkpoint");
            assert_eq!(wrote, v % 2 == 0, "version {v}");
        }
        // Without the commits the checkpoint replaces, the table reads the same from the checkpoint alone.
        let log = dir.path().join("ds/_delta_log");
        for v in 0..=4 {
            std::fs::remove_file(log.join(format!("{v:020}.json"))).expect("remove");
        }
        let back = table.load().await.expect("load").expect("table");
        assert_eq!(back.version, 4);
        assert_eq!(back.app_version("app"), Some(4));
        assert_eq!(back.files, s.files);
        assert_eq!(back.protocol, s.protocol);
        assert_eq!(back.metadata, s.metadata);
    }
}
