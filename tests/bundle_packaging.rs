//! The packaged default station config (firmware-config/debian/station.toml, installed as
//! /etc/endface/station.toml) must stay a valid config as the config schema evolves, and must
//! point at the paths the package installs.

use endface::config::StationConfig;
use std::path::PathBuf;

#[test]
fn packaged_station_config_is_valid_and_points_at_packaged_files() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("firmware-config/debian/station.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = StationConfig::from_toml_str(&text, "firmware-config/debian/station.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.runtime.onnxruntime_library.as_deref(),
        Some(std::path::Path::new("/usr/lib/endface/libonnxruntime.so"))
    );
    assert!(cfg.model.manifest.starts_with("/var/lib/endface/models/"));
    // The profile it names ships with the package (/etc/endface/profiles) or is built in.
    let profile = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("firmware-config/profiles")
        .join(format!("{}.toml", cfg.station.profile));
    assert!(
        profile.is_file() || endface::grade::Profile::builtin(&cfg.station.profile).is_some(),
        "profile {} is neither shipped nor built in",
        cfg.station.profile
    );
}
