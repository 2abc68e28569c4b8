//! The update journal: one JSON object per line appended to `<state root>/journal/bundle.jsonl`
//! and fsync'd before the call returns. In: an event name and fields. Out: the file, and
//! [`read_journal`] for `bundle status` and tests (a torn last line from a power cut is skipped).

use super::BundleError;
use serde_json::{Map, Value};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Journal file, relative to the state root.
pub const JOURNAL_FILE: &str = "journal/bundle.jsonl";

pub(crate) fn journal_path(state_root: &Path) -> PathBuf {
    state_root.join(JOURNAL_FILE)
}

/// Append one event (with `ts_unix_ms` and `event` added) and fsync it.
pub(crate) fn append(state_root: &Path, event: &str, fields: Value) -> Result<(), BundleError> {
    let path = journal_path(state_root);
    if let Some(dir) = path.parent() {
        if !dir.is_dir() {
            super::fsutil::create_dir_durable(dir)?;
            super::fsutil::adopt_owner(dir, state_root)?;
        }
    }
    let created = !path.exists();
    let mut obj = Map::new();
    let ts_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    obj.insert("ts_unix_ms".into(), Value::from(ts_unix_ms));
    obj.insert("event".into(), Value::from(event));
    if let Value::Object(extra) = fields {
        obj.extend(extra);
    }
    let mut line = Value::Object(obj).to_string();
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| BundleError::io(&path, e))?;
    if created {
        super::fsutil::adopt_owner(&path, state_root)?;
    }
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| BundleError::io(&path, e))
}

/// Read every complete event; a missing journal is empty, unparsable lines are skipped.
pub fn read_journal(state_root: &Path) -> Result<Vec<Value>, BundleError> {
    let path = journal_path(state_root);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BundleError::io(&path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect())
}
