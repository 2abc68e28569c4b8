//! Profile files: every builtin parses and matches the file on disk, resolution order, and
//! malformed profiles are refused with the file, key and problem named.

use endface::grade::{GradeError, Profile, Zone};
use std::path::{Path, PathBuf};

const SM_UPC: &str = include_str!("../firmware-config/profiles/sm-upc.toml");

fn err_of(text: &str) -> (String, String) {
    match Profile::from_toml_str(text, "bad.toml") {
        Ok(p) => panic!("accepted a malformed profile: {p:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("bad.toml"),
                "error does not name the file: {msg}"
            );
            let key = match e {
                GradeError::Invalid { key, .. } => key,
                GradeError::Syntax { .. } => String::from("<syntax>"),
                other => panic!("unexpected error kind: {other:?}"),
            };
            (key, msg)
        }
    }
}

#[test]
fn every_builtin_parses_and_equals_its_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/profiles");
    for name in Profile::builtin_names() {
        let b = Profile::builtin(name).expect("builtin parses");
        assert_eq!(b.name, name);
        assert_eq!(b.contact_radius_um(), 125.0);
        assert_eq!(b.zone_outer_radius_um(Zone::B), 57.5);
        assert_eq!(b.zone_outer_radius_um(Zone::C), 67.5);
        let f = Profile::from_toml_file(&dir.join(format!("{name}.toml"))).unwrap();
        assert_eq!(f, b);
        // Round trips: JSON and TOML.
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), b);
        let toml_text = toml::to_string(&b).unwrap();
        assert_eq!(Profile::from_toml_str(&toml_text, "roundtrip").unwrap(), b);
    }
    assert_eq!(
        Profile::builtin("sm-upc")
            .unwrap()
            .zone_outer_radius_um(Zone::A),
        12.5
    );
    assert_eq!(
        Profile::builtin("mm")
            .unwrap()
            .zone_outer_radius_um(Zone::A),
        32.5
    );
    assert!(Profile::builtin("nope").is_none());
}

#[test]
fn resolve_order_and_unknown_names() {
    let tmp = tempfile::tempdir().unwrap();
    // A station owner's own profile, without recompiling.
    let custom = SM_UPC.replace("name = \"sm-upc\"", "name = \"house\"");
    std::fs::write(tmp.path().join("house.toml"), &custom).unwrap();
    // A search-dir file shadows the builtin of the same name.
    let shadow = SM_UPC.replace("outer_diameter_um = 250.0", "outer_diameter_um = 240.0");
    std::fs::write(tmp.path().join("sm-upc.toml"), &shadow).unwrap();
    let dirs = vec![tmp.path().to_path_buf()];

    assert_eq!(Profile::resolve("house", &dirs).unwrap().name, "house");
    assert_eq!(
        Profile::resolve("sm-upc", &dirs)
            .unwrap()
            .contact_radius_um(),
        120.0
    );
    assert_eq!(
        Profile::resolve("sm-upc", &[]).unwrap().contact_radius_um(),
        125.0
    );
    assert_eq!(Profile::resolve("mm", &dirs).unwrap().name, "mm");
    let path = tmp.path().join("house.toml");
    assert_eq!(
        Profile::resolve(path.to_str().unwrap(), &[]).unwrap().name,
        "house"
    );

    match Profile::resolve("sm-pc", &dirs) {
        Err(e @ GradeError::UnknownProfile { .. }) => {
            let msg = e.to_string();
            for n in ["sm-upc", "sm-apc", "mm", "house", "sm-pc"] {
                assert!(msg.contains(n), "{msg}");
            }
        }
        other => panic!("{other:?}"),
    }
    // A .toml path that does not exist is an I/O error naming the path.
    let missing = tmp.path().join("missing.toml");
    match Profile::resolve(missing.to_str().unwrap(), &[]) {
        Err(e @ GradeError::Io { .. }) => assert!(e.to_string().contains("missing.toml")),
        other => panic!("{other:?}"),
    }
    let _unused: PathBuf = missing;
}

#[test]
fn malformed_profiles_name_the_key() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            SM_UPC.replace("label = \"cladding\"", "label = \"cladding\"\ncolour = 3"),
            "zones.B.colour",
            "unknown key",
        ),
        (
            SM_UPC.replace("max_count = 5 }", "max_count = \"lots\" }"),
            "zones.B.defects[1].max_count",
            "lots",
        ),
        (
            SM_UPC.replace("max_count = 5 }", "max_count = -5 }"),
            "zones.B.defects[1].max_count",
            "negative",
        ),
        (
            SM_UPC.replace("max_count = 5 }", "max_cnt = 5 }"),
            "zones.B.defects[1].max_cnt",
            "unknown key",
        ),
        (
            SM_UPC.replace("\"[2, 5]\"", "\"[1.5, 5]\""),
            "zones.B.defects[1].size_um",
            "overlap",
        ),
        (
            SM_UPC.replace("\"[2, 5]\"", "\"(2, 5]\""),
            "zones.B.defects[1].size_um",
            "gap",
        ),
        (
            SM_UPC.replace("\"[2, 5]\"", "\"[3, 5]\""),
            "zones.B.defects[1].size_um",
            "gap",
        ),
        (
            SM_UPC.replace("\"> 5\"", "\"[0, 1]\""),
            "zones.B.defects[2].size_um",
            "not sorted",
        ),
        (
            SM_UPC.replace("\"> 5\"", "\"(5, 8]\""),
            "zones.B.defects[2].size_um",
            "unbounded",
        ),
        (
            SM_UPC.replace("\"< 2\"", "\"[1, 2)\""),
            "zones.B.defects[0].size_um",
            "0 µm",
        ),
        (
            SM_UPC.replace("\"[2, 5]\"", "\"2 to 5\""),
            "zones.B.defects[1].size_um",
            "2 to 5",
        ),
        (
            SM_UPC.replace("outer_diameter_um = 135.0", "outer_diameter_um = 110.0"),
            "zones.C.outer_diameter_um",
            "increase",
        ),
        (
            SM_UPC.replace("outer_diameter_um = 25.0", "outer_diameter_um = \"25\""),
            "zones.A.outer_diameter_um",
            "number",
        ),
        (
            SM_UPC.replace("[zones.C]", "[zones.E]"),
            "zones.E",
            "unknown key",
        ),
        (
            SM_UPC.replace("name = \"sm-upc\"", "nme = \"sm-upc\""),
            "nme",
            "unknown key",
        ),
        (
            SM_UPC.replace(
                "defects = [{ size_um = \"any\", max_count = 0 }]             # none",
                "",
            ),
            "zones.A.defects",
            "missing",
        ),
        (
            SM_UPC.replace(
                "scratches = [{ size_um = \"any\", max_count = 0 }]           # none",
                "scratches = []",
            ),
            "zones.A.scratches",
            "no size bands",
        ),
    ];
    for (text, key, problem) in cases {
        assert_ne!(text, SM_UPC, "test case for {key} did not change the file");
        let (got_key, msg) = err_of(&text);
        assert_eq!(got_key, key, "{msg}");
        assert!(msg.contains(key), "{msg}");
        assert!(msg.contains(problem), "expected `{problem}` in: {msg}");
    }
    // TOML syntax errors are reported with their position.
    let (key, msg) = err_of("name = \"x\"\n[zones.A\n");
    assert_eq!(key, "<syntax>");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn file_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("station.toml");
    std::fs::write(
        &path,
        SM_UPC.replace("max_count = 5 }", "max_count = 5.5 }"),
    )
    .unwrap();
    let msg = Profile::from_toml_file(&path).unwrap_err().to_string();
    assert!(msg.contains("station.toml"), "{msg}");
    assert!(msg.contains("zones.B.defects[1].max_count"), "{msg}");
}
