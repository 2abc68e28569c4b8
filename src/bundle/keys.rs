//! ed25519 keys for bundles. In: key files. Out: a signing key (technician workstation only) or
//! a [`TrustStore`] of public keys (boards). Formats, one line each, hex-encoded:
//!
//! ```text
//! NAME.key   endface-ed25519-secret-v1 <64 hex> <key id>      (mode 0600, never on a board)
//! NAME.pub   endface-ed25519-public-v1 <64 hex> <key id> <name>
//! ```
//!
//! The key id is the first 8 bytes of sha256(public key), as 16 hex digits.

use super::BundleError;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const SECRET_TAG: &str = "endface-ed25519-secret-v1";
const PUBLIC_TAG: &str = "endface-ed25519-public-v1";

/// Short public identifier of a key (16 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        KeyId(hex::encode(&digest[..8]))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A loaded secret key.
pub struct SigningKeyFile {
    pub key: SigningKey,
    pub key_id: KeyId,
}

impl SigningKeyFile {
    pub fn load(path: &Path) -> Result<SigningKeyFile, BundleError> {
        let text = fs::read_to_string(path).map_err(|e| BundleError::io(path, e))?;
        let bad = |reason: &str| BundleError::BadKeyFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut words = text.split_whitespace();
        if words.next() != Some(SECRET_TAG) {
            return Err(bad(&format!(
                "not an endface secret key (expected `{SECRET_TAG} <hex>`)"
            )));
        }
        let bytes = decode32(words.next().unwrap_or(""))
            .ok_or_else(|| bad("secret is not 64 hex digits"))?;
        let key = SigningKey::from_bytes(&bytes);
        let key_id = KeyId::of(&key.verifying_key());
        Ok(SigningKeyFile { key, key_id })
    }
}

fn decode32(s: &str) -> Option<[u8; 32]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

/// Make a new key pair: writes `<dir>/<name>.key` (0600, refuses to overwrite) and
/// `<dir>/<name>.pub`. Returns the key id and both paths.
pub fn generate_keypair(dir: &Path, name: &str) -> Result<(KeyId, PathBuf, PathBuf), BundleError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(BundleError::BadInput(format!(
            "key name `{name}`: use letters, digits, `-`, `_`, `.`"
        )));
    }
    fs::create_dir_all(dir).map_err(|e| BundleError::io(dir, e))?;
    let key_path = dir.join(format!("{name}.key"));
    let pub_path = dir.join(format!("{name}.pub"));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(BundleError::BadInput(format!(
                "{} already exists; pick another name (keys are never overwritten)",
                p.display()
            )));
        }
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let verifying = key.verifying_key();
    let key_id = KeyId::of(&verifying);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(|e| BundleError::io(&key_path, e))?;
        writeln!(f, "{SECRET_TAG} {} {key_id}", hex::encode(key.to_bytes()))
            .and_then(|()| f.sync_all())
            .map_err(|e| BundleError::io(&key_path, e))?;
    }
    let line = format!(
        "{PUBLIC_TAG} {} {key_id} {name}\n",
        hex::encode(verifying.as_bytes())
    );
    super::fsutil::write_synced(&pub_path, line.as_bytes())?;
    Ok((key_id, key_path, pub_path))
}

/// The public keys a board trusts: every `*.pub` file in one directory.
pub struct TrustStore {
    pub dir: PathBuf,
    keys: Vec<(KeyId, VerifyingKey, PathBuf)>,
}

impl TrustStore {
    /// Load `<dir>/*.pub`. A missing directory is an empty store (every bundle is then refused
    /// as signed by an unknown key); a malformed `.pub` file is an error naming the file.
    pub fn load(dir: &Path) -> Result<TrustStore, BundleError> {
        let mut keys = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TrustStore {
                    dir: dir.to_path_buf(),
                    keys,
                });
            }
            Err(e) => return Err(BundleError::io(dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        paths.sort();
        for path in paths {
            let text = fs::read_to_string(&path).map_err(|e| BundleError::io(&path, e))?;
            let bad = |reason: &str| BundleError::BadKeyFile {
                path: path.clone(),
                reason: reason.to_string(),
            };
            let mut words = text.split_whitespace();
            if words.next() != Some(PUBLIC_TAG) {
                return Err(bad(&format!(
                    "not an endface public key (expected `{PUBLIC_TAG} <hex>`)"
                )));
            }
            let bytes = decode32(words.next().unwrap_or(""))
                .ok_or_else(|| bad("public key is not 64 hex digits"))?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| bad("not a valid ed25519 public key"))?;
            keys.push((KeyId::of(&key), key, path));
        }
        Ok(TrustStore {
            dir: dir.to_path_buf(),
            keys,
        })
    }

    /// A store holding exactly these keys (tests, tools).
    pub fn from_keys(keys: Vec<VerifyingKey>) -> TrustStore {
        TrustStore {
            dir: PathBuf::from("<in memory>"),
            keys: keys
                .into_iter()
                .map(|k| (KeyId::of(&k), k, PathBuf::from("<in memory>")))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with this id and the file it came from.
    pub fn get(&self, id: &str) -> Option<(&VerifyingKey, &Path)> {
        self.keys
            .iter()
            .find(|(kid, _, _)| kid.0 == id)
            .map(|(_, k, p)| (k, p.as_path()))
    }
}
