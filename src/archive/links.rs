//! Download links: `<public_url>/downloads/<token>`, the token naming one archive and part,
//! the org it belongs to, the archive's link generation (revoking bumps it) and an expiry,
//! signed with HMAC-SHA256 under the vault's link key. Nothing secret is in the token; only
//! the key can make one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub archive_id: i64,
    pub org_id: i64,
    pub part: i64,
    pub generation: i64,
    /// Unix seconds.
    pub expires: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("this download link is not valid (damaged or altered)")]
    Invalid,
    #[error("this download link has expired; ask for a new one")]
    Expired,
}

const PAYLOAD: usize = 40;
/// Bytes of the MAC kept: 128 bits.
const TAG: usize = 16;

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

pub fn sign(key: &[u8; 32], t: &Token) -> String {
    let mut p = Vec::with_capacity(PAYLOAD + TAG);
    for n in [t.archive_id, t.org_id, t.part, t.generation, t.expires] {
        p.extend_from_slice(&n.to_be_bytes());
    }
    let mut m = mac(key);
    m.update(b"daybook download v1\0");
    m.update(&p);
    p.extend_from_slice(&m.finalize().into_bytes()[..TAG]);
    hex::encode(p)
}

/// The token's claims, if it is one the key made and it has not expired at `now`.
pub fn verify(key: &[u8; 32], s: &str, now: i64) -> Result<Token, TokenError> {
    if s.len() != 2 * (PAYLOAD + TAG) {
        return Err(TokenError::Invalid);
    }
    let b = hex::decode(s).map_err(|_| TokenError::Invalid)?;
    let (p, tag) = b.split_at(PAYLOAD);
    let mut m = mac(key);
    m.update(b"daybook download v1\0");
    m.update(p);
    m.verify_truncated_left(tag).map_err(|_| TokenError::Invalid)?;
    let n = |i: usize| i64::from_be_bytes(p[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let t = Token { archive_id: n(0), org_id: n(1), part: n(2), generation: n(3), expires: n(4) };
    if now >= t.expires {
        return Err(TokenError::Expired);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_tampering_is_caught() {
        let key = [7u8; 32];
        let t = Token { archive_id: 3, org_id: 1, part: 2, generation: 1, expires: 1000 };
        let s = sign(&key, &t);
        assert_eq!(verify(&key, &s, 999), Ok(t));
        assert_eq!(verify(&key, &s, 1000), Err(TokenError::Expired));
        assert_eq!(verify(&[8u8; 32], &s, 0), Err(TokenError::Invalid));
        let mut bad = s.clone().into_bytes();
        bad[15] = if bad[15] == b'0' { b'1' } else { b'0' };
        assert_eq!(verify(&key, std::str::from_utf8(&bad).unwrap(), 0), Err(TokenError::Invalid));
        assert_eq!(verify(&key, "zz", 0), Err(TokenError::Invalid));
        assert_eq!(verify(&key, &"g".repeat(112), 0), Err(TokenError::Invalid));
    }
}
