//! What the library-level tests share: the real binary on real data dirs.
// Each test binary that includes this uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The passphrase every test node is initialized with.
pub const PASS: &str = "library-test-passphrase";

/// Runs the real `casesync` on `dir`; panics with its stderr if it fails.
pub fn casesync(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_casesync"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("CASESYNC_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "casesync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A fresh temp directory for one test binary.
pub fn temp_root(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("casesync-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
