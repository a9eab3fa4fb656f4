//! Retention review (issue 19): records come due by their case's MoPI
//! group, their type and a person's category, as the clock passes (the
//! node runs under libfaketime, years ahead); a review retains a record
//! until a next date, or erases it.

use serde_json::Value;

use crate::clock::libfaketime;
use crate::util::{Node, TestDir};

/// `args` (with `--json`) on `n`, its clock `days` ahead.
fn at(n: &Node, days: u32, args: &[&str]) -> Value {
    let lib = libfaketime();
    let shift = format!("+{days}d");
    let env = [
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("FAKETIME", shift.as_str()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let mut full = vec!["--json"];
    full.extend(args);
    let out = n.cmd_env(&full, &env).ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn due_ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d["record"].as_str().unwrap().to_string())
        .collect()
}

const YEAR: u32 = 366;

#[test]
fn records_come_due_by_the_policy_and_a_review_retains_or_erases_them() {
    let t = TestDir::new("review");
    let n = t.node("uk-east");
    n.init("uk-east", "ROCU East", "GB");
    let case = n.create_case("Op Lantern");
    let person = n.add(
        &case,
        "person",
        &[("name", "Ion Popescu"), ("category", "suspect")],
        &[],
    );
    let note = n.add(&case, "note", &[("text", "seen at the port")], &[]);
    let phone = n.add(&case, "phone", &[("number", "+40 721 000 111")], &[]);

    // Nothing is due today; group 3 (the default) comes due after 6 years.
    assert!(due_ids(&n.json(&["review", "due"])).is_empty());
    let mut all = due_ids(&at(&n, 7 * YEAR, &["review", "due"]));
    all.sort();
    let mut want = vec![person.clone(), note.clone(), phone.clone()];
    want.sort();
    assert_eq!(all, want);
    let shown = at(&n, 7 * YEAR, &["review", "due", "--case", &case]);
    assert_eq!(shown[0]["group"], 3, "{shown}");

    // A group 2 case (serious offences) comes due after 10 years; a note
    // after 2 by the node's policy.
    n.cmd(&["review", "group", &case, "2"]).ok();
    let policy = n.json(&["review", "policy", "--type", "note=2"]);
    assert_eq!(
        policy["group_years"],
        serde_json::json!([10, 10, 6]),
        "{policy}"
    );
    assert!(due_ids(&at(&n, 7 * YEAR, &["review", "due"])) == vec![note.clone()]);
    assert_eq!(
        due_ids(&at(&n, 11 * YEAR, &["review", "due"])).len(),
        3,
        "all three after 10 years"
    );

    // Retained at year 3 (for another 2 years by default), the note is not
    // due at year 4 and is again at year 6, marked as reviewed before.
    let r = at(
        &n,
        3 * YEAR,
        &[
            "review",
            "retain",
            &note,
            "--reason",
            "linked to an open investigation",
        ],
    );
    assert_eq!(r["decision"], "retain", "{r}");
    assert!(due_ids(&at(&n, 4 * YEAR, &["review", "due"])).is_empty());
    let again = at(&n, 6 * YEAR, &["review", "due"]);
    assert_eq!(due_ids(&again), vec![note.clone()]);
    assert_eq!(again[0]["reviewed_before"], true);
    // A date of one's own, and a bad one.
    at(
        &n,
        6 * YEAR,
        &[
            "review",
            "retain",
            &note,
            "--reason",
            "trial",
            "--until",
            "2099-01-31",
        ],
    );
    let bad = n
        .cmd(&[
            "review",
            "retain",
            &note,
            "--reason",
            "x",
            "--until",
            "yesterday",
        ])
        .error_line();
    assert!(bad.contains("YYYY-MM-DD"), "{bad}");
    let no_reason = n
        .cmd(&["review", "retain", &note, "--reason", " "])
        .error_line();
    assert!(no_reason.contains("--reason"), "{no_reason}");

    // At year 11 the review erases the phone.
    at(
        &n,
        11 * YEAR,
        &["review", "erase", &phone, "--reason", "no longer necessary"],
    );
    assert!(
        n.cmd(&["record", "show", &phone])
            .error_line()
            .contains("unknown record")
    );
    assert!(!due_ids(&at(&n, 11 * YEAR, &["review", "due"])).contains(&phone));

    // Every decision is in the audit log with its reason.
    let trail = n.json(&["audit", "list", "--action", "review.retain"]);
    let done: Vec<&Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .collect();
    assert_eq!(done.len(), 2, "{trail}");
    assert!(
        done[0]["detail"]
            .as_str()
            .unwrap()
            .contains("open investigation")
    );
    assert_eq!(
        trail.as_array().unwrap().len(),
        4,
        "the two refusals are in the log too: {trail}"
    );
    let erased = n.json(&["audit", "list", "--action", "record.erase"]);
    assert!(
        erased[0]["detail"]
            .as_str()
            .unwrap()
            .contains("retention review"),
        "{erased}"
    );
    // Bad policies are refused.
    for (flag, bad) in [
        ("--group", "4=6"),
        ("--type", "nothing=2"),
        ("--category", "villain=2"),
        ("--group", "3=0"),
    ] {
        assert!(
            !n.cmd(&["review", "policy", flag, bad]).status.success(),
            "{flag} {bad}"
        );
    }
}
