//! Clocks: nodes whose clocks are hours apart (libfaketime shifts the wall
//! clock of their processes) still sync and converge; nothing depends on
//! clock agreement, and concurrent edits resolve the same way everywhere.

use std::path::PathBuf;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::network::{Server, eventually, federation};
use crate::util::{TestDir, check_store, str_of};

/// libfaketime's preload library (scripts/test.sh installs the `faketime` package).
pub(crate) fn libfaketime() -> PathBuf {
    let dirs = std::fs::read_dir("/usr/lib")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    dirs.into_iter()
        .map(|d| d.join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|p| p.is_file())
        .expect("libfaketime is missing; scripts/test.sh installs it (apt-get install faketime)")
}

fn created(v: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(str_of(v, "created"), &Rfc3339)
        .unwrap_or_else(|e| panic!("created is not RFC 3339 ({e}): {v}"))
}

#[test]
fn nodes_hours_apart_sync_and_converge() {
    let lib = libfaketime();
    let lib = lib.to_str().expect("a UTF-8 path");
    // Monotonic time stays real: timers and timeouts are not what is tested.
    let behind = [
        ("LD_PRELOAD", lib),
        ("FAKETIME", "-6h"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let ahead = [
        ("LD_PRELOAD", lib),
        ("FAKETIME", "+9h"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let t = TestDir::new("clock");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    a.add_member(&case, c, "contributor");
    let victor = a.add(&case, "person", &[("name", "Victor Ilie")], &[]);
    let sa = Server::start(a, &[]);
    let sb = Server::start_env(b, &[&sa.addr], &behind);
    let sc = Server::start_env(c, &[&sa.addr], &ahead);
    eventually(60, "B and C receive the case", || {
        b.cmd(&["record", "show", &victor]).status.success()
            && c.cmd(&["record", "show", &victor]).status.success()
    });

    // Writes from the skewed clocks, and concurrent edits of one field.
    let add = |n: &crate::util::Node, env: &[(&str, &str)], name: &str| {
        let out = n
            .cmd_env(
                &[
                    "record",
                    "add",
                    &case,
                    "--type",
                    "person",
                    "--field",
                    &format!("name={name}"),
                ],
                env,
            )
            .ok();
        out.trim().to_string()
    };
    let from_b = add(b, &behind, "Written 6 h ago");
    let from_c = add(c, &ahead, "Written 9 h ahead");
    b.cmd_env(
        &["record", "edit", &victor, "--field", "alias=from B"],
        &behind,
    )
    .ok();
    c.cmd_env(
        &["record", "edit", &victor, "--field", "alias=from C"],
        &ahead,
    )
    .ok();
    a.cmd(&["record", "edit", &victor, "--field", "status=wanted"])
        .ok();

    eventually(60, "all three hold the same records", || {
        let l = a.list(&case);
        l.len() == 3 && l == b.list(&case) && l == c.list(&case)
    });
    // The clocks really were apart: each record carries its writer's time.
    let now = OffsetDateTime::now_utc();
    let (tb, tc) = (created(&a.show(&from_b)), created(&a.show(&from_c)));
    assert!(
        now - tb > time::Duration::hours(5),
        "B's clock was not behind: {tb}"
    );
    assert!(
        tc - now > time::Duration::hours(8),
        "C's clock was not ahead: {tc}"
    );
    let alias = a.show(&victor)["fields"]["alias"].clone();
    assert!(alias == "from B" || alias == "from C", "{alias}");
    for n in [b, c] {
        assert_eq!(
            n.show(&victor)["fields"]["alias"],
            alias,
            "one value everywhere"
        );
    }
    drop((sa, sb, sc));
    for n in [a, b, c] {
        check_store(n, "after syncing across skewed clocks");
    }
}
