//! The raw operations behind audited commands, for one purpose only: the
//! benchmark row that measures what auditing costs (`scripts/bench.sh`, issue
//! "audit"). No command reaches these; every command audits.

use casesync_schema::doc::RecordView;
use casesync_schema::record::RecordInput;

use crate::records::{self, ImportReport};
use crate::{Node, Result};

/// `record import` without its audit entry.
pub fn import_raw(
    node: &Node,
    case_text: &str,
    source: &mut dyn Iterator<Item = Result<(usize, RecordInput)>>,
) -> Result<ImportReport> {
    records::import_with(
        node,
        &crate::audit::Actor::new(None, None),
        case_text,
        source,
        &mut |_| {},
        false,
    )
}

/// `record show` without its audit entry (and so without a write transaction).
pub fn show_raw(node: &Node, record_text: &str) -> Result<RecordView> {
    records::view_of(node, node.store.conn(), record_text)
}
