//! Fixtures shared by the bundle tests: keys, a fake model + manifest, golden sets, bundles,
//! raw tar surgery for hostile archives, fake self-tests and a snapshot of a state root.
#![allow(dead_code)]

use endface::bundle::{
    self, create_bundle, CreateOptions, GoldenOutcome, SelfTest, SelfTestError, SelfTestInput,
    SigningKeyFile, TrustStore,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Keys {
    pub dir: PathBuf,
    pub secret: PathBuf,
    pub public_dir: PathBuf,
}

/// A key pair named `name` under `base/<name>`; the public key alone in `base/<name>/trusted`.
pub fn keys(base: &Path, name: &str) -> Keys {
    let dir = base.join(name);
    let (_, secret, public) = bundle::generate_keypair(&dir, name).unwrap();
    let public_dir = dir.join("trusted");
    fs::create_dir_all(&public_dir).unwrap();
    fs::copy(&public, public_dir.join(format!("{name}.pub"))).unwrap();
    Keys {
        dir,
        secret,
        public_dir,
    }
}

pub fn trust(keys: &Keys) -> TrustStore {
    TrustStore::load(&keys.public_dir).unwrap()
}

/// Model + manifest + golden set under `base/src-<tag>`; returns create options.
pub fn sources(base: &Path, tag: &str, version: &str) -> CreateOptions {
    let dir = base.join(format!("src-{tag}"));
    fs::create_dir_all(dir.join("golden/sub")).unwrap();
    let model: Vec<u8> = (0..5000u32)
        .map(|i| (i * 31 + tag.len() as u32) as u8)
        .collect();
    fs::write(dir.join("student.onnx"), &model).unwrap();
    let manifest = serde_json::json!({
        "schema": "endface.model-manifest/1",
        "name": "endface-student",
        "version": version,
        "onnx_file": "student.onnx",
        "sha256": hex::encode(Sha256::digest(&model)),
    });
    fs::write(dir.join("student.manifest.json"), manifest.to_string()).unwrap();
    fs::write(dir.join("golden/good_0.png"), b"not really a png 0").unwrap();
    fs::write(dir.join("golden/sub/bad_1.png"), b"not really a png 1").unwrap();
    fs::write(
        dir.join("golden/expected.jsonl"),
        "{\"image\": \"good_0.png\", \"verdict\": \"pass\", \"image_score\": 0.1}\n\
         {\"image\": \"sub/bad_1.png\", \"verdict\": \"FAIL\"}\n",
    )
    .unwrap();
    fs::write(dir.join("station.toml"), "[station]\nname = \"test\"\n").unwrap();
    fs::write(dir.join("sm-upc.toml"), "# profile\n").unwrap();
    CreateOptions {
        model: dir.join("student.onnx"),
        model_manifest: dir.join("student.manifest.json"),
        station_config: Some(dir.join("station.toml")),
        profiles: vec![dir.join("sm-upc.toml")],
        golden_dir: dir.join("golden"),
        version: Some(version.to_string()),
        note: Some(format!("test bundle {tag}")),
        output: base.join(format!("bundle-{tag}.tar")),
    }
}

/// Create a signed bundle of `version`; returns its path.
pub fn make_bundle(base: &Path, keys: &Keys, tag: &str, version: &str) -> PathBuf {
    let opts = sources(base, tag, version);
    let key = SigningKeyFile::load(&keys.secret).unwrap();
    create_bundle(&opts, &key).unwrap();
    opts.output
}

/// Reports the recorded verdicts (a model that reproduces its golden set).
pub struct Echo;
impl SelfTest for Echo {
    fn run(&self, input: &SelfTestInput) -> Result<Vec<GoldenOutcome>, SelfTestError> {
        for img in &input.images {
            assert!(img.is_file(), "self-test image {} missing", img.display());
        }
        assert!(input.model_manifest.is_file());
        Ok(input
            .cases
            .iter()
            .map(|c| GoldenOutcome {
                verdict: c.verdict.clone(),
                image_score: c.image_score,
            })
            .collect())
    }
}

/// Reports "pass" for everything (a model that misses the golden defects).
pub struct AllPass;
impl SelfTest for AllPass {
    fn run(&self, input: &SelfTestInput) -> Result<Vec<GoldenOutcome>, SelfTestError> {
        Ok(input
            .cases
            .iter()
            .map(|_| GoldenOutcome {
                verdict: "pass".into(),
                image_score: None,
            })
            .collect())
    }
}

/// Cannot run the model at all.
pub struct Broken;
impl SelfTest for Broken {
    fn run(&self, _: &SelfTestInput) -> Result<Vec<GoldenOutcome>, SelfTestError> {
        Err(SelfTestError("model failed to load".into()))
    }
}

pub fn plenty(_: &Path) -> std::io::Result<u64> {
    Ok(1 << 40)
}

pub fn install_with(
    root: &Path,
    trust: &TrustStore,
    st: &dyn SelfTest,
    bundle_path: &Path,
    force: bool,
) -> Result<bundle::InstallReport, bundle::BundleError> {
    let opts = bundle::InstallOptions {
        state_root: root.to_path_buf(),
        trust,
        self_test: st,
        force,
        max_boot_attempts: 3,
        free_space: &plenty,
    };
    bundle::install(bundle_path, &opts)
}

/// Every file under `root` (except the journal and the lock) with its sha256.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel == "journal" || rel == "lock" {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(base, &p, out);
            } else {
                out.insert(rel, hex::encode(Sha256::digest(fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// One archive entry for raw surgery.
#[derive(Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub kind: u8,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
}

pub fn read_entries(path: &Path) -> Vec<RawEntry> {
    let mut ar = tar::Archive::new(fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path_bytes().into_owned();
        let kind = e.header().entry_type().as_byte();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.push(RawEntry {
            name,
            kind,
            data,
            link: Vec::new(),
        });
    }
    out
}

/// Write entries with raw names (no path validation, unlike tar::Builder::append_data).
pub fn write_entries(path: &Path, entries: &[RawEntry]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            assert!(
                e.name.len() < gnu.name.len(),
                "raw names must fit the header"
            );
            gnu.name[..e.name.len()].copy_from_slice(&e.name);
            gnu.linkname[..e.link.len()].copy_from_slice(&e.link);
        }
        h.set_entry_type(tar::EntryType::new(e.kind));
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, e.data.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

pub fn entry(name: &str, kind: u8, data: &[u8]) -> RawEntry {
    RawEntry {
        name: name.as_bytes().to_vec(),
        kind,
        data: data.to_vec(),
        link: Vec::new(),
    }
}
