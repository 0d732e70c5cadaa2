//! The `lander` binary: parse the command line, set up logging and the runtime, run, map errors to exit codes.

use std::io::Write as _;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// glibc malloc arenas: with one arena per thread (up to 8 per core) each keeps the memory its thread freed,
/// which doubled peak RSS over the live heap on the 16-hour benchmark (BENCHMARKS.md). Two arenas keep
/// contention low on the two threads that allocate most (decoder and encoder).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_ARENAS: i32 = 2;

/// Free memory at the top of the heap above this is returned to the OS at once (glibc's default adapts up to
/// 32 MiB, so large decode chunks that were freed stayed resident).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_TRIM_BYTES: i32 = 1 << 20;

/// Allocations above this size get their own mapping. Setting the trim threshold turns off glibc's adaptive mmap
/// threshold, which would leave every decode buffer (megabytes) mapped and unmapped per chunk: 30% of the run's
/// CPU in page faults on the 16-hour benchmark.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_MMAP_BYTES: i32 = 8 << 20;

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tunables; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_BYTES);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES);
    }
    // Before any thread exists: it sets $LIBHDFS_OPTS for the JVM an hdfs+jni:// location starts.
    #[cfg(feature = "hdrs")]
    lander::store::hdrs::keep_signals_for_lander();
    let cli = lander::cli::Cli::parse();
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("lander={default},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(lander::cli::progress::LogWriter);
    match cli.log_format {
        lander::cli::LogFormat::Json => builder.json().init(),
        lander::cli::LogFormat::Text => builder.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot start the async runtime: {e}"
            );
            std::process::exit(1);
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let result = runtime.block_on(lander::cli::run(cli, cancel));
    // Let blocking tasks (decoders abandoned on shutdown) finish without waiting for them forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Err(e) = result {
        let code = lander::cli::exit_code(&e);
        // A closed stdout (`lander … | head -1`) is not a failure: the reader has what it wanted.
        if !lander::cli::exit::is_broken_pipe(&e) {
            let chain = lander::cli::exit::error_chain(e.as_ref());
            let prefix = match e.downcast_ref::<lander::cli::exit::Interrupted>() {
                Some(_) => "",
                None => "error: ",
            };
            // Not eprintln!: a closed stderr must not turn into a panic either.
            let _ = writeln!(std::io::stderr(), "{prefix}{chain}");
        }
        std::process::exit(code);
    }
}
