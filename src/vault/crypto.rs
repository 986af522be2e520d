//! Keys and sealing. A master key (random) is wrapped by a key derived from the passphrase
//! with Argon2id; each org has its own random keys wrapped by the master key, so erasing an
//! org is destroying its wrapped key. Sealing is AES-256-GCM with a random nonce; content
//! ids are keyed BLAKE3 hashes, so equal content is only recognisable with the org's key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("authentication failed: the data was altered or the key is wrong")]
    Auth,
    #[error("sealed data is too short ({0} bytes)")]
    Short(usize),
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

const NONCE: usize = 12;
pub const SEAL_OVERHEAD: usize = NONCE + 16;

/// Clone: a chunk is opened on a blocking thread with a copy.
#[derive(Clone)]
pub struct SealKey {
    cipher: Aes256Gcm,
}

impl SealKey {
    pub fn new(bytes: &[u8; 32]) -> Self {
        SealKey { cipher: Aes256Gcm::new(bytes.into()) }
    }

    /// nonce || ciphertext || tag
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(NONCE + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::Short(sealed.len()));
        }
        let (nonce, ct) = sealed.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().expect("split at NONCE");
        self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: ct, aad }).map_err(|_| CryptoError::Auth)
    }
}

pub fn random_bytes<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut b = Zeroizing::new([0u8; N]);
    rand::thread_rng().fill_bytes(b.as_mut());
    b
}

/// The stored form of the master key: Argon2id parameters and the wrapped key.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    pub kdf: String,
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: String,
    pub wrapped: String,
    pub created_at: String,
}

const MASTER_AAD: &[u8] = b"daybook master key v1";

fn derive(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let params = argon2::Params::new(m, t, p, Some(32)).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(passphrase.as_bytes(), salt, out.as_mut()).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

impl KeyFile {
    /// Wraps `master` under `passphrase`. 64 MiB and 3 passes: about a quarter second here,
    /// and costly to guess at scale.
    pub fn create(passphrase: &str, master: &[u8; 32]) -> Result<KeyFile, CryptoError> {
        let salt = random_bytes::<16>();
        let (m, t, p) = (64 * 1024, 3, 1);
        let kek = derive(passphrase, salt.as_ref(), m, t, p)?;
        let wrapped = SealKey::new(&kek).seal(MASTER_AAD, master);
        Ok(KeyFile {
            kdf: "argon2id".into(),
            m_cost_kib: m,
            t_cost: t,
            p_cost: p,
            salt: hex::encode(salt.as_ref()),
            wrapped: hex::encode(wrapped),
            created_at: crate::util::now_rfc3339(),
        })
    }

    /// Ok(None) when the passphrase is wrong.
    pub fn unwrap(&self, passphrase: &str) -> Result<Option<Zeroizing<[u8; 32]>>, CryptoError> {
        let salt = hex::decode(&self.salt).map_err(|e| CryptoError::Kdf(e.to_string()))?;
        let wrapped = hex::decode(&self.wrapped).map_err(|e| CryptoError::Kdf(e.to_string()))?;
        let kek = derive(passphrase, &salt, self.m_cost_kib, self.t_cost, self.p_cost)?;
        match SealKey::new(&kek).open(MASTER_AAD, &wrapped) {
            Ok(m) if m.len() == 32 => {
                let mut k = Zeroizing::new([0u8; 32]);
                k.copy_from_slice(&m);
                Ok(Some(k))
            }
            _ => Ok(None),
        }
    }
}

/// An org's keys: one seals its blobs, one keys its content ids and record SIDs.
pub struct OrgKeys {
    pub seal: SealKey,
    pub ids: IdKey,
}

/// The key of an org's content ids and record SIDs, on its own so that work which only
/// hashes can take a copy to another thread.
#[derive(Clone)]
pub struct IdKey(Zeroizing<[u8; 32]>);

impl OrgKeys {
    pub fn generate() -> Zeroizing<[u8; 64]> {
        random_bytes::<64>()
    }

    pub fn from_material(m: &[u8]) -> OrgKeys {
        let mut s = [0u8; 32];
        s.copy_from_slice(&m[..32]);
        let mut id_key = Zeroizing::new([0u8; 32]);
        id_key.copy_from_slice(&m[32..64]);
        let seal = SealKey::new(&s);
        zeroize::Zeroize::zeroize(&mut s);
        OrgKeys { seal, ids: IdKey(id_key) }
    }

    pub fn wrap(master: &SealKey, org_sid: &str, material: &[u8]) -> Vec<u8> {
        master.seal(format!("daybook org key v1 {org_sid}").as_bytes(), material)
    }

    pub fn unwrap(master: &SealKey, org_sid: &str, wrapped: &[u8]) -> Result<OrgKeys, CryptoError> {
        let m = Zeroizing::new(master.open(format!("daybook org key v1 {org_sid}").as_bytes(), wrapped)?);
        if m.len() != 64 {
            return Err(CryptoError::Short(m.len()));
        }
        Ok(OrgKeys::from_material(&m))
    }

    pub fn blob_id(&self, data: &[u8]) -> [u8; 16] {
        self.ids.blob_id(data)
    }

    pub fn hasher(&self) -> blake3::Hasher {
        self.ids.hasher()
    }
}

impl IdKey {
    /// Content id of a blob: 128 bits of keyed BLAKE3.
    pub fn blob_id(&self, data: &[u8]) -> [u8; 16] {
        blake3::keyed_hash(&self.0, data).as_bytes()[..16].try_into().unwrap()
    }

    pub fn hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.0)
    }

    /// A record's key: 80 bits of keyed hash of its identity at its source. Its base32
    /// form is the record's SID, so SIDs are stable and derivable without a lookup.
    pub fn record_key(&self, source: &str, data_type: &str, id: &str) -> [u8; 10] {
        let mut h = self.hasher();
        h.update(b"record\0");
        h.update(source.as_bytes());
        h.update(b"\0");
        h.update(data_type.as_bytes());
        h.update(b"\0");
        h.update(id.as_bytes());
        h.finalize().as_bytes()[..10].try_into().unwrap()
    }
}

pub fn sid_of_key(key: &[u8; 10]) -> String {
    crate::util::base32(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_and_tamper() {
        let k = SealKey::new(&[7u8; 32]);
        let s = k.seal(b"aad", b"hello");
        assert_eq!(k.open(b"aad", &s).unwrap(), b"hello");
        assert!(k.open(b"other", &s).is_err());
        let mut t = s.clone();
        t[14] ^= 1;
        assert!(k.open(b"aad", &t).is_err());
    }

    #[test]
    fn wrong_passphrase_is_none() {
        let kf = KeyFile::create("right", &[1u8; 32]).unwrap();
        assert!(kf.unwrap("wrong").unwrap().is_none());
        assert_eq!(*kf.unwrap("right").unwrap().unwrap(), [1u8; 32]);
    }
}
