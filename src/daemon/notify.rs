//! systemd readiness and watchdog notifications (`sd_notify`), implemented directly.
//!
//! In: `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace) and `$WATCHDOG_USEC`
//! / `$WATCHDOG_PID` from systemd. Out: datagrams such as `READY=1`, `WATCHDOG=1`,
//! `STOPPING=1`, `STATUS=...`. Without `$NOTIFY_SOCKET` (not under systemd) every call is a
//! no-op.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to systemd's notification socket (or nothing).
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets; a notifier that does nothing when not set.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = if let Some(name) = path.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            } else {
                SocketAddr::from_pathname(&path).ok()?
            };
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|_| {
                std::env::var("WATCHDOG_PID")
                    .ok()
                    .and_then(|p| p.parse::<u32>().ok())
                    .map(|pid| pid == std::process::id())
                    .unwrap_or(true)
            })
            .filter(|us| *us > 0)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// A notifier that never sends (tests, `--frames` runs outside systemd).
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Whether systemd is listening.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// systemd's watchdog period (`WatchdogSec=`), when it set one for this process.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Send one notification (`KEY=value` lines). Failures are ignored: systemd may be gone
    /// during shutdown, and a missed ping is what its watchdog is for.
    pub fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.target {
            let _ = sock.send_to_addr(state.as_bytes(), addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            )),
            watchdog: None,
        };
        assert!(n.enabled());
        n.notify("READY=1");
        n.notify("WATCHDOG=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        Notifier::disabled().notify("READY=1");
    }
}
