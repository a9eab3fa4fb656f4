//! The README's walkthrough must run exactly as written: this test extracts the
//! block between the walkthrough markers and runs it with bash, with the built
//! `casesync` first on PATH, in an empty directory.

use std::path::Path;
use std::process::Command;

#[test]
fn readme_walkthrough_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("walkthrough start marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("walkthrough end marker");
    let block = &readme[start..end];
    let script: String = block
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        script.contains("init --name"),
        "walkthrough block not found:\n{block}"
    );

    let dir = std::env::temp_dir().join(format!("casesync-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_casesync")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&dir)
        .env("PATH", path)
        .env_remove("CASESYNC_HOME")
        .env_remove("CASESYNC_PASSPHRASE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("refused, as expected"), "{stdout}");
    assert!(
        stderr.lines().any(|l| l.starts_with("error: field `iban`")),
        "{stderr}"
    );
    assert!(
        stdout.contains("status: arrested") && stdout.contains("alias: Vic"),
        "{stdout}"
    );
    assert!(stdout.contains("imported 2 record(s)"), "{stdout}");
    assert_eq!(
        stdout.matches("7 record(s)").count(),
        3,
        "every node holds the whole case:\n{stdout}"
    );
    assert!(stdout.contains("received"), "{stdout}");
    assert!(stdout.contains(": 0 bad"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The repository explains itself: its documents never send a reader to a
/// file outside it, and every relative link in them leads to a file that is
/// there.
#[test]
fn the_documents_link_only_to_files_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut docs = vec![
        root.join("README.md"),
        root.join("ARCHITECTURE.md"),
        root.join("BENCHMARKS.md"),
    ];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") {
            docs.push(path);
        }
    }
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.display();
        for outside in ["../shared", "DESIGN.md", "CLI.md", "STYLE.md", "THREATS.md"] {
            assert!(!text.contains(outside), "{name} points at {outside}");
        }
        // Markdown links: ](target), relative ones must exist.
        for part in text.split("](").skip(1) {
            let target = part.split([')', '#']).next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let base = doc.parent().unwrap();
            assert!(
                base.join(target).exists(),
                "{name} links to {target}, which is not in the repository"
            );
        }
    }
}
