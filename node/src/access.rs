//! Who acts, and what they may do: the [`Actor`] every engine operation takes,
//! and the one decision of whether it may (`allows`, pure).
//!
//! Two kinds of actor. The node's operator at its shell (the CLI, who holds the
//! passphrase) may do everything the node may; that is the trust model of a
//! node since the first issue. A person logged in to the node's web front end
//! carries an [`Account`] with a role, and may do only what the role allows:
//! - an analyst reads and writes records of the cases a supervisor assigned
//!   to them (need to know), and sees nothing of any other case;
//! - a supervisor creates cases, reads and writes every case of the node,
//!   assigns analysts, manages members, exports bundles and audit logs;
//! - an admin manages accounts and the federation's trust, and reads no case.

use rusqlite::Connection;

use crate::error::{NodeError, Result};
use crate::store;

/// The person acting and why. Every operation a person can do takes one, and
/// every audit entry names it: the CLI builds it from `--operator` /
/// `CASESYNC_OPERATOR` (else the OS user) and `--justification`; the web front
/// end from the person logged in. Work the node does unasked (answering peers,
/// a sync round) is recorded under the actor that started it (the operator who
/// ran `serve` or `sync`).
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub operator: String,
    pub justification: Option<String>,
    /// The account of a person logged in to the web front end; `None` for the
    /// node's operator at its shell.
    pub account: Option<Account>,
    /// The second person, when this is an approved four-eyes request carried
    /// out (`operator` is who asked): both go in the audit entry.
    pub approved_by: Option<String>,
}

/// A person logged in, as the engine needs them: which account, which role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Analyst,
    Supervisor,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = NodeError;
    fn from_str(s: &str) -> Result<Role> {
        match s.trim() {
            "analyst" => Ok(Role::Analyst),
            "supervisor" => Ok(Role::Supervisor),
            "admin" => Ok(Role::Admin),
            other => Err(NodeError::Refused(format!(
                "unknown role {:?}: use analyst, supervisor or admin",
                crate::error::short(other)
            ))),
        }
    }
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Read a case's records, members and handling.
    Read,
    /// Add, edit or import records of a case.
    Write,
    /// Change who is a member, what leaves the node (bundles, audit exports)
    /// and who is assigned.
    Manage,
    /// Create a case.
    CreateCase,
    /// The federation's trust: enroll, revoke, join, leave.
    Trust,
    /// Accounts of the web front end.
    Users,
    /// The node's state (status, peers) and every entry of the audit log.
    Node,
}

/// Whether an actor with `account` may do what `need` says on a case it is
/// (`assigned`) or is not assigned to. The node's operator may do everything.
pub fn allows(account: Option<&Account>, assigned: bool, need: Need) -> bool {
    let Some(a) = account else {
        return true;
    };
    match a.role {
        Role::Analyst => assigned && matches!(need, Need::Read | Need::Write),
        Role::Supervisor => matches!(
            need,
            Need::Read | Need::Write | Need::Manage | Need::CreateCase | Need::Node
        ),
        Role::Admin => matches!(need, Need::Trust | Need::Users | Need::Node),
    }
}

impl Actor {
    /// `operator` (else the OS user) with `justification`, both trimmed; an
    /// empty one counts as none. The node's operator: no account.
    pub fn new(operator: Option<&str>, justification: Option<&str>) -> Actor {
        Actor {
            operator: operator
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(String::from)
                .unwrap_or_else(Actor::os_user),
            justification: clean(justification),
            account: None,
            approved_by: None,
        }
    }

    /// A person logged in to the web front end, named in the audit log by
    /// their account's name.
    pub fn person(account: Account, justification: Option<&str>) -> Actor {
        Actor {
            operator: account.name.clone(),
            justification: clean(justification),
            account: Some(account),
            approved_by: None,
        }
    }

    /// The OS user, for when no operator is named.
    pub fn os_user() -> String {
        ["USER", "USERNAME", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Refuses what this actor may not do, outside any case.
    pub fn require(&self, need: Need) -> Result<()> {
        if allows(self.account.as_ref(), false, need) {
            return Ok(());
        }
        Err(self.refusal(need, None))
    }

    /// Refuses what this actor may not do on the case stored at `case_ref`
    /// (an analyst's assignment is read from the store).
    pub fn require_on_case(&self, conn: &Connection, case_ref: i64, need: Need) -> Result<()> {
        let assigned = match &self.account {
            Some(a) if a.role == Role::Analyst => store::is_assigned(conn, a.id, case_ref)?,
            _ => false,
        };
        if allows(self.account.as_ref(), assigned, need) {
            return Ok(());
        }
        Err(self.refusal(need, Some(assigned)))
    }

    /// Whether this actor may read the case at `case_ref`, for lists that
    /// leave out what a person may not see.
    pub fn may_read(&self, conn: &Connection, case_ref: i64) -> Result<bool> {
        Ok(self.require_on_case(conn, case_ref, Need::Read).is_ok())
    }

    fn refusal(&self, need: Need, assigned: Option<bool>) -> NodeError {
        let role = self.account.as_ref().map_or("operator", |a| a.role.name());
        let what = match need {
            Need::Read => "read this case",
            Need::Write => "change records of this case",
            Need::Manage => "manage this case's members, assignments and exports",
            Need::CreateCase => "create cases",
            Need::Trust => "change the federation's trust",
            Need::Users => "manage accounts",
            Need::Node => "see the node's state and whole audit log",
        };
        // An analyst not assigned learns nothing of the case from the refusal
        // beyond what the id it gave already says.
        let hint = match assigned {
            Some(false) => " (it is not assigned to you: ask a supervisor)",
            _ => "",
        };
        NodeError::Forbidden(format!("a {role} may not {what}{hint}"))
    }
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|j| !j.is_empty()).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(role: Role) -> Account {
        Account {
            id: 1,
            name: "x".into(),
            role,
        }
    }

    /// Every role against every need, assigned and not: the whole table.
    #[test]
    fn the_whole_access_table() {
        use Need::*;
        let needs = [Read, Write, Manage, CreateCase, Trust, Users, Node];
        for need in needs {
            for assigned in [false, true] {
                assert!(allows(None, assigned, need), "the operator may {need:?}");
                let analyst = allows(Some(&account(Role::Analyst)), assigned, need);
                assert_eq!(
                    analyst,
                    assigned && matches!(need, Read | Write),
                    "analyst {need:?} {assigned}"
                );
                let sup = allows(Some(&account(Role::Supervisor)), assigned, need);
                assert_eq!(sup, !matches!(need, Trust | Users), "supervisor {need:?}");
                let admin = allows(Some(&account(Role::Admin)), assigned, need);
                assert_eq!(
                    admin,
                    matches!(need, Trust | Users | Node),
                    "admin {need:?}"
                );
            }
        }
    }

    #[test]
    fn roles_parse_and_name_themselves() {
        for r in [Role::Analyst, Role::Supervisor, Role::Admin] {
            assert_eq!(r.name().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
