//! The sync protocol's messages (request-response, CBOR). Every byte field is a
//! `serde_bytes` buffer; every list is capped where it is decoded or used, and
//! the codec caps whole messages.

use serde::{Deserialize, Serialize};

/// Version 2: control logs and the registry are compared by content (a digest
/// of the operation hashes, and the heads), never by count.
pub const PROTOCOL: &str = "/casesync/sync/2";
/// Largest request or response on the wire.
pub const MAX_MESSAGE_BYTES: u64 = 16 * 1024 * 1024;
/// Item bytes a responder puts in one response; the requester asks again for more.
pub const RESPONSE_BUDGET: usize = 4 * 1024 * 1024;
/// Most entries in one response or delivery, however small: bounds the
/// per-entry work (a signature check, a store lookup) one message can ask for.
pub const MAX_ENTRIES_PER_MESSAGE: usize = 4096;
/// Most cases one summary may list.
pub const MAX_CASES: usize = 100_000;
/// Most author logs per case in one summary.
pub const MAX_LOGS: usize = 10_000;
/// Most control-log heads per case in one summary; a peer that lists more is
/// sent the whole log.
pub const MAX_HEADS: usize = 256;
/// Most cases one delivery or batch of items may carry.
pub const MAX_CASES_PER_MESSAGE: usize = 16_384;
/// What one delivery or batch of items may carry of each kind; a message over
/// any of them is refused whole before its items are read, and its sender
/// disconnected. Entries: twice the count a sender puts in, for the
/// equivocation proofs it adds outside that count.
pub const MESSAGE_LIMITS: casesync_schema::bundle::Limits = casesync_schema::bundle::Limits {
    registry_ops: crate::ingest::MAX_REGISTRY_OPS_PER_MESSAGE,
    cases: MAX_CASES_PER_MESSAGE,
    control_ops: crate::ingest::MAX_CONTROL_OPS_PER_MESSAGE,
    entries: 2 * MAX_ENTRIES_PER_MESSAGE,
};

/// What a node holds of one case: a digest of its control operations and the
/// heads of their graph, and each author's last seq.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseHave {
    #[serde(with = "serde_bytes")]
    pub case: Vec<u8>,
    /// `CaseState::control_digest`: equal only for the same set of operations.
    #[serde(with = "serde_bytes")]
    pub control: Vec<u8>,
    /// The control graph's heads: the peer sends what is not below them.
    pub control_heads: Vec<serde_bytes::ByteBuf>,
    pub logs: Vec<LogHave>,
    /// Logs frozen after a proved equivocation, each with the seq it is frozen
    /// before: a peer that lists one needs no proof of it.
    #[serde(default)]
    pub frozen: Vec<LogHave>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHave {
    #[serde(with = "serde_bytes")]
    pub author: Vec<u8>,
    pub seq: u64,
    /// Hash of the entry at `seq`, so a peer holding another entry there (a
    /// fork) sends its own and the fork is proved; empty where not known.
    #[serde(default, with = "serde_bytes")]
    pub head: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncRequest {
    /// "Here is the digest of what I hold of the registry and our shared cases;
    /// is yours the same?" The first message of an anti-entropy round: when
    /// peers are in sync it is the whole round.
    Digest {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        digest: Vec<u8>,
        /// The sender's signed audit head (seq, link, signature): a peer
        /// that saw a later one knows the sender's audit log went back.
        /// Heads are compared from requests only: a node runs one exchange
        /// with a peer at a time, so its heads arrive in the order it read
        /// them (an answer's could cross a request's).
        #[serde(default, with = "serde_bytes")]
        audit_head: Vec<u8>,
    },
    /// "This is what I hold; send me what I lack of our shared cases and of the
    /// registry."
    Pull {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        /// Digest of the registry statements the sender holds.
        #[serde(with = "serde_bytes")]
        registry: Vec<u8>,
        have: Vec<CaseHave>,
    },
    /// Items the sender computed the receiver lacks (an encoded bundle body).
    Deliver {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// Deconfliction (`casesync match`): "evaluate these blinded selectors
    /// under your OPRF key". At most `deconfliction::MAX_BATCH`; each counts
    /// against the asker's daily quota.
    MatchEvaluate {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        blinded: Vec<serde_bytes::ByteBuf>,
    },
    /// Deconfliction, after a hit: a signed request to join or share the
    /// partner's case named by its handle (`deconfliction::FollowUp`).
    MatchFollowUp {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        request: Vec<u8>,
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Deconfliction: "list the tags of what you hold, after this one".
    MatchSet {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        after: Vec<u8>,
    },
    /// "Send me these entries of a case again": entries the sender holds
    /// without parts withheld from it (H2) that it may now hold.
    Refill {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        case: Vec<u8>,
        wants: Vec<LogHave>,
    },
    /// Provenance: a signed report to a record's originator of when the
    /// sender stored its records and how often they were read there
    /// (`provenance::Report`).
    Provenance {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        #[serde(with = "serde_bytes")]
        report: Vec<u8>,
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Items for the requester, whether more remain, and the responder's own
    /// summary so the requester can deliver what the responder lacks.
    Items {
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
        more: bool,
        #[serde(with = "serde_bytes")]
        registry: Vec<u8>,
        have: Vec<CaseHave>,
    },
    /// The answer to a digest: whether the responder's digest is the same,
    /// and, when the requester's audit head went back from one the responder
    /// saw before, that earlier head (signed by the requester): the requester
    /// learns its store was rolled back.
    Digest {
        same: bool,
        #[serde(default, with = "serde_bytes")]
        your_earlier_head: Vec<u8>,
    },
    /// A delivery was ingested: how many entries were new.
    Accepted { entries: u64, rejected: u64 },
    /// Blinded selectors evaluated under the key `public_key`, with one
    /// proof for the batch, and how many more the asker may send today.
    MatchEvaluated {
        #[serde(with = "serde_bytes")]
        public_key: Vec<u8>,
        evaluated: Vec<serde_bytes::ByteBuf>,
        #[serde(with = "serde_bytes")]
        proof: Vec<u8>,
        left_today: u64,
    },
    /// A page of the answerer's set: fixed-size entries (tag, sealed hit),
    /// in tag order; whether more follow; who to contact about a hit.
    MatchSet {
        #[serde(with = "serde_bytes")]
        public_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        entries: Vec<u8>,
        more: bool,
        contact: String,
    },
    /// The answerer is still filing its records for deconfliction (after a
    /// large import, say): ask again in a moment.
    MatchPreparing { records_left: u64 },
    /// A follow-up was filed with the case it names, for its lead.
    MatchFollowUpFiled,
    /// The entries a refill asked for, as they may go to the asker now
    /// (an encoded bundle body).
    Refilled {
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// A provenance report was filed: how many of its records.
    ProvenanceFiled { items: u64 },
    /// The request was refused; nothing was sent or stored.
    Refused { reason: String },
}

/// Evidence pieces move on a protocol of their own, with its own streams and
/// answers, so a gigabyte of evidence never delays record sync.
pub const PIECES_PROTOCOL: &str = "/casesync/pieces/1";
/// Pieces asked for in one request (8 x 1 MiB: under the message cap).
pub const MAX_PIECES_PER_REQUEST: usize = 8;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PieceRequest {
    /// "Send me these pieces (SHA-256 of their bytes)": evidence pieces or
    /// manifests of a case both nodes are members of.
    Get {
        #[serde(with = "serde_bytes")]
        federation: Vec<u8>,
        hashes: Vec<serde_bytes::ByteBuf>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PieceResponse {
    /// One entry per hash asked, in order; empty where this node does not
    /// hold the piece or may not give it to the asker.
    Pieces {
        pieces: Vec<serde_bytes::ByteBuf>,
    },
    Refused {
        reason: String,
    },
}
