//! What the stable driver and the regression tests share: reading corpus
//! directories, running an input with panics caught, saving crashes.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use casesync_crypto::hash::sha256;

/// The crate's directory (`fuzz/`).
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file in `dir` (not recursive), sorted by name; none if it is missing.
pub fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Replaces the panic hook with one that prints nothing and keeps the message
/// (with its location) for [`run_caught`].
pub fn quiet_panics() {
    panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = format!("{msg}{at}");
        }
    }));
}

/// Runs `f(data)`; a panic becomes `Err(message)`.
pub fn run_caught<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        LAST_PANIC
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|_| "panic".into())
    })
}

/// Hex of the first 16 bytes of SHA-256: names a crash file.
pub fn short_hash(data: &[u8]) -> String {
    sha256(data).0[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `data` to `<dir>/<target>/<prefix>-<hash>`; returns the path.
pub fn save(dir: &Path, target: &str, prefix: &str, data: &[u8]) -> std::io::Result<PathBuf> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    let p = d.join(format!("{prefix}-{}", short_hash(data)));
    std::fs::write(&p, data)?;
    Ok(p)
}

/// Seeds for mutation: the committed corpus and regressions of `target`, and
/// the generated seeds.
pub fn mutation_seeds(target: &str) -> Vec<Vec<u8>> {
    let mut v = crate::seeds::seeds(target);
    for sub in ["corpus", "regressions"] {
        v.extend(
            files_in(&fuzz_dir().join(sub).join(target))
                .into_iter()
                .map(|(_, b)| b),
        );
    }
    v
}

/// For libFuzzer targets: runs `f(data)`; a panic that reaches here is printed
/// and aborts the process (libFuzzer's crash). Used with [`quiet_panics`] as
/// the target's `init`, instead of libfuzzer-sys's hook, which aborts on every
/// panic, even one the code under test catches on purpose (casesync-schema
/// contains Automerge's panics on malformed changes: `doc::apply_changes`).
pub fn abort_on_panic(f: fn(&[u8]), data: &[u8]) {
    if let Err(msg) = run_caught(|| f(data)) {
        eprintln!("panicked: {msg}");
        std::process::abort();
    }
}
