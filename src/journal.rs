//! Inspection journal: every inspection, durably, before its result is signalled.
//!
//! In: one [`Entry`] per inspection (verdict, reasons, defects, timings, model sha256, profile,
//! frame sequence, trigger time) and, for failing frames, the frame itself. Out: rows in a
//! SQLite database (WAL, `synchronous=FULL`: a committed row survives a power cut) and PNG
//! files in an image folder kept within a disk quota, oldest evicted first. Queries by time
//! for `endface journal` (table or CSV).

use crate::capture::InvalidKey;
use image::GrayImage;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// Errors of the journal. Each names the database or file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("journal {path}: {problem}")]
    Other { path: PathBuf, problem: String },
    #[error("journal image {path}: {problem}")]
    Image { path: PathBuf, problem: String },
}

/// Which frames are kept as PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveImages {
    /// FAIL and UNABLE frames.
    Failing,
    /// Every frame.
    All,
    /// None.
    None,
}

/// `[journal]`.
///
/// ```toml
/// [journal]
/// path = "/var/lib/endface/journal/inspections.db"
/// images_dir = "/var/lib/endface/journal/images"   # default: "images" beside the database
/// image_quota_mb = 512                     # oldest images evicted beyond this
/// save_images = "failing"                  # "failing" | "all" | "none"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    pub path: PathBuf,
    pub images_dir: Option<PathBuf>,
    pub image_quota_mb: u64,
    pub save_images: SaveImages,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: PathBuf::from("/var/lib/endface/journal/inspections.db"),
            images_dir: None,
            image_quota_mb: 512,
            save_images: SaveImages::Failing,
        }
    }
}

impl JournalConfig {
    /// Check every value; the error names the key and what is wrong.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if self.path.as_os_str().is_empty() {
            return Err(InvalidKey::new(
                "journal.path",
                "\"\"",
                "name the database file",
            ));
        }
        if self.image_quota_mb > 1_000_000 {
            return Err(InvalidKey::new(
                "journal.image_quota_mb",
                self.image_quota_mb,
                "must be at most 1000000 (1 TB)",
            ));
        }
        Ok(())
    }

    /// Relative paths become relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
        if let Some(p) = self.images_dir.as_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The image folder: configured, else `images` beside the database.
    pub fn images_dir(&self) -> PathBuf {
        self.images_dir.clone().unwrap_or_else(|| {
            self.path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("images")
        })
    }
}

/// One inspection as journalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Row id (0 before it is recorded).
    pub id: i64,
    /// Identifies one daemon run (start time and process id).
    pub run_id: String,
    /// Inspection number within the run, from 1.
    pub inspection: u64,
    pub station: String,
    pub profile: String,
    /// `pass`, `fail` or `unable`.
    pub verdict: String,
    pub reasons: Vec<String>,
    /// The defects as the inspector reported them (JSON).
    pub defects: serde_json::Value,
    /// Stage name → milliseconds.
    pub timings_ms: BTreeMap<String, f64>,
    pub model_sha256: String,
    /// Execution provider that ran the model.
    pub provider: String,
    /// The source's frame sequence number; `None` when no frame could be taken.
    pub frame_seq: Option<u64>,
    /// Replay file the frame came from.
    pub frame_origin: Option<String>,
    /// Trigger number within the run (free-run: the tick).
    pub trigger_seq: Option<u64>,
    /// `gpio`, `stdin`, `socket`, `api` or `free-run`.
    pub trigger_source: String,
    pub trigger_unix_ns: Option<i64>,
    pub captured_unix_ns: Option<i64>,
    pub recorded_unix_ns: i64,
    /// Saved PNG of the frame (may since have been evicted by the quota).
    pub image_path: Option<String>,
    /// What the camera gave the grading (JSON object, keys as in `inspect --json`): fiber
    /// position and radius, locate confidence and focus, the contact zone's bright level and the
    /// gain applied, stuck pixels replaced, band / stripe amplitudes and whether they were
    /// divided out, the share of the contact zone in view. `None` for rows without an
    /// inspection (no frame, inspector failure, the marker inspector) and rows recorded before
    /// the column existed.
    pub frame_condition: Option<serde_json::Value>,
}

/// Version of the schema as a whole (`PRAGMA user_version`). A nullable column added at the
/// end of a table (`frame_condition`) does not raise it: every statement names its columns, so
/// an older endface (after a rollback) keeps reading and writing such a journal, and a newer one
/// adds the column to an older journal when it opens it ([`ADDED_COLUMNS`]).
const SCHEMA_VERSION: i64 = 1;

/// Nullable columns added to `inspections` after its first release: (name, type).
const ADDED_COLUMNS: &[(&str, &str)] = &[("frame_condition", "TEXT")];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inspections (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT    NOT NULL,
    inspection       INTEGER NOT NULL,
    station          TEXT    NOT NULL,
    profile          TEXT    NOT NULL,
    verdict          TEXT    NOT NULL CHECK (verdict IN ('pass', 'fail', 'unable')),
    reasons          TEXT    NOT NULL,
    defects          TEXT    NOT NULL,
    timings_ms       TEXT    NOT NULL,
    model_sha256     TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    frame_seq        INTEGER,
    frame_origin     TEXT,
    trigger_seq      INTEGER,
    trigger_source   TEXT    NOT NULL,
    trigger_unix_ns  INTEGER,
    captured_unix_ns INTEGER,
    recorded_unix_ns INTEGER NOT NULL,
    image_path       TEXT,
    frame_condition  TEXT
);
CREATE INDEX IF NOT EXISTS inspections_recorded ON inspections (recorded_unix_ns);
CREATE UNIQUE INDEX IF NOT EXISTS inspections_run ON inspections (run_id, inspection);
CREATE TABLE IF NOT EXISTS drift_tests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT    NOT NULL,
    inspection       INTEGER NOT NULL,
    recorded_unix_ns INTEGER NOT NULL,
    frames           INTEGER NOT NULL,
    window           INTEGER NOT NULL,
    distance         REAL    NOT NULL,
    p_value          REAL    NOT NULL,
    significant      INTEGER NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('ok', 'drift')),
    changed          INTEGER NOT NULL,
    top_shifts       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS drift_tests_recorded ON drift_tests (recorded_unix_ns);
";

/// One drift test as journalled (table `drift_tests`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DriftRow {
    pub id: i64,
    pub run_id: String,
    /// The inspection after which the test ran.
    pub inspection: u64,
    pub recorded_unix_ns: i64,
    /// Frames the monitor had seen in this run.
    pub frames: u64,
    pub window: u64,
    pub distance: f64,
    pub p_value: f64,
    pub significant: bool,
    /// `ok` or `drift` after this test.
    pub state: String,
    /// This test changed the state.
    pub changed: bool,
    /// The features that moved most (JSON array).
    pub top_shifts: serde_json::Value,
}

/// The journal database.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
}

const INSERT_INSPECTION: &str = "INSERT INTO inspections (run_id, inspection, station, profile, \
     verdict, reasons, defects, timings_ms, model_sha256, provider, frame_seq, frame_origin, \
     trigger_seq, trigger_source, trigger_unix_ns, captured_unix_ns, recorded_unix_ns, image_path, \
     frame_condition) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

/// One inspection to record, borrowed (the columns of an [`Entry`]; `defects_json` is the
/// defects' JSON text, stored as is; `timings_ms` is serialized as a JSON object).
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a, T: Serialize + ?Sized> {
    pub run_id: &'a str,
    pub inspection: u64,
    pub station: &'a str,
    pub profile: &'a str,
    pub verdict: &'a str,
    pub reasons: &'a [String],
    pub defects_json: &'a str,
    pub timings_ms: &'a T,
    pub model_sha256: &'a str,
    pub provider: &'a str,
    pub frame_seq: Option<u64>,
    pub frame_origin: Option<&'a str>,
    pub trigger_seq: Option<u64>,
    pub trigger_source: &'a str,
    pub trigger_unix_ns: Option<i64>,
    pub captured_unix_ns: Option<i64>,
    pub recorded_unix_ns: i64,
    pub image_path: Option<&'a str>,
    /// [`Entry::frame_condition`] as JSON text, stored as is.
    pub frame_condition_json: Option<&'a str>,
}

/// Records inspections with one prepared statement and reused buffers
/// ([`Journal::recorder`]).
pub struct Recorder<'j> {
    journal: &'j Journal,
    stmt: rusqlite::Statement<'j>,
    reasons: Vec<u8>,
    timings: Vec<u8>,
}

/// `value` as JSON text in `buf` (cleared first); these types cannot fail to serialize, and
/// `null` stands in if one ever did.
fn json_into<'b, T: Serialize + ?Sized>(buf: &'b mut Vec<u8>, value: &T) -> &'b str {
    buf.clear();
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.clear();
    }
    match std::str::from_utf8(buf) {
        Ok(s) if !s.is_empty() => s,
        _ => "null",
    }
}

impl Recorder<'_> {
    /// Record one inspection; returns its row id. When this returns, the row is on disk.
    pub fn record<T: Serialize + ?Sized>(
        &mut self,
        e: &NewEntry<'_, T>,
    ) -> Result<i64, JournalError> {
        let reasons = json_into(&mut self.reasons, e.reasons);
        let timings = json_into(&mut self.timings, e.timings_ms);
        self.stmt
            .execute(params![
                e.run_id,
                e.inspection as i64,
                e.station,
                e.profile,
                e.verdict,
                reasons,
                e.defects_json,
                timings,
                e.model_sha256,
                e.provider,
                e.frame_seq.map(|v| v as i64),
                e.frame_origin,
                e.trigger_seq.map(|v| v as i64),
                e.trigger_source,
                e.trigger_unix_ns,
                e.captured_unix_ns,
                e.recorded_unix_ns,
                e.image_path,
                e.frame_condition_json,
            ])
            .map_err(|err| self.journal.sql(err))?;
        Ok(self.journal.conn.last_insert_rowid())
    }
}

impl Journal {
    /// Open (creating it and its folder when missing) for writing: WAL, `synchronous=FULL`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| JournalError::Other {
                    path: path.to_path_buf(),
                    problem: format!("cannot create folder {}: {e}", dir.display()),
                })?;
            }
        }
        let conn = Connection::open(path).map_err(|source| JournalError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        let j = Journal {
            conn,
            path: path.to_path_buf(),
        };
        j.setup()?;
        Ok(j)
    }

    /// Open an existing journal for queries (never creates one).
    pub fn open_existing(path: &Path) -> Result<Journal, JournalError> {
        if !path.is_file() {
            return Err(JournalError::Other {
                path: path.to_path_buf(),
                problem: "no such journal file".into(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| JournalError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        let j = Journal {
            conn,
            path: path.to_path_buf(),
        };
        j.setup()?;
        Ok(j)
    }

    fn sql(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn setup(&self) -> Result<(), JournalError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| self.sql(e))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::Other {
                path: self.path.clone(),
                problem: format!("cannot switch to WAL (journal_mode is {mode})"),
            });
        }
        self.conn
            .execute_batch("PRAGMA synchronous=FULL;")
            .map_err(|e| self.sql(e))?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::Other {
                path: self.path.clone(),
                problem: format!(
                    "schema version {version} is newer than this endface understands ({SCHEMA_VERSION})"
                ),
            });
        }
        self.conn.execute_batch(SCHEMA).map_err(|e| self.sql(e))?;
        self.add_missing_columns()?;
        self.conn
            .execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION};"))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Add the [`ADDED_COLUMNS`] a journal written by an older endface lacks.
    fn add_missing_columns(&self) -> Result<(), JournalError> {
        let mut have = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM pragma_table_info('inspections')")
                .map_err(|e| self.sql(e))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.sql(e))?;
            for n in names {
                have.push(n.map_err(|e| self.sql(e))?);
            }
        }
        for (name, kind) in ADDED_COLUMNS {
            if !have.iter().any(|h| h == name) {
                tracing::info!(journal = %self.path.display(), column = name, "journal: adding column");
                self.conn
                    .execute_batch(&format!(
                        "ALTER TABLE inspections ADD COLUMN {name} {kind};"
                    ))
                    .map_err(|e| self.sql(e))?;
            }
        }
        Ok(())
    }

    /// Record one drift test (committed before it returns).
    pub fn record_drift(
        &self,
        run_id: &str,
        inspection: u64,
        recorded_unix_ns: i64,
        report: &crate::drift::DriftReport,
    ) -> Result<i64, JournalError> {
        let shifts = serde_json::to_string(&report.top_shifts).unwrap_or_else(|_| "[]".into());
        let state = match report.state {
            crate::drift::DriftState::Ok => "ok",
            crate::drift::DriftState::Drift => "drift",
        };
        self.conn
            .execute(
                "INSERT INTO drift_tests (run_id, inspection, recorded_unix_ns, frames, window, \
                 distance, p_value, significant, state, changed, top_shifts) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                rusqlite::params![
                    run_id,
                    inspection as i64,
                    recorded_unix_ns,
                    report.frame_count as i64,
                    report.window as i64,
                    report.distance,
                    report.p_value,
                    report.significant,
                    state,
                    report.changed,
                    shifts,
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Drift tests, oldest first (optionally only those recorded at or after a time).
    pub fn drift_tests(&self, since_unix_ns: Option<i64>) -> Result<Vec<DriftRow>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, run_id, inspection, recorded_unix_ns, frames, window, distance, \
                 p_value, significant, state, changed, top_shifts FROM drift_tests \
                 WHERE recorded_unix_ns >= ?1 ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([since_unix_ns.unwrap_or(i64::MIN)], |r| {
                let shifts: String = r.get(11)?;
                Ok(DriftRow {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    inspection: r.get::<_, i64>(2)? as u64,
                    recorded_unix_ns: r.get(3)?,
                    frames: r.get::<_, i64>(4)? as u64,
                    window: r.get::<_, i64>(5)? as u64,
                    distance: r.get(6)?,
                    p_value: r.get(7)?,
                    significant: r.get(8)?,
                    state: r.get(9)?,
                    changed: r.get(10)?,
                    top_shifts: serde_json::from_str(&shifts).unwrap_or(serde_json::Value::Null),
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record one inspection; returns its row id. When this returns, the row is on disk.
    pub fn record(&mut self, e: &Entry) -> Result<i64, JournalError> {
        let defects = serde_json::to_string(&e.defects).unwrap_or_else(|_| "null".into());
        let frame_condition = e.frame_condition.as_ref().map(|v| v.to_string());
        self.recorder()?.record(&NewEntry {
            run_id: &e.run_id,
            inspection: e.inspection,
            station: &e.station,
            profile: &e.profile,
            verdict: &e.verdict,
            reasons: &e.reasons,
            defects_json: &defects,
            timings_ms: &e.timings_ms,
            model_sha256: &e.model_sha256,
            provider: &e.provider,
            frame_seq: e.frame_seq,
            frame_origin: e.frame_origin.as_deref(),
            trigger_seq: e.trigger_seq,
            trigger_source: &e.trigger_source,
            trigger_unix_ns: e.trigger_unix_ns,
            captured_unix_ns: e.captured_unix_ns,
            recorded_unix_ns: e.recorded_unix_ns,
            image_path: e.image_path.as_deref(),
            frame_condition_json: frame_condition.as_deref(),
        })
    }

    /// A recorder for a stream of inspections: the INSERT statement prepared once and JSON
    /// buffers reused, so that recording makes no heap allocation on the Rust side per row
    /// (SQLite's own memory is its business).
    pub fn recorder(&self) -> Result<Recorder<'_>, JournalError> {
        let stmt = self
            .conn
            .prepare(INSERT_INSPECTION)
            .map_err(|e| self.sql(e))?;
        Ok(Recorder {
            journal: self,
            stmt,
            reasons: Vec::new(),
            timings: Vec::new(),
        })
    }

    /// Entries recorded at or after `since_unix_ns` (all when `None`), oldest first.
    pub fn entries(&self, since_unix_ns: Option<i64>) -> Result<Vec<Entry>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, run_id, inspection, station, profile, verdict, reasons, defects,
                 timings_ms, model_sha256, provider, frame_seq, frame_origin, trigger_seq,
                 trigger_source, trigger_unix_ns, captured_unix_ns, recorded_unix_ns, image_path,
                 frame_condition
                 FROM inspections WHERE recorded_unix_ns >= ?1 ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([since_unix_ns.unwrap_or(i64::MIN)], |r| {
                let reasons: String = r.get(6)?;
                let defects: String = r.get(7)?;
                let timings: String = r.get(8)?;
                let frame_condition: Option<String> = r.get(19)?;
                Ok(Entry {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    inspection: r.get::<_, i64>(2)? as u64,
                    station: r.get(3)?,
                    profile: r.get(4)?,
                    verdict: r.get(5)?,
                    reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                    defects: serde_json::from_str(&defects).unwrap_or(serde_json::Value::Null),
                    timings_ms: serde_json::from_str(&timings).unwrap_or_default(),
                    model_sha256: r.get(9)?,
                    provider: r.get(10)?,
                    frame_seq: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
                    frame_origin: r.get(12)?,
                    trigger_seq: r.get::<_, Option<i64>>(13)?.map(|v| v as u64),
                    trigger_source: r.get(14)?,
                    trigger_unix_ns: r.get(15)?,
                    captured_unix_ns: r.get(16)?,
                    recorded_unix_ns: r.get(17)?,
                    image_path: r.get(18)?,
                    frame_condition: frame_condition.and_then(|t| serde_json::from_str(&t).ok()),
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Point a row at its saved frame (or at nothing).
    pub fn set_image_path(&mut self, id: i64, path: Option<&Path>) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE inspections SET image_path = ?1 WHERE id = ?2",
                params![path.map(|p| p.display().to_string()), id],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
    }

    /// Forget image paths whose files were evicted by the quota.
    pub fn clear_image_paths(&mut self, paths: &[PathBuf]) -> Result<(), JournalError> {
        for p in paths {
            self.conn
                .execute(
                    "UPDATE inspections SET image_path = NULL WHERE image_path = ?1",
                    [p.display().to_string()],
                )
                .map_err(|e| self.sql(e))?;
        }
        Ok(())
    }

    /// Number of recorded inspections.
    pub fn count(&self) -> Result<u64, JournalError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM inspections", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.sql(e))
    }

    /// The highest inspection number of a run (`None` if the run has none).
    pub fn last_inspection(&self, run_id: &str) -> Result<Option<u64>, JournalError> {
        self.conn
            .query_row(
                "SELECT MAX(inspection) FROM inspections WHERE run_id = ?1",
                [run_id],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|v| v.flatten().map(|n| n as u64))
            .map_err(|e| self.sql(e))
    }

    /// SQLite's `PRAGMA integrity_check`: Ok when the database is sound.
    pub fn integrity_check(&self) -> Result<(), JournalError> {
        let result: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(JournalError::Other {
                path: self.path.clone(),
                problem: format!("integrity check: {result}"),
            })
        }
    }
}

/// Saved frames within a byte quota; file names sort oldest first.
pub struct ImageStore {
    dir: PathBuf,
    quota_bytes: u64,
    files: VecDeque<(PathBuf, u64)>,
    total_bytes: u64,
    evicted: u64,
}

impl ImageStore {
    /// Open (creating) the folder and take stock of the PNGs already there.
    pub fn open(dir: &Path, quota_bytes: u64) -> Result<ImageStore, JournalError> {
        let err = |problem: String| JournalError::Image {
            path: dir.to_path_buf(),
            problem,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create: {e}")))?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| err(format!("cannot read: {e}")))? {
            let entry = entry.map_err(|e| err(format!("cannot read: {e}")))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("png") {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                files.push((path, size));
            } else if path.extension().and_then(|e| e.to_str()) == Some("tmp") {
                // A save interrupted by a crash.
                let _ = std::fs::remove_file(&path);
            }
        }
        files.sort();
        let total_bytes = files.iter().map(|f| f.1).sum();
        let mut store = ImageStore {
            dir: dir.to_path_buf(),
            quota_bytes,
            files: files.into(),
            total_bytes,
            evicted: 0,
        };
        store.enforce_quota();
        Ok(store)
    }

    /// The file name a frame will be saved under (sortable: time first).
    pub fn file_name(recorded_unix_ns: i64, run_id: &str, inspection: u64) -> String {
        format!("{recorded_unix_ns:020}-{run_id}-{inspection:06}.png")
    }

    /// The path a frame will be saved under.
    pub fn path_for(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Save a frame as PNG (written to a temporary name, then renamed), then evict the
    /// oldest files beyond the quota. Returns the saved path and the evicted paths.
    pub fn save(
        &mut self,
        name: &str,
        image: &GrayImage,
    ) -> Result<(PathBuf, Vec<PathBuf>), JournalError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let err = |problem: String| JournalError::Image {
            path: path.clone(),
            problem,
        };
        image
            .save_with_format(&tmp, image::ImageFormat::Png)
            .map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.files.push_back((path.clone(), size));
        self.total_bytes += size;
        let evicted = self.enforce_quota();
        Ok((path, evicted))
    }

    fn enforce_quota(&mut self) -> Vec<PathBuf> {
        let mut evicted = Vec::new();
        while self.total_bytes > self.quota_bytes {
            let Some((path, size)) = self.files.pop_front() else {
                break;
            };
            let _ = std::fs::remove_file(&path);
            self.total_bytes = self.total_bytes.saturating_sub(size);
            self.evicted += 1;
            evicted.push(path);
        }
        evicted
    }

    /// Bytes held now.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Files evicted since opening.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Files held now, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.0.clone()).collect()
    }
}

/// Format Unix ns as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.123Z`).
pub fn format_rfc3339(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let ms = unix_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parse a `--since` value into Unix ns: RFC 3339 (`2024-05-01T12:00:00Z`, offsets like
/// `+02:00` allowed, fractional seconds allowed), a date (`2024-05-01`, midnight UTC), a
/// time ago (`90s`, `15m`, `2h`, `3d`) relative to `now_unix_ns`, or `@<unix seconds>`.
pub fn parse_since(text: &str, now_unix_ns: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a time: use RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01), \
             a time ago (15m, 2h, 3d) or @<unix seconds>"
        )
    };
    if let Some(rest) = t.strip_prefix('@') {
        let s: f64 = rest.parse().map_err(|_| bad())?;
        return Ok((s * 1e9) as i64);
    }
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = t[..t.len() - 1].parse::<f64>() {
            if n >= 0.0 && n.is_finite() {
                let secs = match unit {
                    's' => 1.0,
                    'm' => 60.0,
                    'h' => 3600.0,
                    _ => 86_400.0,
                };
                return Ok(now_unix_ns - (n * secs * 1e9) as i64);
            }
        }
    }
    let b = t.as_bytes();
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (num(&t[0..4])?, num(&t[5..7])?, num(&t[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    let mut nanos = 0i64;
    if b.len() > 10 {
        if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b.len() < 19 {
            return Err(bad());
        }
        let (hh, mm, ss) = (num(&t[11..13])?, num(&t[14..16])?, num(&t[17..19])?);
        if b[13] != b':' || b[16] != b':' || hh > 23 || mm > 59 || ss > 60 {
            return Err(bad());
        }
        secs += hh * 3600 + mm * 60 + ss;
        let mut rest = &t[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.is_empty() {
                return Err(bad());
            }
            let padded = format!("{:0<9}", &digits[..digits.len().min(9)]);
            nanos = num(&padded)?;
            rest = &frac[digits.len()..];
        }
        match rest {
            "Z" | "z" | "" => {}
            off if off.len() == 6 && (off.starts_with('+') || off.starts_with('-')) => {
                let (oh, om) = (num(&off[1..3])?, num(&off[4..6])?);
                let sign = if off.starts_with('+') { 1 } else { -1 };
                secs -= sign * (oh * 3600 + om * 60);
            }
            _ => return Err(bad()),
        }
    }
    Ok(secs * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The CSV header of [`csv_row`].
pub const CSV_HEADER: &str = "id,recorded,run_id,inspection,station,profile,verdict,reasons,defects,frame_seq,frame_origin,trigger_source,trigger_seq,trigger_time,total_ms,timings_ms,model_sha256,provider,image_path,frame_condition";

/// One entry as a CSV row (RFC 4180 quoting).
pub fn csv_row(e: &Entry) -> String {
    let defects = match &e.defects {
        serde_json::Value::Array(a) => a.len().to_string(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let total: f64 = e
        .timings_ms
        .get("total")
        .copied()
        .unwrap_or_else(|| e.timings_ms.values().sum());
    let fields = [
        e.id.to_string(),
        format_rfc3339(e.recorded_unix_ns),
        e.run_id.clone(),
        e.inspection.to_string(),
        e.station.clone(),
        e.profile.clone(),
        e.verdict.clone(),
        e.reasons.join("; "),
        defects,
        e.frame_seq.map(|v| v.to_string()).unwrap_or_default(),
        e.frame_origin.clone().unwrap_or_default(),
        e.trigger_source.clone(),
        e.trigger_seq.map(|v| v.to_string()).unwrap_or_default(),
        e.trigger_unix_ns.map(format_rfc3339).unwrap_or_default(),
        format!("{total:.3}"),
        serde_json::to_string(&e.timings_ms).unwrap_or_default(),
        e.model_sha256.clone(),
        e.provider.clone(),
        e.image_path.clone().unwrap_or_default(),
        e.frame_condition
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default(),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(run: &str, n: u64, verdict: &str, t: i64) -> Entry {
        Entry {
            id: 0,
            run_id: run.into(),
            inspection: n,
            station: "bench".into(),
            profile: "sm-upc".into(),
            verdict: verdict.into(),
            reasons: vec!["zone B: 6 defects, limit 5".into()],
            defects: serde_json::json!([{"size_um": 3.0}]),
            timings_ms: [("total".to_string(), 12.5)].into_iter().collect(),
            model_sha256: "ab".repeat(32),
            provider: "cpu".into(),
            frame_seq: Some(n),
            frame_origin: None,
            trigger_seq: Some(n),
            trigger_source: "api".into(),
            trigger_unix_ns: Some(t - 1000),
            captured_unix_ns: Some(t - 500),
            recorded_unix_ns: t,
            image_path: None,
            frame_condition: Some(
                serde_json::json!({"stuck_pixels": n, "banding_corrected": false}),
            ),
        }
    }

    #[test]
    fn record_and_query() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/journal.db");
        let mut j = Journal::open(&path).unwrap();
        for i in 1..=5 {
            let id = j
                .record(&entry("r1", i, "pass", i as i64 * 1_000_000_000))
                .unwrap();
            assert_eq!(id, i as i64);
        }
        assert!(
            j.record(&entry("r1", 5, "pass", 9)).is_err(),
            "duplicate (run, inspection)"
        );
        assert!(
            j.record(&entry("r1", 6, "maybe", 9)).is_err(),
            "bad verdict"
        );
        drop(j);
        let j = Journal::open_existing(&path).unwrap();
        j.integrity_check().unwrap();
        let all = j.entries(None).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(
            all[0].reasons,
            vec!["zone B: 6 defects, limit 5".to_string()]
        );
        assert_eq!(all[2].timings_ms["total"], 12.5);
        assert_eq!(
            all[2].frame_condition,
            Some(serde_json::json!({"stuck_pixels": 3, "banding_corrected": false}))
        );
        assert_eq!(j.entries(Some(3_000_000_000)).unwrap().len(), 3);
        assert_eq!(j.last_inspection("r1").unwrap(), Some(5));
        assert_eq!(j.last_inspection("r2").unwrap(), None);
        assert!(Journal::open_existing(&dir.path().join("nope.db")).is_err());
    }

    /// A journal written by an endface from before `frame_condition` (the first schema, same
    /// user_version): opening it adds the column, its rows read back without one, new rows
    /// carry theirs; and a statement naming only the old columns (what that endface runs after
    /// a rollback) still writes and reads it.
    #[test]
    fn a_journal_from_before_frame_condition_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            let first = SCHEMA.replace(",\n    frame_condition  TEXT\n", "\n");
            assert_ne!(first, SCHEMA);
            conn.execute_batch(&first).unwrap();
            conn.execute_batch("PRAGMA user_version=1;").unwrap();
            conn.execute(
                "INSERT INTO inspections (run_id, inspection, station, profile, verdict, reasons, \
                 defects, timings_ms, model_sha256, provider, trigger_source, recorded_unix_ns) \
                 VALUES ('old', 1, 's', 'sm-upc', 'pass', '[]', '[]', '{}', '', 'cpu', 'api', 5)",
                [],
            )
            .unwrap();
        }
        let mut j = Journal::open(&path).unwrap();
        j.record(&entry("new", 1, "fail", 7)).unwrap();
        let all = j.entries(None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].frame_condition, None);
        assert_eq!(all[1].frame_condition.as_ref().unwrap()["stuck_pixels"], 1);
        drop(j);
        // what an older endface does with the upgraded journal
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO inspections (run_id, inspection, station, profile, verdict, reasons, \
             defects, timings_ms, model_sha256, provider, trigger_source, recorded_unix_ns) \
             VALUES ('rolled-back', 1, 's', 'sm-upc', 'unable', '[]', '[]', '{}', '', 'cpu', 'api', 9)",
            [],
        )
        .unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1, "an older endface refuses a higher user_version");
        drop(conn);
        let j = Journal::open_existing(&path).unwrap();
        assert_eq!(j.entries(None).unwrap().len(), 3);
    }

    #[test]
    fn image_quota_evicts_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let img = GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * 7 + y * 13) % 251) as u8]));
        let mut store = ImageStore::open(dir.path(), u64::MAX).unwrap();
        let (p, _) = store.save("a.png", &img).unwrap();
        let one = std::fs::metadata(&p).unwrap().len();
        let mut store = ImageStore::open(dir.path(), one * 3 + one / 2).unwrap();
        for i in 0..5 {
            store
                .save(&ImageStore::file_name(i, "r", i as u64), &img)
                .unwrap();
        }
        let names: Vec<String> = store
            .files()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // "a.png" sorts after the digits, so it was counted as newest at re-open;
        // the quota holds 3 files: the 3 newest saves survive.
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(store.total_bytes() <= one * 3 + one / 2);
        assert!(names.iter().all(|n| n != &ImageStore::file_name(0, "r", 0)));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn time_formats() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        let t = parse_since("2024-05-01T12:34:56.789Z", 0).unwrap();
        assert_eq!(format_rfc3339(t), "2024-05-01T12:34:56.789Z");
        assert_eq!(
            parse_since("2024-05-01T14:34:56+02:00", 0).unwrap(),
            parse_since("2024-05-01T12:34:56Z", 0).unwrap()
        );
        assert_eq!(
            parse_since("2024-05-01", 0).unwrap(),
            1_714_521_600_000_000_000
        );
        assert_eq!(
            parse_since("@1714521600", 0).unwrap(),
            1_714_521_600_000_000_000
        );
        assert_eq!(
            parse_since("2h", 10_000_000_000_000).unwrap(),
            10_000_000_000_000 - 7_200_000_000_000
        );
        for bad in ["yesterday", "2024-13-01", "2024-05-01T25:00:00Z", "5x", ""] {
            assert!(parse_since(bad, 0).is_err(), "{bad}");
        }
        // Leap day and far dates round-trip.
        let t = parse_since("2028-02-29T00:00:00Z", 0).unwrap();
        assert_eq!(format_rfc3339(t), "2028-02-29T00:00:00.000Z");
    }

    #[test]
    fn csv_quotes() {
        let mut e = entry("r", 1, "fail", 0);
        e.reasons = vec!["a, \"b\"".into(), "c".into()];
        let row = csv_row(&e);
        assert!(row.contains("\"a, \"\"b\"\"; c\""), "{row}");
        // (the commas inside the quoted reasons, timings and frame condition do not count)
        let condition_commas = e
            .frame_condition
            .as_ref()
            .map_or(0, |v| v.to_string().matches(',').count());
        assert_eq!(
            CSV_HEADER.split(',').count(),
            row.split(',').count() - 1 - e.timings_ms.len().saturating_sub(1) - condition_commas,
        );
    }
}
