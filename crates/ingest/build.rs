//! Build script: with the `hdrs` feature, records the directory of `libjvm.so` (found by `hdfs-sys`'s build
//! script) as an rpath of this crate's unit tests (they link `lander-core`'s libhdfs), so they start without
//! `LD_LIBRARY_PATH`. The same as crates/core/build.rs. Does nothing otherwise.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_HDRS").is_none() {
        return;
    }
    // hdfs-sys 0.3.1 prints `cargo:metadata=JVM_PATH=<dir>`, which Cargo passes on as DEP_HDFS_METADATA.
    let jvm = std::env::var("DEP_HDFS_JVM_PATH").ok().or_else(|| {
        std::env::var("DEP_HDFS_METADATA")
            .ok()
            .and_then(|m| m.strip_prefix("JVM_PATH=").map(str::to_string))
    });
    if let Some(jvm) = jvm {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{jvm}");
    }
}
