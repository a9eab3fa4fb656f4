//! A full disk: a node whose data dir is on a small tmpfs (mounted by the
//! test; CI runs as root) that fills up gives a clear error, stores nothing
//! half-written, and works again once space returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::network::{Server, eventually};
use crate::util::{Node, TestDir, check_store};

/// A tmpfs of `mib` MiB mounted at a directory of the test; unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, mib: u32) -> Tmpfs {
        std::fs::create_dir_all(&dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (the test needs root, as CI has): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes zeros to `path` until the file system refuses; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0u8; 16 * 1024];
    let mut n = 0u64;
    while f.write_all(&chunk).is_ok() {
        n += chunk.len() as u64;
    }
    // The last partial chunk may have landed in part; write byte by byte to
    // take what is left.
    while f.write_all(&[0]).is_ok() {
        n += 1;
    }
    let _ = f.sync_all();
    n
}

#[test]
fn a_full_disk_gives_a_clear_error_and_loses_nothing() {
    let t = TestDir::new("disk_full");
    let fs = Tmpfs::mount(t.join("small"), 64);
    let node = Node::at(fs.dir.join("a"));
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    let mut acked = vec![];
    for i in 0..20 {
        acked.push(node.add(&case, "note", &[("text", &format!("before {i}"))], &[]));
    }
    // An import far larger than what is left: its file sits outside the tmpfs.
    let mut big = String::new();
    for i in 0..5_000 {
        big.push_str(&format!(
            "{{\"type\":\"note\",\"fields\":{{\"text\":\"imported {i} {}\"}}}}\n",
            "x".repeat(200)
        ));
    }
    let big = t.write("big.jsonl", big);
    let filler = fs.dir.join("filler");
    let filled = fill(&filler);
    eprintln!("filled the tmpfs with {} KiB", filled / 1024);

    let line = node
        .cmd(&["record", "import", &case, &big.display().to_string()])
        .error_line();
    eprintln!("import on a full disk: {line}");
    assert!(
        line.contains("full") && line.contains("free"),
        "the error should say the disk is full and what to do: {line}"
    );
    // Small writes fail as clearly, or fit in what SQLite had allocated.
    for i in 0..5 {
        let out = node.cmd(&[
            "record",
            "add",
            &case,
            "--type",
            "note",
            "--field",
            &format!("text=full {i}"),
        ]);
        if out.status.success() {
            acked.push(out.stdout.trim().to_string());
        } else {
            let line = out.error_line();
            assert!(line.contains("full"), "{line}");
        }
    }

    // Space returns: nothing was lost or half-written, and the node works.
    std::fs::remove_file(&filler).expect("remove the filler");
    check_store(&node, "after the disk was full");
    let texts: Vec<String> = node
        .list(&case)
        .iter()
        .filter_map(|r| r["fields"]["text"].as_str().map(String::from))
        .collect();
    assert!(
        !texts.iter().any(|t| t.starts_with("imported")),
        "part of the failed import landed"
    );
    for id in &acked {
        node.cmd(&["record", "show", id]).ok();
    }
    node.cmd(&["record", "import", &case, &big.display().to_string()])
        .ok();
    assert_eq!(node.list(&case).len(), acked.len() + 5_000);
    check_store(&node, "after the import that fit");
}

/// A serving node whose disk fills while a peer sends it records: it logs
/// the failure, keeps running, keeps what it held, and catches up once space
/// returns.
#[test]
fn a_serving_node_survives_a_full_disk_and_catches_up() {
    let t = TestDir::new("disk_full_serve");
    let fs = Tmpfs::mount(t.join("small"), 64);
    let nodes = crate::network::federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let a = &nodes[0];
    // B's data dir moves onto the tmpfs.
    let b = Node::at(fs.dir.join("ro-police"));
    crate::util::copy_dir(&nodes[1].dir, &b.dir);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, &b, "contributor");
    let first = a.add(&case, "person", &[("name", "Victor Ilie")], &[]);
    let sa = Server::start(a, &[]);
    let mut sb = Server::start(&b, &[&sa.addr]);
    eventually(60, "B receives the case", || {
        b.cmd(&["record", "show", &first]).status.success()
    });
    let filler = fs.dir.join("filler");
    fill(&filler);
    let mut big = String::new();
    for i in 0..3_000 {
        big.push_str(&format!(
            "{{\"type\":\"note\",\"fields\":{{\"text\":\"while full {i} {}\"}}}}\n",
            "y".repeat(200)
        ));
    }
    let big = t.write("big.jsonl", big);
    a.cmd(&["record", "import", &case, &big.display().to_string()])
        .ok();
    eventually(
        60,
        "B logs that it could not store what it received",
        || {
            let log = sb.log();
            log.contains("full") || log.contains("disk I/O error")
        },
    );
    assert!(
        sb.child.try_wait().expect("try_wait").is_none(),
        "B's serve stopped on a full disk: {}",
        sb.log()
    );
    std::fs::remove_file(&filler).expect("remove the filler");
    eventually(120, "B catches up once space returns", || {
        b.list(&case).len() == 3_001
    });
    eprintln!(
        "B's log: {}",
        sb.log()
            .lines()
            .find(|l| l.contains("full") || l.contains("disk I/O"))
            .unwrap_or_default()
    );
    drop(sb);
    drop(sa);
    check_store(&b, "after the full disk");
    assert_eq!(b.list(&case), a.list(&case));
}
