//! The engine as a library user sees it (no binary): each operation a person
//! can do on records and members checks its own rules and writes its own
//! audit entry, refusals included, so a front end cannot forget one.

mod common;
use common::{PASS, temp_root};

use casesync_crypto::keystore::KdfParams;
use casesync_node::audit::{self, Filter, Outcome};
use casesync_node::{DataDir, Node, backup, bundle, cases, records, trust};
use casesync_schema::control::Role;
use casesync_schema::record::{FieldValue, RecordInput, RecordType, ReleasableTo};

fn node(root: &std::path::Path, name: &str, country: &str) -> Node {
    DataDir::new(root.join(name))
        .init_with(
            name,
            "Unit",
            country,
            PASS.as_bytes(),
            KdfParams::with_memory_mib(19).unwrap(),
        )
        .unwrap()
}

fn person(name: &str) -> RecordInput {
    RecordInput {
        record_type: RecordType::Person,
        fields: [("name".to_string(), FieldValue::Str(name.into()))].into(),
        grading: None,
        releasable_to: ReleasableTo::default(),
    }
}

/// Each audit entry's (action, outcome), in order.
fn trail(n: &Node) -> Vec<(String, Outcome)> {
    audit::list(n, &Filter::default())
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

#[test]
fn every_operation_audits_itself_refusals_included() {
    let root = temp_root("engine-api");
    let a = node(&root, "uk-east", "GB");
    let b = node(&root, "ro-police", "RO");
    let case = cases::create(&a, "Op Library", false).unwrap().to_string();
    cases::add_member(&a, &case, &b.card.to_text(), Role::Contributor).unwrap();
    let v = records::add(&a, &case, person("Victor Ilie")).unwrap();
    records::edit(
        &a,
        &v.id,
        vec![("nationality".into(), FieldValue::Str("RO".into()))],
        vec![],
    )
    .unwrap();
    assert_eq!(records::show(&a, &v.id).unwrap().id, v.id);
    let mut source = vec![Ok((1, person("Ana Popa")))].into_iter();
    records::import(&a, &case, &mut source, &mut |_| {}).unwrap();
    assert_eq!(records::list(&a, &case, None).unwrap().len(), 2);

    // Refused, each by the engine's own rule, and each recorded as refused.
    let e = cases::change_role(&a, &case, &b.card.peer_id(), Role::Observer).unwrap_err();
    assert!(e.to_string().contains("remove it instead"), "{e}");
    let e = records::show(&a, "01a24d00-0000-7000-8000-000000000000").unwrap_err();
    assert!(e.to_string().contains("unknown record"), "{e}");
    let e = records::add(
        &a,
        &case,
        RecordInput {
            fields: Default::default(),
            ..person("")
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("name"), "{e}");
    cases::remove_member(&a, &case, &b.card.peer_id(), "left the team").unwrap();

    // Trust, bundles, backups and the audit export, the same way.
    trust::create(&a, "JIT").unwrap();
    trust::invite(&a, &b.card, false).unwrap();
    let e = trust::revoke(&a, "12D3KooWnotanode", "test").unwrap_err();
    assert!(e.to_string().contains("not"), "{e}");
    let file = root.join("all.bundle");
    let out = bundle::export(&a, &[], None).unwrap();
    std::fs::write(&file, &out.parts[0]).unwrap();
    let e = bundle::import_file(&b, &root.join("missing.bundle")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    backup::backup(&a, &root.join("a.csbackup")).unwrap();
    let e = backup::backup(&a, &root.join("a.csbackup")).unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    cases::export_audit(&a, &case, &root.join("audit.jsonl")).unwrap();
    let (shown, title) = cases::show(&a, &case, |c| Ok(c.meta.title.clone())).unwrap();
    assert_eq!(
        (shown.id.to_string(), title.as_str()),
        (case.clone(), "Op Library")
    );
    assert!(cases::show(&a, "no-such-case", |_| Ok(())).is_err());

    let t = trail(&a);
    for (action, outcome) in [
        ("case.member.add", Outcome::Ok),
        ("record.add", Outcome::Ok),
        ("record.edit", Outcome::Ok),
        ("record.show", Outcome::Ok),
        ("record.import", Outcome::Ok),
        ("record.list", Outcome::Ok),
        ("case.member.role", Outcome::Refused),
        ("record.show", Outcome::Refused),
        ("record.add", Outcome::Refused),
        ("case.member.remove", Outcome::Ok),
        ("federation.invite", Outcome::Ok),
        ("trust.revoke", Outcome::Refused),
        ("bundle.export", Outcome::Ok),
        ("node.backup", Outcome::Ok),
        ("node.backup", Outcome::Refused),
        ("audit.export", Outcome::Ok),
        ("case.show", Outcome::Ok),
        ("case.show", Outcome::Refused),
    ] {
        assert!(
            t.iter().any(|(a, o)| a == action && *o == outcome),
            "no {action} {outcome:?} in {t:?}"
        );
    }
    let tb = trail(&b);
    assert!(
        tb.iter()
            .any(|(a, o)| a == "bundle.import" && *o == Outcome::Refused),
        "{tb:?}"
    );
    assert!(audit::verify(a.store.conn()).unwrap().fault.is_none());
}
