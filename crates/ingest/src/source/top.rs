//! Files at the top of landing: they belong to no dataset, so no listing reads them.
//!
//! Takes a landing location and produces the names of the regular files directly below its root (ignored names,
//! such as dotfiles and staging names, left out). The layout is `<landing>/<dataset>/**/<file>`, so such a file
//! is never ingested: [`report_stray_files`] says so once per process with a warning naming it (counted in
//! `lander_listing_skipped_entries_total`), and `checkpoint pending` lists it. Read-only; never fails (a
//! landing that cannot be listed has no stray files to report, and the dataset listings report the fault).

use super::listing::report_fault;
use super::names::is_ignored_name;
use crate::store::StoreLocation;

/// Why a file at the top of landing is not read (for the log, `checkpoint pending` and `explain`).
pub const STRAY_REASON: &str =
    "a file directly in landing belongs to no dataset and is never read: move it into a dataset directory (<landing>/<dataset>/<file>)";

/// The names of the files directly below the landing root, sorted; ignored names are left out.
pub(crate) async fn stray_files(landing: &StoreLocation) -> Vec<String> {
    let mut names = match &landing.local_root {
        Some(root) => {
            let root = root.clone();
            tokio::task::spawn_blocking(move || local_files(&root))
                .await
                .unwrap_or_default()
        }
        None => match landing
            .store
            .list_with_delimiter(Some(&landing.prefix))
            .await
        {
            Ok(l) => l
                .objects
                .iter()
                .filter_map(|m| landing.relative(&m.location))
                .collect(),
            Err(e) => {
                tracing::debug!(landing = %landing.display, error = %e, "cannot list the top of landing");
                Vec::new()
            }
        },
    };
    names.retain(|n| !n.is_empty() && !is_ignored_name(n));
    names.sort();
    names
}

/// Regular files (or symlinks to them) directly in `root`; a name that is not UTF-8 is shown lossily.
fn local_files(root: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Warns once per process about each file at the top of landing ([`STRAY_REASON`]) and returns their names.
pub async fn report_stray_files(landing: &StoreLocation) -> Vec<String> {
    let names = stray_files(landing).await;
    for n in &names {
        report_fault("", n, STRAY_REASON);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_at_the_top_are_stray_and_directories_and_hidden_names_are_not() {
        let (_dir, loc) = crate::source::temp_landing();
        let root = loc.local_root.clone().expect("local");
        std::fs::create_dir_all(root.join("sales")).expect("mkdir");
        std::fs::write(root.join("sales/a.csv"), b"x\n").expect("write");
        std::fs::write(root.join("ventas año.csv"), b"x\n").expect("write");
        std::fs::write(root.join("b.json.gz"), b"x").expect("write");
        std::fs::write(root.join(".hidden"), b"x").expect("write");
        std::fs::write(root.join("c.csv.tmp"), b"x").expect("write");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        assert_eq!(
            rt.block_on(stray_files(&loc)),
            vec!["b.json.gz".to_string(), "ventas año.csv".to_string()]
        );
    }
}
