//! A `lander run` daemon in the background, for tests of the unbounded modes.

use crate::common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `lander run` daemon that is killed if the test fails.
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    pub fn start(w: &Workdir, mode: &str, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec!["run".into(), "--mode".into(), mode.into()];
        args.extend(w.location_args());
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(lander_bin())
            .args(&args)
            .current_dir(w.path())
            .env("RUST_LOG", "lander=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        Self { child: Some(child) }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// SIGTERM, then wait (bounded); returns (status, stdout, stderr).
    pub fn stop(mut self) -> (std::process::ExitStatus, String, String) {
        let child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let start = std::time::Instant::now();
        let out = child.wait_with_output().expect("wait");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "shutdown took {:?}",
            start.elapsed()
        );
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
