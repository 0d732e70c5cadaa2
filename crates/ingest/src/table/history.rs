//! The history of a table, read from its commit files: each version's time, operation, files and rows added and
//! removed, the batch (`txn`) and inputs lander recorded in `commitInfo.lander`, and schema changes.
//!
//! `delta_kernel` 0.30.1 replays the log into a snapshot but has no history API, so [`read_log`] lists
//! `_delta_log/` through lander's store and parses each `<version: 20 digits>.json` (newline-delimited JSON
//! actions). Read-only. Versions whose commit file is gone (a log cleaned behind a checkpoint by another engine)
//! are simply absent; lander itself never deletes commit files. [`read_log`] is also what `vacuum` reads
//! tombstones from and what `checkpoint rebuild --from-table` reads `commitInfo.lander` from.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::TableError;
use crate::store::StoreLocation;

/// An `add` or `remove` action, as far as history and vacuum need it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileAction {
    /// Path relative to the table root, percent-decoded.
    pub path: String,
    /// Size in bytes, when the action says.
    pub size: Option<i64>,
    /// `numRecords` of its statistics, when the action carries them.
    pub rows: Option<u64>,
    /// `remove.deletionTimestamp` (ms since the epoch).
    pub(crate) deletion_timestamp: Option<i64>,
    /// `dataChange`.
    pub(crate) data_change: bool,
    /// The statistics string (`add.stats`), verbatim.
    #[serde(skip)]
    pub stats: Option<String>,
}

/// One commit file of the log.
#[derive(Debug, Clone)]
pub struct LogCommit {
    /// The version.
    pub version: u64,
    /// `commitInfo`, or `Null` when the commit has none.
    pub(crate) info: serde_json::Value,
    /// `add` actions.
    pub adds: Vec<FileAction>,
    /// `remove` actions.
    pub(crate) removes: Vec<FileAction>,
    /// `txn` actions: (appId, version).
    pub txns: Vec<(String, i64)>,
    /// `metaData.schemaString`, when the commit sets the metadata.
    pub(crate) schema: Option<String>,
    /// Whether the commit sets the protocol.
    pub(crate) protocol: bool,
}

impl LogCommit {
    /// `commitInfo.timestamp` (ms since the epoch).
    pub fn timestamp(&self) -> Option<i64> {
        self.info["timestamp"].as_i64()
    }

    /// lander's object in `commitInfo` (`Null` for commits of other engines).
    pub fn lander(&self) -> &serde_json::Value {
        &self.info["lander"]
    }
}

/// Every commit file of the table at `root` (relative to bronze), oldest first; empty when there is no log.
///
/// # Errors
/// [`TableError::Store`] listing or reading, [`TableError::Corrupt`] for a line that is not JSON.
pub async fn read_log(bronze: &StoreLocation, root: &str) -> Result<Vec<LogCommit>, TableError> {
    let dir = format!("{root}/_delta_log");
    let prefix = bronze.path(&dir);
    let listed: Vec<object_store::ObjectMeta> = bronze
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| TableError::Store {
            action: "list",
            path: bronze.describe(&dir),
            source,
        })?;
    let mut versions = BTreeMap::new();
    for m in listed {
        let name = m.location.filename().unwrap_or_default().to_string();
        if let Some(v) = commit_version(&name) {
            versions.insert(v, m.location);
        }
    }
    let mut out = Vec::with_capacity(versions.len());
    for (version, location) in versions {
        let rel = format!("{dir}/{version:020}.json");
        let bytes = async { bronze.store.get(&location).await?.bytes().await }
            .await
            .map_err(|source| TableError::Store {
                action: "read",
                path: bronze.describe(&rel),
                source,
            })?;
        out.push(
            parse_commit(version, &bytes).map_err(|message| TableError::Corrupt {
                path: bronze.describe(&rel),
                message,
            })?,
        );
    }
    Ok(out)
}

/// The version of a commit file name (`00000000000000000007.json`), `None` for anything else (checkpoints,
/// `_last_checkpoint`, temporaries).
fn commit_version(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn decode_path(p: &str) -> String {
    percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .into_owned()
}

fn file_action(v: &serde_json::Value) -> FileAction {
    let stats = v["stats"].as_str().map(String::from);
    let rows = stats
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|s| s["numRecords"].as_u64());
    FileAction {
        path: decode_path(v["path"].as_str().unwrap_or_default()),
        size: v["size"].as_i64(),
        rows,
        deletion_timestamp: v["deletionTimestamp"].as_i64(),
        data_change: v["dataChange"].as_bool().unwrap_or(true),
        stats,
    }
}

/// Parses one commit file's actions.
fn parse_commit(version: u64, body: &[u8]) -> Result<LogCommit, String> {
    let mut c = LogCommit {
        version,
        info: serde_json::Value::Null,
        adds: Vec::new(),
        removes: Vec::new(),
        txns: Vec::new(),
        schema: None,
        protocol: false,
    };
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if let Some(a) = v.get("add") {
            c.adds.push(file_action(a));
        } else if let Some(r) = v.get("remove") {
            c.removes.push(file_action(r));
        } else if let Some(t) = v.get("txn") {
            if let (Some(app), Some(ver)) = (t["appId"].as_str(), t["version"].as_i64()) {
                c.txns.push((app.to_string(), ver));
            }
        } else if let Some(m) = v.get("metaData") {
            c.schema = m["schemaString"].as_str().map(String::from);
        } else if v.get("protocol").is_some() {
            c.protocol = true;
        } else if let Some(i) = v.get("commitInfo") {
            c.info = i.clone();
        }
    }
    Ok(c)
}

/// One version as `table history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSummary {
    /// The version.
    pub version: u64,
    /// Commit time (ms since the epoch), from `commitInfo.timestamp`.
    pub timestamp: Option<i64>,
    /// `create`, `batch`, `optimize`, `repair`, `convert`, `schema change`, or the commit's own operation
    /// (lowercased) for other engines' commits.
    pub operation: String,
    /// Rows added (`numRecords` of the adds).
    pub rows_added: u64,
    /// Rows removed (`numRecords` of the removes that carry statistics).
    pub rows_removed: u64,
    /// Files added.
    pub files_added: usize,
    /// Files removed.
    pub files_removed: usize,
    /// Bytes added.
    pub(crate) bytes_added: u64,
    /// Bytes removed (removes that state their size).
    pub(crate) bytes_removed: u64,
    /// The `txn` app id of the commit (lander: `lander-<dataset>-<checkpoint writer id>`).
    pub(crate) app_id: Option<String>,
    /// The `txn` version: for lander's commits, the batch id of that checkpoint.
    pub batch: Option<i64>,
    /// The landing files lander read (`commitInfo.lander.inputs[].path`).
    pub inputs: Vec<String>,
    /// The schema change made by this version (a `metaData` action after version 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<SchemaChange>,
}

/// A change of the table's schema.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaChange {
    /// Columns added, with their Delta type.
    pub added: Vec<String>,
    /// Columns gone.
    pub dropped: Vec<String>,
    /// Columns whose type changed (`name: old -> new`).
    pub changed: Vec<String>,
    /// The landing file that caused it, when `commitInfo.lander` names one (`schemaChange.file`, or the only
    /// input of the batch).
    pub cause: Option<String>,
}

/// name -> type of a schema string's fields.
fn fields(schema: &str) -> BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_str(schema).unwrap_or_default();
    v["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f["name"].as_str()?.to_string();
            let ty = match &f["type"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((name, ty))
        })
        .collect()
}

fn schema_change(old: &str, new: &str, info: &serde_json::Value) -> SchemaChange {
    let (a, b) = (fields(old), fields(new));
    let lander = &info["lander"];
    let inputs = lander["inputs"].as_array().cloned().unwrap_or_default();
    let cause = ["schemaChange", "schema_change"]
        .iter()
        .find_map(|k| lander[k]["file"].as_str().or(lander[k]["path"].as_str()))
        .map(String::from)
        .or_else(|| match inputs.as_slice() {
            [one] => one["path"].as_str().map(String::from),
            _ => None,
        });
    SchemaChange {
        added: b
            .iter()
            .filter(|(k, _)| !a.contains_key(*k))
            .map(|(k, t)| format!("{k}: {t}"))
            .collect(),
        dropped: a.keys().filter(|k| !b.contains_key(*k)).cloned().collect(),
        changed: b
            .iter()
            .filter_map(|(k, t)| {
                let old = a.get(k)?;
                (old != t).then(|| format!("{k}: {old} -> {t}"))
            })
            .collect(),
        cause,
    }
}

/// The operation name of a commit (see [`VersionSummary::operation`]).
fn operation(c: &LogCommit, schema_changed: bool) -> String {
    let lander = c.lander();
    let op = lander["operation"]
        .as_str()
        .or(c.info["operation"].as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if c.version == 0 && c.adds.is_empty() && c.schema.is_some() {
        return "create".into();
    }
    if op.contains("optimize") || op.contains("compact") {
        "optimize".into()
    } else if op.contains("fsck") || op.contains("repair") {
        "repair".into()
    } else if op.contains("convert") {
        "convert".into()
    } else if schema_changed && c.adds.is_empty() {
        "schema change".into()
    } else if lander["batch"].is_number() || (op == "write" && !c.txns.is_empty()) {
        if schema_changed {
            "batch + schema change".into()
        } else {
            "batch".into()
        }
    } else if op.is_empty() {
        "unknown".into()
    } else {
        op
    }
}

/// The summaries of `log`'s versions, oldest first.
pub(crate) fn summarize(log: &[LogCommit]) -> Vec<VersionSummary> {
    let mut schema: Option<String> = None;
    let mut out = Vec::with_capacity(log.len());
    for c in log {
        let change = match (&schema, &c.schema) {
            (Some(old), Some(new)) if fields(old) != fields(new) => {
                Some(schema_change(old, new, &c.info))
            }
            _ => None,
        };
        if c.schema.is_some() {
            schema = c.schema.clone();
        }
        let sum = |v: &[FileAction], f: fn(&FileAction) -> u64| v.iter().map(f).sum::<u64>();
        out.push(VersionSummary {
            version: c.version,
            timestamp: c.timestamp(),
            operation: operation(c, change.is_some()),
            rows_added: sum(&c.adds, |a| a.rows.unwrap_or(0)),
            rows_removed: sum(&c.removes, |a| a.rows.unwrap_or(0)),
            files_added: c.adds.len(),
            files_removed: c.removes.len(),
            bytes_added: sum(&c.adds, |a| a.size.unwrap_or(0).max(0) as u64),
            bytes_removed: sum(&c.removes, |a| a.size.unwrap_or(0).max(0) as u64),
            app_id: c.txns.first().map(|t| t.0.clone()),
            batch: c.txns.first().map(|t| t.1),
            inputs: c.lander()["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["path"].as_str().map(String::from))
                .collect(),
            schema_change: change,
        });
    }
    out
}

/// The history of the table at `root`: [`read_log`] then [`summarize`].
///
/// # Errors
/// As [`read_log`].
pub async fn history(
    bronze: &StoreLocation,
    root: &str,
) -> Result<Vec<VersionSummary>, TableError> {
    Ok(summarize(&read_log(bronze, root).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: &str = r#"{"commitInfo":{"timestamp":1,"operation":"CREATE TABLE"}}
{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{}}}
"#;

    #[test]
    fn commits_parse_into_versions_with_rows_and_operations() {
        let v1 = r#"{"commitInfo":{"timestamp":5,"operation":"WRITE","lander":{"batch":1,"inputs":[{"path":"s/a.csv"}]}}}
{"txn":{"appId":"lander-s-1","version":1}}
{"add":{"path":"year=2015/x%20y.parquet","size":10,"stats":"{\"numRecords\":3}","dataChange":true,"partitionValues":{},"modificationTime":5}}
{"add":{"path":"b.parquet","size":20,"stats":"{\"numRecords\":4}","dataChange":true,"partitionValues":{},"modificationTime":5}}
"#;
        let v2 = r#"{"commitInfo":{"timestamp":9,"operation":"OPTIMIZE"}}
{"remove":{"path":"b.parquet","deletionTimestamp":9,"dataChange":false,"size":20,"stats":"{\"numRecords\":4}"}}
{"add":{"path":"c.parquet","size":15,"stats":"{\"numRecords\":4}","dataChange":false,"partitionValues":{},"modificationTime":9}}
"#;
        let v3 = V0.replace(
            r#"\"metadata\":{}}]}"#,
            r#"\"metadata\":{}},{\"name\":\"ch\",\"type\":\"string\",\"nullable\":true,\"metadata\":{}}]}"#,
        );
        let v3 = format!(
            "{{\"commitInfo\":{{\"timestamp\":12,\"operation\":\"WRITE\",\"lander\":{{\"batch\":2,\"inputs\":[{{\"path\":\"s/new.csv\"}}]}}}}}}\n{}",
            v3.lines().nth(2).expect("metaData line")
        );
        let log: Vec<LogCommit> = [V0, v1, v2, &v3]
            .iter()
            .enumerate()
            .map(|(i, b)| parse_commit(i as u64, b.as_bytes()).expect("valid"))
            .collect();
        assert_eq!(log[1].adds[0].path, "year=2015/x y.parquet");
        let h = summarize(&log);
        let ops: Vec<&str> = h.iter().map(|v| v.operation.as_str()).collect();
        assert_eq!(ops, ["create", "batch", "optimize", "schema change"]);
        assert_eq!(
            (h[1].rows_added, h[1].files_added, h[1].bytes_added),
            (7, 2, 30)
        );
        assert_eq!(
            (h[1].app_id.as_deref(), h[1].batch),
            (Some("lander-s-1"), Some(1))
        );
        assert_eq!(h[1].inputs, ["s/a.csv"]);
        assert_eq!((h[2].rows_removed, h[2].files_removed), (4, 1));
        let change = h[3].schema_change.as_ref().expect("a schema change");
        assert_eq!(change.added, ["ch: string"]);
        assert_eq!(change.cause.as_deref(), Some("s/new.csv"));
        assert!(parse_commit(4, b"{not json").is_err());
        assert_eq!(commit_version("00000000000000000012.json"), Some(12));
        assert_eq!(
            commit_version("00000000000000000012.checkpoint.parquet"),
            None
        );
        assert_eq!(commit_version(".00000000000000000012.json.tmp"), None);
    }
}
