//! Runs on stable in CI: every committed corpus and regression input through
//! its target, the generated seeds (which must be accepted, so a decoder that
//! breaks fails here), and a deterministic mutation smoke test per target.

use std::time::Instant;

use casesync_fuzz::driver::{self, files_in, fuzz_dir, run_caught};
use casesync_fuzz::mutate::{Rng, mutate};
use casesync_fuzz::{ACCEPTS, TARGETS, accepts, seeds};

/// Mutated inputs per target.
const MUTATIONS: usize = 2000;

fn check(target: &str, what: &str, data: &[u8]) -> bool {
    match run_caught(|| accepts(target, data)) {
        Ok(Some(accepted)) => accepted,
        Ok(None) => panic!("unknown target {target}"),
        Err(msg) => {
            let saved = driver::save(&fuzz_dir().join("artifacts"), target, "crash", data)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("(not saved: {e})"));
            // Back to the default hook, so this failure is printed.
            drop(std::panic::take_hook());
            panic!("{target}: {what} panicked: {msg}\ninput saved to {saved}");
        }
    }
}

#[test]
fn every_target_has_a_committed_corpus_and_accepts_it() {
    driver::quiet_panics();
    for (target, _) in TARGETS {
        let files = files_in(&fuzz_dir().join("corpus").join(target));
        assert!(!files.is_empty(), "fuzz/corpus/{target}/ is empty");
        for (path, data) in files {
            let name = path.display().to_string();
            let seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            let accepted = check(target, &name, &data);
            if seed && !accepted {
                drop(std::panic::take_hook());
                panic!("{target}: valid seed {name} is refused");
            }
        }
    }
}

#[test]
fn generated_seeds_are_accepted() {
    driver::quiet_panics();
    for (target, _) in ACCEPTS {
        let seeds = seeds::seeds(target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for (i, s) in seeds.iter().enumerate() {
            if !check(target, &format!("seed {i}"), s) {
                drop(std::panic::take_hook());
                panic!("{target}: generated seed {i} is refused");
            }
        }
    }
}

#[test]
fn regressions_do_not_panic() {
    driver::quiet_panics();
    for (target, _) in TARGETS {
        for (path, data) in files_in(&fuzz_dir().join("regressions").join(target)) {
            check(target, &path.display().to_string(), &data);
        }
    }
}

#[test]
fn mutated_seeds_do_not_panic() {
    driver::quiet_panics();
    let start = Instant::now();
    for (i, (target, _)) in TARGETS.iter().enumerate() {
        let seeds = driver::mutation_seeds(target);
        let mut rng = Rng::new(0x5eed_0000 + i as u64);
        let t = Instant::now();
        for n in 0..MUTATIONS {
            let data = mutate(&mut rng, &seeds, 64 * 1024);
            check(target, &format!("mutation {n}"), &data);
        }
        eprintln!("{target}: {MUTATIONS} mutations in {:?}", t.elapsed());
    }
    eprintln!("all targets: {:?}", start.elapsed());
}
