//! The stable fuzz driver: mutates the seeds of one target for a while, with no
//! coverage feedback, and saves every input that panics (or is slow).
//!
//! `casesync-fuzz-stable --target NAME --seconds N [--seed S] [--max-len B]`
//!
//! Prints `target NAME: EXECS execs, N crashes`; crashes go to
//! `fuzz/artifacts/<target>/crash-<hash>`, inputs over 1 s to `slow-<hash>`.
//! Exits 1 if anything crashed, 2 on bad arguments.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use casesync_fuzz::driver::{self, fuzz_dir, run_caught};
use casesync_fuzz::mutate::{Rng, mutate};

const SLOW: Duration = Duration::from_secs(1);

fn usage(why: &str) -> ExitCode {
    let names: Vec<&str> = casesync_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "error: {why}\nusage: casesync-fuzz-stable --target NAME --seconds N [--seed S] [--max-len BYTES]\ntargets: {}",
        names.join(", ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut target, mut seconds, mut seed, mut max_len) = (None, 10u64, None, 8192usize);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        let parsed = match a.as_str() {
            "--target" => value().map(|v| target = Some(v)),
            "--seconds" => value().and_then(|v| {
                v.parse()
                    .map(|s| seconds = s)
                    .map_err(|_| format!("--seconds {v:?}"))
            }),
            "--seed" => value().and_then(|v| {
                v.parse()
                    .map(|s| seed = Some(s))
                    .map_err(|_| format!("--seed {v:?}"))
            }),
            "--max-len" => value().and_then(|v| {
                v.parse()
                    .map(|s| max_len = s)
                    .map_err(|_| format!("--max-len {v:?}"))
            }),
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(why) = parsed {
            return usage(&why);
        }
    }
    let Some(name) = target else {
        return usage("--target is required");
    };
    let Some(f) = casesync_fuzz::target(&name) else {
        return usage(&format!("unknown target {name:?}"));
    };
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let seeds = driver::mutation_seeds(&name);
    let artifacts = fuzz_dir().join("artifacts");
    driver::quiet_panics();
    let mut rng = Rng::new(seed);
    let (mut execs, mut crashes, mut slow) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    // The seeds themselves first, then mutations until the deadline.
    let mut pending = seeds.clone();
    while Instant::now() < deadline {
        let data = pending
            .pop()
            .unwrap_or_else(|| mutate(&mut rng, &seeds, max_len));
        let t = Instant::now();
        let result = run_caught(|| f(&data));
        execs += 1;
        match result {
            Err(msg) => {
                crashes += 1;
                match driver::save(&artifacts, &name, "crash", &data) {
                    Ok(p) => eprintln!("crash: {msg}\n  input: {}", p.display()),
                    Err(e) => eprintln!("crash: {msg}\n  (input not saved: {e})"),
                }
            }
            Ok(()) if t.elapsed() > SLOW => {
                slow += 1;
                if let Ok(p) = driver::save(&artifacts, &name, "slow", &data) {
                    eprintln!("slow ({:?}): {}", t.elapsed(), p.display());
                }
            }
            Ok(()) => {}
        }
    }
    println!(
        "target {name}: {execs} execs, {crashes} crashes ({slow} slow, seed {seed}, {} seeds)",
        seeds.len()
    );
    if crashes > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
