//! Passwords of the people who use a node through its web front end: stored as
//! Argon2id hashes in the PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`, base64 without padding), so
//! any standard tool can read the parameters. The cost is OWASP's minimum for
//! Argon2id (19 MiB, 2 passes): a login is hashed while a person waits, and the
//! attempts are rate-limited besides. A stored hash whose parameters are out
//! of the range this node would write is refused, not computed, so a row
//! changed by hand cannot make a login allocate gigabytes.
//!
//! Session tokens and one-time passwords come from the system's random number
//! generator; sessions are stored as SHA-256 of their token only.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Argon2id cost for passwords: memory in KiB, passes, lanes.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// The most a stored hash may ask for: what this node writes, times four.
const MAX_M_COST_KIB: u32 = 4 * M_COST_KIB;
const MAX_T_COST: u32 = 8;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Longer passwords are refused before hashing (Argon2 takes any length, but
/// a request body is bounded by the caller, and no one types this much).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password hash in PHC string format.
pub fn hash_password(password: &[u8]) -> Result<String, CryptoError> {
    let mut salt = [0u8; SALT_LEN];
    crate::random_bytes(&mut salt)?;
    let out = derive(password, &salt, M_COST_KIB, T_COST, P_COST)?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out.as_ref())
    ))
}

/// Whether `password` matches `phc` (compared in constant time). A malformed
/// or out-of-range `phc` is an error, not a mismatch: it says the store holds
/// something this node did not write.
pub fn verify_password(password: &[u8], phc: &str) -> Result<bool, CryptoError> {
    let bad = CryptoError::MalformedPasswordHash;
    let parts: Vec<&str> = phc.split('$').collect();
    let [empty, alg, version, params, salt, hash] = parts.as_slice() else {
        return Err(bad("not a PHC string"));
    };
    if !empty.is_empty() || *alg != "argon2id" || *version != "v=19" {
        return Err(bad("not Argon2id v19"));
    }
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=').ok_or(bad("parameters"))?;
        let v: u32 = v.parse().map_err(|_| bad("parameters"))?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return Err(bad("parameters")),
        }
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else {
        return Err(bad("parameters"));
    };
    if !(8..=MAX_M_COST_KIB).contains(&m) || !(1..=MAX_T_COST).contains(&t) || p != 1 {
        return Err(bad("parameters out of range"));
    }
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| bad("salt"))?;
    let expected = STANDARD_NO_PAD.decode(hash).map_err(|_| bad("value"))?;
    if !(8..=64).contains(&salt.len()) || expected.len() != HASH_LEN {
        return Err(bad("lengths"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    let out = derive(password, &salt, m, t, p)?;
    Ok(crate::hash::ct_eq(out.as_ref(), &expected))
}

fn derive(
    password: &[u8],
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; HASH_LEN]>, CryptoError> {
    let params = argon2::Params::new(m, t, p, Some(HASH_LEN))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    argon
        .hash_password_into(password, salt, out.as_mut())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// A random token for a session or a CSRF check: 32 bytes, base64url.
pub fn random_token() -> Result<Zeroizing<String>, CryptoError> {
    let mut b = Zeroizing::new([0u8; 32]);
    crate::random_bytes(b.as_mut())?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(b.as_ref())))
}

/// A one-time password for a new account: 20 characters from an alphabet
/// without look-alikes (about 100 bits).
pub fn one_time_password() -> Result<Zeroizing<String>, CryptoError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = Zeroizing::new(String::with_capacity(20));
    while out.len() < 20 {
        let mut b = [0u8; 32];
        crate::random_bytes(&mut b)?;
        // Rejection sampling: no bias towards the first letters.
        let limit = 256 - (256 % ALPHABET.len());
        for x in b {
            if (x as usize) < limit && out.len() < 20 {
                out.push(ALPHABET[x as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_and_another_does_not() {
        let h = hash_password(b"correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(b"correct horse battery", &h).unwrap());
        assert!(!verify_password(b"correct horse batterz", &h).unwrap());
        // A fresh salt each time.
        assert_ne!(h, hash_password(b"correct horse battery").unwrap());
    }

    /// RFC 9106's Argon2id test vector has secret and associated data, which
    /// PHC strings do not carry; this one is from the reference C
    /// implementation, through argon2-cffi: `hash_secret(b"password",
    /// b"somesalt", time_cost=2, memory_cost=65536, parallelism=1,
    /// hash_len=32, type=Type.ID)`.
    #[test]
    fn a_reference_phc_string_verifies() {
        let phc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify_password(b"password", phc).unwrap());
        assert!(!verify_password(b"passwore", phc).unwrap());
    }

    #[test]
    fn malformed_or_costly_hashes_are_refused_unrun() {
        for bad in [
            "",
            "plain",
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=19456,t=99,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$c2hvcnQ",
            "$argon2id$v=19$m=19456,t=2$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ] {
            assert!(verify_password(b"x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_and_one_time_passwords_differ_each_time() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(*a, *b);
        assert_eq!(a.len(), 43);
        let p = one_time_password().unwrap();
        assert_eq!(p.chars().count(), 20);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(*p, *one_time_password().unwrap());
    }
}
