//! Key files: the 32-byte Ed25519 seed as 64 hex digits and a newline, created readable and
//! writable by its owner only (mode 0600 on Unix) and never overwritten.

use std::io::Write;
use std::path::Path;

use ed25519_zebra::{SigningKey, VerificationKeyBytes};

use super::ids::AccountKey;

/// A new random key, written to `path` (which must not exist); returns the key.
pub fn create(path: &Path) -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(SigningKey::from(seed))
}

/// Longest key file read, bytes (64 hex digits and a newline, with room for whitespace).
pub const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Reads a key file (at most [`MAX_KEY_FILE_BYTES`] read, so a huge file is refused at once).
///
/// # Errors
/// `PATH: ...`: unreadable, longer than [`MAX_KEY_FILE_BYTES`], or not 64 hex digits.
pub fn load(path: &Path) -> Result<SigningKey, String> {
    let text = crate::primitives::lines::read_small_file(path, MAX_KEY_FILE_BYTES)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim_ascii(), &mut seed)
        .map_err(|e| format!("{}: not a powkit key file (64 hex digits expected): {e}", path.display()))?;
    Ok(SigningKey::from(seed))
}

/// The public key of `key`.
pub fn public(key: &SigningKey) -> AccountKey {
    AccountKey(VerificationKeyBytes::from(key).into())
}

/// Parses a public key given as 64 hex digits.
pub fn parse_public(s: &str) -> Result<AccountKey, String> {
    AccountKey::from_hex(s).map_err(|e| format!("public key {s:?}: 64 hex digits expected: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_owner_only_and_are_never_overwritten() {
        let d = std::env::temp_dir().join(format!("powkit-keys-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("k");
        let _ = std::fs::remove_file(&p);
        let k = create(&p).unwrap();
        assert_eq!(public(&load(&p).unwrap()), public(&k));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(create(&p).is_err());
        std::fs::write(d.join("bad"), "xyz").unwrap();
        assert!(load(&d.join("bad")).unwrap_err().contains("not a powkit key file"));
        // Issue 12, fault 9: a huge file (1 GiB, sparse, one line) is refused after 1025 bytes.
        std::fs::File::create(d.join("huge")).unwrap().set_len(1 << 30).unwrap();
        let e = load(&d.join("huge")).unwrap_err();
        assert!(e.ends_with("huge: longer than 1024 bytes"), "{e}");
    }
}
