//! What auditing costs: imports N records and shows M of them with the audit
//! entries every command writes, and the same raw operations without, in one
//! process, alternating, and prints one JSON object. Run by `scripts/bench.sh`.
//!
//!   audit_cost DIR [N=10000] [M=1000]

use std::time::Instant;

use casesync_node::bench::{import_raw, show_raw};
use casesync_node::{DataDir, Node, cases, records};
use casesync_schema::record::{FieldValue, RecordInput, RecordType, ReleasableTo};

fn person(i: usize) -> RecordInput {
    let mut fields = std::collections::BTreeMap::new();
    for (k, v) in [
        ("name", format!("Persoana Numarul {i:08}")),
        ("alias", format!("alias-{i:08}")),
        ("category", "contact".to_string()),
        ("nationality", "RO".to_string()),
    ] {
        fields.insert(k.to_string(), FieldValue::Str(v));
    }
    RecordInput {
        handling: Default::default(),
        record_type: RecordType::Person,
        fields: fields.into_iter().collect(),
        grading: None,
        releasable_to: ReleasableTo::default(),
    }
}

fn import(node: &Node, n: usize, audited: bool) -> (f64, String) {
    let case = cases::create(node, &bench_actor(), "bench", false).expect("case create");
    let text = case.to_string();
    let mut source = (0..n).map(|i| Ok((i + 1, person(i))));
    let t = Instant::now();
    if audited {
        records::import(node, &bench_actor(), &text, &mut source, &mut |_| {}).expect("import");
    } else {
        import_raw(node, &text, &mut source).expect("import");
    }
    (t.elapsed().as_secs_f64(), text)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("usage: audit_cost DIR [N] [M]");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let m: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1_000);
    casesync_node::clock::init();
    let _ = std::fs::remove_dir_all(dir);
    let node = DataDir::new(dir)
        .init("bench", "Bench Unit", "GB", b"bench-passphrase")
        .expect("init");
    // Alternate raw and audited runs so drift on a shared machine hits both.
    let (mut raw_import, mut audited_import) = (Vec::new(), Vec::new());
    let mut case = String::new();
    for _ in 0..2 {
        raw_import.push(import(&node, n, false).0);
        let (t, c) = import(&node, n, true);
        audited_import.push(t);
        case = c;
    }
    let ids: Vec<String> = records::list(&node, &bench_actor(), &case, None)
        .expect("list")
        .into_iter()
        .take(m)
        .map(|v| v.id)
        .collect();
    let (mut raw_show, mut audited_show) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let t = Instant::now();
        for id in &ids {
            show_raw(&node, id).expect("show");
        }
        raw_show.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for id in &ids {
            records::show(&node, &bench_actor(), id).expect("show");
        }
        audited_show.push(t.elapsed().as_secs_f64());
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (ri, ai, rs, as_) = (
        best(&raw_import),
        best(&audited_import),
        best(&raw_show),
        best(&audited_show),
    );
    println!(
        "{}",
        serde_json::json!({
            "import_records": n,
            "import_raw_s": ri,
            "import_audited_s": ai,
            "import_ratio": ai / ri,
            "show_records": ids.len(),
            "show_raw_s": rs,
            "show_audited_s": as_,
            "show_ratio": as_ / rs,
            "note": "best of 2 alternating runs, one process; audited = the command's own path (entry sealed, chained, signed, in the action's transaction)",
        })
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Who the benchmark's operations are audited as.
fn bench_actor() -> casesync_node::audit::Actor {
    casesync_node::audit::Actor::new(Some("bench"), None)
}
