//! End-to-end tests: the real `casesync` binary on real data dirs.
//! One test binary (one link step); each group is a module.

/// The harness: binary, temp dirs, nodes, output checks.
mod util;

/// Four-eyes: requests, approvals, denials, expiry.
mod approvals;

/// No plaintext in any file of the data dir.
mod at_rest;
/// The audit log: every operation, sync disclosures, tamper evidence.
mod audit;
/// Refused input changes nothing.
mod bad_input;
/// The web UI in headless chromium.
mod browser;
/// Bundles: air-gapped transfer, convergence, tampering.
mod bundle;
/// init, id, help texts.
mod cli;
/// Nodes whose clocks are hours apart converge.
mod clock;
/// Two leads acting at once while apart: control logs converge by content.
mod concurrent;
/// SIGKILL during import.
mod crash;
/// A full disk: a clear error, nothing lost, works again with space.
mod disk_full;
/// Erasure: a record erased from every member, with receipts.
mod erasure;
/// Evidence files: pieces, verification, custody, export, tampering.
mod evidence;
/// Federation trust registry; members by PeerId.
mod federation;
/// Handling codes: H2 with the originator's consent, regrades.
mod handling;
/// A case changes hands; never without an admin or a lead.
mod handover;
/// A hostile enrolled peer speaking the protocol: every misbehaviour is refused.
mod hostile_peer;
/// The web front end: accounts, sessions, CSRF, need-to-know, headers.
mod http;
/// JSON Lines and CSV import, all or nothing.
mod import;
/// SIGKILL at random points of import, edits, sync, rotation, membership.
mod kills;
/// Deconfliction between partners (`match`) and selectors for outside bodies.
mod matching;
/// Members by card; handling rules.
mod members;
/// Sync between `serve` processes on 127.0.0.1.
mod network;
/// Random operations on 3-5 nodes through a cutting, delaying, resetting proxy.
mod partition;
/// The TCP proxy the partition tests dial through.
mod proxy;
/// Record types, fields, unicode, edits.
mod records;
/// A node restored from a backup or a copy loses nothing and writes on.
mod restore;
/// Retention review: due dates by policy, retain or erase.
mod review;
/// Keys that lost their authority: a revoked admin, a removed lead's backup.
mod stale_keys;
/// Hand-edited stores are detected.
mod tamper;
