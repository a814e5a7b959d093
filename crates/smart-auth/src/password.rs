//! argon2id password and client-secret hashes (PHC strings).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes a password or client secret into an argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`)
/// with a random salt, for configuration tooling and the demo users and clients. Returns an empty
/// string (which every setting refuses) only if the system has no randomness to salt with.
pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Checks that `phc` is an argon2 PHC string.
pub(crate) fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|_| "not a PHC password hash string".to_owned())?;
    let alg = parsed.algorithm.as_str();
    if !["argon2id", "argon2i", "argon2d"].contains(&alg) {
        return Err(format!("hash algorithm '{alg}' is not argon2"));
    }
    Ok(())
}

/// True when `password` matches `phc` (CPU-heavy: call from a blocking thread).
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Verifies on the blocking pool so the async runtime keeps serving.
pub(crate) async fn verify_password_async(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false)
}

/// Spends the time of one verification (unknown user names take as long as known ones).
pub(crate) async fn burn_verification(password: String) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let _ = tokio::task::spawn_blocking(move || {
        let phc = DUMMY.get_or_init(|| hash_password("dummy-password-for-timing"));
        verify_password(&password, phc)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_refuse() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(check_phc(&h).is_ok());
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret!", &h));
        assert!(!verify_password("s3cret", "not a hash"));
        assert!(check_phc("plain-text").is_err());
        assert!(check_phc("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }
}
