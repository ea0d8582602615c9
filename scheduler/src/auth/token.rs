//! API tokens: made from 32 random bytes of the operating system, shown once, stored
//! only as their SHA-256; and the `Authorization: Bearer TOKEN` header that carries them.

use sha2::{Digest, Sha256};

/// What every token starts with, so a leaked one is recognisable in a log or a diff.
pub const PREFIX: &str = "atk_";

/// Random bytes in a token (256 bits).
const RANDOM_BYTES: usize = 32;

/// The longest bearer token looked at; longer ones are refused unread.
const MAX_TOKEN_LEN: usize = 512;

/// A token just made: its secret (to show once) and the hash to store.
pub struct NewToken {
    pub secret: String,
    pub hash: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// 256 random bits of the operating system, in lower-case hex.
pub fn random_hex() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex(&bytes)
}

/// A new random token.
pub fn generate() -> NewToken {
    let secret = format!("{PREFIX}{}", random_hex());
    NewToken {
        hash: hash(&secret),
        secret,
    }
}

/// The stored form of a token: SHA-256 of its text, in lower-case hex.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The token of an `Authorization` header value: `Bearer TOKEN` (the scheme in any
/// case). Anything else is an error worded for the caller.
pub fn parse_bearer(value: &[u8]) -> Result<&str, &'static str> {
    let value = std::str::from_utf8(value).map_err(|_| "the Authorization header is not text")?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or("the Authorization header is not `Bearer TOKEN`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(
            "the Authorization header is not `Bearer TOKEN` (only bearer tokens are accepted)",
        );
    }
    let token = token.trim();
    if token.is_empty()
        || token.len() > MAX_TOKEN_LEN
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err("the bearer token is empty, too long or not printable ASCII");
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_prefixed_random_hex_and_stored_as_its_sha256() {
        let token = generate();
        assert!(token.secret.starts_with(PREFIX));
        let random = &token.secret[PREFIX.len()..];
        assert_eq!(random.len(), 2 * RANDOM_BYTES);
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(token.hash, hash(&token.secret));
        assert_eq!(token.hash.len(), 64);
        assert!(!token.hash.contains(random));
        assert_ne!(generate().secret, token.secret, "two tokens differ");
        assert!(
            !format!("{token:?}").contains(random),
            "Debug hides the secret"
        );
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_header_is_parsed() {
        assert_eq!(parse_bearer(b"Bearer atk_12"), Ok("atk_12"));
        assert_eq!(parse_bearer(b"bearer   atk_12 "), Ok("atk_12"));
        for bad in [
            &b"Basic dXNlcjpwdw=="[..],
            b"Bearer",
            b"Bearer ",
            b"atk_12",
            b"Bearer a b",
            b"Bearer \xff",
        ] {
            assert!(
                parse_bearer(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(parse_bearer(long.as_bytes()).is_err());
    }
}
