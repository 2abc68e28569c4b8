//! Simulated output lines for the demo and the tests.
//!
//! In: line changes from [`Outputs`](super::Outputs). Out: a [`Transition`] per change, with
//! its `CLOCK_MONOTONIC` time, kept in memory ([`SimRecorder`]) and, when a log path is
//! configured, appended to a JSON-lines file and fsync'd before `set` returns, so the file
//! holds exactly what was signalled even if the process is killed right after.

use super::{ActuateError, GpioConfig, OutputBackend, Role};
use crate::capture::monotonic_ns;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One line change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// `CLOCK_MONOTONIC`, ns.
    pub t_ns: u64,
    pub role: Role,
    /// Asserted (logical level).
    pub active: bool,
    /// Electrical level (differs from `active` on an active-low line).
    pub high: bool,
    /// The inspection this change signals, when it signals one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspection: Option<u64>,
}

/// Shared view of the transitions a [`SimBackend`] made.
#[derive(Debug, Clone, Default)]
pub struct SimRecorder {
    inner: Arc<Mutex<Vec<Transition>>>,
}

impl SimRecorder {
    /// Every transition so far, in order.
    pub fn transitions(&self) -> Vec<Transition> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Current logical level of a role (inactive if it never changed).
    pub fn level(&self, role: Role) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|t| t.role == role)
            .map(|t| t.active)
            .unwrap_or(false)
    }
}

/// Simulated lines.
pub struct SimBackend {
    active_low: [bool; Role::COUNT],
    recorder: SimRecorder,
    log: Option<(PathBuf, File)>,
}

impl SimBackend {
    /// All lines active-high; transitions appended to `log` when given.
    pub fn new(log: Option<&Path>) -> Result<(SimBackend, SimRecorder), ActuateError> {
        let log = match log {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|source| ActuateError::SimLog {
                            path: path.to_path_buf(),
                            source,
                        })?;
                    }
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ActuateError::SimLog {
                        path: path.to_path_buf(),
                        source,
                    })?;
                Some((path.to_path_buf(), file))
            }
            None => None,
        };
        let recorder = SimRecorder::default();
        Ok((
            SimBackend {
                active_low: [false; Role::COUNT],
                recorder: recorder.clone(),
                log,
            },
            recorder,
        ))
    }

    /// Polarity and log path from `[gpio]`.
    pub fn from_config(cfg: &GpioConfig) -> Result<(SimBackend, SimRecorder), ActuateError> {
        let (mut backend, rec) = SimBackend::new(cfg.sim_log.as_deref())?;
        for role in Role::ALL {
            backend.active_low[role.index()] =
                cfg.line(role).map(|l| l.active_low).unwrap_or(false);
        }
        Ok((backend, rec))
    }
}

impl OutputBackend for SimBackend {
    fn set(&mut self, role: Role, active: bool, note: Option<u64>) -> Result<(), ActuateError> {
        let t = Transition {
            t_ns: monotonic_ns(),
            role,
            active,
            high: active != self.active_low[role.index()],
            inspection: note,
        };
        if let Some((path, file)) = self.log.as_mut() {
            let mut line =
                serde_json::to_string(&t).map_err(|e| ActuateError::Backend(e.to_string()))?;
            line.push('\n');
            file.write_all(line.as_bytes())
                .and_then(|_| file.sync_data())
                .map_err(|source| ActuateError::SimLog {
                    path: path.clone(),
                    source,
                })?;
        }
        self.recorder
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.log {
            Some((p, _)) => format!("simulated GPIO (log {})", p.display()),
            None => "simulated GPIO".into(),
        }
    }
}

/// Read a transition log written by [`SimBackend`]. A torn last line (the writer was killed
/// mid-write) is ignored; any other bad line is an error naming its number.
pub fn read_log(path: &Path) -> Result<Vec<Transition>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Transition>(line) {
            Ok(t) => out.push(t),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(format!("{} line {}: {e}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_round_trips_and_tolerates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/gpio.jsonl");
        let (mut b, rec) = SimBackend::new(Some(&path)).unwrap();
        b.active_low[Role::Reject.index()] = true;
        b.set(Role::Ready, true, None).unwrap();
        b.set(Role::Reject, true, Some(7)).unwrap();
        let log = read_log(&path).unwrap();
        assert_eq!(log, rec.transitions());
        assert!(log[0].high && !log[1].high);
        assert_eq!(log[1].inspection, Some(7));
        assert!(rec.level(Role::Reject) && !rec.level(Role::Pass));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"t_ns\":1,\"ro").unwrap();
        assert_eq!(read_log(&path).unwrap().len(), 2);
    }
}
