//! The engine as a library user sees it (no binary): each operation a person
//! can do on records and members checks its own rules and writes its own
//! audit entry, refusals included, so a front end cannot forget one.

mod common;
use common::{PASS, temp_root};

use casesync_crypto::keystore::KdfParams;
use casesync_node::audit::{self, Actor, Filter, Outcome};
use casesync_node::{DataDir, Node, backup, bundle, cases, peers, records, status, trust};
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
        handling: Default::default(),
        record_type: RecordType::Person,
        fields: [("name".to_string(), FieldValue::Str(name.into()))].into(),
        grading: None,
        releasable_to: ReleasableTo::default(),
    }
}

/// Each audit entry's (action, outcome), in order.
fn trail(n: &Node) -> Vec<(String, Outcome)> {
    audit::read(n, &Filter::default())
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

/// A person, as a front end with many users names them.
fn by(operator: &str, justification: Option<&str>) -> Actor {
    Actor::new(Some(operator), justification)
}

#[test]
fn every_operation_audits_itself_refusals_included() {
    let root = temp_root("engine-api");
    let a = node(&root, "uk-east", "GB");
    let b = node(&root, "ro-police", "RO");
    let sam = by("sam", None);
    let case = cases::create(&a, &sam, "Op Library", false)
        .unwrap()
        .to_string();
    cases::add_member(&a, &sam, &case, &b.card.to_text(), Role::Contributor).unwrap();
    let v = records::add(&a, &sam, &case, person("Victor Ilie")).unwrap();
    records::edit(
        &a,
        &sam,
        &v.id,
        vec![("nationality".into(), FieldValue::Str("RO".into()))],
        vec![],
    )
    .unwrap();
    assert_eq!(records::show(&a, &sam, &v.id).unwrap().id, v.id);
    let mut source = vec![Ok((1, person("Ana Popa")))].into_iter();
    records::import(&a, &sam, &case, &mut source, &mut |_| {}).unwrap();
    assert_eq!(records::list(&a, &sam, &case, None).unwrap().len(), 2);

    // Refused, each by the engine's own rule, and each recorded as refused.
    let e = cases::change_role(&a, &sam, &case, &b.card.peer_id(), Role::Observer).unwrap_err();
    assert!(e.to_string().contains("remove it instead"), "{e}");
    let e = records::show(&a, &sam, "01a24d00-0000-7000-8000-000000000000").unwrap_err();
    assert!(e.to_string().contains("unknown record"), "{e}");
    let e = records::add(
        &a,
        &sam,
        &case,
        RecordInput {
            handling: Default::default(),
            fields: Default::default(),
            ..person("")
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("name"), "{e}");
    cases::remove_member(&a, &sam, &case, &b.card.peer_id(), "left the team").unwrap();

    // Trust, bundles, backups and the audit export, the same way.
    trust::create(&a, &sam, "JIT").unwrap();
    let token = trust::invite(&a, &sam, &b.card, false).unwrap();
    let e = trust::join(&b, &sam, "not-a-token", |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("invalid join token"), "{e}");
    trust::join(&b, &sam, &token, |_| Ok(())).unwrap();
    assert_eq!(
        trust::roster(b.store.conn()).unwrap().registry.nodes.len(),
        2
    );
    trust::leave(&b, &sam).unwrap();
    let e = cases::appoint_lead(&a, &sam, &case, &b.card.peer_id(), "cover").unwrap_err();
    assert!(!e.to_string().is_empty());
    let e = cases::create(&a, &sam, "   ", false).unwrap_err();
    assert!(e.to_string().contains("title"), "{e}");
    let e = trust::revoke(&a, &sam, "12D3KooWnotanode", "test").unwrap_err();
    assert!(e.to_string().contains("not"), "{e}");
    let file = root.join("all.bundle");
    let mut files = bundle::PartFiles::new(&file);
    let out = bundle::export(&a, &sam, &[], None, &mut |p| files.write(p)).unwrap();
    assert_eq!((out.parts, files.written.len()), (1, 1));
    let e = bundle::import_file(&b, &sam, &root.join("missing.bundle")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    backup::backup(&a, &sam, &root.join("a.csbackup")).unwrap();
    let e = backup::backup(&a, &sam, &root.join("a.csbackup")).unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    cases::export_audit(
        &a,
        &sam,
        &case,
        cases::ExportTo::File(&root.join("audit.jsonl")),
    )
    .unwrap();
    let (shown, title) = cases::show(&a, &sam, &case, |c| Ok(c.meta.title.clone())).unwrap();
    assert_eq!(
        (shown.id.to_string(), title.as_str()),
        (case.clone(), "Op Library")
    );
    assert!(cases::show(&a, &sam, "no-such-case", |_| Ok(())).is_err());
    assert!(
        !audit::list(&a, &sam, &Filter::default())
            .unwrap()
            .is_empty()
    );

    // What is read without a person's consultation of case data (status,
    // peers) is not audited; restore and a passphrase change are.
    let st = status::status(&a, &sam).unwrap();
    assert_eq!(st.cases.len(), 1);
    assert_eq!(st.cases[0].title, "Op Library");
    let addr = format!("/ip4/127.0.0.1/tcp/7001/p2p/{}", b.card.peer_id());
    assert!(peers::add(&a.store, &addr).unwrap());
    assert!(!peers::add(&a.store, &addr).unwrap());
    assert!(peers::add(&a.store, "not an address").is_err());
    assert_eq!(peers::list(&a.store).unwrap().len(), 1);
    let restored = backup::restore(
        &DataDir::new(root.join("uk-east-restored")),
        &root.join("a.csbackup"),
        PASS.as_bytes(),
        &sam,
    )
    .unwrap();
    assert!(
        trail(&restored)
            .iter()
            .any(|(a, o)| a == "node.restore" && *o == Outcome::Ok)
    );
    let new_pass = "a different passphrase, long enough";
    let e = b
        .dir
        .change_passphrase(b"wrong passphrase!!", new_pass.as_bytes(), &sam)
        .unwrap_err();
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    b.dir
        .change_passphrase(PASS.as_bytes(), new_pass.as_bytes(), &sam)
        .unwrap();

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
        ("federation.create", Outcome::Ok),
        ("federation.invite", Outcome::Ok),
        ("case.lead.appoint", Outcome::Refused),
        ("case.create", Outcome::Refused),
        ("trust.revoke", Outcome::Refused),
        ("bundle.export", Outcome::Ok),
        ("node.backup", Outcome::Ok),
        ("node.backup", Outcome::Refused),
        ("audit.export", Outcome::Ok),
        ("case.show", Outcome::Ok),
        ("case.show", Outcome::Refused),
        ("audit.list", Outcome::Ok),
    ] {
        assert!(
            t.iter().any(|(a, o)| a == action && *o == outcome),
            "no {action} {outcome:?} in {t:?}"
        );
    }
    let tb = trail(&b);
    for (action, outcome) in [
        ("bundle.import", Outcome::Refused),
        ("federation.join", Outcome::Refused),
        ("federation.join", Outcome::Ok),
        ("federation.leave", Outcome::Ok),
        // The wrong old passphrase, folded in at the unlock that followed.
        ("node.unlock", Outcome::Refused),
        ("node.passphrase_change", Outcome::Ok),
    ] {
        assert!(
            tb.iter().any(|(a, o)| a == action && *o == outcome),
            "no {action} {outcome:?} in {tb:?}"
        );
    }
    assert!(audit::verify(a.store.conn()).unwrap().fault.is_none());
}

/// One unlocked node, many people (what an agency's HTTP front end is): each
/// operation names its actor, its audit entry names that person and the
/// justification they gave, and a case that asks for a justification refuses
/// the one who gave none, whoever acted before on the same handle.
#[test]
fn one_node_many_people_each_operation_names_its_actor() {
    let root = temp_root("engine-actors");
    let a = node(&root, "uk-east", "GB");
    let sam = by("sam", Some("opened on the DCI's tasking"));
    let ana = by("ana", Some("tasking 2026/118"));
    let bob = by("bob", None);
    let case = cases::create(&a, &sam, "Op Ledger", true)
        .unwrap()
        .to_string();
    let v = records::add(&a, &ana, &case, person("Marin Dobre")).unwrap();
    // Bob gave no reason: refused on the same handle ana just used, and the
    // refusal is his.
    let e = records::show(&a, &bob, &v.id).unwrap_err();
    assert!(e.to_string().contains("requires a justification"), "{e}");
    assert_eq!(records::show(&a, &ana, &v.id).unwrap().id, v.id);

    let entries = audit::read(&a, &Filter::default()).unwrap();
    let who = |action: &str, outcome: Outcome| -> Vec<(String, Option<String>)> {
        entries
            .iter()
            .filter(|e| e.action == action && e.outcome == outcome)
            .map(|e| (e.operator.clone(), e.justification.clone()))
            .collect()
    };
    assert_eq!(
        who("case.create", Outcome::Ok),
        vec![("sam".into(), Some("opened on the DCI's tasking".into()))]
    );
    assert_eq!(
        who("record.add", Outcome::Ok),
        vec![("ana".into(), Some("tasking 2026/118".into()))]
    );
    assert_eq!(
        who("record.show", Outcome::Refused),
        vec![("bob".into(), None)]
    );
    assert_eq!(
        who("record.show", Outcome::Ok),
        vec![("ana".into(), Some("tasking 2026/118".into()))]
    );
}
