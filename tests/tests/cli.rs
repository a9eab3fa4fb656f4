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
