//! Bundle files on disk: [`create_bundle`] (technician workstation: collect, hash, sign, tar) and
//! the streaming reader used by [`verify_bundle`] and the installer. The reader authenticates
//! `bundle.sig` over the raw `bundle.json` bytes before parsing them, then checks every payload
//! entry against the signed list (type, path, size, sha256, no duplicates, none missing), and
//! optionally writes the payload into a fresh directory while hashing it.

use super::fsutil::{fault_point, write_synced};
use super::keys::{SigningKeyFile, TrustStore};
use super::manifest::{
    check_entry_path, BundleFile, BundleManifest, BUNDLE_SCHEMA, MANIFEST_NAME, MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES, SIGNATURE_NAME,
};
use super::selftest::read_expected;
use super::BundleError;
use ed25519_dalek::{Signature, Signer};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Inputs of `endface bundle create`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The .onnx model.
    pub model: PathBuf,
    /// Its manifest JSON (`onnx_file`, `sha256`, `version` are checked against the model).
    pub model_manifest: PathBuf,
    pub station_config: Option<PathBuf>,
    pub profiles: Vec<PathBuf>,
    /// Directory holding `expected.jsonl` and the images it names.
    pub golden_dir: PathBuf,
    /// Bundle version; defaults to the model manifest's `version`.
    pub version: Option<String>,
    pub note: Option<String>,
    pub output: PathBuf,
}

/// A bundle whose signature verified and whose payload matched its manifest.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub manifest: BundleManifest,
    pub manifest_bytes: Vec<u8>,
    /// Contents of `bundle.sig`.
    pub signature_line: String,
    /// The trusted `.pub` file whose key verified the signature.
    pub key_file: PathBuf,
}

fn file_name_of(path: &Path) -> Result<String, BundleError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| BundleError::BadInput(format!("{}: no usable file name", path.display())))
}

fn sha256_file(path: &Path) -> Result<(u64, String), BundleError> {
    let mut f = File::open(path).map_err(|e| BundleError::io(path, e))?;
    let mut hasher = Sha256::new();
    let n = std::io::copy(&mut f, &mut hasher).map_err(|e| BundleError::io(path, e))?;
    Ok((n, hex::encode(hasher.finalize())))
}

/// Collect, hash, sign and write a bundle (to `<output>.tmp`, renamed into place when complete).
pub fn create_bundle(
    opts: &CreateOptions,
    key: &SigningKeyFile,
) -> Result<BundleManifest, BundleError> {
    // (bundle path, source path)
    let mut sources: Vec<(String, PathBuf)> = Vec::new();

    // Model + manifest: the manifest must describe this very model file.
    let mm_bytes =
        fs::read(&opts.model_manifest).map_err(|e| BundleError::io(&opts.model_manifest, e))?;
    let mm: serde_json::Value = serde_json::from_slice(&mm_bytes).map_err(|e| {
        BundleError::BadInput(format!(
            "model manifest {}: {e}",
            opts.model_manifest.display()
        ))
    })?;
    let onnx_file = mm
        .get("onnx_file")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            BundleError::BadInput(format!(
                "model manifest {}: no `onnx_file`",
                opts.model_manifest.display()
            ))
        })?;
    if onnx_file.contains('/') || check_entry_path(onnx_file).is_err() {
        return Err(BundleError::BadInput(format!(
            "model manifest {}: `onnx_file` must be a plain file name beside the manifest, got `{onnx_file}`",
            opts.model_manifest.display()
        )));
    }
    let (_, model_sha) = sha256_file(&opts.model)?;
    match mm.get("sha256").and_then(|v| v.as_str()) {
        Some(want) if want.eq_ignore_ascii_case(&model_sha) => {}
        Some(want) => {
            return Err(BundleError::BadInput(format!(
                "model {} has sha256 {model_sha} but its manifest {} records {want}: wrong pair of files",
                opts.model.display(),
                opts.model_manifest.display()
            )))
        }
        None => {
            return Err(BundleError::BadInput(format!(
                "model manifest {}: no `sha256`",
                opts.model_manifest.display()
            )))
        }
    }
    let mm_name = file_name_of(&opts.model_manifest)?;
    if mm_name == onnx_file {
        return Err(BundleError::BadInput(
            "model and manifest have the same file name".into(),
        ));
    }
    let model_manifest = format!("model/{mm_name}");
    sources.push((format!("model/{onnx_file}"), opts.model.clone()));
    sources.push((model_manifest.clone(), opts.model_manifest.clone()));
    // The drift monitor's calibration reference travels with its model (signed like the
    // rest); the daemon finds it beside the slot's manifest.
    let drift_reference = crate::daemon::default_drift_reference(&opts.model_manifest);
    if drift_reference.is_file() {
        sources.push((
            format!("model/{}", file_name_of(&drift_reference)?),
            drift_reference,
        ));
    }

    let version = match &opts.version {
        Some(v) => v.clone(),
        None => mm
            .get("version")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                BundleError::BadInput(
                    "no --bundle-version and the model manifest has no `version`".into(),
                )
            })?,
    };

    let station_config = match &opts.station_config {
        Some(c) => {
            sources.push(("config/station.toml".into(), c.clone()));
            Some("config/station.toml".to_string())
        }
        None => None,
    };
    let mut profiles = Vec::new();
    for p in &opts.profiles {
        let bp = format!("profiles/{}", file_name_of(p)?);
        sources.push((bp.clone(), p.clone()));
        profiles.push(bp);
    }

    let expected = opts.golden_dir.join("expected.jsonl");
    let cases = read_expected(&expected)?;
    let golden_expected = "golden/expected.jsonl".to_string();
    sources.push((golden_expected.clone(), expected));
    let mut seen_images = HashSet::new();
    for case in &cases {
        if seen_images.insert(case.image.clone()) {
            let src = opts.golden_dir.join(&case.image);
            if !src.is_file() {
                return Err(BundleError::BadInput(format!(
                    "golden image {} named in expected.jsonl does not exist",
                    src.display()
                )));
            }
            sources.push((format!("golden/{}", case.image), src));
        }
    }

    let mut files = Vec::with_capacity(sources.len());
    for (bp, src) in &sources {
        let (size, sha256) = sha256_file(src)?;
        files.push(BundleFile {
            path: bp.clone(),
            size,
            sha256,
        });
    }
    let created_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let manifest = BundleManifest {
        schema: BUNDLE_SCHEMA.to_string(),
        version,
        key_id: key.key_id.0.clone(),
        created_unix,
        model_manifest,
        station_config,
        profiles,
        golden_expected,
        note: opts.note.clone(),
        files,
    };
    manifest
        .validate()
        .map_err(|e| BundleError::BadInput(e.to_string()))?;
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BundleError::BadInput(format!("serializing bundle.json: {e}")))?;
    let signature = key
        .key
        .sign(&BundleManifest::signed_message(&manifest_bytes));
    let sig_line = format!("{} {}\n", key.key_id, hex::encode(signature.to_bytes()));

    let tmp = super::fsutil::tmp_path(&opts.output);
    let out = File::create(&tmp).map_err(|e| BundleError::io(&tmp, e))?;
    let mut builder = tar::Builder::new(BufWriter::new(out));
    let io = |e| BundleError::io(&tmp, e);
    append_bytes(&mut builder, MANIFEST_NAME, &manifest_bytes, created_unix).map_err(io)?;
    append_bytes(
        &mut builder,
        SIGNATURE_NAME,
        sig_line.as_bytes(),
        created_unix,
    )
    .map_err(io)?;
    for ((bp, src), f) in sources.iter().zip(&manifest.files) {
        let file = File::open(src).map_err(|e| BundleError::io(src, e))?;
        let mut header = regular_header(f.size, created_unix);
        builder
            .append_data(&mut header, bp, BufReader::new(file).take(f.size))
            .map_err(|e| BundleError::io(src, e))?;
    }
    let writer = builder.into_inner().map_err(io)?;
    let file = writer
        .into_inner()
        .map_err(|e| BundleError::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, &opts.output).map_err(|e| BundleError::io(&opts.output, e))?;
    Ok(manifest)
}

fn regular_header(size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header
}

fn append_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
    mtime: u64,
) -> std::io::Result<()> {
    let mut header = regular_header(bytes.len() as u64, mtime);
    b.append_data(&mut header, path, bytes)
}

/// Read and fully check a bundle without writing anything.
pub fn verify_bundle(path: &Path, trust: &TrustStore) -> Result<VerifiedBundle, BundleError> {
    read_bundle(path, trust, None, &mut |_| Ok(()))
}

fn corrupt(what: impl std::fmt::Display) -> BundleError {
    BundleError::CorruptArchive(what.to_string())
}

fn read_small<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, BundleError> {
    check_regular(entry, name)?;
    let size = entry.size();
    if size > max {
        return Err(BundleError::UnsafeEntry {
            path: name.into(),
            reason: format!("{size} bytes, at most {max}"),
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .read_to_end(&mut buf)
        .map_err(|e| corrupt(format!("reading {name}: {e}")))?;
    if buf.len() as u64 != size {
        return Err(corrupt(format!("{name} is cut short")));
    }
    Ok(buf)
}

fn check_regular<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<(), BundleError> {
    let t = entry.header().entry_type();
    if t != tar::EntryType::Regular {
        let kind = match t {
            tar::EntryType::Symlink => "a symbolic link".to_string(),
            tar::EntryType::Link => "a hard link".to_string(),
            tar::EntryType::Char | tar::EntryType::Block => "a device node".to_string(),
            tar::EntryType::Fifo => "a FIFO".to_string(),
            tar::EntryType::Directory => "a directory".to_string(),
            other => format!("of tar type {:?}", other.as_byte() as char),
        };
        return Err(BundleError::UnsafeEntry {
            path: name.into(),
            reason: format!("is {kind}; bundles hold regular files only"),
        });
    }
    Ok(())
}

/// The reader behind verify and install. `before_payload` runs once the signature and manifest
/// are authenticated and before any payload byte is read or written (the installer checks
/// version and disk space there). With `dest`, payload files are written under it (a fresh,
/// empty directory), fsync'd, followed by `bundle.json` and `bundle.sig`.
pub(crate) fn read_bundle(
    path: &Path,
    trust: &TrustStore,
    dest: Option<&Path>,
    before_payload: &mut dyn FnMut(&VerifiedBundle) -> Result<(), BundleError>,
) -> Result<VerifiedBundle, BundleError> {
    let file =
        File::open(path).map_err(|e| BundleError::BadInput(format!("{}: {e}", path.display())))?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut entries = archive.entries().map_err(corrupt)?;

    // 1. bundle.json, then bundle.sig, as the first two entries.
    let manifest_bytes = {
        let mut e = match entries.next() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(corrupt(e)),
            None => return Err(corrupt("empty archive (not an endface bundle)")),
        };
        if &*e.path_bytes() != MANIFEST_NAME.as_bytes() {
            return Err(corrupt(format!(
                "first entry is `{}`, expected {MANIFEST_NAME} (not an endface bundle?)",
                String::from_utf8_lossy(&e.path_bytes())
            )));
        }
        read_small(&mut e, MANIFEST_NAME, MAX_MANIFEST_BYTES)?
    };
    let sig_bytes = {
        let mut e = match entries.next() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(corrupt(e)),
            None => return Err(corrupt(format!("archive ends before {SIGNATURE_NAME}"))),
        };
        if &*e.path_bytes() != SIGNATURE_NAME.as_bytes() {
            return Err(corrupt(format!(
                "second entry is `{}`, expected {SIGNATURE_NAME}",
                String::from_utf8_lossy(&e.path_bytes())
            )));
        }
        read_small(&mut e, SIGNATURE_NAME, MAX_SIGNATURE_BYTES)?
    };

    // 2. Authenticate the raw manifest bytes before parsing them.
    let signature_line = String::from_utf8(sig_bytes)
        .map_err(|_| corrupt(format!("{SIGNATURE_NAME} is not text")))?;
    let mut words = signature_line.split_whitespace();
    let (key_id, sig_hex) = match (words.next(), words.next(), words.next()) {
        (Some(k), Some(s), None) => (k.to_string(), s),
        _ => {
            return Err(corrupt(format!(
                "{SIGNATURE_NAME} is not `<key id> <signature hex>`"
            )))
        }
    };
    let sig_raw: [u8; 64] = hex::decode(sig_hex)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| corrupt(format!("{SIGNATURE_NAME}: signature is not 128 hex digits")))?;
    let (vkey, key_file) = trust.get(&key_id).ok_or_else(|| BundleError::UnknownKey {
        key_id: key_id.clone(),
        keys_dir: trust.dir.clone(),
    })?;
    let key_file = key_file.to_path_buf();
    vkey.verify_strict(
        &BundleManifest::signed_message(&manifest_bytes),
        &Signature::from_bytes(&sig_raw),
    )
    .map_err(|_| BundleError::BadSignature {
        key_id: key_id.clone(),
        key_file: key_file.clone(),
    })?;
    let manifest = BundleManifest::parse(&manifest_bytes)?;
    if manifest.key_id != key_id {
        return Err(BundleError::BadManifest(format!(
            "signed by key {key_id} but the manifest names key {}",
            manifest.key_id
        )));
    }
    let verified = VerifiedBundle {
        manifest,
        manifest_bytes,
        signature_line,
        key_file,
    };
    before_payload(&verified)?;

    // 3. Payload: every entry listed, in any order, each exactly once, hashes matching.
    let mut seen: HashSet<String> = HashSet::new();
    let mut wrote_any = false;
    for entry in entries {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|e| BundleError::UnsafeEntry {
            path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            reason: "path is not UTF-8".into(),
        })?;
        check_entry_path(&name)?;
        check_regular(&entry, &name)?;
        let Some(listed) = verified.manifest.file(&name) else {
            return Err(BundleError::UnsafeEntry {
                path: name,
                reason: "not listed in the signed manifest".into(),
            });
        };
        if !seen.insert(name.clone()) {
            return Err(BundleError::UnsafeEntry {
                path: name,
                reason: "appears twice in the archive".into(),
            });
        }
        if entry.size() != listed.size {
            return Err(BundleError::FileMismatch {
                path: name,
                reason: format!(
                    "{} bytes in the archive, {} in the manifest",
                    entry.size(),
                    listed.size
                ),
            });
        }
        let mut hasher = Sha256::new();
        let copied = match dest {
            None => std::io::copy(&mut entry, &mut hasher)
                .map_err(|e| corrupt(format!("reading {name}: {e}")))?,
            Some(dir) => {
                let out_path = dir.join(&name);
                if let Some(parent) = out_path.parent() {
                    fs::create_dir_all(parent).map_err(|e| BundleError::io(parent, e))?;
                }
                let out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out_path)
                    .map_err(|e| BundleError::io(&out_path, e))?;
                let mut tee = HashingWriter {
                    inner: BufWriter::new(out),
                    hasher: &mut hasher,
                };
                let n = copy_entry(&mut entry, &mut tee, &name, &out_path)?;
                let out = tee
                    .inner
                    .into_inner()
                    .map_err(|e| BundleError::io(&out_path, e.into_error()))?;
                out.sync_all().map_err(|e| BundleError::io(&out_path, e))?;
                if !wrote_any {
                    wrote_any = true;
                    fault_point("install.unpack_partial");
                }
                n
            }
        };
        if copied != listed.size {
            return Err(corrupt(format!(
                "{name} is cut short ({copied} of {} bytes)",
                listed.size
            )));
        }
        let got = hex::encode(hasher.finalize());
        if got != listed.sha256 {
            return Err(BundleError::FileMismatch {
                path: name,
                reason: format!("sha256 {got}, manifest says {}", listed.sha256),
            });
        }
    }
    if let Some(missing) = verified
        .manifest
        .files
        .iter()
        .find(|f| !seen.contains(&f.path))
    {
        return Err(corrupt(format!(
            "`{}` is listed in the manifest but missing from the archive (truncated?)",
            missing.path
        )));
    }
    if let Some(dir) = dest {
        write_synced(&dir.join(MANIFEST_NAME), &verified.manifest_bytes)?;
        write_synced(
            &dir.join(SIGNATURE_NAME),
            verified.signature_line.as_bytes(),
        )?;
    }
    Ok(verified)
}

/// Copy an entry into a writer, telling archive read errors (corrupt bundle) from write errors
/// (board I/O).
fn copy_entry<R: Read, W: Write>(
    src: &mut R,
    dst: &mut W,
    name: &str,
    out_path: &Path,
) -> Result<u64, BundleError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(format!("reading {name}: {e}"))),
        };
        dst.write_all(&buf[..n])
            .map_err(|e| BundleError::io(out_path, e))?;
        total += n as u64;
    }
    dst.flush().map_err(|e| BundleError::io(out_path, e))?;
    Ok(total)
}

struct HashingWriter<'a, W: Write> {
    inner: W,
    hasher: &'a mut Sha256,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
