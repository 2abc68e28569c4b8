//! Trigger input: when to inspect.
//!
//! In: the `[trigger]` section and, in GPIO mode, edge events from an input line (kernel
//! debounce through the v2 uAPI, event timestamps on `CLOCK_MONOTONIC`). Out: trigger times.
//! The modes themselves (free-run, GPIO, software line on stdin or a Unix socket) are run by
//! the daemon; this module holds the config, the GPIO line and the pure lock-out filter.

use super::{ActuateError, LineId};
use crate::capture::InvalidKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How inspections are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerMode {
    /// Inspect the newest frame at `rate_hz`.
    FreeRun,
    /// An edge on a GPIO input line (the PLC's trigger).
    Gpio,
    /// A line of text on stdin, or on the Unix socket `socket` when set.
    Software,
}

/// Which edges trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    Rising,
    Falling,
    Both,
}

/// Input bias of the trigger line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bias {
    /// Leave the line's bias as it is.
    AsIs,
    PullUp,
    PullDown,
    Disabled,
}

/// `[trigger]`.
///
/// ```toml
/// [trigger]
/// mode = "gpio"              # "free-run" | "gpio" | "software"
/// rate_hz = 2.0              # free-run: inspections per second
/// line = "TRIGGER"           # gpio: line name or offset
/// chip = "gpiochip0"         # gpio: chip (default [gpio] chip)
/// active_low = false
/// edge = "rising"            # "rising" | "falling" | "both" (after active_low inversion)
/// debounce_ms = 5            # kernel debounce of the input
/// min_interval_ms = 0        # ignore triggers closer than this to the previous one
/// bias = "as-is"             # "as-is" | "pull-up" | "pull-down" | "disabled"
/// socket = "/run/endface/trigger.sock"  # software: Unix socket (absent: stdin)
/// max_pending = 16           # triggers waiting for a frame or a result
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    pub mode: TriggerMode,
    pub rate_hz: f64,
    pub line: Option<LineId>,
    pub chip: Option<String>,
    pub active_low: bool,
    pub edge: Edge,
    pub debounce_ms: u64,
    pub min_interval_ms: u64,
    pub bias: Bias,
    pub socket: Option<PathBuf>,
    pub max_pending: usize,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            mode: TriggerMode::FreeRun,
            rate_hz: 2.0,
            line: None,
            chip: None,
            active_low: false,
            edge: Edge::Rising,
            debounce_ms: 5,
            min_interval_ms: 0,
            bias: Bias::AsIs,
            socket: None,
            max_pending: 16,
        }
    }
}

impl TriggerConfig {
    /// Check every value; the error names the key and what is wrong.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if self.mode == TriggerMode::FreeRun
            && !(self.rate_hz.is_finite() && self.rate_hz > 0.0 && self.rate_hz <= 1000.0)
        {
            return Err(InvalidKey::new(
                "trigger.rate_hz",
                self.rate_hz,
                "must be in (0, 1000] inspections per second",
            ));
        }
        if self.mode == TriggerMode::Gpio && self.line.is_none() {
            return Err(InvalidKey::new(
                "trigger.line",
                "(missing)",
                "mode = \"gpio\" needs the trigger input line (name or offset)",
            ));
        }
        if self.debounce_ms > 1000 {
            return Err(InvalidKey::new(
                "trigger.debounce_ms",
                self.debounce_ms,
                "must be at most 1000",
            ));
        }
        if !(1..=1024).contains(&self.max_pending) {
            return Err(InvalidKey::new(
                "trigger.max_pending",
                self.max_pending,
                "must be 1..=1024",
            ));
        }
        Ok(())
    }

    /// Make a relative socket path relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = self.socket.as_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Lock-out filter: a trigger closer than `min_interval_ns` to the last accepted one is
/// ignored (contact bounce the kernel debounce let through, a PLC double pulse).
#[derive(Debug, Clone, Default)]
pub struct Lockout {
    min_interval_ns: u64,
    last_ns: Option<u64>,
}

impl Lockout {
    pub fn new(min_interval_ms: u64) -> Lockout {
        Lockout {
            min_interval_ns: min_interval_ms.saturating_mul(1_000_000),
            last_ns: None,
        }
    }

    /// Whether a trigger at `t_ns` counts.
    pub fn accept(&mut self, t_ns: u64) -> bool {
        if let Some(last) = self.last_ns {
            if t_ns.saturating_sub(last) < self.min_interval_ns {
                return false;
            }
        }
        self.last_ns = Some(t_ns);
        true
    }
}

/// A GPIO trigger input line with edge detection.
#[cfg(feature = "gpio")]
pub struct GpioTrigger {
    request: gpiocdev::Request,
    description: String,
}

#[cfg(feature = "gpio")]
impl GpioTrigger {
    /// Request the input line with edge detection and debounce.
    pub fn open(
        cfg: &TriggerConfig,
        default_chip: Option<&str>,
    ) -> Result<GpioTrigger, ActuateError> {
        use gpiocdev::line::{self, EdgeDetection};
        use std::time::Duration;
        let line_id = cfg.line.clone().ok_or_else(|| ActuateError::Line {
            line: "TRIGGER".into(),
            problem: "trigger.line is not set".into(),
        })?;
        let lc = super::LineConfig {
            line: line_id,
            chip: cfg.chip.clone(),
            active_low: cfg.active_low,
        };
        let (chip, offset) = super::chardev::resolve_line(default_chip, &lc, "TRIGGER")?;
        let mut b = gpiocdev::Request::builder();
        b.on_chip(&chip)
            .with_consumer(super::chardev::CONSUMER)
            .with_line(offset)
            .as_input()
            .with_edge_detection(match cfg.edge {
                Edge::Rising => EdgeDetection::RisingEdge,
                Edge::Falling => EdgeDetection::FallingEdge,
                Edge::Both => EdgeDetection::BothEdges,
            });
        if cfg.debounce_ms > 0 {
            b.with_debounce_period(Duration::from_millis(cfg.debounce_ms));
        }
        if cfg.active_low {
            b.as_active_low();
        }
        match cfg.bias {
            Bias::AsIs => {}
            Bias::PullUp => {
                b.with_bias(line::Bias::PullUp);
            }
            Bias::PullDown => {
                b.with_bias(line::Bias::PullDown);
            }
            Bias::Disabled => {
                b.with_bias(line::Bias::Disabled);
            }
        }
        let request = b.request().map_err(|e| ActuateError::Line {
            line: format!("TRIGGER {}:{offset}", chip.display()),
            problem: format!("cannot request the input with edge detection: {e}"),
        })?;
        Ok(GpioTrigger {
            request,
            description: format!("TRIGGER {}:{offset}", chip.display()),
        })
    }

    /// Wait up to `timeout` for an edge; its `CLOCK_MONOTONIC` time in ns.
    pub fn wait(&self, timeout: std::time::Duration) -> Result<Option<u64>, ActuateError> {
        let err = |e: gpiocdev::Error| ActuateError::Line {
            line: self.description.clone(),
            problem: e.to_string(),
        };
        if !self.request.wait_edge_event(timeout).map_err(err)? {
            return Ok(None);
        }
        let ev = self.request.read_edge_event().map_err(err)?;
        Ok(Some(ev.timestamp_ns))
    }

    /// For logs.
    pub fn describe(&self) -> &str {
        &self.description
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_ignores_bounces() {
        let mut l = Lockout::new(10);
        let ms = 1_000_000;
        let accepted: Vec<u64> = [0, 3, 9, 10, 25, 26, 40]
            .iter()
            .filter(|t| l.accept(*t * ms))
            .copied()
            .collect();
        assert_eq!(accepted, vec![0, 10, 25, 40]);
        let mut none = Lockout::new(0);
        assert!(none.accept(5) && none.accept(5));
    }

    #[test]
    fn validation_names_keys() {
        let parse = |s: &str| -> Result<TriggerConfig, String> {
            let c: TriggerConfig = toml::from_str(s).map_err(|e| e.to_string())?;
            c.validate().map_err(|e| e.to_string())?;
            Ok(c)
        };
        assert_eq!(
            parse("mode = \"software\"").unwrap().mode,
            TriggerMode::Software
        );
        let c = parse("mode = \"gpio\"\nline = 4\nedge = \"both\"\nbias = \"pull-down\"").unwrap();
        assert_eq!(c.line, Some(LineId::Offset(4)));
        for (text, key) in [
            ("rate_hz = 0.0", "trigger.rate_hz"),
            ("mode = \"gpio\"", "trigger.line"),
            ("max_pending = 0", "trigger.max_pending"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(parse("mode = \"sometimes\"")
            .unwrap_err()
            .contains("sometimes"));
    }
}
