//! File and dataset names that `fetch` writes into landing: sanitized, confined to `<landing>/<dataset>/`, and
//! never a name the landing listing would ignore.

use super::FetchError;

/// Longest accepted file name in bytes; local filesystems allow 255 and the temporary name adds `.`, `.tmp` and
/// the local store's `#<n>` staging suffix.
const MAX_NAME_BYTES: usize = 200;

/// Turns a decoded file name from a URL or a server into a safe single name inside `<landing>/<dataset>/`.
///
/// Refused: empty names, `.`/`..`, anything with a path separator (`/` or `\`, which also rules out absolute
/// paths), NUL bytes, names longer than [`MAX_NAME_BYTES`], and names ending in a staging suffix (`.tmp`,
/// `._COPYING_`) that the landing watcher would ignore forever. Sanitized: every character other than letters,
/// digits and `.-_+=@,` becomes `_`, and leading dots are dropped (a dotfile would be ignored by the watcher).
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
    let lower = cleaned.to_ascii_lowercase();
    if lower.ends_with(".tmp") || lower.ends_with("._copying_") {
        return Err(refuse(
            "it ends in a staging suffix that the landing watcher ignores",
        ));
    }
    Ok(cleaned.to_string())
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
}
