//! The command line's arguments (README, "The command line"): parsing only; the `*_cmds` modules run them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "casesync",
    version,
    about = "Offline-first, end-to-end encrypted case sharing for joint investigation teams",
    long_about = "casesync keeps case records (people, organisations, phones, accounts, wallets, \
locations, events, links, notes, evidence) as signed, encrypted CRDT documents in a local store.\n\n\
The keystore passphrase comes from CASESYNC_PASSPHRASE, or a prompt on a terminal.",
    after_help = "Examples:\n  casesync --data-dir ./uk-east init --name uk-east --org \"ROCU East\" --country GB\n  casesync case create --title \"Op Lantern\"\n  casesync record add CASE --type person --field name=\"Marin Dobre\" --field category=suspect"
)]
pub struct Cli {
    /// The node's data directory [default: $XDG_DATA_HOME/casesync]
    #[arg(long, global = true, env = "CASESYNC_HOME", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Machine-readable output on stdout (one JSON document)
    #[arg(long, global = true)]
    pub json: bool,

    /// The person acting, for the audit trail [default: the OS user]
    #[arg(long, global = true, env = "CASESYNC_OPERATOR", value_name = "NAME")]
    pub operator: Option<String>,

    /// Why this action is taken, recorded with it in the audit log (required on cases created with --require-justification)
    #[arg(long, global = true, value_name = "TEXT")]
    pub justification: Option<String>,

    /// Read the keystore passphrase from FILE (its first line; the file must
    /// be readable by its owner only): for services, where an environment
    /// variable would stay visible in /proc/PID/environ
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new node: identity keys, keystore, empty store; prints its PeerId
    #[command(
        after_help = "Example:\n  CASESYNC_PASSPHRASE=... casesync --data-dir ./ro-police init --name ro-police --org \"Poliția Română\" --country RO"
    )]
    Init {
        /// Short node name, e.g. uk-east
        #[arg(long)]
        name: String,
        /// Organisation running the node
        #[arg(long)]
        org: String,
        /// ISO 3166 two-letter country code
        #[arg(long)]
        country: String,
        /// Memory for the keystore's key derivation (Argon2id, 3 passes), in
        /// MiB: more makes each passphrase guess dearer; lower it only on a
        /// small device (at least 19)
        #[arg(long, value_name = "MIB", default_value_t = 64)]
        kdf_memory_mib: u32,
    },
    /// Change the keystore passphrase; re-seals the keys with the current
    /// key-derivation cost
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Write a backup of this node to one file: its sealed keystore and a
    /// consistent snapshot of its store (taken while `serve` runs)
    #[command(
        after_help = "The file is as sensitive as the data dir (sealed with the passphrase; no plaintext case data). Restore it with `casesync restore`.\n\n\
Example:\n  casesync backup --out /backups/uk-east-2026-12-06.csbackup"
    )]
    Backup {
        /// The backup file to write (must not exist)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Make --data-dir (new or empty) the node saved in a backup file
    #[command(
        after_help = "Asks for the passphrase the node had when the backup was taken. The restored node never reuses a \
log position it may have signed after the backup: its next entry in each case starts a new chain of its log, and its \
first sync fetches back the entries partners hold.\n\n\
Example:\n  casesync --data-dir ./uk-east restore /backups/uk-east-2026-12-06.csbackup"
    )]
    Restore {
        /// The backup file (from `casesync backup`)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Show this node's PeerId, name, organisation and country
    #[command(
        after_help = "Examples:\n  casesync id\n  casesync id --card > uk-east.card   # give this line to a case lead"
    )]
    Id {
        /// Print only the signed node card, on one line
        #[arg(long)]
        card: bool,
    },
    /// Create a federation, invite nodes into it, join one
    #[command(subcommand)]
    Federation(FederationCommand),
    /// The nodes this federation trusts
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Create, list and show cases; manage members
    #[command(subcommand)]
    Case(CaseCommand),
    /// Add, edit, show, list and import records
    #[command(subcommand)]
    Record(RecordCommand),
    /// Run the node: listen, sync with enrolled peers, push local writes
    #[command(
        after_help = "Prints `listening on MULTIADDR/p2p/PEERID` for each address; stops cleanly on SIGINT or SIGTERM.\n\n\
Example:\n  casesync serve --listen /ip4/127.0.0.1/tcp/7001 --peer /ip4/127.0.0.1/tcp/7002/p2p/12D3KooW..."
    )]
    Serve {
        /// Address to listen on (repeatable) [default: /ip4/127.0.0.1/tcp/0]
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Serve the web UI and JSON API (`/api/`) for the agency's analysts on
        /// this address, e.g. 127.0.0.1:8080; any other than loopback needs
        /// --http-tls-cert and --http-tls-key
        #[arg(long, value_name = "ADDR:PORT")]
        http: Option<String>,
        /// TLS certificate chain (PEM) for --http
        #[arg(long, value_name = "PEM", requires_all = ["http_tls_key", "http"])]
        http_tls_cert: Option<PathBuf>,
        /// TLS private key (PEM) for --http
        #[arg(long, value_name = "PEM", requires = "http_tls_cert")]
        http_tls_key: Option<PathBuf>,
        /// A peer to dial, ending in /p2p/PEER_ID (repeatable; also `peer add`)
        #[arg(long, value_name = "MULTIADDR")]
        peer: Vec<String>,
        /// Seconds between anti-entropy rounds with each connected peer (local
        /// writes are pushed at once whatever this is)
        #[arg(long, default_value_t = 5.0, value_name = "SECS", value_parser = parse_interval)]
        anti_entropy: f64,
        /// Evidence files: `eager` fetches every file's pieces from members as
        /// soon as its record arrives; `on-open` only those someone tries to
        /// open (`evidence get`, a download)
        #[arg(long, default_value = "eager", value_name = "eager|on-open")]
        fetch: String,
    },
    /// Connect to peers, sync every shared case once, print what moved
    #[command(
        after_help = "Runs until every peer is synced; gives up only after --timeout seconds in which nothing\n\
moved (so a large first sync is not cut off), and then says what it received: what arrived\n\
is kept, and running it again resumes. On a terminal it shows the counts as it goes. Exits\n\
non-zero if no peer answered, or if it stopped before finishing.\n\nExample:\n  casesync sync --once --peer /ip4/127.0.0.1/tcp/7002/p2p/12D3KooW... --timeout 30"
    )]
    Sync {
        /// Sync once and exit (the only mode; `serve` syncs continuously)
        #[arg(long, required = true)]
        once: bool,
        /// A peer to sync with (repeatable) [default: the peers of `peer list`]
        #[arg(long, value_name = "MULTIADDR")]
        peer: Vec<String>,
        /// Give up after this many seconds without progress (not in total)
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
    },
    /// Remember peers to dial
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Federation, peers, and per case: logs, heads, last sync
    #[command(after_help = "Example:\n  casesync status --json")]
    Status,
    /// Carry cases between nodes on a file (air-gapped transfer)
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Check the stored logs
    #[command(subcommand)]
    Log(LogCommand),
    /// The audit log: who did what with case data, when and why (append-only, signed)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Find a selector (phone, IBAN, BIC, wallet, vehicle, email) or a name or
    /// word across every case this node holds
    #[command(
        after_help = "A selector is found in any format (+40 722 123 456, 0722123456 and 0040722123456 are one\n\
phone); names ignore case, diacritics and word order. Results are ranked; one held in more than\n\
one case is marked `also in`. The search is audited, the query sealed in the entry.\n\n\
Examples:\n  casesync search \"+40 722 123 456\"\n  casesync search \"dobre marin\" --type name --json\n  casesync search RO49AAAA1B31007593840000 --case CASE"
    )]
    Search {
        query: String,
        /// Only this kind of selector: phone, iban, bic, btc, eth, vehicle, email, name
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only this case
        #[arg(long, value_name = "CASE")]
        case: Option<String>,
    },
    /// Deconfliction: ask an enrolled partner which of your selectors it
    /// holds, without showing it any (private set intersection); or set who
    /// may ask this node (`match policy`)
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "The partner learns how many selectors were asked, never which; this node learns which
of its selectors the partner holds (with an opaque handle of the case there and who to contact),
nothing of the rest. The partner must be serving and must allow this node (`match policy`);
it counts every selector against a daily limit. Both sides audit it.

Selector files: one per line, TYPE:VALUE (phone, iban, bic, btc, eth, vehicle, email, name)
or a value whose type is guessed; `#` starts a comment.

Examples:
  casesync match --peer 12D3KooW... --case CASE
  casesync match --peer 12D3KooW... --selectors asked.txt --json
  casesync match policy --allow \"RO Police\" --allow 12D3KooW... --per-day 5000"
    )]
    Match(MatchArgs),
    /// Evidence files: stored encrypted in pieces with the case, verified,
    /// with a custody trail
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Selectors of a case for an outside body (an exchange, a bank)
    #[command(subcommand)]
    Selectors(SelectorsCommand),
    /// Retention review: what is due, retain or erase, and the periods
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Four-eyes: operations that need a second person, and their requests
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Accounts of the web front end (`serve --http`): add, list, disable,
    /// set a password, assign cases to analysts
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add an account. The password is read from standard input (one line, or
    /// the same line twice), asked twice on a terminal, or, if none is given,
    /// made: a one-time password printed once
    #[command(
        after_help = "Roles: an analyst reads and writes the cases assigned to them; a supervisor creates cases,
assigns analysts and manages members; an admin manages accounts and the federation's trust.

Example:
  casesync user add ana.popa --role analyst < /dev/null     # prints a one-time password
  printf 'a long passphrase\n' | casesync user add sam --role supervisor"
    )]
    Add {
        name: String,
        #[arg(long, value_name = "analyst|supervisor|admin")]
        role: String,
    },
    /// The accounts, their roles, and whether each is disabled or locked
    #[command(after_help = "Example:
  casesync user list --json")]
    List,
    /// Disable an account: it cannot log in, and its sessions end at once
    #[command(after_help = "Example:
  casesync user disable ana.popa")]
    Disable { name: String },
    /// Set a new password (as for `user add`); this ends the account's sessions
    /// and clears a lock after failed logins
    #[command(after_help = "Example:
  casesync user passwd ana.popa < /dev/null     # prints a one-time password")]
    Passwd { name: String },
    /// Give an analyst need-to-know of a case (they see and work on it)
    #[command(after_help = "Example:
  casesync user assign ana.popa 01932c5e-...")]
    Assign { name: String, case: String },
    /// Take a case away from an analyst
    #[command(after_help = "Example:
  casesync user unassign ana.popa 01932c5e-...")]
    Unassign { name: String, case: String },
}

#[derive(Subcommand, Debug)]
pub enum PassphraseCommand {
    /// Change the passphrase: the current one as usual (CASESYNC_PASSPHRASE,
    /// --passphrase-file or a prompt), the new one asked twice on a terminal
    /// or read from --new-passphrase-file
    #[command(
        after_help = "The keystore is re-sealed with the current key-derivation cost (Argon2id, 64 MiB, 3 passes),\n\
so this also raises the cost of a keystore made with an older, cheaper setting.\n\n\
Example:\n  casesync passphrase change\n  casesync --passphrase-file old.txt passphrase change --new-passphrase-file new.txt"
    )]
    Change {
        /// Read the new passphrase from FILE (first line; owner-only file)
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FederationCommand {
    /// Start a federation with this node as its first admin; prints the federation id
    #[command(after_help = "Example:\n  casesync federation create --name \"JIT Lantern\"")]
    Create {
        #[arg(long)]
        name: String,
    },
    /// Admin: enroll a node by its card; prints a one-line join token to send it
    #[command(
        after_help = "Example:\n  casesync federation invite \"$(cat ro-police.card)\" > ro-police.token"
    )]
    Invite {
        /// The node's card (from `casesync id --card` on that node)
        card: String,
        /// Make the node an admin too
        #[arg(long)]
        admin: bool,
    },
    /// Join the federation whose admin invited this node (shows who invites,
    /// and asks on a terminal)
    #[command(
        after_help = "The token is sealed to this node and valid for 7 days. Before joining, the federation's\n\
name and id and the inviting admin (PeerId, name, organisation, country) are shown; on a\n\
terminal you are asked to confirm. In scripts, --expect-federation makes a token for another\n\
federation fail (the id, or at least its first 16 hex digits, from the admin by another channel).\n\n\
Example:\n  casesync federation join \"$(cat ro-police.token)\" --expect-federation 3f2a9c0b7d1e4f56"
    )]
    Join {
        token: String,
        /// The federation id you expect (at least its first 16 hex digits)
        #[arg(long, value_name = "ID")]
        expect_federation: Option<String>,
    },
    /// Leave the federation: only while this node holds no case
    #[command(
        after_help = "For a node that joined the wrong federation: it forgets that federation's registry and can\n\
join another. Refused once the node holds any case.\n\nExample:\n  casesync federation leave"
    )]
    Leave,
    /// Show or set the federation's four-eyes policy: with --two-admins on,
    /// enrolling or revoking a node (or turning this off) takes two admin nodes
    #[command(
        after_help = "Needs two admin nodes. Under the policy, `federation invite` and `trust revoke` print a\n\
request token (csreq1.) instead of acting; an admin of another admin node approves it with\n\
`casesync approvals approve TOKEN` within 72 hours, and the statement, signed by both, reaches\n\
every node by sync. A federation left with one admin is not locked: that admin acts alone.\n\n\
Examples:\n  casesync federation policy\n  casesync federation policy --two-admins on"
    )]
    Policy {
        /// on or off
        #[arg(long, value_name = "on|off")]
        two_admins: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Enrolled nodes: PeerId, name, organisation, country, admin?, active|revoked
    #[command(after_help = "Example:\n  casesync trust list --json")]
    List,
    /// Revoke an enrolled node (admin only; final): every node that learns it
    /// closes and refuses connections from it and sends it nothing more
    #[command(
        after_help = "The statement reaches every enrolled node by sync. Cases the node was a member of keep what it wrote before; its leads remove it from each case with a cut.\n\nExample:\n  casesync trust revoke 12D3KooW... --reason \"laptop seized 2026-11-26\""
    )]
    Revoke {
        /// The PeerId of the node to revoke (see `casesync trust list`)
        peer_id: String,
        /// Why; recorded in the signed statement
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaseCommand {
    /// Open a new case led by this node; prints the case id
    #[command(after_help = "Example:\n  casesync case create --title \"Op Lantern\"")]
    Create {
        #[arg(long)]
        title: String,
        /// Every action on this case's data then needs --justification TEXT; without it the command fails and the refusal is audited
        #[arg(long)]
        require_justification: bool,
    },
    /// List the cases this node holds (but those it archived)
    #[command(
        after_help = "Example:\n  casesync case list --json\n  casesync case list --all   # archived cases too"
    )]
    List {
        /// Archived cases too
        #[arg(long)]
        all: bool,
    },
    /// Title, members and roles, key epoch, record count
    #[command(after_help = "Example:\n  casesync case show 0192f0c1-7c1e-4b3a-9c1d-2f4e5a6b7c8d")]
    Show { case: String },
    /// Show or set (a lead) the case's policy, which binds every member node:
    /// which operations need a second person there, and whether originators
    /// may ask for their records' erasure
    #[command(
        after_help = "--four-eyes takes member-add, bundle-export, erase (comma-separated) or none. A\n\
member node's person asking for one of them files a request that another person there\n\
approves (`casesync approvals`), as under that node's own `approvals policy`.\n\
With --originator-erases on, `record erase` by the agency that made a record, on a node\n\
that does not lead the case, signs a request; a lead's node checks it made the record and\n\
erases it from every member.\n\n\
Examples:\n  casesync case policy CASE\n  casesync case policy CASE --four-eyes member-add,erase --originator-erases on"
    )]
    Policy {
        case: String,
        /// Comma-separated operations, or none
        #[arg(long, value_name = "LIST")]
        four_eyes: Option<String>,
        /// on or off
        #[arg(long, value_name = "on|off")]
        originator_erases: Option<String>,
    },
    /// Close a case (a lead): read-only for every member from then on
    #[command(after_help = "Example:\n  casesync case close CASE")]
    Close { case: String },
    /// Take a closed case out of this node's working lists (`case list`, the
    /// web UI), or put it back with --undo; it is still held, synced, reviewed
    #[command(after_help = "Example:\n  casesync case archive CASE\n  casesync case list --all")]
    Archive {
        case: String,
        /// Put it back in the working lists
        #[arg(long)]
        undo: bool,
    },
    /// Consent, as originator, that this node's records under handling code
    /// H2 in the case go to a member added after they were shared
    #[command(
        after_help = "An H2 record (no further dissemination without the originator's permission) reaches the members of its case when it is made; a member added later gets another agency's H2 records only once that agency consents. The consent is signed into the case's control log, so every member holding the records sends them on.

Example:
  casesync --justification \"JIT agreement annex 2\" case consent CASE 12D3KooW... --reason \"Europol joined the JIT\""
    )]
    Consent {
        case: String,
        /// The member's PeerId or card
        member: String,
        /// Why: kept in the audit log
        #[arg(long)]
        reason: String,
    },
    /// Erase a whole case from every member (a lead): each destroys the
    /// content of all its records and signs a receipt; the case is closed
    #[command(
        after_help = "As `record erase`, for every record of the case at once; the logs still verify.\n\n\
Example:\n  casesync case erase CASE --reason \"retention period over\""
    )]
    Erase {
        case: String,
        #[arg(long)]
        reason: String,
    },
    /// Where a case's erasure stands: per member node, pending or erased
    /// with its signed receipt
    #[command(after_help = "Example:\n  casesync case erasure CASE --json")]
    Erasure { case: String },
    /// Manage case members
    #[command(subcommand)]
    Member(MemberCommand),
    /// Admin: make a current member lead of a case whose leads were all
    /// revoked from the federation (nobody else can)
    #[command(
        after_help = "A signed, audited operation on the case's control log, which every member judges against its own\n\
registry: it takes effect only while every lead of the case is revoked. This node must be an active admin and a\n\
member of the case. The new lead then removes the revoked leads and rotates the case key.\n\n\
Example:\n  casesync case appoint-lead CASE 12D3KooW... --reason \"ro-police's node was revoked; eu-jit leads\""
    )]
    AppointLead {
        case: String,
        /// The member to lead: its PeerId
        member: String,
        /// Why, recorded in the audit log (and sealed in the operation)
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Add a node to a case (lead only); it receives every key of the case
    #[command(
        after_help = "Example:\n  casesync case member add CASE \"$(cat ro-police.card)\" --role contributor"
    )]
    Add {
        case: String,
        /// The node's card (from `casesync id --card`)
        member: String,
        #[arg(long, value_parser = ["lead", "contributor", "observer"])]
        role: String,
    },
    /// Remove a node from a case (lead only; final): a new key epoch goes to the
    /// remaining members, and the node's log is cut at its last entry held here
    #[command(
        after_help = "Entries the removed node wrote after the cut are rejected by every node; it receives nothing more of the case and cannot read anything written after its removal.\n\nExample:\n  casesync case member remove CASE 12D3KooW... --reason \"left the JIT\""
    )]
    Remove {
        case: String,
        /// The member's PeerId or card
        member: String,
        /// Why; recorded in the signed operation
        #[arg(long)]
        reason: String,
    },
    /// Give a member another role (lead only): hand a case over, or let a
    /// reader write
    #[command(
        after_help = "A lead hands a case over by making another member lead, then itself a contributor.
A case always keeps a lead. A member that writes cannot be made an observer: remove it
instead (the removal cuts its log and starts a key epoch it cannot read).

Example:
  casesync case member role CASE 12D3KooW... --role lead"
    )]
    Role {
        case: String,
        /// The member's PeerId or card
        member: String,
        #[arg(long, value_parser = ["lead", "contributor", "observer"])]
        role: String,
    },
}

#[derive(Args, Debug)]
pub struct FieldArgs {
    /// Set a field (repeatable), e.g. --field name="Marin Dobre"
    #[arg(long = "field", value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum RecordCommand {
    /// Add a record to a case; prints the record id
    #[command(
        after_help = "Types and required fields: person (name), organisation (name), vehicle (registration),\n\
phone (number), bank_account (iban or number), crypto_wallet (address, currency),\n\
location (address or lat/lon), event (title, when), link (from, to, link_type), note (text), evidence (file)\n\n\
Examples:\n  casesync record add CASE --type person --field name=\"Marin Dobre\" --field category=suspect --grading 3x5x2:1AP --handling H2\n  casesync record add CASE --type bank_account --field iban=RO41RNCB0082044617040001 --releasable-to GB,RO\n  casesync record add CASE --file record.json"
    )]
    Add {
        case: String,
        /// Record type (see below)
        #[arg(long = "type", value_name = "TYPE")]
        record_type: Option<String>,
        #[command(flatten)]
        fields: FieldArgs,
        /// A JSON file shaped like one import line: {"type": ..., "fields": {...}}
        #[arg(long, value_name = "RECORD.json")]
        file: Option<PathBuf>,
        /// SYSTEM:CODE, e.g. 3x5x2:1AP, 5x5x5:B24, europol:A1
        #[arg(long)]
        grading: Option<String>,
        /// Countries or organisations that may receive it, e.g. GB,RO
        #[arg(long, value_name = "LIST")]
        releasable_to: Option<String>,
        /// Handling code: H0 (law-enforcement use only, the default), H1 (not
        /// for judicial use without permission), H2 (no further dissemination
        /// without permission), H3:CONDITIONS
        #[arg(long, value_name = "CODE")]
        handling: Option<String>,
    },
    /// Change a record's grading or handling code (its originator only): a
    /// signed change every member checks, audited with the reason
    #[command(
        after_help = "Only the node that shared the record (its originator) regrades it; every member refuses a regrade signed by anyone else. Putting a record under H2 consents for the members of the case then; a member added later gets it after `casesync case consent`.

Example:
  casesync record regrade RECORD --handling H2 --reason \"source protection\"
  casesync record regrade RECORD --grading 3x5x2:2BP --reason \"corroborated by a second source\""
    )]
    Regrade {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
        /// New grading, SYSTEM:CODE
        #[arg(long)]
        grading: Option<String>,
        /// New handling code: H0, H1, H2 or H3:CONDITIONS
        #[arg(long, value_name = "CODE")]
        handling: Option<String>,
        /// Why: kept in the audit log
        #[arg(long)]
        reason: String,
    },
    /// Change fields of a record
    #[command(
        after_help = "Example:\n  casesync record edit RECORD --field status=arrested --unset alias"
    )]
    Edit {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
        #[command(flatten)]
        fields: FieldArgs,
        /// Remove a field (repeatable)
        #[arg(long = "unset", value_name = "KEY")]
        unset: Vec<String>,
    },
    /// Show one record (after re-verifying its log entries)
    #[command(
        after_help = "Examples:\n  casesync record show RECORD --json\n  casesync record show RECORD@CASE   # a record id is unique within its case"
    )]
    Show {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
    },
    /// Who changed which field of a record, when, from which node (after
    /// re-verifying its log entries); the newest 1,000 changes
    #[command(
        after_help = "Each line: the change's time (its author's clock), the node and its organisation, what it set and removed.\n\n\
Example:\n  casesync record history RECORD --json"
    )]
    History {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
    },
    /// Erase a record from every member (a lead of its case): a signed
    /// erasure each member carries out and answers with a signed receipt
    #[command(
        after_help = "Each member destroys the record's content: its part of every log entry (the entries' heads, hashes and signatures stay, so every log still verifies), its view and snapshot, its search and match rows and its evidence file; then signs a receipt. The record never comes back from a peer or a bundle. Copies made before (exports, bundles) are out of reach: `record erasure` lists them.

Example:
  casesync --justification \"retention review\" record erase RECORD --reason \"no longer necessary\""
    )]
    Erase {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
        /// Why: kept in the audit log and sealed in the erasure for members
        #[arg(long)]
        reason: String,
    },
    /// Where a record's erasure stands: per member node of the case, pending
    /// or erased with its signed receipt; and copies made before it
    #[command(after_help = "Example:
  casesync record erasure RECORD --json")]
    Erasure {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
    },
    /// Where a record this node shared went (its originator only): each
    /// member node, since when it holds it and how often it was read there
    #[command(
        after_help = "Each node holding another agency's record reports to the record's originator, signed, when it stored the record and how often it was read there (each person counted under a pseudonym that node keys), whenever the two meet (`serve`, at most once a minute). Nodes that have not reported yet show `no report yet`.

Example:
  casesync record provenance RECORD --json"
    )]
    Provenance {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
    },
    /// List the records of a case, in an order that is stable and the same
    /// on every node: streamed whole, or a page at a time with --limit and --after
    #[command(
        after_help = "Without --limit the whole case is streamed (in flat memory, however many records). With\n\
--limit N, one page of N records (at most 10,000; fewer where large records come to 16 MiB);\n\
the next page starts --after the last record of this one, and an empty page is the end. The order (by the record's tag in log\n\
entries) is stable and the same on every node, so paging returns each record once, and\n\
two nodes holding the same records list them alike. Each page is audited with the records\n\
shown.\n\n\
Examples:\n  casesync record list CASE --type person --json\n  casesync record list CASE --limit 1000 --after 0192f0c1-7c1e-7b3a-9c1d-2f4e5a6b7c8d --json"
    )]
    List {
        case: String,
        #[arg(long = "type", value_name = "TYPE")]
        record_type: Option<String>,
        /// Records in this page (1 to 10,000; fewer where large records come to 16 MiB)
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Start after this record (the last of the previous page)
        #[arg(long, value_name = "RECORD", requires = "limit")]
        after: Option<String>,
    },
    /// Import records from JSON Lines or CSV, all or nothing
    #[command(
        after_help = "JSON Lines: one object per line, {\"type\": \"person\", \"fields\": {\"name\": \"...\"}, \"grading\": \"3x5x2:1AP\", \"handling\": \"H2\", \"releasable_to\": [\"GB\"]}\n\
CSV: a header row with a `type` column, optional `grading`, `handling` and `releasable_to` columns, every other column a field.\n\n\
Example:\n  casesync record import CASE people.jsonl"
    )]
    Import {
        case: String,
        file: PathBuf,
        /// Input format [default: from the file name, else from its first byte]
        #[arg(long, value_parser = ["jsonl", "csv"])]
        format: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Remember a peer address (must end in /p2p/PEER_ID)
    #[command(after_help = "Example:\n  casesync peer add /ip4/127.0.0.1/tcp/7002/p2p/12D3KooW...")]
    Add { addr: String },
    /// The remembered peers and when each last synced
    #[command(after_help = "Example:\n  casesync peer list --json")]
    List,
}

#[derive(Subcommand, Debug)]
pub enum BundleCommand {
    /// Write a signed bundle of cases (encrypted to --for) to a file
    #[command(
        after_help = "With --for, only cases that node is a member of are included, and the file is\n\
encrypted to that node's key. Without --for the file is signed but not encrypted (entries\n\
stay sealed with their case keys; case ids and sizes are visible).\nA node reads a bundle of at most 32 MiB: a larger export is written to OUT, OUT.2, OUT.3...\n(each importable by itself; import them in that order).\n\n\
Example:\n  casesync bundle export --out lantern.bundle --case CASE --for 12D3KooW..."
    )]
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A case to include (repeatable) [default: every case]
        #[arg(long = "case", value_name = "CASE")]
        cases: Vec<String>,
        /// The receiving node: its PeerId (enrolled) or card
        #[arg(long = "for", value_name = "PEER_ID|CARD")]
        recipient: Option<String>,
    },
    /// Import a bundle: same checks as entries from the network; a changed file is rejected whole
    #[command(after_help = "Example:\n  casesync bundle import lantern.bundle")]
    Import { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Re-check every stored entry (signatures, hashes, chains); non-zero on any failure
    #[command(after_help = "Example:\n  casesync log verify --json")]
    Verify,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Audit entries, oldest first, filtered by case, time, action or operator
    #[command(
        after_help = "Examples:\n  casesync audit list --case CASE --since 2026-11-01T00:00:00+00:00\n  casesync audit list --action consultation --by j.smith --json"
    )]
    List {
        /// Only entries about this case
        #[arg(long, value_name = "CASE")]
        case: Option<String>,
        /// Only entries at or after this time (RFC 3339)
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
        /// Only this action (e.g. record.show) or category (collection, alteration, consultation, disclosure, combination, erasure, rejection, membership, trust, access)
        #[arg(long, value_name = "ACTION")]
        action: Option<String>,
        /// Only entries by this operator (`--operator` names who runs this command)
        #[arg(long, value_name = "OPERATOR")]
        by: Option<String>,
    },
    /// Re-check the whole audit chain (hashes, signatures, order, head); non-zero and the first bad entry on any change
    #[command(after_help = "Example:\n  casesync audit verify --json")]
    Verify,
    /// Write one case's audit entries as JSON Lines (a signed header line first), for a data protection officer
    #[command(
        after_help = "Example:\n  casesync audit export --case CASE --out lantern-audit.jsonl"
    )]
    Export {
        #[arg(long, value_name = "CASE")]
        case: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// An anti-entropy interval: at least 0.1 s (each round costs a digest on both
/// sides), at most a day.
fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.1..=86_400.0).contains(&v) {
        return Err(format!("{s} is out of range: give 0.1 to 86400 seconds"));
    }
    Ok(v)
}

#[derive(Args, Debug)]
pub struct MatchArgs {
    #[command(subcommand)]
    pub policy: Option<MatchCommand>,
    /// The partner: its PeerId (dialled at its address from `peer add`) or its full address
    #[arg(long, value_name = "PEER_ID")]
    pub peer: Option<String>,
    /// Ask about every selector of this case
    #[arg(long, value_name = "CASE", conflicts_with = "selectors")]
    pub case: Option<String>,
    /// Ask about the selectors in FILE (one per line)
    #[arg(long, value_name = "FILE")]
    pub selectors: Option<PathBuf>,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,
}

#[derive(Subcommand, Debug)]
pub enum MatchCommand {
    /// Who may ask this node (nobody until set), how many selectors each may
    /// have evaluated a day, and the contact given with a hit. Without
    /// options: show it
    #[command(after_help = "Examples:
  casesync match policy
  casesync match policy --allow Europol --allow \"RO Police\" --per-day 5000 --contact \"DS Hale, ROCU East, +44 20 7946 0000\"
  casesync match policy --deny-all")]
    Policy {
        /// A PeerId or an organisation (as enrolled) that may ask; `*`: every
        /// enrolled node (repeatable; replaces the list)
        #[arg(long, value_name = "PEER_ID|ORG")]
        allow: Vec<String>,
        /// Nobody may ask
        #[arg(long, conflicts_with = "allow")]
        deny_all: bool,
        /// Selectors one partner may have evaluated per day (UTC)
        #[arg(long, value_name = "N")]
        per_day: Option<u64>,
        /// Who a partner with a hit should contact
        #[arg(long, value_name = "TEXT")]
        contact: Option<String>,
    },
    /// After a hit: send the partner a signed request to join or share its
    /// case, named by the handle `match` printed. Filed in the partner's
    /// audit log under that case, for its lead
    #[command(
        after_help = "The partner sees it with `casesync audit list --case CASE --action match.request`.

Example:
  casesync match request --peer 12D3KooW... --handle 8193e59ad7e6a1a5f0718d5c17253b71 --kind join \\
      --message \"Op Lantern holds the same phone and wallet; DS Hale, ROCU East, +44 20 7946 0000\""
    )]
    Request {
        /// The partner: its PeerId (dialled at its address from `peer add`) or its full address
        #[arg(long, value_name = "PEER_ID")]
        peer: String,
        /// The case handle from a hit
        #[arg(long, value_name = "HANDLE")]
        handle: String,
        /// `join` (add us as a member) or `share` (send us what you hold)
        #[arg(long, default_value = "join", value_name = "join|share")]
        kind: String,
        /// Who you are and why (at most 2,000 bytes)
        #[arg(long, value_name = "TEXT")]
        message: String,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        timeout: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum SelectorsCommand {
    /// Write a case's selectors to a CSV (or, for a .json file, JSON) file
    /// for an outside body; needs --justification, audited with every
    /// selector listed
    #[command(
        after_help = "Records whose releasable_to does not name the recipient are left out (and counted).
The file is canonical: phones in E.164, IBANs without spaces, ETH addresses in lower case.

Example:
  casesync selectors export --case CASE --for \"Exchange Intelligence\" --type btc --type eth \\
      --out selectors.csv --justification \"request 2026/118\""
    )]
    Export {
        #[arg(long, value_name = "CASE")]
        case: String,
        /// The recipient organisation
        #[arg(long = "for", value_name = "ORG")]
        recipient: String,
        /// Only this type (repeatable): phone, iban, bic, btc, eth, vehicle, email, name
        #[arg(long = "type", value_name = "TYPE")]
        kinds: Vec<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
    /// Store a file with a case: an `evidence` record with its SHA-256, size
    /// and media type, the file sealed in 1 MiB pieces under a key of its own.
    /// Prints the record id
    #[command(
        after_help = "The file is read once, in pieces: memory stays small whatever its size.

Examples:
  casesync evidence add CASE ./phone-extraction.zip --title \"Samsung A52 extraction\"
  casesync evidence add CASE scan.pdf --field exhibit=JH/3 --field media_type=application/pdf"
    )]
    Add {
        case: String,
        file: PathBuf,
        /// A title for the record
        #[arg(long, value_name = "TEXT")]
        title: Option<String>,
        /// Another field (repeatable), e.g. --field exhibit=JH/3
        #[arg(long = "field", value_name = "KEY=VALUE")]
        fields: Vec<String>,
    },
    /// Write the file, each piece and the whole file's SHA-256 checked;
    /// audited as opened
    #[command(
        after_help = "Example:\n  casesync evidence get RECORD --out ./scan.pdf --justification \"review for CPS\""
    )]
    Get {
        record: String,
        /// Where to write it (never over an existing file)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Re-read every piece and re-hash the file; names the piece that fails
    #[command(after_help = "Example:\n  casesync evidence verify RECORD")]
    Verify { record: String },
    /// The file's custody trail: added, received, opened, verified, exported,
    /// each with the person and the justification
    #[command(after_help = "Example:\n  casesync evidence custody RECORD --json")]
    Custody { record: String },
    /// Write the file with SHA256SUMS and a verification sheet (hashes,
    /// custody) signed by this node, checkable with sha256sum and openssl;
    /// needs --justification
    #[command(
        after_help = "Example:\n  casesync evidence export RECORD --out ./exhibit-JH3 --justification \"disclosure to CPS, R v Dobre\""
    )]
    Export {
        record: String,
        /// A new (or empty) directory
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// The records due for review now (their case's group, type and a
    /// person's category set the period; a review sets the next date)
    #[command(
        after_help = "Examples:\n  casesync review due\n  casesync review due --case CASE --json"
    )]
    Due {
        #[arg(long)]
        case: Option<String>,
    },
    /// Keep a record after its review: why, and until when (by default
    /// another full period)
    #[command(
        after_help = "Example:\n  casesync review retain RECORD --reason \"linked to the open Op Lantern investigation\" --until 2029-06-30"
    )]
    Retain {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
        #[arg(long)]
        reason: String,
        /// The next review date, YYYY-MM-DD
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
    },
    /// The review decided the record goes: erase it from every member (a
    /// lead of its case; see `record erase`)
    #[command(
        after_help = "Example:\n  casesync review erase RECORD --reason \"no longer necessary\""
    )]
    Erase {
        /// The record id (RECORD@CASE where two cases hold the same id)
        record: String,
        #[arg(long)]
        reason: String,
    },
    /// Show or change this node's review periods, in years: per MoPI group
    /// (defaults 10, 10 and 6), per record type, per person category
    #[command(
        after_help = "Examples:\n  casesync review policy\n  casesync review policy --group 3=6 --type note=2 --category victim=6"
    )]
    Policy {
        /// GROUP=YEARS (1, 2 or 3), repeatable
        #[arg(long = "group", value_name = "GROUP=YEARS")]
        groups: Vec<String>,
        /// TYPE=YEARS, repeatable
        #[arg(long = "type", value_name = "TYPE=YEARS")]
        types: Vec<String>,
        /// CATEGORY=YEARS for persons, repeatable
        #[arg(long = "category", value_name = "CATEGORY=YEARS")]
        categories: Vec<String>,
    },
    /// Set a case's MoPI retention group on this node (3 unless set): 1
    /// certain public protection matters, 2 other sexual, violent or serious
    /// offences, 3 all other offences
    #[command(after_help = "Example:\n  casesync review group CASE 2")]
    Group { case: String, group: u8 },
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// Requests of the last 30 days, newest first: pending, approved,
    /// denied or expired
    #[command(after_help = "Example:\n  casesync approvals list --json")]
    List,
    /// Approve a request as the second person: it is carried out now, both
    /// names in its audit entry
    #[command(
        after_help = "ID is a request number on this node, or a request token (csreq1.) that an admin of\n\
another admin node sent under the federation's two-admin policy: this node countersigns it.\n\n\
Examples:\n  CASESYNC_OPERATOR=bob casesync approvals approve 3\n  casesync --operator bob approvals approve 4 --out case.bundle   # a bundle export\n  casesync approvals approve \"$(cat enroll-request.txt)\""
    )]
    Approve {
        /// A request number, or a request token (csreq1.)
        id: String,
        /// Where an approved bundle export is written
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Deny a request
    #[command(
        after_help = "Example:\n  casesync approvals deny 3 --reason \"not agreed with the SIO\""
    )]
    Deny {
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Show or set which operations need a second person on this node:
    /// member-add, bundle-export, erase, enroll, revoke (or none)
    #[command(
        after_help = "Examples:\n  casesync approvals policy\n  casesync approvals policy --require erase,bundle-export,member-add --expires-hours 48\n  casesync approvals policy --require none"
    )]
    Policy {
        /// Comma-separated operations, or none
        #[arg(long, value_name = "LIST")]
        require: Option<String>,
        /// How long a request waits for its second person (default 24)
        #[arg(long, value_name = "HOURS")]
        expires_hours: Option<u32>,
    },
}
