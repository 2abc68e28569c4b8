//! The shipped example station config parses and validates.

use endface::config::{ProviderKind, StationConfig};
use std::path::Path;

#[test]
fn example_station_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/station.toml");
    let cfg = StationConfig::from_file(&path).unwrap();
    assert_eq!(cfg.station.profile, "sm-upc");
    assert_eq!(
        cfg.runtime.providers,
        [
            ProviderKind::Tensorrt,
            ProviderKind::Cuda,
            ProviderKind::Cpu
        ]
    );
    assert!(cfg
        .model
        .manifest
        .ends_with("firmware-config/../models/endface-student.manifest.json"));
}
