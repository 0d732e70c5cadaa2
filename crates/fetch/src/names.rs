//! File and dataset names that `fetch` writes into landing: sanitized, confined to `<landing>/<dataset>/`, and
//! never a name the landing listing would ignore.

use super::FetchError;

/// Longest accepted file name in bytes; local filesystems allow 255 and the temporary name adds `.`, `.tmp` and
/// the local store's `#<n>` staging suffix.
const MAX_NAME_BYTES: usize = 200;

/// Turns a decoded file name from a URL or a server into a safe single name inside `<landing>/<dataset>/`.
///
/// Refused: empty names, `.`/`..`, anything with a path separator (`/` or `\`, which also rules out absolute
/// paths), NUL bytes, names longer than [`MAX_NAME_BYTES`], and (after sanitizing) any name that the landing
/// listing skips ([`lander_core::names::check_name`]: a leading `_`, a staging suffix such as `.tmp` or `.part`), which
/// `run` would ignore forever. Sanitized: every character other than letters, digits and `.-_+=@,` becomes `_`,
/// and leading dots are dropped (a dotfile would be ignored by the watcher).
pub(crate) fn sanitize_file_name(name: &str, url: &str) -> Result<String, FetchError> {
    let refuse = |reason: &str| FetchError::UnsafeName {
        name: name.to_string(),
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(refuse("the name is empty"));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(refuse("it contains a path separator"));
    }
    if name == "." || name == ".." {
        return Err(refuse("it is a relative path component"));
    }
    if name.contains('\0') {
        return Err(refuse("it contains a NUL byte"));
    }
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '=' | '@' | ',') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        return Err(refuse("nothing is left after removing leading dots"));
    }
    if cleaned.len() > MAX_NAME_BYTES {
        return Err(refuse("it is longer than 200 bytes"));
    }
    // The landing listing's own rule: a name it skips (`_x`, `a.part`, ...) would sit in landing forever.
    lander_core::names::check_name(cleaned).map_err(|e| refuse(&e.to_string()))?;
    Ok(cleaned.to_string())
}

/// Checks that `dataset` is a single safe directory name (it becomes `<landing>/<dataset>/`).
pub(super) fn validate_dataset(dataset: &str) -> Result<(), FetchError> {
    match sanitize_file_name(dataset, "--dataset") {
        Ok(clean) if clean == dataset => Ok(()),
        Ok(clean) => Err(FetchError::InvalidArgument {
            name: "--dataset",
            value: dataset.to_string(),
            reason: format!("must be a plain directory name such as {clean:?}"),
        }),
        Err(FetchError::UnsafeName { reason, .. }) => Err(FetchError::InvalidArgument {
            name: "--dataset",
            value: dataset.to_string(),
            reason,
        }),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_or_refused() {
        let ok = |n: &str| sanitize_file_name(n, "http://x/").expect("accepted");
        assert_eq!(ok("2015-01-01-0.json.gz"), "2015-01-01-0.json.gz");
        assert_eq!(ok("ventas octubre.csv"), "ventas_octubre.csv");
        assert_eq!(ok("transacciones_año.csv"), "transacciones_año.csv");
        assert_eq!(ok(".env"), "env");
        assert_eq!(ok("a..b"), "a..b");
        assert_eq!(ok("C:evil"), "C_evil");
        assert_eq!(ok("x#1"), "x_1");
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "/etc/passwd",
            "..\\windows",
            "a/b",
            "nul\0byte",
            "...",
            "x.tmp",
            "x._COPYING_",
            "a.part",
            "_x.csv",
            " x.csv",
        ] {
            assert!(
                matches!(
                    sanitize_file_name(bad, "http://x/"),
                    Err(FetchError::UnsafeName { .. })
                ),
                "{bad:?} should be refused"
            );
        }
        assert!(sanitize_file_name(&"a".repeat(201), "u").is_err());
    }

    #[test]
    fn dataset_must_be_a_plain_name() {
        assert!(validate_dataset("sales").is_ok());
        assert!(validate_dataset("gh_archive-2015").is_ok());
        assert!(validate_dataset("../x").is_err());
        assert!(validate_dataset("a/b").is_err());
        assert!(validate_dataset(".hidden").is_err());
        assert!(validate_dataset("with space").is_err());
        assert!(validate_dataset("").is_err());
        assert!(validate_dataset("_x").is_err());
        assert!(validate_dataset("x.part").is_err());
    }
}
