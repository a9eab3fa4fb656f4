//! The keystore: a node's secret keys sealed under a key derived from the
//! operator's passphrase with Argon2id.
//!
//! Layout (version 1), all integers big-endian:
//! `"CSKS" | version u8 | kdf u8 (1 = Argon2id v0x13) | m_cost u32 (KiB) | t_cost u32 |
//! p_cost u32 | salt [16] | sealed`, where `sealed` is [`SymmetricKey::seal`] output
//! with everything before it as associated data, so the KDF parameters cannot be
//! downgraded without the unlock failing. The KDF parameters are stored so they
//! can be raised later without breaking old keystores.

use zeroize::{Zeroize, Zeroizing};

use crate::{CryptoError, NodeKeys, SymmetricKey};

const MAGIC: &[u8; 4] = b"CSKS";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 1 + 12 + 16;
const SECRETS_LEN: usize = 96;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl KdfParams {
    /// 64 MiB and 3 passes (RFC 9106's second recommended setting, on one
    /// lane): about a third of a second per unlock on one core, and 64 MiB of
    /// memory per guess, some five times OWASP's Argon2id minimum. Every CLI
    /// command unlocks once; `serve` once at start.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    /// OWASP's Argon2id minimum (19 MiB, 2 passes): the least `init` accepts.
    pub const MINIMUM_MIB: u32 = 19;

    /// The default passes with `mib` MiB of memory (at least [`Self::MINIMUM_MIB`]).
    pub fn with_memory_mib(mib: u32) -> Option<KdfParams> {
        (Self::MINIMUM_MIB..=1024)
            .contains(&mib)
            .then_some(KdfParams {
                m_cost_kib: mib * 1024,
                ..Self::DEFAULT
            })
    }

    /// Bounds checked before deriving, so a doctored keystore file cannot make
    /// unlock allocate without limit or spin for hours.
    fn check(&self) -> Result<(), CryptoError> {
        let ok = (8..=1024 * 1024).contains(&self.m_cost_kib)
            && (1..=16).contains(&self.t_cost)
            && (1..=8).contains(&self.p_cost);
        if ok {
            Ok(())
        } else {
            Err(CryptoError::MalformedKeystore(
                "KDF parameters out of range",
            ))
        }
    }
}

/// What the keystore holds.
pub struct KeystoreSecrets {
    pub node: NodeKeys,
    /// The node storage key: seals snapshots, views and metadata at rest.
    pub storage: SymmetricKey,
}

fn derive_kek(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Result<SymmetricKey, CryptoError> {
    p.check()?;
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(SymmetricKey::from_bytes(*out))
}

/// Seals `secrets` under `passphrase`.
pub fn seal(
    secrets: &KeystoreSecrets,
    passphrase: &[u8],
    params: KdfParams,
) -> Result<Vec<u8>, CryptoError> {
    let mut salt = [0u8; 16];
    crate::random_bytes(&mut salt)?;
    let mut out = Vec::with_capacity(HEADER_LEN + SECRETS_LEN + 28);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(KDF_ARGON2ID);
    out.extend_from_slice(&params.m_cost_kib.to_be_bytes());
    out.extend_from_slice(&params.t_cost.to_be_bytes());
    out.extend_from_slice(&params.p_cost.to_be_bytes());
    out.extend_from_slice(&salt);
    let kek = derive_kek(passphrase, &salt, params)?;
    let (seed, x) = secrets.node.secret_bytes();
    let mut plain = Zeroizing::new(Vec::with_capacity(SECRETS_LEN));
    plain.extend_from_slice(seed.as_ref());
    plain.extend_from_slice(x.as_ref());
    plain.extend_from_slice(secrets.storage.expose());
    let sealed = kek.seal(&out, &plain)?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Unseals a keystore. A wrong passphrase and a damaged file both give
/// [`CryptoError::WrongPassphrase`]: AEAD cannot tell them apart.
pub fn open(file: &[u8], passphrase: &[u8]) -> Result<KeystoreSecrets, CryptoError> {
    if file.len() < HEADER_LEN || &file[..4] != MAGIC {
        return Err(CryptoError::MalformedKeystore("not a casesync keystore"));
    }
    if file[4] != VERSION {
        return Err(CryptoError::MalformedKeystore(
            "unsupported keystore version",
        ));
    }
    if file[5] != KDF_ARGON2ID {
        return Err(CryptoError::MalformedKeystore("unsupported KDF"));
    }
    let u32_at = |i: usize| -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&file[i..i + 4]);
        u32::from_be_bytes(b)
    };
    let params = KdfParams {
        m_cost_kib: u32_at(6),
        t_cost: u32_at(10),
        p_cost: u32_at(14),
    };
    let salt = &file[18..34];
    let kek = derive_kek(passphrase, salt, params)?;
    let mut plain = Zeroizing::new(
        kek.open(&file[..HEADER_LEN], &file[HEADER_LEN..])
            .map_err(|_| CryptoError::WrongPassphrase)?,
    );
    if plain.len() != SECRETS_LEN {
        return Err(CryptoError::MalformedKeystore("wrong secret length"));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    let mut x = Zeroizing::new([0u8; 32]);
    let mut storage = [0u8; 32];
    seed.copy_from_slice(&plain[..32]);
    x.copy_from_slice(&plain[32..64]);
    storage.copy_from_slice(&plain[64..96]);
    plain.zeroize();
    let secrets = KeystoreSecrets {
        node: NodeKeys::from_secret_bytes(&seed, &x),
        storage: SymmetricKey::from_bytes(storage),
    };
    storage.zeroize();
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    fn secrets() -> KeystoreSecrets {
        KeystoreSecrets {
            node: NodeKeys::generate().unwrap(),
            storage: SymmetricKey::generate().unwrap(),
        }
    }

    #[test]
    fn round_trip() {
        let s = secrets();
        let file = seal(&s, b"correct horse", FAST).unwrap();
        let back = open(&file, b"correct horse").unwrap();
        assert_eq!(back.node.public(), s.node.public());
        assert_eq!(back.storage, s.storage);
    }

    #[test]
    fn wrong_passphrase_and_tampering_fail() {
        let file = seal(&secrets(), b"pw", FAST).unwrap();
        assert!(matches!(
            open(&file, b"pW"),
            Err(CryptoError::WrongPassphrase)
        ));
        // Downgrading the KDF cost changes the AAD and the key: unlock fails.
        let mut t = file.clone();
        t[13] = 2;
        assert!(open(&t, b"pw").is_err());
        let mut t = file.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(open(&t, b"pw").is_err());
        assert!(open(b"garbage", b"pw").is_err());
        assert!(open(&file[..20], b"pw").is_err());
    }

    #[test]
    fn absurd_kdf_parameters_are_refused_before_deriving() {
        let mut file = seal(&secrets(), b"pw", FAST).unwrap();
        file[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            open(&file, b"pw"),
            Err(CryptoError::MalformedKeystore(_))
        ));
    }
}
