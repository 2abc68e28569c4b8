//! Digital lines to the PLC: READY, BUSY, PASS, FAIL, REJECT, STROBE; and the trigger input.
//!
//! In: the `[gpio]` section (which line plays which role, its polarity, pulse timings) and
//! verdicts from the pipeline. Out: line transitions on an [`OutputBackend`]: the GPIO
//! character device ([`chardev`], cargo feature `gpio`, v2 uAPI through `gpiocdev`) or the
//! simulated backend ([`sim`]) that records every transition with a timestamp (and can append
//! it, fsync'd, to a file, so a test can tell what a killed process had signalled).
//!
//! Roles are logical: "active" means asserted; `active_low` lines are inverted on the wire.
//! Fail-safe: every line starts inactive, [`Outputs::safe_state`] drops all of them, and
//! [`Outputs::fault`] drops READY and PASS. A result is signalled by [`result_plan`], a pure
//! timeline (what to set, when) that the daemon plays out:
//!
//! ```text
//! t=0                      PASS or FAIL level valid (the other inactive); BUSY low
//! t=reject_delay_ms        REJECT active (FAIL, and UNABLE when unable_rejects)
//!   +reject_ms             REJECT inactive
//! t=strobe_delay_ms        STROBE active (result lines are valid)
//!   +strobe_ms             STROBE inactive
//! ```
//!
//! Electrical fail-safe on a crash: when the process dies the kernel releases the lines; wire
//! READY and PASS so that a released line reads inactive at the PLC (pull resistors; gpio-sim
//! returns a released line to its pull).

pub mod sim;
pub mod trigger;

#[cfg(feature = "gpio")]
pub mod chardev;

use crate::capture::InvalidKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A line's job towards the PLC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// High while the station is able to inspect.
    Ready,
    /// High from trigger to result.
    Busy,
    /// Result level: the part passed.
    Pass,
    /// Result level: the part failed (or could not be graded, see `unable_rejects`).
    Fail,
    /// Pulse: reject the part.
    Reject,
    /// Pulse: the result lines are valid now.
    Strobe,
    /// Level: the drift monitor finds recent frames unlike the calibration reference
    /// (maintenance signal; never part of a result).
    Drift,
}

impl Role {
    /// Every role, in a fixed order (index of [`Role::index`]).
    pub const ALL: [Role; Role::COUNT] = [
        Role::Ready,
        Role::Busy,
        Role::Pass,
        Role::Fail,
        Role::Reject,
        Role::Strobe,
        Role::Drift,
    ];
    /// Number of roles.
    pub const COUNT: usize = 7;

    /// Position in [`Role::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Upper-case name (as in logs and the simulated transition log).
    pub fn name(self) -> &'static str {
        match self {
            Role::Ready => "READY",
            Role::Busy => "BUSY",
            Role::Pass => "PASS",
            Role::Fail => "FAIL",
            Role::Reject => "REJECT",
            Role::Strobe => "STROBE",
            Role::Drift => "DRIFT",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors driving or requesting lines.
#[derive(Debug, thiserror::Error)]
pub enum ActuateError {
    #[error("GPIO line {line}: {problem}")]
    Line { line: String, problem: String },
    #[error("GPIO: {0}")]
    Backend(String),
    #[error("simulated GPIO log {path}: {source}")]
    SimLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A line: by name (searched on every chip, or on `chip` when given) or by offset on `chip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LineId {
    Offset(u32),
    Name(String),
}

impl fmt::Display for LineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineId::Offset(o) => write!(f, "offset {o}"),
            LineId::Name(n) => write!(f, "\"{n}\""),
        }
    }
}

/// One output or input line in the station profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Line name (`"READY"`) or offset (`5`) on `chip`.
    pub line: LineId,
    /// Chip (`gpiochip0` or `/dev/gpiochip0`); defaults to `[gpio] chip`.
    #[serde(default)]
    pub chip: Option<String>,
    /// Asserted = electrically low.
    #[serde(default)]
    pub active_low: bool,
}

/// Which backend drives the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Simulated lines: transitions recorded in memory (and in `sim_log` when set).
    Sim,
    /// The GPIO character device (`/dev/gpiochipN`, v2 uAPI).
    Chardev,
}

/// `[gpio]`: which line is which, polarity and pulse timings.
///
/// ```toml
/// [gpio]
/// backend = "chardev"          # "chardev" | "sim"
/// chip = "gpiochip0"           # default chip for lines given by offset
/// sim_log = "/tmp/gpio.jsonl"  # sim: append every transition (fsync'd JSON lines)
/// reject_delay_ms = 0          # REJECT pulse start after the result
/// reject_ms = 50               # REJECT pulse width
/// strobe_delay_ms = 2          # STROBE after the result lines are set
/// strobe_ms = 10               # STROBE pulse width
/// unable_rejects = true        # UNABLE: FAIL + REJECT (else neither PASS nor FAIL)
/// ready  = { line = "READY" }
/// busy   = { line = "BUSY" }
/// pass   = { line = "PASS" }
/// fail   = { line = "FAIL" }
/// reject = { line = 12, chip = "gpiochip1", active_low = true }
/// strobe = { line = "STROBE" }
/// drift  = { line = "DRIFT" }   # optional: high while input drift is reported
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpioConfig {
    pub backend: Backend,
    pub chip: Option<String>,
    pub sim_log: Option<PathBuf>,
    pub reject_delay_ms: u64,
    pub reject_ms: u64,
    pub strobe_delay_ms: u64,
    pub strobe_ms: u64,
    pub unable_rejects: bool,
    pub ready: Option<LineConfig>,
    pub busy: Option<LineConfig>,
    pub pass: Option<LineConfig>,
    pub fail: Option<LineConfig>,
    pub reject: Option<LineConfig>,
    pub strobe: Option<LineConfig>,
    /// Optional maintenance line: high while the drift monitor reports DRIFT.
    pub drift: Option<LineConfig>,
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            backend: Backend::Sim,
            chip: None,
            sim_log: None,
            reject_delay_ms: 0,
            reject_ms: 50,
            strobe_delay_ms: 2,
            strobe_ms: 10,
            unable_rejects: true,
            ready: None,
            busy: None,
            pass: None,
            fail: None,
            reject: None,
            strobe: None,
            drift: None,
        }
    }
}

impl GpioConfig {
    /// The line of a role as written in the config.
    fn configured_line(&self, role: Role) -> Option<&LineConfig> {
        match role {
            Role::Ready => self.ready.as_ref(),
            Role::Busy => self.busy.as_ref(),
            Role::Pass => self.pass.as_ref(),
            Role::Fail => self.fail.as_ref(),
            Role::Reject => self.reject.as_ref(),
            Role::Strobe => self.strobe.as_ref(),
            Role::Drift => self.drift.as_ref(),
        }
    }

    /// The line of a role. The simulated backend with no lines configured at all simulates
    /// every role, named after it (`READY`, `BUSY`, ...).
    pub fn line(&self, role: Role) -> Option<LineConfig> {
        let none_configured = Role::ALL.iter().all(|r| self.configured_line(*r).is_none());
        if self.backend == Backend::Sim && none_configured {
            return Some(LineConfig {
                line: LineId::Name(role.name().into()),
                chip: None,
                active_low: false,
            });
        }
        self.configured_line(role).cloned()
    }

    /// Check every value; the error names the key and what is wrong.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if self.line(Role::Ready).is_none() {
            return Err(InvalidKey::new(
                "gpio.ready",
                "(missing)",
                "a station needs a READY line so the PLC can tell a dead inspector",
            ));
        }
        if [Role::Pass, Role::Fail, Role::Reject]
            .iter()
            .all(|r| self.line(*r).is_none())
        {
            return Err(InvalidKey::new(
                "gpio.pass",
                "(missing)",
                "configure at least one of gpio.pass, gpio.fail, gpio.reject",
            ));
        }
        for (key, v) in [
            ("gpio.reject_delay_ms", self.reject_delay_ms),
            ("gpio.reject_ms", self.reject_ms),
            ("gpio.strobe_delay_ms", self.strobe_delay_ms),
            ("gpio.strobe_ms", self.strobe_ms),
        ] {
            if v > 10_000 {
                return Err(InvalidKey::new(key, v, "must be at most 10000 ms"));
            }
        }
        if self.line(Role::Reject).is_some() && self.reject_ms == 0 {
            return Err(InvalidKey::new(
                "gpio.reject_ms",
                0,
                "a REJECT pulse needs a width of at least 1 ms",
            ));
        }
        if self.line(Role::Strobe).is_some() && self.strobe_ms == 0 {
            return Err(InvalidKey::new(
                "gpio.strobe_ms",
                0,
                "a STROBE pulse needs a width of at least 1 ms",
            ));
        }
        let mut seen: Vec<(Option<String>, LineId, Role)> = Vec::new();
        for role in Role::ALL {
            if let Some(l) = self.line(role) {
                if let LineId::Offset(_) = l.line {
                    if l.chip.is_none() && self.chip.is_none() && self.backend == Backend::Chardev {
                        return Err(InvalidKey::new(
                            &format!("gpio.{}.line", role.name().to_lowercase()),
                            &l.line,
                            "an offset needs a chip: set gpio.chip or the line's chip",
                        ));
                    }
                }
                let chip = l.chip.clone().or_else(|| self.chip.clone());
                if let Some((_, _, other)) =
                    seen.iter().find(|(c, id, _)| *c == chip && *id == l.line)
                {
                    return Err(InvalidKey::new(
                        &format!("gpio.{}.line", role.name().to_lowercase()),
                        &l.line,
                        format!("already used by gpio.{}", other.name().to_lowercase()),
                    ));
                }
                seen.push((chip, l.line, role));
            }
        }
        Ok(())
    }

    /// Make a relative `sim_log` relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = self.sim_log.as_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Something that can set a line: the real character device or the simulation.
pub trait OutputBackend: Send {
    /// Assert (`true`) or release (`false`) a role's line. `note` is the inspection the
    /// change belongs to, when it belongs to one (recorded by the simulation).
    fn set(&mut self, role: Role, active: bool, note: Option<u64>) -> Result<(), ActuateError>;
    /// For logs: which device drives the lines.
    fn describe(&self) -> String;
}

/// The verdict as far as the lines are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Pass,
    Fail,
    Unable,
}

/// Pulse timings of a result (from `[gpio]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub reject_delay_ms: u64,
    pub reject_ms: u64,
    pub strobe_delay_ms: u64,
    pub strobe_ms: u64,
    pub unable_rejects: bool,
}

impl From<&GpioConfig> for Timings {
    fn from(c: &GpioConfig) -> Self {
        Timings {
            reject_delay_ms: c.reject_delay_ms,
            reject_ms: c.reject_ms,
            strobe_delay_ms: c.strobe_delay_ms,
            strobe_ms: c.strobe_ms,
            unable_rejects: c.unable_rejects,
        }
    }
}

/// One step of a result timeline: at `at_ms` after the result, set `role` to `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub at_ms: u64,
    pub role: Role,
    pub active: bool,
}

/// The line changes that signal one result, sorted by time (stable: at equal times, in the
/// order listed in the module doc). `busy_after` is BUSY's level once this result is out
/// (high while more triggers wait).
pub fn result_plan(signal: Signal, t: Timings, busy_after: bool) -> Plan {
    let (pass, fail, reject) = match signal {
        Signal::Pass => (true, false, false),
        Signal::Fail => (false, true, true),
        Signal::Unable => (false, t.unable_rejects, t.unable_rejects),
    };
    let step = |at_ms, role, active| Step {
        at_ms,
        role,
        active,
    };
    // Release before assert so that PASS and FAIL are never both active.
    let mut steps = [step(0, Role::Busy, false); PLAN_MAX];
    let mut n = 0;
    let mut push = |s: Step| {
        steps[n] = s;
        n += 1;
    };
    push(if pass {
        step(0, Role::Fail, false)
    } else {
        step(0, Role::Pass, false)
    });
    push(if pass {
        step(0, Role::Pass, true)
    } else {
        step(0, Role::Fail, fail)
    });
    push(step(0, Role::Busy, busy_after));
    if reject {
        push(step(t.reject_delay_ms, Role::Reject, true));
        push(step(t.reject_delay_ms + t.reject_ms, Role::Reject, false));
    }
    push(step(t.strobe_delay_ms, Role::Strobe, true));
    push(step(t.strobe_delay_ms + t.strobe_ms, Role::Strobe, false));
    let mut plan = Plan { steps, len: n };
    // Stable, and in place (insertion sort: 7 steps at most, no allocation).
    for i in 1..plan.len {
        let mut j = i;
        while j > 0 && plan.steps[j - 1].at_ms > plan.steps[j].at_ms {
            plan.steps.swap(j - 1, j);
            j -= 1;
        }
    }
    plan
}

/// The most steps a result plan has.
const PLAN_MAX: usize = 7;

/// The line changes of one result ([`result_plan`]), sorted by time; a slice through `Deref`.
/// Fixed capacity: making one allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    steps: [Step; PLAN_MAX],
    len: usize,
}

impl std::ops::Deref for Plan {
    type Target = [Step];
    fn deref(&self) -> &[Step] {
        &self.steps[..self.len]
    }
}

/// The station's output lines: the logical state of each role on top of a backend, so a line
/// is only written when it changes, and the fail-safe transitions in one place.
pub struct Outputs {
    backend: Box<dyn OutputBackend>,
    configured: [bool; Role::COUNT],
    state: [bool; Role::COUNT],
    timings: Timings,
}

impl Outputs {
    /// Lines as configured; the backend must already hold every line inactive.
    pub fn new(backend: Box<dyn OutputBackend>, cfg: &GpioConfig) -> Outputs {
        let mut configured = [false; Role::COUNT];
        for role in Role::ALL {
            configured[role.index()] = cfg.line(role).is_some();
        }
        Outputs {
            backend,
            configured,
            state: [false; Role::COUNT],
            timings: Timings::from(cfg),
        }
    }

    /// The result pulse timings.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Backend description for logs.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Logical level of a role (false when the role has no line).
    pub fn get(&self, role: Role) -> bool {
        self.state[role.index()]
    }

    /// Set a role's line if it has one and the level changes.
    pub fn set(&mut self, role: Role, active: bool, note: Option<u64>) -> Result<(), ActuateError> {
        let i = role.index();
        if !self.configured[i] || self.state[i] == active {
            return Ok(());
        }
        self.backend.set(role, active, note)?;
        self.state[i] = active;
        Ok(())
    }

    /// Every line inactive: start-up, shutdown. Tries every line even if one fails.
    pub fn safe_state(&mut self) -> Result<(), ActuateError> {
        let mut first_err = None;
        for role in [
            Role::Ready,
            Role::Pass,
            Role::Fail,
            Role::Reject,
            Role::Strobe,
            Role::Busy,
            Role::Drift,
        ] {
            if let Err(e) = self.set(role, false, None) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Camera, model or watchdog failure: READY low and nothing reads as PASS.
    pub fn fault(&mut self) -> Result<(), ActuateError> {
        let r = self.set(Role::Ready, false, None);
        let p = self.set(Role::Pass, false, None);
        r.and(p)
    }

    /// A trigger was accepted: the previous result is withdrawn and BUSY goes high. The daemon
    /// calls it only once the previous result's STROBE is over (`daemon::pipeline`).
    pub fn begin(&mut self, note: Option<u64>) -> Result<(), ActuateError> {
        self.set(Role::Pass, false, note)?;
        self.set(Role::Fail, false, note)?;
        self.set(Role::Busy, true, note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> Timings {
        Timings {
            reject_delay_ms: 5,
            reject_ms: 50,
            strobe_delay_ms: 2,
            strobe_ms: 10,
            unable_rejects: true,
        }
    }

    #[test]
    fn pass_plan_never_rejects_and_strobes_after_result() {
        let plan = result_plan(Signal::Pass, timings(), false);
        assert!(!plan.iter().any(|s| s.role == Role::Reject));
        let pass_at = plan
            .iter()
            .find(|s| s.role == Role::Pass && s.active)
            .unwrap()
            .at_ms;
        let strobe_on = plan
            .iter()
            .find(|s| s.role == Role::Strobe && s.active)
            .unwrap()
            .at_ms;
        let strobe_off = plan
            .iter()
            .find(|s| s.role == Role::Strobe && !s.active)
            .unwrap()
            .at_ms;
        assert!(pass_at < strobe_on);
        assert_eq!(strobe_off - strobe_on, 10);
        // FAIL is released before PASS is asserted.
        let fail_off = plan
            .iter()
            .position(|s| s.role == Role::Fail && !s.active)
            .unwrap();
        let pass_on = plan
            .iter()
            .position(|s| s.role == Role::Pass && s.active)
            .unwrap();
        assert!(fail_off < pass_on);
    }

    #[test]
    fn fail_and_unable_reject() {
        for sig in [Signal::Fail, Signal::Unable] {
            let plan = result_plan(sig, timings(), true);
            let on = plan
                .iter()
                .find(|s| s.role == Role::Reject && s.active)
                .unwrap();
            let off = plan
                .iter()
                .find(|s| s.role == Role::Reject && !s.active)
                .unwrap();
            assert_eq!((on.at_ms, off.at_ms), (5, 55));
            assert!(plan.iter().any(|s| s.role == Role::Fail && s.active));
            assert!(!plan.iter().any(|s| s.role == Role::Pass && s.active));
            assert!(plan.iter().any(|s| s.role == Role::Busy && s.active));
            assert!(plan.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        }
        let t = Timings {
            unable_rejects: false,
            ..timings()
        };
        let plan = result_plan(Signal::Unable, t, false);
        assert!(!plan
            .iter()
            .any(|s| s.active && matches!(s.role, Role::Pass | Role::Fail | Role::Reject)));
    }

    #[test]
    fn outputs_write_changes_only_and_fail_safe() {
        let (backend, rec) = sim::SimBackend::new(None).unwrap();
        let named = |n: &str| {
            Some(LineConfig {
                line: LineId::Name(n.into()),
                chip: None,
                active_low: false,
            })
        };
        let cfg = GpioConfig {
            ready: named("READY"),
            busy: named("BUSY"),
            pass: named("PASS"),
            ..GpioConfig::default()
        };
        let mut out = Outputs::new(Box::new(backend), &cfg);
        out.set(Role::Ready, true, None).unwrap();
        out.set(Role::Ready, true, None).unwrap();
        out.set(Role::Strobe, true, None).unwrap(); // not configured: ignored
        out.begin(Some(1)).unwrap();
        out.set(Role::Pass, true, Some(1)).unwrap();
        out.fault().unwrap();
        assert!(!out.get(Role::Ready) && !out.get(Role::Pass));
        out.safe_state().unwrap();
        let t = rec.transitions();
        let seq: Vec<(Role, bool)> = t.iter().map(|t| (t.role, t.active)).collect();
        assert_eq!(
            seq,
            vec![
                (Role::Ready, true),
                (Role::Busy, true),
                (Role::Pass, true),
                (Role::Ready, false),
                (Role::Pass, false),
                (Role::Busy, false),
            ]
        );
    }

    #[test]
    fn config_validation_names_keys() {
        let parse = |s: &str| -> Result<GpioConfig, String> {
            let c: GpioConfig = toml::from_str(s).map_err(|e| e.to_string())?;
            c.validate().map_err(|e| e.to_string())?;
            Ok(c)
        };
        let c = parse("backend = \"chardev\"\nchip = \"gpiochip0\"\nready = { line = 3 }\nreject = { line = \"REJ\", active_low = true }").unwrap();
        assert_eq!(c.ready.unwrap().line, LineId::Offset(3));
        assert!(c.reject.unwrap().active_low);
        for (text, key) in [
            ("reject_ms = 0", "gpio.reject_ms"),
            ("strobe_ms = 20000", "gpio.strobe_ms"),
            (
                "backend = \"chardev\"\nready = { line = 3 }\npass = { line = \"P\" }",
                "gpio.ready.line",
            ),
            (
                "ready = { line = \"R\" }\nbusy = { line = \"R\" }\npass = { line = 4 }",
                "gpio.busy.line",
            ),
            ("busy = { line = \"B\" }", "gpio.ready"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = parse("ready = { line = \"R\", polarity = 1 }").unwrap_err();
        assert!(e.contains("polarity"), "{e}");
    }
}
