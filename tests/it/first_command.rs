//! The README's first command and the defaults every later command uses name one landing: after the first command,
//! `checkpoint pending` and a second `run` (no location flags, `./lander.toml` as in the README) find nothing to do.
//! The command is read from the README itself, so the test follows the README when it changes.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// The first `cargo run --release -- ...` line of the README's "The two commands" block.
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let block = readme
        .split("## The two commands")
        .nth(1)
        .expect("a 'The two commands' section");
    block
        .lines()
        .find(|l| l.contains("cargo run --release --"))
        .expect("a first command")
        .trim()
        .to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

fn sh(dir: &Path, script: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("spawn sh")
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Messages such as "nothing pending" go to stderr, results to stdout: read both.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_first_command_and_the_later_defaults_name_one_landing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = tempfile::tempdir().expect("tempdir");
    // What a fresh clone has: lander.toml, the bundled fixtures and the empty layers/ and checkpoints/.
    std::fs::copy(root.join("lander.toml"), repo.path().join("lander.toml")).expect("lander.toml");
    copy_dir(
        &root.join("tests/fixtures"),
        &repo.path().join("tests/fixtures"),
    );
    for d in ["layers/landing", "layers/bronze", "checkpoints"] {
        std::fs::create_dir_all(repo.path().join(d)).expect("mkdir");
    }
    let first = readme_first_command().replace("cargo run --release --", lander_bin());
    let out = ok(&sh(repo.path(), &first), &first);
    assert!(
        out.contains("batch"),
        "the first command committed nothing:\n{out}"
    );
    assert!(
        count_rows(&repo.path().join("layers/bronze/gharchive")) > 0,
        "the first command wrote no gharchive rows into layers/bronze"
    );

    // The landing every later command defaults to (lander.toml's `landing`) holds what the first command ingested:
    // with a first command that read another directory, it would be empty and `pending` trivially clean.
    let toml: toml::Table = std::fs::read_to_string(repo.path().join("lander.toml"))
        .expect("lander.toml")
        .parse()
        .expect("lander.toml parses");
    let landing = repo
        .path()
        .join(toml["landing"].as_str().expect("lander.toml names landing"));
    for ds in ["gharchive", "sales", "superstore"] {
        let want = std::fs::read_dir(root.join("tests/fixtures/landing").join(ds))
            .expect("fixture dir")
            .count();
        let have = std::fs::read_dir(landing.join(ds))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(
            have,
            want,
            "{ds}: the default landing {} lacks the first command's files",
            landing.display()
        );
    }

    // Every later command with its defaults looks at the same landing and checkpoint.
    let pending = ok(
        &Command::new(lander_bin())
            .args(["checkpoint", "pending"])
            .current_dir(repo.path())
            .output()
            .expect("spawn"),
        "checkpoint pending",
    );
    assert!(
        pending.contains("nothing pending"),
        "pending after the first command:\n{pending}"
    );
    let again = ok(
        &Command::new(lander_bin())
            .args(["run", "--mode", "once"])
            .current_dir(repo.path())
            .output()
            .expect("spawn"),
        "run --mode once",
    );
    assert!(
        again.contains("nothing new to ingest"),
        "second run:\n{again}"
    );
}
