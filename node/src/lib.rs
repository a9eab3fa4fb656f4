//! casesync-node: a casesync node on one machine.
//!
//! The engine API: unlock a [`Node`] ([`DataDir::unlock_as`]), then call one
//! function per operation a person can do (`cases::create`, `records::add`,
//! `trust::invite`, `bundle::export`, `audit::list`, `status::status`, ...),
//! each with the [`audit::Actor`] acting. Each checks its own permissions and
//! policy and records its own audit entry, refusals included, so a front end
//! (the `casesync` binary's `cli/`, or an HTTP API) only parses, calls and
//! renders. One `Node` serves many people: it holds no actor.
//!
//! Layers, from the bottom (no module imports one above it):
//! - [`store`] (SQL, one file per table family), [`clock`], [`error`];
//! - [`node`]: the [`DataDir`] and [`Node`] types every module above takes;
//! - [`files`], [`sealing`] (storage-key sealing, blind indexes), [`import`] (JSON Lines, CSV);
//! - [`access`]: the [`access::Actor`] and what its role allows (pure);
//! - [`audit`]: the audit chain; the only writer of audit entries;
//! - [`trust`] (the federation registry), [`log`] (appending signed, sealed entries);
//! - [`cases`] (control logs, members, key epochs, handling), [`verify`];
//! - [`records`], [`users`] (accounts, sessions, assignments), [`datadir`] (the data directory, unlocking into a [`Node`]);
//! - [`browse`] (pages of records, the link chart), [`search`] (the search index and `search`), [`ingest`] (items from peers and bundles), [`backup`], [`wake`], [`peers`];
//! - [`bundle`], [`net`] (the libp2p Swarm and its client);
//! - [`sync`] (what a peer lacks), [`status`];
//! - [`serve`] (`serve` and `sync --once`);
//! - [`http`]: the web front end (`serve --http`), beside the CLI of the binary.

pub mod access;
pub mod approvals;
pub mod audit;
pub mod backup;
#[doc(hidden)]
pub mod bench;
pub mod browse;
pub mod bundle;
pub mod cases;
pub mod clock;
pub mod datadir;
pub mod deconfliction;
pub mod erasure;
pub mod error;
pub mod evidence;
pub mod files;
pub mod four_eyes;
pub mod http;
pub mod import;
pub mod ingest;
pub mod log;
pub mod net;
pub mod node;
pub mod peers;
pub mod pieces;
pub mod provenance;
pub mod receipts;
pub mod records;
pub mod review;
pub mod sealing;
pub mod search;
pub mod selector_export;
pub mod serve;
pub mod settings;
pub mod status;
pub mod store;
pub mod sync;
pub mod trust;
pub mod users;
pub mod verify;
pub mod wake;

pub use node::{DataDir, Node};

pub use error::{NodeError, Result, short};
