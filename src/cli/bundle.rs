//! `endface bundle`: signed update bundles. Technician workstation: `keygen`, `create`.
//! Board: `verify`, `install`, `status`, `rollback`, `commit`. See docs/technician-updates.md.
//!
//! Exit codes: 0 done; `BUNDLE_REFUSED` (12) the bundle or request was refused and the running
//! slot is untouched; `BAD_CONFIG` (6) a trusted key file is malformed; `INPUT_IO` (3) an input
//! file is missing or unusable; 1 a local failure (I/O on the board).

use endface::bundle::{
    self, BundleError, CreateOptions, GoldenOutcome, SelfTest, SelfTestError, SelfTestInput,
    SigningKeyFile, TrustStore,
};
use endface::error::{coded, exit};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Box<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Make an ed25519 key pair (workstation only): NAME.key (secret, 0600) and NAME.pub.
    Keygen {
        /// Directory for the key files (kept off the boards).
        #[arg(long)]
        out: PathBuf,
        /// Key name, e.g. `lab-2025`.
        #[arg(long)]
        name: String,
    },
    /// Collect, hash and sign a bundle.
    Create {
        /// Secret key file from `bundle keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The .onnx model.
        #[arg(long)]
        model: PathBuf,
        /// The model's manifest JSON.
        #[arg(long)]
        manifest: PathBuf,
        /// Station config to ship with the model.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Grading profile(s) to ship (repeatable).
        #[arg(long = "profile")]
        profiles: Vec<PathBuf>,
        /// Directory with expected.jsonl and the golden images it names.
        #[arg(long)]
        golden: PathBuf,
        /// Bundle version (default: the model manifest's version).
        #[arg(long)]
        bundle_version: Option<String>,
        /// Free-text note stored in the signed manifest.
        #[arg(long)]
        note: Option<String>,
        /// Output bundle file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check a bundle's signature and contents against the trusted keys; writes nothing.
    Verify {
        bundle: PathBuf,
        /// Trusted public keys (*.pub). Default: $ENDFACE_KEYS_DIR or /etc/endface/keys.
        #[arg(long)]
        keys: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Verify, unpack into the inactive slot, self-test on the golden images, switch.
    Install {
        bundle: PathBuf,
        #[arg(long)]
        keys: Option<PathBuf>,
        /// State root. Default: $ENDFACE_STATE_ROOT or /var/lib/endface.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Allow a version older than or equal to the installed one.
        #[arg(long)]
        force: bool,
        /// Daemon starts without reaching READY before an automatic rollback.
        #[arg(long, default_value_t = bundle::DEFAULT_MAX_BOOT_ATTEMPTS)]
        max_boot_attempts: u32,
        /// Station config for the self-test when the bundle carries none.
        #[arg(long, default_value = "/etc/endface/station.toml")]
        station_config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show the active slot, both slots (checked) and the last journal events.
    Status {
        #[arg(long)]
        root: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Journal events to show.
        #[arg(long, default_value_t = 10)]
        events: usize,
    },
    /// Switch back to the previous slot.
    Rollback {
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Mark the active slot good by hand (what the daemon does when it reaches READY).
    Commit {
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Run the daemon's start-up bookkeeping and print the chosen slot as JSON (for scripts
    /// and tests; the daemon calls endface::bundle::on_daemon_start itself).
    #[command(hide = true)]
    Boot {
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

fn state_root(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("ENDFACE_STATE_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(bundle::DEFAULT_STATE_ROOT))
}

fn keys_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("ENDFACE_KEYS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(bundle::DEFAULT_KEYS_DIR))
}

/// Tag a bundle error with its exit code.
fn tagged(err: BundleError) -> anyhow::Error {
    let code = match &err {
        BundleError::Io { .. } | BundleError::BadState { .. } => exit::FAILURE,
        BundleError::BadKeyFile { .. } => exit::BAD_CONFIG,
        BundleError::BadInput(_) => exit::INPUT_IO,
        _ => exit::BUNDLE_REFUSED,
    };
    coded(code, err)
}

fn refused(err: BundleError) -> anyhow::Error {
    let running = "the running slot is untouched";
    match &err {
        BundleError::Io { .. } | BundleError::BadState { .. } | BundleError::BadKeyFile { .. } => {
            tagged(err)
        }
        _ => tagged(err).context(format!("bundle refused ({running})")),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match *args.command {
        Command::Keygen { out, name } => {
            let (id, key, public) = bundle::generate_keypair(&out, &name).map_err(tagged)?;
            println!("key id {id}");
            println!("secret key: {} (keep it off the boards)", key.display());
            println!(
                "public key: {} (copy to /etc/endface/keys/ on each board)",
                public.display()
            );
            Ok(0)
        }
        Command::Create {
            key,
            model,
            manifest,
            config,
            profiles,
            golden,
            bundle_version,
            note,
            output,
        } => {
            let key = SigningKeyFile::load(&key).map_err(tagged)?;
            let opts = CreateOptions {
                model,
                model_manifest: manifest,
                station_config: config,
                profiles,
                golden_dir: golden,
                version: bundle_version,
                note,
                output: output.clone(),
            };
            let m = bundle::create_bundle(&opts, &key).map_err(tagged)?;
            println!(
                "{}: version {}, {} files, {} bytes, signed by key {}",
                output.display(),
                m.version,
                m.files.len(),
                m.payload_bytes(),
                m.key_id
            );
            Ok(0)
        }
        Command::Verify {
            bundle: path,
            keys,
            json,
        } => {
            let trust = TrustStore::load(&keys_dir(keys)).map_err(tagged)?;
            let vb = bundle::verify_bundle(&path, &trust).map_err(refused)?;
            if json {
                println!("{}", serde_json::to_string(&vb.manifest)?);
            } else {
                println!(
                    "{}: OK, version {}, {} files, signed by key {} ({})",
                    path.display(),
                    vb.manifest.version,
                    vb.manifest.files.len(),
                    vb.manifest.key_id,
                    vb.key_file.display()
                );
            }
            Ok(0)
        }
        Command::Install {
            bundle: path,
            keys,
            root,
            force,
            max_boot_attempts,
            station_config,
            json,
        } => {
            let trust = TrustStore::load(&keys_dir(keys)).map_err(tagged)?;
            let self_test = CliSelfTest { station_config };
            let free_space = free_space_fn();
            let opts = bundle::InstallOptions {
                state_root: state_root(root),
                trust: &trust,
                self_test: &self_test,
                force,
                max_boot_attempts,
                free_space: &free_space,
            };
            let report = bundle::install(&path, &opts).map_err(refused)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "installed version {} into slot {} (self-test: {} golden images reproduced); previous: slot {}{}",
                    report.version,
                    report.slot,
                    report.golden_cases,
                    report.previous,
                    report.previous_version.as_deref().map(|v| format!(" version {v}")).unwrap_or_default()
                );
                println!("restart the daemon to use it (systemctl restart endface); it is on trial until the daemon reaches READY");
                if report.previous_uncommitted {
                    println!("note: the slot left behind had not reached READY; it is the rollback target now");
                }
            }
            Ok(0)
        }
        Command::Status { root, json, events } => {
            let root = state_root(root);
            let st = bundle::status(&root, events).map_err(tagged)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print_status(&st);
            }
            if st.active.valid {
                Ok(0)
            } else {
                Err(coded(
                    exit::FAILURE,
                    anyhow::anyhow!(
                        "active slot {} is damaged ({}); the daemon will fall back at its next start",
                        st.active.slot,
                        st.active.problem.unwrap_or_default()
                    ),
                ))
            }
        }
        Command::Rollback { root } => {
            let (from, to) = bundle::rollback(&state_root(root)).map_err(tagged)?;
            println!("rolled back from slot {from} to {to}; restart the daemon (systemctl restart endface)");
            Ok(0)
        }
        Command::Commit { root } => {
            let root = state_root(root);
            let st = bundle::read_state(&root).map_err(tagged)?;
            if bundle::mark_good(&root, st.active).map_err(tagged)? {
                println!("slot {} marked good", st.active);
            } else {
                println!("slot {} was already committed", st.active);
            }
            Ok(0)
        }
        Command::Boot { root } => {
            let choice = bundle::on_daemon_start(&state_root(root)).map_err(tagged)?;
            for note in &choice.notes {
                tracing::warn!("{note}");
            }
            let out = serde_json::json!({
                "slot": choice.slot,
                "version": choice.info.as_ref().map(|i| i.manifest.version.clone()),
                "dir": choice.info.as_ref().map(|i| i.dir.clone()),
                "model_manifest": choice.info.as_ref().map(|i| i.model_manifest.clone()),
                "trial": choice.trial,
                "notes": choice.notes,
            });
            println!("{out}");
            Ok(0)
        }
    }
}

fn print_status(st: &bundle::Status) {
    let s = &st.state;
    let active_version = st.active.version.as_deref().unwrap_or("-");
    let trial = if s.committed {
        "committed".to_string()
    } else {
        format!(
            "on trial: {} of {} starts used",
            s.boot_attempts, s.max_boot_attempts
        )
    };
    println!("state root: {}", st.state_root.display());
    println!(
        "active:     {} (version {active_version}, {trial})",
        s.active
    );
    match s.previous {
        Some(p) => println!(
            "rollback:   {p}{}",
            if s.previous_committed {
                ""
            } else {
                " (had not reached READY)"
            }
        ),
        None => println!("rollback:   none"),
    }
    for slot in &st.slots {
        let what = match (&slot.problem, &slot.version) {
            (Some(p), _) => p.clone(),
            (None, Some(v)) => format!(
                "version {v}, key {}, ok",
                slot.key_id.as_deref().unwrap_or("?")
            ),
            (None, None) => "?".into(),
        };
        println!("slot {}:     {what}", slot.slot);
    }
    for e in &st.journal_tail {
        println!("  {e}");
    }
}

/// Free space: statvfs; debug builds honour ENDFACE_FAKE_FREE_BYTES (tests).
fn free_space_fn() -> impl Fn(&Path) -> std::io::Result<u64> {
    let fake = if cfg!(debug_assertions) {
        std::env::var("ENDFACE_FAKE_FREE_BYTES")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
    } else {
        None
    };
    move |p: &Path| match fake {
        Some(n) => Ok(n),
        None => bundle::statvfs_free_bytes(p),
    }
}

/// The self-test the binary runs. Debug builds (tests) honour ENDFACE_SELFTEST_FAKE=expected
/// (report the recorded verdicts) or =flip (report wrong ones); release builds never do.
struct CliSelfTest {
    station_config: PathBuf,
}

impl SelfTest for CliSelfTest {
    fn run(&self, input: &SelfTestInput) -> Result<Vec<GoldenOutcome>, SelfTestError> {
        if cfg!(debug_assertions) {
            if let Ok(mode) = std::env::var("ENDFACE_SELFTEST_FAKE") {
                return fake_self_test(&mode, input);
            }
        }
        bundle::InspectorSelfTest {
            fallback_config: self.station_config.clone(),
        }
        .run(input)
    }
}

fn fake_self_test(mode: &str, input: &SelfTestInput) -> Result<Vec<GoldenOutcome>, SelfTestError> {
    let flip = match mode {
        "expected" => false,
        "flip" => true,
        other => {
            return Err(SelfTestError(format!(
                "ENDFACE_SELFTEST_FAKE={other}: use expected|flip"
            )))
        }
    };
    Ok(input
        .cases
        .iter()
        .map(|c| GoldenOutcome {
            verdict: match (flip, c.verdict.to_ascii_lowercase().as_str()) {
                (false, v) => v.to_string(),
                (true, "pass") => "fail".into(),
                (true, _) => "pass".into(),
            },
            image_score: c.image_score,
        })
        .collect())
}
