//! The people who use a node through its web front end: accounts (`user add |
//! list | disable | passwd`), logins and sessions, and which cases a
//! supervisor assigned to which analyst. What each role may do is
//! `crate::access`; this module keeps who is who.
//!
//! Passwords are Argon2id hashes (`casesync_crypto::password`). A session is a
//! random token in a `__Host-` cookie and a CSRF token the page sends back in a
//! header; the store keeps SHA-256 of each, so a copy of the store opens no
//! session. A session ends after 30 minutes idle or 12 hours in all, at
//! logout, and at once when its account is disabled or its password changed
//! (every request looks its session up). Five failed logins lock an account
//! for 15 minutes, doubling with each further five (at most a day); every
//! attempt is audited.

use casesync_crypto::hash::{ct_eq, sha256};
use casesync_crypto::password;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::access::{Account, Actor, Need, Role};
use crate::audit::{self, Action, Event};
use crate::store::{self, SessionRow, UserRow};
use crate::{Node, NodeError, Result, cases};

/// A session ends after this long without a request.
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// A session ends this long after login, however active.
pub const ABSOLUTE_MS: i64 = 12 * 60 * 60 * 1000;
/// Failed logins in a row that lock an account.
pub const LOCK_AFTER: i64 = 5;
const LOCK_MS: i64 = 15 * 60 * 1000;
const MAX_LOCK_MS: i64 = 24 * 60 * 60 * 1000;
/// A session's last request is written at most this often (a page makes many).
const TOUCH_EVERY_MS: i64 = 60 * 1000;
const MAX_NAME: usize = 64;

/// An account as `user list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created: String,
    /// Locked after failed logins, until this time.
    pub locked_until: Option<String>,
}

/// A login that succeeded: the tokens go to the browser once and are not kept.
pub struct NewSession {
    pub token: Zeroizing<String>,
    pub csrf: Zeroizing<String>,
    pub account: Account,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// A session found for a request.
#[derive(Clone, Debug)]
pub struct Session {
    pub account: Account,
    csrf_hash: Vec<u8>,
}

impl Session {
    /// Whether `csrf` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, csrf: &str) -> bool {
        ct_eq(sha256(csrf.as_bytes()).as_bytes(), &self.csrf_hash)
    }
}

fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(name)
    } else {
        Err(NodeError::Refused(format!(
            "user name {:?} is not valid: 1 to {MAX_NAME} letters, digits, '.', '-', '_' or '@'",
            crate::short(name)
        )))
    }
}

/// At least 12 characters, at most 1024 bytes.
pub fn check_password(p: &str) -> Result<()> {
    if p.chars().count() < 12 {
        return Err(NodeError::Refused(
            "the password is too short: use at least 12 characters (a few unrelated words work well)"
                .into(),
        ));
    }
    if p.len() > password::MAX_PASSWORD_BYTES {
        return Err(NodeError::Refused(format!(
            "the password is too long: at most {} bytes",
            password::MAX_PASSWORD_BYTES
        )));
    }
    Ok(())
}

fn role_of(row: &UserRow) -> Result<Role> {
    row.role.parse()
}

fn account_of(row: &UserRow) -> Result<Account> {
    Ok(Account {
        id: row.id,
        name: row.name.clone(),
        role: role_of(row)?,
    })
}

fn find(conn: &rusqlite::Connection, name: &str) -> Result<UserRow> {
    store::user_by_name(conn, name.trim())?.ok_or_else(|| {
        NodeError::Refused(format!(
            "no user {:?} (see `casesync user list`)",
            crate::short(name.trim())
        ))
    })
}

/// The password to set: the one given (checked), or a new one-time password,
/// returned so it can be shown once.
fn chosen(given: Option<&str>) -> Result<(Zeroizing<String>, bool)> {
    match given {
        Some(p) => {
            check_password(p)?;
            Ok((Zeroizing::new(p.to_string()), false))
        }
        None => Ok((password::one_time_password()?, true)),
    }
}

/// `user add`: a new account. Returns the one-time password made when none
/// was given.
pub fn add(
    node: &Node,
    actor: &Actor,
    name: &str,
    role: Role,
    given: Option<&str>,
) -> Result<Option<Zeroizing<String>>> {
    audit::audited(node, actor, Action::UserAdd, None, None, || {
        actor.require(Need::Users)?;
        let name = check_name(name)?;
        let (pw, made) = chosen(given)?;
        let hash = password::hash_password(pw.as_bytes())?;
        node.store.write(|tx| -> Result<()> {
            if !store::insert_user(tx, name, role.name(), &hash, &crate::clock::now().1)? {
                return Err(NodeError::Refused(format!("user {name:?} exists already")));
            }
            let ev = Event::new(Action::UserAdd).detail(format!("{name} ({})", role.name()));
            audit::append(node, actor, tx, ev)?;
            Ok(())
        })?;
        Ok(made.then_some(pw))
    })
}

/// `user list`.
pub fn list(node: &Node, actor: &Actor) -> Result<Vec<User>> {
    actor.require(Need::Users)?;
    let (now, _) = crate::clock::now();
    store::users(node.store.conn())?
        .into_iter()
        .map(|r| {
            Ok(User {
                role: role_of(&r)?,
                locked_until: (r.locked_until_ms > now)
                    .then(|| crate::clock::format_ms(r.locked_until_ms)),
                name: r.name,
                disabled: r.disabled,
                created: r.created,
            })
        })
        .collect()
}

/// `user disable`: the account can no longer log in, and its sessions end at
/// once. Returns how many sessions ended.
pub fn disable(node: &Node, actor: &Actor, name: &str) -> Result<usize> {
    audit::audited(node, actor, Action::UserDisable, None, None, || {
        actor.require(Need::Users)?;
        node.store.write(|tx| -> Result<usize> {
            let u = find(tx, name)?;
            store::set_user_disabled(tx, u.id, true)?;
            let ended = store::delete_sessions_of(tx, u.id)?;
            let ev = Event::new(Action::UserDisable)
                .detail(format!("{}: {ended} session(s) ended", u.name));
            audit::append(node, actor, tx, ev)?;
            Ok(ended)
        })
    })
}

/// `user passwd`: a new password (given, or a one-time one returned), which
/// also clears a lock after failed logins and ends the account's sessions. A
/// person may change their own; an admin (or the node's operator) anyone's.
pub fn set_password(
    node: &Node,
    actor: &Actor,
    name: &str,
    given: Option<&str>,
) -> Result<Option<Zeroizing<String>>> {
    audit::audited(node, actor, Action::UserPassword, None, None, || {
        let own = actor
            .account
            .as_ref()
            .is_some_and(|a| a.name == name.trim());
        if !own {
            actor.require(Need::Users)?;
        }
        let (pw, made) = chosen(given)?;
        let hash = password::hash_password(pw.as_bytes())?;
        node.store.write(|tx| -> Result<()> {
            let u = find(tx, name)?;
            store::set_user_password(tx, u.id, &hash)?;
            let ended = store::delete_sessions_of(tx, u.id)?;
            let ev = Event::new(Action::UserPassword)
                .detail(format!("{}: {ended} session(s) ended", u.name));
            audit::append(node, actor, tx, ev)?;
            Ok(())
        })?;
        Ok(made.then_some(pw))
    })
}

/// How long an account stays locked after `failed` failed logins in a row.
pub fn lock_for(failed: i64) -> i64 {
    if failed < LOCK_AFTER {
        return 0;
    }
    let doublings = ((failed / LOCK_AFTER) - 1).min(16) as u32;
    LOCK_MS.saturating_mul(1i64 << doublings).min(MAX_LOCK_MS)
}

/// A login with `name` and `password` from `from` (the client's address, for
/// the audit log). Every attempt is audited, under the name claimed. The
/// answer to a wrong name, a wrong password and a disabled account is the
/// same, and takes as long.
pub fn login(node: &Node, name: &str, pass: &str, from: &str) -> Result<NewSession> {
    const WRONG: &str = "wrong user name or password";
    let claimed = Actor::new(Some(&crate::short(name.trim())), None);
    let (now, _) = crate::clock::now();
    let refuse = |row: Option<(&UserRow, i64, i64)>, why: String| -> Result<()> {
        node.store.write(|tx| -> Result<()> {
            if let Some((u, failed, until)) = row {
                store::set_login_failures(tx, u.id, failed, until)?;
            }
            let ev = Event::new(Action::UserLogin).refused(format!("from {from}: {why}"));
            audit::append(node, &claimed, tx, ev)?;
            Ok(())
        })
    };
    let row = store::user_by_name(node.store.conn(), name.trim())?;
    let Some(u) = row else {
        // As long as a real check, so the answer's time tells no name apart.
        let _ = password::hash_password(pass.as_bytes());
        refuse(None, "no such user".into())?;
        return Err(NodeError::Forbidden(WRONG.into()));
    };
    if u.locked_until_ms > now {
        let until = crate::clock::format_ms(u.locked_until_ms);
        refuse(None, format!("locked until {until}"))?;
        return Err(NodeError::Forbidden(format!(
            "this account is locked after {} failed logins, until {until}; an admin can set a new password (`casesync user passwd`)",
            u.failed_logins
        )));
    }
    let matches = password::verify_password(pass.as_bytes(), &u.password)?;
    if !matches || u.disabled {
        let failed = u.failed_logins.saturating_add(1);
        let lock = lock_for(failed);
        let until = if lock > 0 { now + lock } else { 0 };
        let why = if u.disabled {
            "account disabled".to_string()
        } else if lock > 0 {
            format!(
                "wrong password ({failed} in a row): locked until {}",
                crate::clock::format_ms(until)
            )
        } else {
            format!("wrong password ({failed} in a row)")
        };
        refuse(Some((&u, failed, until)), why)?;
        return Err(NodeError::Forbidden(WRONG.into()));
    }
    let account = account_of(&u)?;
    let token = password::random_token()?;
    let csrf = password::random_token()?;
    let actor = Actor::person(account.clone(), None);
    node.store.write(|tx| -> Result<()> {
        store::set_login_failures(tx, u.id, 0, 0)?;
        store::insert_session(
            tx,
            sha256(token.as_bytes()).as_bytes(),
            u.id,
            sha256(csrf.as_bytes()).as_bytes(),
            now,
        )?;
        audit::append(
            node,
            &actor,
            tx,
            Event::new(Action::UserLogin).detail(format!("from {from}")),
        )?;
        Ok(())
    })?;
    Ok(NewSession {
        token,
        csrf,
        account,
    })
}

/// The session `token` opens, if it is live: its account exists, is not
/// disabled, and the session is within its idle and absolute limits. A dead
/// session is deleted.
pub fn session(node: &Node, token: &str) -> Result<Option<Session>> {
    let key = sha256(token.as_bytes());
    let conn = node.store.conn();
    let Some(row) = store::session(conn, key.as_bytes())? else {
        return Ok(None);
    };
    let SessionRow {
        user_id,
        csrf_hash,
        created_ms,
        seen_ms,
    } = row;
    let (now, _) = crate::clock::now();
    let user = store::user_by_id(conn, user_id)?;
    let live = now < created_ms.saturating_add(ABSOLUTE_MS)
        && now < seen_ms.saturating_add(IDLE_MS)
        && user.as_ref().is_some_and(|u| !u.disabled);
    if !live {
        node.store
            .write(|tx| store::delete_session(tx, key.as_bytes()))?;
        return Ok(None);
    }
    let Some(user) = user else {
        return Ok(None);
    };
    if now - seen_ms > TOUCH_EVERY_MS {
        node.store
            .write(|tx| store::touch_session(tx, key.as_bytes(), now))?;
    }
    Ok(Some(Session {
        account: account_of(&user)?,
        csrf_hash,
    }))
}

/// Ends the session `token` (logout).
pub fn logout(node: &Node, actor: &Actor, token: &str) -> Result<()> {
    let key = sha256(token.as_bytes());
    node.store.write(|tx| -> Result<()> {
        store::delete_session(tx, key.as_bytes())?;
        audit::append(node, actor, tx, Event::new(Action::UserLogout))?;
        Ok(())
    })
}

/// Gives (or with `assign` false, takes) analyst `name` need-to-know of a
/// case: a supervisor's decision, audited. Returns false when nothing
/// changed.
pub fn assign(
    node: &Node,
    actor: &Actor,
    name: &str,
    case_text: &str,
    assign: bool,
) -> Result<bool> {
    let action = if assign {
        Action::CaseAssign
    } else {
        Action::CaseUnassign
    };
    audit::audited(node, actor, action, Some(case_text), None, || {
        node.store.write(|tx| -> Result<bool> {
            let case = cases::load_by_text(node, tx, case_text)?;
            actor.require_on_case(tx, case.case_ref, Need::Manage)?;
            let u = find(tx, name)?;
            if role_of(&u)? != Role::Analyst {
                return Err(NodeError::Refused(format!(
                    "{} is a {}, not an analyst: only analysts are assigned cases (a supervisor sees every case)",
                    u.name, u.role
                )));
            }
            let changed = if assign {
                store::assign_case(tx, u.id, case.case_ref)?
            } else {
                store::unassign_case(tx, u.id, case.case_ref)?
            };
            let what = if assign { "assigned to" } else { "no longer assigned to" };
            let ev = Event::new(action)
                .case(case.id)
                .detail(format!("{what} {}", u.name));
            audit::append(node, actor, tx, ev)?;
            Ok(changed)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_five_failures_and_double_up_to_a_day() {
        assert_eq!(lock_for(4), 0);
        assert_eq!(lock_for(5), LOCK_MS);
        assert_eq!(lock_for(9), LOCK_MS);
        assert_eq!(lock_for(10), 2 * LOCK_MS);
        assert_eq!(lock_for(15), 4 * LOCK_MS);
        assert_eq!(lock_for(1_000_000), MAX_LOCK_MS);
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("ana.popa").is_ok());
        for bad in ["", "  ", "a b", "x/../y", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }
}
