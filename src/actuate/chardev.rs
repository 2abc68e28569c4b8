//! Real GPIO lines through the GPIO character device (v2 uAPI, `gpiocdev`; cargo feature
//! `gpio`).
//!
//! In: `[gpio]` line names/offsets, chips and polarity. Out: one line request per chip holding
//! every output line of that chip, requested as outputs already inactive (so start-up is
//! fail-safe), with the kernel doing the active-low inversion. Lines are released when the
//! backend is dropped or the process dies.

use super::{ActuateError, GpioConfig, LineConfig, LineId, OutputBackend, Role};
use gpiocdev::line::{Offset, Value};
use gpiocdev::Request;
use std::path::PathBuf;

/// Consumer label the lines carry while requested (shown by `gpioinfo`).
pub const CONSUMER: &str = "endface";

/// Output lines on one or more GPIO chips.
pub struct ChardevBackend {
    requests: Vec<Request>,
    /// Per role: (index into `requests`, offset, description).
    map: [Option<(usize, Offset, String)>; Role::COUNT],
}

/// A chip given as a path, a `/dev` name (`gpiochip0`) or a chip label (`gpio-sim.0-node0`).
pub fn resolve_chip(name: &str) -> Result<PathBuf, ActuateError> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let dev = PathBuf::from("/dev").join(name);
    if dev.exists() {
        return Ok(dev);
    }
    let chips = gpiocdev::chip::chips().map_err(|e| ActuateError::Backend(e.to_string()))?;
    for path in chips {
        if let Ok(chip) = gpiocdev::chip::Chip::from_path(&path) {
            if chip.info().map(|i| i.label == name).unwrap_or(false) {
                return Ok(path);
            }
        }
    }
    Err(ActuateError::Backend(format!(
        "no GPIO chip named {name} (neither /dev/{name} nor a chip with that label)"
    )))
}

/// Find a configured line: its chip path and offset.
pub fn resolve_line(
    default_chip: Option<&str>,
    line: &LineConfig,
    what: &str,
) -> Result<(PathBuf, Offset), ActuateError> {
    let chip = line.chip.as_deref().or(default_chip);
    let err = |problem: String| ActuateError::Line {
        line: format!("{what} ({})", line.line),
        problem,
    };
    match (&line.line, chip) {
        (LineId::Offset(o), Some(c)) => Ok((resolve_chip(c)?, *o)),
        (LineId::Offset(_), None) => Err(err("an offset needs a chip (gpio.chip)".into())),
        (LineId::Name(n), Some(c)) => {
            let path = resolve_chip(c)?;
            let chip = gpiocdev::chip::Chip::from_path(&path)
                .map_err(|e| err(format!("{}: {e}", path.display())))?;
            let info = chip
                .find_line_info(n)
                .ok_or_else(|| err(format!("no line named {n} on {}", path.display())))?;
            Ok((path, info.offset))
        }
        (LineId::Name(n), None) => {
            let found = gpiocdev::find_named_line(n)
                .ok_or_else(|| err(format!("no line named {n} on any GPIO chip")))?;
            Ok((found.chip, found.info.offset))
        }
    }
}

impl ChardevBackend {
    /// Request every configured output line, inactive.
    pub fn open(cfg: &GpioConfig) -> Result<ChardevBackend, ActuateError> {
        let mut lines: Vec<(Role, PathBuf, Offset, bool, String)> = Vec::new();
        for role in Role::ALL {
            if let Some(l) = cfg.line(role) {
                let (chip, offset) = resolve_line(cfg.chip.as_deref(), &l, role.name())?;
                if let Some(other) = lines.iter().find(|x| x.1 == chip && x.2 == offset) {
                    return Err(ActuateError::Line {
                        line: format!("{} ({})", role.name(), l.line),
                        problem: format!("is the same line as {}", other.0.name()),
                    });
                }
                let desc = format!("{} {}:{offset}", role.name(), chip.display());
                lines.push((role, chip, offset, l.active_low, desc));
            }
        }
        let mut chips: Vec<PathBuf> = lines.iter().map(|l| l.1.clone()).collect();
        chips.sort();
        chips.dedup();
        let mut requests = Vec::new();
        let mut map: [Option<(usize, Offset, String)>; Role::COUNT] = Default::default();
        for chip in chips {
            let mut b = Request::builder();
            b.on_chip(&chip).with_consumer(CONSUMER);
            for (role, _, offset, active_low, desc) in lines.iter().filter(|l| l.1 == chip) {
                b.with_line(*offset).as_output(Value::Inactive);
                if *active_low {
                    b.as_active_low();
                } else {
                    b.as_active_high();
                }
                map[role.index()] = Some((requests.len(), *offset, desc.clone()));
            }
            let req = b.request().map_err(|e| ActuateError::Line {
                line: chip.display().to_string(),
                problem: format!("cannot request output lines: {e} (in use by another program, or no permission?)"),
            })?;
            requests.push(req);
        }
        Ok(ChardevBackend { requests, map })
    }
}

impl OutputBackend for ChardevBackend {
    fn set(&mut self, role: Role, active: bool, _note: Option<u64>) -> Result<(), ActuateError> {
        let Some((req, offset, desc)) = &self.map[role.index()] else {
            return Ok(());
        };
        let value = if active {
            Value::Active
        } else {
            Value::Inactive
        };
        self.requests[*req]
            .set_value(*offset, value)
            .map(|_| ())
            .map_err(|e| ActuateError::Line {
                line: desc.clone(),
                problem: format!(
                    "cannot set {}: {e}",
                    if active { "active" } else { "inactive" }
                ),
            })
    }

    fn describe(&self) -> String {
        let lines: Vec<&str> = self
            .map
            .iter()
            .flatten()
            .map(|(_, _, d)| d.as_str())
            .collect();
        format!("GPIO character device: {}", lines.join(", "))
    }
}
