//! Refused input: a non-zero exit, exactly one `error: ` line on stderr that says
//! what was wrong, and nothing written (CLI listings, every table row and the
//! keystore are the same before and after).

use crate::util::{Node, TestDir};

/// A node with one case holding one person.
struct Fixture {
    _t: TestDir,
    node: Node,
    case: String,
    person: String,
}

fn fixture(name: &str) -> Fixture {
    let t = TestDir::new(name);
    let node = t.node("a");
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    let person = node.add(&case, "person", &[("name", "Marin Dobre")], &[]);
    Fixture {
        _t: t,
        node,
        case,
        person,
    }
}

/// A case id that is well formed but was never created.
const NEVER_CREATED: &str = "0192f0c1-7c1e-4b3a-9c1d-2f4e5a6b7c8d";

impl Fixture {
    /// Runs `args` (with `env`), asserts a one-line `error: ` that contains every
    /// string of `expect`, and that nothing changed. Returns the error line.
    #[track_caller]
    fn refused(&self, args: &[&str], env: &[(&str, &str)], expect: &[&str]) -> String {
        let before = self.node.state(&[&self.case]);
        let out = self.node.cmd_env(args, env);
        let cmdline = out.cmdline.clone();
        let line = out.error_line();
        for e in expect {
            assert!(
                line.contains(e),
                "`{cmdline}`: expected {e:?} in the error, got: {line}"
            );
        }
        let after = self.node.state(&[&self.case]);
        assert!(
            before == after,
            "`{cmdline}` was refused but changed the store\n--- before ---\n{before}\n--- after ---\n{after}"
        );
        line
    }

    fn add_refused(&self, record_type: &str, fields: &[(&str, &str)], expect: &[&str]) -> String {
        let args = crate::util::add_args(&self.case, record_type, fields, &[]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.refused(&a, &[], expect)
    }
}

#[test]
fn unknown_type() {
    let f = fixture("bad_unknown_type");
    f.add_refused("spaceship", &[("name", "x")], &["spaceship", "person"]);
}

#[test]
fn missing_required_field() {
    let f = fixture("bad_missing_field");
    f.add_refused("person", &[("alias", "Vic")], &["person", "name"]);
    f.add_refused("event", &[("title", "meeting")], &["when"]);
    f.add_refused("person", &[("name", "   ")], &["name"]);
}

#[test]
fn invalid_date() {
    let f = fixture("bad_date");
    f.add_refused(
        "event",
        &[("title", "meeting"), ("when", "2021-02-30")],
        &["when"],
    );
    f.add_refused(
        "event",
        &[("title", "meeting"), ("when", "14/03/2021")],
        &["when"],
    );
}

#[test]
fn invalid_iban() {
    let f = fixture("bad_iban");
    // The well-known example IBAN with its last digit changed.
    f.add_refused(
        "bank_account",
        &[("iban", "GB29NWBK60161331926818")],
        &["iban"],
    );
    // The same with --json: still one line on stderr and nothing on stdout.
    let args = crate::util::add_args(
        &f.case,
        "bank_account",
        &[("iban", "RO41RNCB0082044617040002")],
        &["--json"],
    );
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    f.refused(&a, &[], &["iban"]);
}

#[test]
fn invalid_crypto_addresses() {
    let f = fixture("bad_crypto");
    // The BIP-173 example with its last character changed.
    f.add_refused(
        "crypto_wallet",
        &[
            ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
            ("currency", "BTC"),
        ],
        &["address"],
    );
    // The EIP-55 example with one letter's case changed.
    f.add_refused(
        "crypto_wallet",
        &[
            ("address", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            ("currency", "ETH"),
        ],
        &["address"],
    );
}

#[test]
fn unknown_case_id() {
    let f = fixture("bad_unknown_case");
    f.refused(
        &[
            "record",
            "add",
            NEVER_CREATED,
            "--type",
            "person",
            "--field",
            "name=x",
        ],
        &[],
        &[NEVER_CREATED],
    );
    f.refused(&["record", "list", NEVER_CREATED], &[], &[NEVER_CREATED]);
    f.refused(&["case", "show", NEVER_CREATED], &[], &[NEVER_CREATED]);
    let file = f._t.write(
        "one.jsonl",
        "{\"type\":\"note\",\"fields\":{\"text\":\"x\"}}\n",
    );
    f.refused(
        &[
            "record",
            "import",
            NEVER_CREATED,
            &file.display().to_string(),
        ],
        &[],
        &[NEVER_CREATED],
    );
}

#[test]
fn unknown_record_id() {
    let f = fixture("bad_unknown_record");
    f.refused(&["record", "show", NEVER_CREATED], &[], &[NEVER_CREATED]);
    f.refused(
        &["record", "edit", NEVER_CREATED, "--field", "status=x"],
        &[],
        &[NEVER_CREATED],
    );
    // A case id is not a record id.
    f.refused(&["record", "show", &f.case], &[], &[&f.case]);
    f.refused(&["record", "show", "nope"], &[], &["nope"]);
    // And the real record is still there.
    assert_eq!(f.node.show(&f.person)["fields"]["name"], "Marin Dobre");
}

#[test]
fn malformed_case_id() {
    let f = fixture("bad_malformed_case");
    f.refused(
        &[
            "record", "add", "nope", "--type", "person", "--field", "name=x",
        ],
        &[],
        &["nope"],
    );
    f.refused(&["record", "list", "nope"], &[], &["nope"]);
    f.refused(&["case", "show", "nope"], &[], &["nope"]);
}

#[test]
fn wrong_passphrase() {
    let f = fixture("bad_passphrase");
    let wrong = [("CASESYNC_PASSPHRASE", "wrong")];
    f.refused(&["record", "list", &f.case], &wrong, &["passphrase"]);
    f.refused(
        &[
            "record", "add", &f.case, "--type", "note", "--field", "text=x",
        ],
        &wrong,
        &["passphrase"],
    );
    f.refused(
        &["record", "edit", &f.person, "--field", "status=x"],
        &wrong,
        &["passphrase"],
    );
    f.refused(
        &["case", "create", "--title", "never"],
        &wrong,
        &["passphrase"],
    );
    // No passphrase at all and no terminal to ask on.
    let out = f
        .node
        .command(&["record", "list", &f.case])
        .env_remove("CASESYNC_PASSPHRASE")
        .output()
        .expect("cannot run casesync");
    assert!(
        !out.status.success(),
        "listing without a passphrase succeeded"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("passphrase")
            && stderr.lines().count() == 1,
        "without a passphrase: {stderr}"
    );
}

#[test]
fn init_twice() {
    let f = fixture("bad_init_twice");
    let peer = f.node.json(&["id"])["peer_id"].clone();
    f.refused(
        &[
            "init",
            "--name",
            "again",
            "--org",
            "Other",
            "--country",
            "RO",
        ],
        &[],
        &["already initialized"],
    );
    // Even with another passphrase.
    f.refused(
        &[
            "init",
            "--name",
            "again",
            "--org",
            "Other",
            "--country",
            "RO",
        ],
        &[("CASESYNC_PASSPHRASE", "another")],
        &["already initialized"],
    );
    let id = f.node.json(&["id"]);
    assert_eq!(id["peer_id"], peer, "the identity must survive: {id}");
    assert_eq!(id["name"], "uk-east", "the identity must survive: {id}");
}

#[test]
fn link_to_missing_record() {
    let f = fixture("bad_link");
    let from = format!("from={}", f.person);
    let to = format!("to={NEVER_CREATED}");
    f.refused(
        &[
            "record",
            "add",
            &f.case,
            "--type",
            "link",
            "--field",
            &from,
            "--field",
            &to,
            "--field",
            "link_type=associate",
        ],
        &[],
        &[NEVER_CREATED],
    );
    // And a link whose end is not a record id at all.
    f.refused(
        &[
            "record",
            "add",
            &f.case,
            "--type",
            "link",
            "--field",
            &from,
            "--field",
            "to=Victor",
            "--field",
            "link_type=associate",
        ],
        &[],
        &["to"],
    );
}

#[test]
fn commands_before_init() {
    let t = TestDir::new("bad_before_init");
    let node = t.node("never");
    for args in [
        &["case", "list"][..],
        &["id"],
        &["log", "verify"],
        &["case", "create", "--title", "x"],
    ] {
        let line = node.cmd(args).error_line();
        assert!(
            line.contains("casesync init"),
            "{args:?} before init should say to run init: {line}"
        );
    }
    assert!(
        !node.dir.exists(),
        "commands on an uninitialized dir must not create it"
    );
}

/// README: on failure, a non-zero exit and one line on stderr beginning `error: `.
/// That holds for usage errors too (a missing argument, a value not allowed):
/// scripts read that one line.
#[test]
fn usage_errors_are_one_line() {
    let f = fixture("bad_usage");
    f.refused(&["record", "add"], &[], &["CASE"]);
    f.refused(
        &[
            "record", "add", &f.case, "--type", "person", "--feild", "name=x",
        ],
        &[],
        &["--feild"],
    );
    f.refused(
        &[
            "case",
            "member",
            "add",
            &f.case,
            "cscard1.x",
            "--role",
            "boss",
        ],
        &[],
        &["boss"],
    );
}
