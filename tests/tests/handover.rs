//! A case changes hands, and a federation or case never loses its last admin
//! or lead (issue 21, finding 3).

use std::collections::BTreeMap;

use crate::network::{Server, federation};
use crate::util::{Node, peer_of};

/// PeerId -> `field` of each member, from `case show --json`.
fn by_member(v: &serde_json::Value, field: &str) -> BTreeMap<String, String> {
    v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["peer_id"].as_str().unwrap_or_default().to_string(),
                m[field].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// PeerId -> role.
fn roles(n: &Node, case: &str) -> BTreeMap<String, String> {
    by_member(&n.json(&["case", "show", case]), "role")
}

fn role(lead: &Node, case: &str, who: &Node, role: &str) -> crate::util::Output {
    lead.cmd(&[
        "case",
        "member",
        "role",
        case,
        &peer_of(who),
        "--role",
        role,
    ])
}

#[test]
fn a_case_changes_hands_and_never_loses_its_last_lead_or_admin() {
    let t = crate::util::TestDir::new("handover");
    let nodes = federation(&t, &[("uk", "GB"), ("ro", "RO"), ("eu", "NL")]);
    let (uk, ro, eu) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = uk.create_case("Op Handover");
    uk.add_member(&case, ro, "observer");
    uk.add_member(&case, eu, "contributor");

    // The only lead cannot leave, step down, or be left alone by a revocation.
    let e = uk
        .cmd(&[
            "case",
            "member",
            "remove",
            &case,
            &peer_of(uk),
            "--reason",
            "bye",
        ])
        .error_line();
    assert!(e.contains("without a lead"), "{e}");
    let e = role(uk, &case, uk, "contributor").error_line();
    assert!(e.contains("without a lead"), "{e}");
    let e = uk
        .cmd(&["trust", "revoke", &peer_of(uk), "--reason", "bye"])
        .error_line();
    assert!(e.contains("without an admin"), "{e}");
    // A writer is not made a reader (a removal cuts its log instead).
    let e = role(uk, &case, eu, "observer").error_line();
    assert!(e.contains("remove it instead"), "{e}");
    let e = role(uk, &case, eu, "contributor").error_line();
    assert!(e.contains("already contributor"), "{e}");

    // The hand-over: ro (a reader) becomes lead, uk steps down to contributor.
    let out = role(uk, &case, ro, "lead").ok();
    assert!(
        out.contains("is now lead") && out.contains("was observer"),
        "{out}"
    );
    let v = uk.json(&[
        "case",
        "member",
        "role",
        &case,
        &peer_of(uk),
        "--role",
        "contributor",
    ]);
    assert_eq!(v["was"], "lead");
    let want: BTreeMap<String, String> = [
        (peer_of(uk), "contributor".to_string()),
        (peer_of(ro), "lead".to_string()),
        (peer_of(eu), "contributor".to_string()),
    ]
    .into();
    assert_eq!(roles(uk, &case), want);
    let e = role(uk, &case, eu, "lead").error_line();
    assert!(e.contains("only a lead"), "uk handed the case over: {e}");
    let audit = uk.json(&["audit", "list"]);
    let done: Vec<&str> = audit
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["action"] == "case.member.role")
        .map(|e| e["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(done.iter().filter(|o| **o == "ok").count(), 2, "{audit:#}");
    assert_eq!(
        done.iter().filter(|o| **o == "refused").count(),
        4,
        "{audit:#}"
    );

    // ro, now lead, acts on the case; everyone agrees (through uk's serve).
    let su = Server::start(uk, &[]);
    let sync = |nodes: &[&Node]| {
        for n in nodes {
            n.cmd(&["sync", "--once", "--peer", &su.addr, "--timeout", "30"])
                .ok();
        }
    };
    sync(&[ro, eu]);
    assert_eq!(roles(ro, &case), want);
    // Only a lead changes roles.
    let e = role(eu, &case, eu, "lead").error_line();
    assert!(e.contains("only a lead"), "{e}");
    role(ro, &case, eu, "lead").ok();
    sync(&[ro, eu]);

    // Two leads take each other's role away while apart: one of them keeps
    // it (the later change in fold order is the one ignored), the same one on
    // every node, so a lead is left.
    role(ro, &case, eu, "contributor").ok();
    role(eu, &case, ro, "contributor").ok();
    sync(&[ro, eu, ro]);
    let on_uk = roles(uk, &case);
    let leads: Vec<&String> = on_uk
        .iter()
        .filter(|(_, r)| *r == "lead")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(leads.len(), 1, "{on_uk:?}");
    assert!(
        *leads[0] == peer_of(ro) || *leads[0] == peer_of(eu),
        "{on_uk:?}"
    );
    for n in [ro, eu] {
        assert_eq!(roles(n, &case), on_uk, "{}", n.dir.display());
    }
    let lead = if *leads[0] == peer_of(ro) { ro } else { eu };

    // The lead's node is revoked: no lead is left to remove it from the case,
    // and every member sees it as revoked.
    uk.cmd(&[
        "trust",
        "revoke",
        &peer_of(lead),
        "--reason",
        "left the JIT",
    ])
    .ok();
    let v = uk.json(&["case", "show", &case]);
    let status = by_member(&v, "status");
    let other = if lead.dir == ro.dir { eu } else { ro };
    assert_eq!(status[&peer_of(lead)], "revoked", "{v:#}");
    assert_eq!(status[&peer_of(other)], "active", "{v:#}");
    let text = uk.cmd(&["case", "show", &case]).ok();
    assert!(text.contains("REVOKED from the federation"), "{text}");
}

/// Issue 21, finding 3: the only lead's node is revoked; nobody in the case
/// can add a member or change a role, until a federation admin that is a
/// member appoints a current member lead. The new lead then removes the
/// revoked one and adds a member; an appointment while a lead is active, by a
/// node that is not an admin, or of a relay is refused.
#[test]
fn an_admin_appoints_a_lead_when_every_lead_is_revoked() {
    let t = crate::util::TestDir::new("appoint");
    let nodes = federation(
        &t,
        &[("uk", "GB"), ("ro", "RO"), ("eu", "NL"), ("nca", "GB")],
    );
    let (uk, ro, eu, nca) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    // ro leads; uk (the federation's admin) and eu are members.
    {
        let su = Server::start(uk, &[]);
        ro.cmd(&["sync", "--once", "--peer", &su.addr, "--timeout", "30"])
            .ok();
    }
    let case = ro.create_case("Op Orphan");
    ro.add_member(&case, uk, "observer");
    ro.add_member(&case, eu, "contributor");
    {
        let sr = Server::start(ro, &[]);
        for n in [uk, eu] {
            n.cmd(&["sync", "--once", "--peer", &sr.addr, "--timeout", "30"])
                .ok();
        }
    }
    let appoint = |by: &Node, who: &Node| {
        by.cmd(&[
            "case",
            "appoint-lead",
            &case,
            &peer_of(who),
            "--reason",
            "ro's node was revoked",
        ])
    };
    // While ro is active, nobody appoints over it.
    let e = appoint(uk, eu).error_line();
    assert!(e.contains("not revoked"), "{e}");
    uk.cmd(&[
        "trust",
        "revoke",
        &peer_of(ro),
        "--reason",
        "node compromised",
    ])
    .ok();
    let e = eu
        .cmd(&[
            "case",
            "member",
            "add",
            &case,
            &peer_of(nca),
            "--role",
            "observer",
        ])
        .error_line();
    assert!(e.contains("lead"), "{e}");
    // Not by a node that is not an admin.
    let e = appoint(eu, eu).error_line();
    assert!(e.contains("admin"), "{e}");
    let out = appoint(uk, eu).ok();
    assert!(out.contains("is now lead"), "{out}");
    assert_eq!(roles(uk, &case)[&peer_of(eu)], "lead");
    // eu learns of the revocation and the appointment, removes ro (a lead
    // cuts revoked nodes) and leads.
    {
        let su = Server::start(uk, &[]);
        eu.cmd(&["sync", "--once", "--peer", &su.addr, "--timeout", "30"])
            .ok();
    }
    assert_eq!(roles(eu, &case)[&peer_of(eu)], "lead");
    eu.cmd(&[
        "case",
        "member",
        "add",
        &case,
        &peer_of(nca),
        "--role",
        "observer",
    ])
    .ok();
    let shown = eu.json(&["case", "show", &case]);
    let removed: Vec<&str> = shown["removed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["peer_id"].as_str())
        .collect();
    assert!(removed.contains(&peer_of(ro).as_str()), "{shown:#}");
    let audit = uk.json(&["audit", "list"]).to_string();
    assert!(
        audit.contains("case.lead.appoint"),
        "the appointment is audited"
    );
}
