//! The signed bundle manifest (`bundle.json`): which files a bundle carries (size + sha256), its
//! version and the key that signed it; the path rules every entry must obey; version ordering.

use super::BundleError;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashSet;

/// Schema tag of `bundle.json`, also the domain-separation prefix of the signed message.
pub const BUNDLE_SCHEMA: &str = "endface.bundle/1";
pub(crate) const MANIFEST_NAME: &str = "bundle.json";
pub(crate) const SIGNATURE_NAME: &str = "bundle.sig";
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1 << 20;
pub(crate) const MAX_SIGNATURE_BYTES: u64 = 1024;
pub(crate) const MAX_FILE_BYTES: u64 = 2 << 30;
pub(crate) const MAX_TOTAL_BYTES: u64 = 4 << 30;
pub(crate) const MAX_FILES: usize = 4096;
pub(crate) const MAX_PATH_BYTES: usize = 240;

/// One payload file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    /// Relative path inside the bundle and the slot, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Lower-case hex sha256 of the bytes.
    pub sha256: String,
}

/// Contents of `bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub schema: String,
    /// Dotted numeric version, e.g. "1.4.0"; installs refuse older versions unless forced.
    pub version: String,
    /// Id of the signing key (see `keys`).
    pub key_id: String,
    pub created_unix: u64,
    /// The model manifest (JSON beside the .onnx), e.g. "model/endface-student.manifest.json".
    pub model_manifest: String,
    /// Optional station config carried by the bundle.
    #[serde(default)]
    pub station_config: Option<String>,
    /// Grading profiles carried by the bundle.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Golden verdicts, e.g. "golden/expected.jsonl"; images sit beside it.
    pub golden_expected: String,
    /// Free text from the technician.
    #[serde(default)]
    pub note: Option<String>,
    pub files: Vec<BundleFile>,
}

impl BundleManifest {
    /// The exact bytes the ed25519 signature covers.
    pub fn signed_message(manifest_bytes: &[u8]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(BUNDLE_SCHEMA.len() + 1 + manifest_bytes.len());
        msg.extend_from_slice(BUNDLE_SCHEMA.as_bytes());
        msg.push(b'\n');
        msg.extend_from_slice(manifest_bytes);
        msg
    }

    pub fn parse(bytes: &[u8]) -> Result<BundleManifest, BundleError> {
        let m: BundleManifest = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::BadManifest(format!("bundle.json: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    pub fn file(&self, path: &str) -> Option<&BundleFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Sum of payload sizes.
    pub fn payload_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Structural checks: schema, version syntax, path rules, no duplicates, referenced files
    /// listed, limits.
    pub fn validate(&self) -> Result<(), BundleError> {
        let bad = |s: String| Err(BundleError::BadManifest(s));
        if self.schema != BUNDLE_SCHEMA {
            return bad(format!(
                "schema is `{}`, this build reads `{BUNDLE_SCHEMA}`",
                self.schema
            ));
        }
        if parse_version(&self.version).is_none() {
            return bad(format!(
                "version `{}` is not dotted numbers like 1.4.0",
                self.version
            ));
        }
        if self.key_id.len() != 16 || !self.key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!("key_id `{}` is not 16 hex digits", self.key_id));
        }
        if self.files.len() > MAX_FILES {
            return bad(format!("{} files, at most {MAX_FILES}", self.files.len()));
        }
        let mut seen = HashSet::new();
        let mut total: u64 = 0;
        for f in &self.files {
            check_entry_path(&f.path)?;
            if f.path == MANIFEST_NAME || f.path == SIGNATURE_NAME {
                return bad(format!("`{}` is reserved", f.path));
            }
            if !seen.insert(f.path.as_str()) {
                return bad(format!("`{}` is listed twice", f.path));
            }
            // A file and a directory of the same name cannot both exist.
            for prefix in ancestors(&f.path) {
                if self.files.iter().any(|g| g.path == prefix) {
                    return bad(format!("`{prefix}` is both a file and a directory"));
                }
            }
            if f.sha256.len() != 64
                || !f
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return bad(format!(
                    "`{}`: sha256 is not 64 lower-case hex digits",
                    f.path
                ));
            }
            if f.size > MAX_FILE_BYTES {
                return bad(format!(
                    "`{}` is {} bytes, at most {MAX_FILE_BYTES}",
                    f.path, f.size
                ));
            }
            total = total.saturating_add(f.size);
        }
        if total > MAX_TOTAL_BYTES {
            return bad(format!(
                "payload is {total} bytes, at most {MAX_TOTAL_BYTES}"
            ));
        }
        let mut refs: Vec<(&str, &str)> = vec![
            ("model_manifest", self.model_manifest.as_str()),
            ("golden_expected", self.golden_expected.as_str()),
        ];
        if let Some(c) = &self.station_config {
            refs.push(("station_config", c.as_str()));
        }
        for p in &self.profiles {
            refs.push(("profiles", p.as_str()));
        }
        for (key, path) in refs {
            if !seen.contains(path) {
                return bad(format!("{key} `{path}` is not among the listed files"));
            }
        }
        Ok(())
    }
}

fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// The path rules for every entry: relative, `/`-separated, no `.`/`..`/empty components, no
/// backslash or control characters, at most [`MAX_PATH_BYTES`] bytes.
pub(crate) fn check_entry_path(path: &str) -> Result<(), BundleError> {
    let refuse = |reason: &str| {
        Err(BundleError::UnsafeEntry {
            path: path.escape_debug().to_string(),
            reason: reason.to_string(),
        })
    };
    if path.is_empty() {
        return refuse("empty path");
    }
    if path.len() > MAX_PATH_BYTES {
        return refuse("path too long");
    }
    if path.starts_with('/') {
        return refuse("absolute path");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return refuse("control character or backslash in path");
    }
    for comp in path.split('/') {
        match comp {
            "" => return refuse("empty path component (`//` or trailing `/`)"),
            "." => return refuse("`.` component"),
            ".." => return refuse("`..` escapes the bundle"),
            _ => {}
        }
    }
    Ok(())
}

fn parse_version(v: &str) -> Option<Vec<u64>> {
    if v.is_empty() || v.len() > 64 {
        return None;
    }
    v.split('.')
        .map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse().ok()
            }
        })
        .collect()
}

/// Order two dotted numeric versions ("1.10" > "1.9", "1.0" == "1.0.0"); `None` if either is
/// malformed.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let (mut va, mut vb) = (parse_version(a)?, parse_version(b)?);
    let n = va.len().max(vb.len());
    va.resize(n, 0);
    vb.resize(n, 0);
    Some(va.cmp(&vb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("1.10.0", "1.9.3"), Some(Ordering::Greater));
        assert_eq!(compare_versions("1.0", "1.0.0"), Some(Ordering::Equal));
        assert_eq!(compare_versions("0.9", "1"), Some(Ordering::Less));
        assert_eq!(compare_versions("1.x", "1"), None);
        assert_eq!(compare_versions("", "1"), None);
    }

    #[test]
    fn entry_paths() {
        for ok in ["model/a.onnx", "golden/x y.png", "a"] {
            assert!(check_entry_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "./a",
            "a\\b",
            "a\nb",
        ] {
            assert!(check_entry_path(bad).is_err(), "{bad:?}");
        }
    }
}
