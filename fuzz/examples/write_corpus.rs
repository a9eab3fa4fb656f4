//! Writes the seed corpus, `fuzz/corpus/<target>/seed-<n>`, from the real
//! encoders (`casesync_fuzz::seeds`). Run after an encoding changes:
//! `cargo run -p casesync-fuzz --example write_corpus`.

fn main() -> std::io::Result<()> {
    let root = casesync_fuzz::driver::fuzz_dir().join("corpus");
    for (name, _) in casesync_fuzz::TARGETS {
        let dir = root.join(name);
        if dir.exists() {
            for entry in std::fs::read_dir(&dir)? {
                let p = entry?.path();
                let is_seed = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("seed-"));
                if is_seed {
                    std::fs::remove_file(p)?;
                }
            }
        }
        std::fs::create_dir_all(&dir)?;
        let seeds = casesync_fuzz::seeds::seeds(name);
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s)?;
        }
        println!("{name}: {} seeds", seeds.len());
    }
    Ok(())
}
