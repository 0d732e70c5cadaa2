//! Names of the quarantine copies of failed files: the landing path below a directory per batch, each segment
//! shortened to fit every backend's name limit.

/// The longest path segment, in bytes, of a failed file's copy in the quarantine. Local filesystems and HDFS
/// allow 255 bytes per name, and their temporary names for an upload add to it (`#<n>` on local,
/// `.<name>.tmp.<n>` on HDFS): 200 leaves room for both.
const MAX_COPY_SEGMENT_BYTES: usize = 200;

/// Where a failed file is copied: `_quarantine/<dataset>/files/<files_dir>/<its path>` (`b<batch>`, plus the
/// batch token when written in place), with each segment longer
/// than [`MAX_COPY_SEGMENT_BYTES`] shortened (see [`fit_segment`]). The quarantine record keeps the original
/// path.
pub(super) fn quarantine_copy_path(dataset: &str, files_dir: &str, rel: &str) -> String {
    let fitted: Vec<String> = rel.split('/').map(fit_segment).collect();
    format!(
        "_quarantine/{dataset}/files/{files_dir}/{}",
        fitted.join("/")
    )
}

/// `seg` itself when it fits [`MAX_COPY_SEGMENT_BYTES`], else its head (cut at a character boundary), `~`, a
/// hash of the whole name (distinct names stay distinct) and its extension, if short.
fn fit_segment(seg: &str) -> String {
    if seg.len() <= MAX_COPY_SEGMENT_BYTES {
        return seg.to_string();
    }
    let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seg.as_bytes()));
    let ext = seg
        .rfind('.')
        .map(|i| &seg[i..])
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let mut end = MAX_COPY_SEGMENT_BYTES - 1 - hash.len() - ext.len();
    while !seg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~{hash}{ext}", &seg[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_copy_names_fit_the_name_limit_and_stay_distinct() {
        let long_a = format!("{}.csv", "ñ".repeat(125)); // 254 bytes
        let long_b = format!("{}x.csv", "ñ".repeat(124)); // a different 253-byte name
        let long_ext = format!("{}.{}", "a".repeat(200), "e".repeat(40));
        for name in [long_a.as_str(), long_b.as_str(), long_ext.as_str()] {
            let fitted = fit_segment(name);
            assert!(fitted.len() <= MAX_COPY_SEGMENT_BYTES, "{fitted}");
            assert!(fitted.contains('~'), "{fitted}");
        }
        assert!(fit_segment(&long_a).ends_with(".csv"));
        assert_ne!(fit_segment(&long_a), fit_segment(&long_b));
        assert_eq!(fit_segment("ventas año.csv"), "ventas año.csv");
        let path = quarantine_copy_path("sales", "b00000007", &format!("sales/sub/{long_a}"));
        assert!(path.starts_with("_quarantine/sales/files/b00000007/sales/sub/"));
        assert!(path.split('/').all(|s| s.len() <= MAX_COPY_SEGMENT_BYTES));
    }
}
