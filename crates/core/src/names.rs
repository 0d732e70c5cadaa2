//! The one rule for which names in landing count: a dataset directory or a file whose name fails
//! [`check_name`] is never listed, so nothing may be written under it.
//!
//! `source::listing` and `source::walk` skip such entries, `config` refuses such dataset names, and `fetch`
//! refuses to write such dataset directories or files (a file `run` would ignore forever).

/// Suffixes of names that writers use while a file is still being written (`hdfs dfs -put`, curl, rsync,
/// Flink, our own temporary names): a file with one is never read.
const STAGING_SUFFIXES: [&str; 4] = [".tmp", "._COPYING_", ".part", ".inprogress"];

/// Why a dataset or file name in landing would never be ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name holds a path separator: it is not one path segment.
    #[error("it contains a path separator")]
    PathSeparator,
    /// `.` and `_` prefixes mark hidden or internal entries (dotfiles, `_SUCCESS`, `_temporary`).
    #[error(
        "it starts with {prefix:?}, which marks a hidden entry that the landing listing skips"
    )]
    Hidden {
        /// The first character.
        prefix: char,
    },
    /// A suffix that marks a file still being written.
    #[error("it ends in {suffix:?}, a staging suffix that the landing listing skips")]
    Staging {
        /// The suffix.
        suffix: &'static str,
    },
    /// `#<digits>`: the local object store's staging suffix for an upload in progress.
    #[error(
        "it ends in #<digits>, the local store's staging suffix, which the landing listing skips"
    )]
    StoreStaging,
}

/// Checks that `name` is one path segment that the landing listing reads: not empty, no `/`, not starting with
/// `.` or `_`, and not ending in a staging suffix (`.tmp`, `._COPYING_`, `.part`, `.inprogress`, `#<digits>`).
/// Matching is case-sensitive, as the listing's is.
///
/// # Errors
/// The [`NameError`] saying why the name would be skipped.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.contains('/') {
        return Err(NameError::PathSeparator);
    }
    if let Some(prefix) = name.chars().next().filter(|c| matches!(c, '.' | '_')) {
        return Err(NameError::Hidden { prefix });
    }
    if let Some(suffix) = STAGING_SUFFIXES.into_iter().find(|s| name.ends_with(s)) {
        return Err(NameError::Staging { suffix });
    }
    if name
        .rsplit_once('#')
        .is_some_and(|(_, s)| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NameError::StoreStaging);
    }
    Ok(())
}

/// Whether a listed entry's name (last path segment) is hidden or still being written, so never read.
pub fn is_ignored_name(name: &str) -> bool {
    matches!(
        check_name(name),
        Err(NameError::Hidden { .. } | NameError::Staging { .. } | NameError::StoreStaging)
    )
}

/// The rule that makes a listed name ignored, described for people (`lander explain`), or `None` when the name
/// is read.
pub fn ignored_rule(name: &str) -> Option<String> {
    match check_name(name) {
        Err(NameError::Hidden { prefix }) => Some(format!("hidden name (leading {prefix})")),
        Err(NameError::Staging { suffix }) => Some(format!("temp name ({suffix} suffix)")),
        Err(NameError::StoreStaging) => {
            Some("object-store staging name (#<digits> suffix)".to_string())
        }
        _ => None,
    }
}

/// Whether any segment of a relative path is ignored (a hidden directory hides its files too).
pub fn is_ignored_path(rel: &str) -> bool {
    rel.split('/').any(is_ignored_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_datasets_and_files() {
        for ok in [
            "gharchive",
            "2015-01-01-0.json.gz",
            "a.TMP",
            "x#y",
            "ventas_octubre.csv",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
            assert!(!is_ignored_name(ok), "{ok}");
        }
        for bad in [
            ".env",
            "_x",
            "_SUCCESS",
            "a.part",
            "a.json.gz.tmp",
            "a.csv._COPYING_",
            "a.inprogress",
            "a.csv#3",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
            assert!(is_ignored_name(bad), "{bad}");
        }
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name("a/b"), Err(NameError::PathSeparator));
        assert!(is_ignored_path("ds/_temporary/a.csv"));
        assert!(!is_ignored_path("ds/2015/a.csv"));
    }
}
