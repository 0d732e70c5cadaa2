//! The binding of a checkpoint to the locations it describes: the landing and bronze it was first used with and,
//! for a Delta bronze, the id (`metaData.id`) of each dataset's table and of its quarantine table.
//!
//! A checkpoint says which landing files are in bronze. Used with another landing it would take same-named files
//! there for rewritten ones and ingest them again; used with another bronze (or a table deleted and recreated)
//! it would skip files that are not in it. So the first run records the binding (key `meta/binding`), and
//! every later run compares it with what it was given: a difference is refused ([`BindingError`], exit 2)
//! unless the run rebinds on purpose. A checkpoint written before bindings existed is bound by its next run.
//!
//! This module only stores the binding and compares it ([`Binding::mismatches`]): the caller says what the
//! locations are (canonical strings) and which table ids it found.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CheckpointStore, Result};

/// The sled key of the binding.
const KEY: &str = "meta/binding";

/// What a checkpoint is bound to. Empty fields are not bound yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The landing location (an absolute local path or a URL).
    pub landing: Option<String>,
    /// The bronze location (an absolute local path or a URL).
    pub bronze: Option<String>,
    /// Per dataset, the `metaData.id` of its Delta table, and per quarantine table (key `_quarantine/<dataset>`)
    /// the id of that one (Delta bronze only).
    #[serde(default)]
    pub(crate) tables: BTreeMap<String, String>,
    /// The worker (`I/N`) this checkpoint ingests as, when it is one of several (`crate::source::assign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) worker: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum BindingValue {
    #[serde(rename = "1")]
    V1(Binding),
}

/// One way in which the given locations differ from the bound ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Another landing.
    Landing {
        /// The bound landing.
        bound: String,
        /// The given one.
        given: String,
    },
    /// Another bronze.
    Bronze {
        /// The bound bronze.
        bound: String,
        /// The given one.
        given: String,
    },
    /// The dataset's Delta table (or its quarantine table) has another id (deleted and recreated), or no longer
    /// exists (`given: None`).
    Table {
        /// The dataset, or `_quarantine/<dataset>` for its quarantine table.
        dataset: String,
        /// The table root.
        root: String,
        /// The bound id.
        bound: String,
        /// The id found, if the table exists.
        given: Option<String>,
    },
    /// Another worker assignment (`I/N`; `None`: every file, a single process).
    Worker {
        /// The bound assignment.
        bound: Option<String>,
        /// The given one.
        given: Option<String>,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Landing { bound, given } => {
                write!(f, "it is bound to landing {bound}, not {given}")
            }
            Mismatch::Bronze { bound, given } => {
                write!(f, "it is bound to bronze {bound}, not {given}")
            }
            Mismatch::Table {
                root,
                bound,
                given: Some(given),
                ..
            } => write!(
                f,
                "it is bound to the delta table {root} with id {bound}, but the table there has id {given} (deleted and recreated?)"
            ),
            Mismatch::Table {
                root,
                bound,
                given: None,
                ..
            } => write!(
                f,
                "it is bound to the delta table {root} with id {bound}, which no longer exists (deleted?)"
            ),
            Mismatch::Worker { bound, given } => {
                let show = |w: &Option<String>| match w {
                    Some(w) => format!("worker {w}"),
                    None => "every file (no worker)".to_string(),
                };
                write!(
                    f,
                    "it was used as {}, not {} (changing the workers is a procedure: see docs/scaling.md)",
                    show(bound),
                    show(given)
                )
            }
        }
    }
}

/// A run against locations other than the bound ones (exit 2).
#[derive(Debug, thiserror::Error)]
#[error(
    "checkpoint {dir} does not belong to these locations: {}; its records would make lander skip or re-ingest \
     files. Use the checkpoint of these locations, or pass --rebind to bind this one to them on purpose",
    .mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct BindingError {
    /// The checkpoint directory.
    pub(crate) dir: String,
    /// Every difference found.
    pub(crate) mismatches: Vec<Mismatch>,
}

impl Binding {
    /// The differences between this binding and the given `landing`, `bronze` and table ids (`tables`: per
    /// dataset, its table root and the id found, `None` when there is no table). Fields not bound yet differ
    /// from nothing.
    pub fn mismatches(
        &self,
        landing: &str,
        bronze: &str,
        tables: &[(String, String, Option<String>)],
    ) -> Vec<Mismatch> {
        let mut out = Vec::new();
        if let Some(bound) = self.landing.as_deref().filter(|b| *b != landing) {
            out.push(Mismatch::Landing {
                bound: bound.to_string(),
                given: landing.to_string(),
            });
        }
        if let Some(bound) = self.bronze.as_deref().filter(|b| *b != bronze) {
            out.push(Mismatch::Bronze {
                bound: bound.to_string(),
                given: bronze.to_string(),
            });
        }
        // Another bronze explains every table difference: name it once.
        if out.iter().any(|m| matches!(m, Mismatch::Bronze { .. })) {
            return out;
        }
        for (ds, root, given) in tables {
            match self.tables.get(ds) {
                Some(bound) if given.as_ref() != Some(bound) => out.push(Mismatch::Table {
                    dataset: ds.clone(),
                    root: root.clone(),
                    bound: bound.clone(),
                    given: given.clone(),
                }),
                _ => {}
            }
        }
        out
    }
}

impl CheckpointStore {
    /// The locations this checkpoint is bound to (empty for a checkpoint never bound).
    ///
    /// # Errors
    /// [`super::CheckpointError::Sled`] / [`super::CheckpointError::Corrupt`].
    pub fn binding(&self) -> Result<Binding> {
        Ok(match self.get_value::<BindingValue>(KEY)? {
            Some(BindingValue::V1(b)) => b,
            None => Binding::default(),
        })
    }

    /// Durably replaces the binding.
    ///
    /// # Errors
    /// [`super::CheckpointError::Sled`].
    pub(crate) fn set_binding(&self, binding: &Binding) -> Result<()> {
        self.put_raw(KEY, &Self::encode(&BindingValue::V1(binding.clone())))?;
        self.flush()
    }

    /// Binds `dataset` to the Delta table with id `id` when it is not bound to a table yet (its first commit).
    ///
    /// # Errors
    /// [`super::CheckpointError::Sled`] / [`super::CheckpointError::Corrupt`].
    pub fn bind_table(&self, dataset: &str, id: &str) -> Result<()> {
        let mut b = self.binding()?;
        if b.tables.contains_key(dataset) {
            return Ok(());
        }
        b.tables.insert(dataset.to_string(), id.to_string());
        self.set_binding(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> Binding {
        Binding {
            landing: Some("/a/landing".into()),
            bronze: Some("/a/bronze".into()),
            tables: [("gharchive".to_string(), "id-1".to_string())].into(),
            worker: None,
        }
    }

    #[test]
    fn same_locations_and_unbound_fields_match() {
        let t = |id: Option<&str>| {
            vec![(
                "gharchive".into(),
                "/a/bronze/gharchive".into(),
                id.map(Into::into),
            )]
        };
        assert!(bound()
            .mismatches("/a/landing", "/a/bronze", &t(Some("id-1")))
            .is_empty());
        assert!(Binding::default()
            .mismatches("/x", "/y", &t(None))
            .is_empty());
        // A dataset with no table bound yet matches any table.
        let other = vec![(
            "sales".into(),
            "/a/bronze/sales".into(),
            Some("id-9".into()),
        )];
        assert!(bound()
            .mismatches("/a/landing", "/a/bronze", &other)
            .is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let t = |id: Option<&str>| {
            vec![(
                "gharchive".into(),
                "/a/bronze/gharchive".into(),
                id.map(Into::into),
            )]
        };
        let m = bound().mismatches("/b/landing", "/a/bronze", &t(Some("id-1")));
        assert_eq!(m.len(), 1);
        assert!(m[0].to_string().contains("/a/landing") && m[0].to_string().contains("/b/landing"));
        let m = bound().mismatches("/a/landing", "/b/bronze", &t(Some("id-2")));
        assert_eq!(
            m.len(),
            1,
            "another bronze is named once, not per table: {m:?}"
        );
        let m = bound().mismatches("/a/landing", "/a/bronze", &t(Some("id-2")));
        assert!(m[0].to_string().contains("id-1") && m[0].to_string().contains("id-2"));
        let m = bound().mismatches("/a/landing", "/a/bronze", &t(None));
        assert!(m[0].to_string().contains("no longer exists"));
    }

    #[test]
    fn binding_round_trips_and_table_binds_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cp = CheckpointStore::open(dir.path()).expect("open");
        assert_eq!(cp.binding().expect("read"), Binding::default());
        cp.set_binding(&bound()).expect("write");
        cp.bind_table("gharchive", "id-other").expect("bind");
        cp.bind_table("sales", "id-s").expect("bind");
        let b = cp.binding().expect("read");
        assert_eq!(b.tables["gharchive"], "id-1");
        assert_eq!(b.tables["sales"], "id-s");
    }
}
