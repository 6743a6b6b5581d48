//! Join tokens (kubeadm's `<id>.<secret>`), the proof a server gives that it holds one, and signed
//! ServiceAccount tokens (JWT, HS256 with a cluster key every member holds).

use base64::Engine as _;
use ring::{digest, hmac, rand::SecureRandom as _};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_chars(n: usize) -> Result<String> {
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut b = [0u8; 32];
        rng.fill(&mut b)
            .map_err(|_| Error::Parse("no randomness".into()))?;
        // 252 = 7 * 36: rejecting the rest keeps every character equally likely.
        out.extend(
            b.iter()
                .filter(|&&x| x < 252)
                .map(|&x| ALPHABET[usize::from(x % 36)] as char),
        );
    }
    out.truncate(n);
    Ok(out)
}

/// A bootstrap token in kubeadm's form: `[a-z0-9]{6}.[a-z0-9]{16}`. The id is public (it names the
/// token); the secret authenticates.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The public part.
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}.<redacted>)", self.id)
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl Token {
    /// A new random token.
    ///
    /// # Errors
    /// When the system has no randomness.
    pub fn generate() -> Result<Token> {
        Ok(Token {
            id: random_chars(6)?,
            secret: random_chars(16)?,
        })
    }

    /// Parses `<id>.<secret>` (surrounding whitespace, as in a token file, is ignored).
    ///
    /// # Errors
    /// When the text is not in kubeadm's form.
    pub fn parse(s: &str) -> Result<Token> {
        let s = s.trim();
        let ok = |p: &str, n: usize| {
            p.len() == n
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        match s.split_once('.') {
            Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok(Token {
                id: id.to_string(),
                secret: secret.to_string(),
            }),
            _ => Err(Error::Parse(
                "token is not of the form [a-z0-9]{6}.[a-z0-9]{16}".into(),
            )),
        }
    }

    /// Whether `other` is this token, compared in constant time.
    pub fn matches(&self, other: &str) -> bool {
        ct_eq(self.to_string().as_bytes(), other.trim().as_bytes())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// HMAC-SHA256 of `parts` (length-prefixed, so no two lists collide) under `token`, hex. A server
/// proves it holds the cluster token without revealing it.
pub fn proof(token: &Token, parts: &[&[u8]]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.to_string().as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    hex(ctx.sign().as_ref())
}

/// The proof a server gives in `Bootstrap.Hello` (proto/bootstrap.proto): bound to the caller's
/// nonce, the CA it hands out and the TLS certificate the caller saw. Server and clients both call
/// this, so the layout cannot drift between them.
pub fn hello_proof(token: &Token, nonce: &[u8], ca_pem: &str, server_cert_der: &[u8]) -> String {
    proof(
        token,
        &[b"berth-hello", nonce, ca_pem.as_bytes(), server_cert_der],
    )
}

/// SHA-256 of `data`, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Claims of a ServiceAccount token, as Kubernetes writes them (`sub` is
/// `system:serviceaccount:<ns>:<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the ServiceAccount's user name.
    pub sub: String,
    /// Audiences.
    #[serde(default)]
    pub aud: Vec<String>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The ServiceAccount's uid, so a token outlives neither a deleted nor a re-created account.
    #[serde(default)]
    pub uid: String,
}

/// The key that signs and checks ServiceAccount tokens (HS256). Every member holds the same key.
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

impl SigningKey {
    /// A key from its stored secret (at least 32 bytes).
    ///
    /// # Errors
    /// When the secret is too short.
    pub fn new(secret: &[u8]) -> Result<SigningKey> {
        if secret.len() < 32 {
            return Err(Error::Parse(
                "service account signing key is shorter than 32 bytes".into(),
            ));
        }
        Ok(SigningKey(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// A new random secret for [`SigningKey::new`], as text to store.
    ///
    /// # Errors
    /// When the system has no randomness.
    pub fn generate_secret() -> Result<String> {
        random_chars(48)
    }

    /// Signs `claims` as a compact JWT.
    pub fn sign(&self, claims: &ServiceAccountClaims) -> String {
        let body = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", b64().encode(JWT_HEADER), b64().encode(body));
        let sig = hmac::sign(&self.0, signing_input.as_bytes());
        format!("{signing_input}.{}", b64().encode(sig.as_ref()))
    }

    /// Checks a JWT's signature and expiry at `now` (seconds since the epoch) and returns its claims.
    /// `None` for anything that is not a valid, unexpired token of this key.
    pub fn verify(&self, jwt: &str, now: i64) -> Option<ServiceAccountClaims> {
        let (signing_input, sig) = jwt.rsplit_once('.')?;
        let (header, body) = signing_input.split_once('.')?;
        let sig = b64().decode(sig).ok()?;
        hmac::verify(&self.0, signing_input.as_bytes(), &sig).ok()?;
        let header: serde_json::Value = serde_json::from_slice(&b64().decode(header).ok()?).ok()?;
        if header["alg"] != "HS256" {
            return None;
        }
        let claims: ServiceAccountClaims =
            serde_json::from_slice(&b64().decode(body).ok()?).ok()?;
        (claims.exp > now).then_some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_kubeadms_form() {
        let t = Token::generate().unwrap();
        let s = t.to_string();
        assert_eq!(s.len(), 23);
        assert_eq!(Token::parse(&format!(" {s}\n")).unwrap(), t);
        assert!(t.matches(&s));
        assert!(!t.matches("abcdef.0123456789abcdef"));
        for bad in [
            "",
            "abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde!",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn proofs_depend_on_token_and_every_part() {
        let a = Token::parse("abcdef.0123456789abcdef").unwrap();
        let b = Token::parse("abcdef.0123456789abcdeg").unwrap();
        assert_eq!(proof(&a, &[b"x", b"y"]), proof(&a, &[b"x", b"y"]));
        assert_ne!(proof(&a, &[b"x", b"y"]), proof(&b, &[b"x", b"y"]));
        assert_ne!(proof(&a, &[b"xy", b""]), proof(&a, &[b"x", b"y"]));
    }

    #[test]
    fn service_account_tokens_verify_only_with_their_key_and_before_expiry() {
        let k = SigningKey::new(SigningKey::generate_secret().unwrap().as_bytes()).unwrap();
        let other = SigningKey::new(&[7u8; 32]).unwrap();
        let claims = ServiceAccountClaims {
            iss: "berth".into(),
            sub: "system:serviceaccount:default:viewer".into(),
            aud: vec![],
            iat: 100,
            exp: 200,
            uid: "u1".into(),
        };
        let jwt = k.sign(&claims);
        assert_eq!(k.verify(&jwt, 150), Some(claims));
        assert_eq!(k.verify(&jwt, 200), None);
        assert_eq!(other.verify(&jwt, 150), None);
        let mut tampered = jwt.clone();
        tampered.insert(30, 'x');
        assert_eq!(k.verify(&tampered, 150), None);
        assert_eq!(k.verify("a.b", 150), None);
        assert!(SigningKey::new(b"short").is_err());
    }
}
