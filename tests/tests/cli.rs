//! `init`, `id`, and the help text of every command.

use crate::util::TestDir;

#[test]
fn cli_basics() {
    let t = TestDir::new("cli_basics");
    let node = t.node("ro");
    let peer = node.init("ro-police", "Poliția Română", "RO");
    assert!(peer.starts_with("12D3KooW"), "PeerId {peer:?}");
    assert!(
        peer.len() > 40 && peer.chars().all(|c| c.is_ascii_alphanumeric()),
        "PeerId should be base58, got {peer:?}"
    );

    let id = node.json(&["id"]);
    assert_eq!(id["peer_id"], peer.as_str(), "id --json: {id}");
    assert_eq!(id["name"], "ro-police", "id --json: {id}");
    assert_eq!(id["org"], "Poliția Română", "id --json: {id}");
    assert_eq!(id["country"], "RO", "id --json: {id}");

    let plain = node.cmd(&["id"]).ok();
    assert!(
        plain.contains(&peer),
        "`id` should show the PeerId:\n{plain}"
    );
    assert!(
        plain.contains("Poliția Română"),
        "`id` should show the org:\n{plain}"
    );

    let card = node.cmd(&["id", "--card"]).ok();
    let lines: Vec<&str> = card.lines().collect();
    assert_eq!(lines.len(), 1, "id --card should print one line: {card:?}");
    assert!(lines[0].starts_with("cscard1."), "card: {card:?}");
    assert!(
        !lines[0].contains(char::is_whitespace),
        "a card is one token that survives copy and paste: {card:?}"
    );
    // The card is stable: printing it twice gives the same line.
    assert_eq!(node.cmd(&["id", "--card"]).ok(), card);

    // A second node gets a different identity.
    let other = t.node("gb");
    let peer2 = other.init("uk-east", "ROCU East", "GB");
    assert_ne!(peer, peer2);
    assert_ne!(other.cmd(&["id", "--card"]).ok(), card);

    let subcommands: &[&[&str]] = &[
        &["init"],
        &["id"],
        &["case", "create"],
        &["case", "list"],
        &["case", "show"],
        &["case", "member", "add"],
        &["record", "add"],
        &["record", "edit"],
        &["record", "show"],
        &["record", "list"],
        &["record", "import"],
        &["log", "verify"],
        &["federation", "create"],
        &["federation", "invite"],
        &["federation", "join"],
        &["trust", "list"],
        &["bundle", "export"],
        &["bundle", "import"],
        &["serve"],
        &["sync"],
        &["peer", "add"],
        &["peer", "list"],
        &["status"],
        &["passphrase", "change"],
        &["federation", "leave"],
        &["case", "member", "role"],
    ];
    for sub in subcommands {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = node.cmd(&args);
        let cmdline = out.cmdline.clone();
        let help = out.ok();
        assert!(
            help.contains("Example"),
            "`{cmdline}` should show an example:\n{help}"
        );
        assert!(
            help.contains("Usage:"),
            "`{cmdline}` should show usage:\n{help}"
        );
    }
}

/// A reader that stops early (`casesync ... | head`) ends the command the way
/// SIGPIPE ends any Unix tool: status 141, no panic, no backtrace.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::Read;
    let t = TestDir::new("cli_closed_stdout");
    let node = t.node("gb");
    node.init("gb-nca", "National Crime Agency", "GB");
    let case = node.cmd(&["case", "create", "--title", "pipe"]).ok();
    let case = case.trim();
    let line = r#"{"type":"person","fields":{"name":"Ana Pop","notes":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#;
    let file = t.write("people.jsonl", format!("{line}\n").repeat(3000));
    node.cmd(&["record", "import", case, file.to_str().expect("utf-8 path")])
        .ok();
    let mut child = node
        .command(&["--json", "record", "list", case])
        .spawn()
        .expect("start casesync");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 16];
    stdout
        .read_exact(&mut first)
        .expect("read the start of the listing");
    drop(stdout);
    let out = child.wait_with_output().expect("wait for casesync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

/// Issue 21, finding 6: a weak passphrase is refused with a clear message;
/// the default key derivation is Argon2id with 64 MiB and 3 passes; the
/// passphrase can be changed (re-sealing with the current cost) and read from
/// an owner-only file, for services; the process cannot be dumped.
#[test]
fn passphrases_are_checked_changed_and_read_from_files() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestDir::new("cli_passphrase");
    let n = t.node("uk");
    for weak in ["short", "aaaaaaaaaaaaaaaa", "abababababab"] {
        let e = n
            .cmd_env(
                &["init", "--name", "uk", "--org", "U", "--country", "GB"],
                &[("CASESYNC_PASSPHRASE", weak)],
            )
            .error_line();
        assert!(e.contains("too weak") && e.contains("12 characters"), "{e}");
        assert!(!n.dir.join("keystore").exists());
    }
    let e = n
        .cmd(&[
            "init",
            "--name",
            "uk",
            "--org",
            "U",
            "--country",
            "GB",
            "--kdf-memory-mib",
            "8",
        ])
        .error_line();
    assert!(e.contains("between 19 and 1024"), "{e}");
    // The default cost, as stored in the keystore header.
    n.cmd(&["init", "--name", "uk", "--org", "U", "--country", "GB"])
        .ok();
    let ks = std::fs::read(n.dir.join("keystore")).unwrap();
    let u32_at = |i: usize| u32::from_be_bytes(ks[i..i + 4].try_into().unwrap());
    assert_eq!((u32_at(6), u32_at(10), u32_at(14)), (64 * 1024, 3, 1));

    // A passphrase file others can read is refused; an owner-only one works.
    let file = t.write("pass.txt", format!("{}\n", crate::util::PASSPHRASE));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let f = file.to_str().unwrap();
    let no_env = [("CASESYNC_PASSPHRASE", "")];
    let e = n
        .cmd_env(&["--passphrase-file", f, "case", "list"], &no_env)
        .error_line();
    assert!(e.contains("readable by others"), "{e}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    n.cmd_env(&["--passphrase-file", f, "case", "list"], &no_env)
        .ok();

    // Change: weak refused, wrong old refused, then the new one unlocks and
    // the old one does not.
    let new = t.write("new.txt", "a much longer passphrase now\n");
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o600)).unwrap();
    let weak = t.write("weak.txt", "weak\n");
    std::fs::set_permissions(&weak, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = n
        .cmd(&[
            "passphrase",
            "change",
            "--new-passphrase-file",
            weak.to_str().unwrap(),
        ])
        .error_line();
    assert!(e.contains("too weak"), "{e}");
    let e = n
        .cmd_env(
            &[
                "passphrase",
                "change",
                "--new-passphrase-file",
                new.to_str().unwrap(),
            ],
            &[("CASESYNC_PASSPHRASE", "not the passphrase at all")],
        )
        .error_line();
    assert!(e.contains("wrong passphrase"), "{e}");
    n.cmd(&[
        "passphrase",
        "change",
        "--new-passphrase-file",
        new.to_str().unwrap(),
    ])
    .ok();
    let e = n.cmd(&["case", "list"]).error_line();
    assert!(e.contains("wrong passphrase"), "{e}");
    let audit = n.cmd_env(
        &[
            "--json",
            "--passphrase-file",
            new.to_str().unwrap(),
            "audit",
            "list",
        ],
        &no_env,
    );
    assert!(audit.ok().contains("node.passphrase_change"));

    // The running process is not dumpable (no core file, no ptrace by peers).
    let mut child = n
        .command(&["--passphrase-file", new.to_str().unwrap(), "serve"])
        .env("CASESYNC_PASSPHRASE", "")
        .spawn()
        .unwrap();
    let status = std::path::PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut dumpable = None;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let s = std::fs::read_to_string(&status).unwrap_or_default();
        // Owned by root once not dumpable: /proc shows the process as such.
        if let Ok(core) = std::fs::read_to_string(format!("/proc/{}/limits", child.id()))
            && core.lines().any(|l| {
                l.starts_with("Max core file size") && l.split_whitespace().nth(4) == Some("0")
            })
            && s.contains("State:")
        {
            dumpable = Some(());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(dumpable.is_some(), "serve keeps core dumps enabled");
}
