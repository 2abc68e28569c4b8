//! Property-based fuzzing of the parsing entry points `inspect` and `eval` rely on: station
//! config TOML, model manifest JSON, image bytes (decode + size checks), and the pure frame
//! paths (crop sampling, defect extraction) on arbitrary inputs. Nothing may panic; errors
//! must name a key or file.
//!
//! The suite runs a few dozen cases per property. Fuzz for minutes with:
//!
//! ```sh
//! ENDFACE_FUZZ_CASES=20000 cargo test --release --test inspect_fuzz
//! ```

use endface::anomaly::{extract_defects, ContactZone, DefectScratch};
use endface::config::StationConfig;
use endface::geometry::PixelScale;
use endface::imageio;
use endface::inspect::border::find_content;
use endface::inspect::crop::{CropGeometry, CropScratch};
use endface::model::Manifest;
use proptest::prelude::*;
use std::path::Path;

fn cases() -> u32 {
    std::env::var("ENDFACE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

const MANIFEST: &str = include_str!("fixtures/recon64.manifest.json");
const CONFIG: &str = include_str!("../firmware-config/station.toml");

fn png_bytes() -> Vec<u8> {
    let img = image::GrayImage::from_fn(24, 16, |x, y| image::Luma([(x * 9 + y * 5) as u8]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn bmp_bytes() -> Vec<u8> {
    let img = image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 7]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Bmp)
        .unwrap();
    out
}

fn jpeg_bytes() -> Vec<u8> {
    let img = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([((x ^ y) * 16) as u8]));
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    out
}

/// Flip bytes, cut, or splice garbage into `base`.
fn mutate(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (
        prop::collection::vec((0..len, any::<u8>()), 0..8),
        0..=len,
        prop::collection::vec(any::<u8>(), 0..16),
        any::<bool>(),
    )
        .prop_map(move |(flips, cut, junk, splice)| {
            let mut b = base.clone();
            for (i, v) in flips {
                b[i] = v;
            }
            b.truncate(cut.max(1));
            if splice {
                let at = b.len() / 2;
                b.splice(at..at, junk);
            }
            b
        })
}

fn check_image(bytes: &[u8]) {
    match imageio::decode_gray(bytes, Path::new("fuzz.img")) {
        Ok(img) => {
            assert!(img.width() > 0 && img.height() > 0);
            assert!(img.width() <= imageio::MAX_SIDE_PX && img.height() <= imageio::MAX_SIDE_PX);
        }
        Err(e) => assert!(e.to_string().contains("fuzz.img"), "{e}"),
    }
}

/// Replace the value of the `n`-th `key = value` line with `value`.
fn set_nth_value(text: &str, n: usize, value: &str) -> String {
    let mut k = 0;
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if !t.starts_with('#') && !t.starts_with('[') && t.contains('=') {
                k += 1;
                if k - 1 == n {
                    let key = t.split('=').next().unwrap_or("").trim();
                    return format!("{key} = {value}");
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| format!("{v:?}")),
        any::<i64>().prop_map(|v| v.to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("[\"cpu\", \"cpu\"]".to_string()),
        Just("[\"gpu\"]".to_string()),
        "[a-z/._ -]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("{}".to_string()),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<f64>().prop_map(
            |v| serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)
        ),
        any::<i64>().prop_map(Into::into),
        Just(serde_json::Value::Null),
        Just(serde_json::json!([])),
        Just(serde_json::json!([1, 1, 0, -3])),
        Just(serde_json::json!({})),
        "[a-z_]{0,10}".prop_map(serde_json::Value::from),
        Just(serde_json::json!(1e300)),
    ]
}

/// Paths of every leaf of a JSON value.
fn leaves(v: &serde_json::Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let mut p = prefix.clone();
                p.push(k.clone());
                leaves(x, p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(i.to_string());
                leaves(x, p, out);
            }
        }
        _ => out.push(prefix),
    }
}

fn set_path(v: &mut serde_json::Value, path: &[String], new: serde_json::Value) {
    let mut cur = v;
    for k in path {
        cur = match cur {
            serde_json::Value::Object(m) => m.get_mut(k).unwrap(),
            serde_json::Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            _ => return,
        };
    }
    *cur = new;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = StationConfig::from_toml_str(&text, "fuzz.toml");
    }

    #[test]
    fn config_value_mutations_are_accepted_or_name_a_key(n in 0usize..24, value in toml_value()) {
        let text = set_nth_value(CONFIG, n, &value);
        match StationConfig::from_toml_str(&text, "fuzz.toml") {
            Ok(cfg) => prop_assert!(cfg.validate("again").is_ok()),
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("fuzz.toml"), "{}", msg);
                prop_assert!(!msg.contains('\n'), "{}", msg);
            }
        }
    }

    #[test]
    fn manifest_mutations_never_panic(pick in any::<prop::sample::Index>(), value in json_value(), drop_key in any::<bool>()) {
        let mut v: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
        let mut paths = Vec::new();
        leaves(&v, Vec::new(), &mut paths);
        let path = pick.get(&paths).clone();
        if drop_key && path.len() == 1 {
            v.as_object_mut().unwrap().remove(&path[0]);
        } else {
            set_path(&mut v, &path, value);
        }
        let text = serde_json::to_string(&v).unwrap();
        if let Err(e) = Manifest::from_json_str(&text, Path::new("fuzz.manifest.json")) {
            prop_assert!(e.to_string().contains("fuzz.manifest.json"), "{}", e);
        }
    }

    #[test]
    fn manifest_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Manifest::from_json_str(&text, Path::new("fuzz.json"));
    }

    #[test]
    fn png_mutations_never_panic(bytes in mutate(png_bytes())) {
        check_image(&bytes);
    }

    #[test]
    fn bmp_mutations_never_panic(bytes in mutate(bmp_bytes())) {
        check_image(&bytes);
    }

    #[test]
    fn jpeg_mutations_never_panic(bytes in mutate(jpeg_bytes())) {
        check_image(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_image(&bytes);
    }

    #[test]
    fn crop_sampling_takes_any_frame_and_centre(
        fw in 1u32..40, fh in 1u32..40,
        cx in prop_oneof![-1e6f64..1e6, Just(f64::NAN), Just(f64::INFINITY)],
        cy in -1e6f64..1e6,
        umx in 0.01f64..10.0, umy in 0.01f64..10.0,
        s in 0.05f64..5.0,
        w in 1usize..24, h in 1usize..24,
        seed in any::<u8>(),
    ) {
        let frame = image::GrayImage::from_fn(fw, fh, |x, y| image::Luma([(x as u8).wrapping_mul(seed) ^ y as u8]));
        let g = CropGeometry {
            center_in_frame: [cx, cy],
            frame_scale: PixelScale { um_per_px_x: umx, um_per_px_y: umy },
            crop_um_per_px: s,
            width: w,
            height: h,
        };
        let mut crop = Vec::new();
        g.sample(&frame, find_content(&frame), &mut crop, &mut CropScratch::default());
        prop_assert_eq!(crop.len(), w * h);
        prop_assert!(crop.iter().all(|p| (0.0..=255.0).contains(p)));
        let b = g.bbox_in_frame([0, 0, w as u32 - 1, h as u32 - 1], fw, fh);
        prop_assert!(b[2] < fw && b[3] < fh);
    }

    #[test]
    fn overlay_takes_any_geometry(
        fw in 1u32..64, fh in 1u32..64,
        cx in -1e5f64..1e5, cy in -1e5f64..1e5,
        umx in 0.001f64..100.0, umy in 0.001f64..100.0,
        s in 0.01f64..50.0,
        bbox in prop::array::uniform4(0u32..100),
        verdict in 0usize..3,
    ) {
        use endface::grade::{FeatureKind, Profile, Verdict, Zone};
        use endface::inspect::{InspectedDefect, Inspection, Timings};
        let g = CropGeometry {
            center_in_frame: [cx, cy],
            frame_scale: PixelScale { um_per_px_x: umx, um_per_px_y: umy },
            crop_um_per_px: s,
            width: 8,
            height: 8,
        };
        let insp = Inspection {
            verdict: [Verdict::Pass, Verdict::Fail, Verdict::Unable][verdict],
            reasons: vec!["zone A: µ ≤ ≥ – ü".into()],
            defects: vec![InspectedDefect {
                kind: FeatureKind::Scratch,
                zone: Some(Zone::C),
                size_um: 1.0,
                bbox,
                score: 0.5,
                fails: verdict == 1,
                area_um2: 1.0,
                feret_um: 1.0,
                length_um: 1.0,
                width_um: 1.0,
                elongation: 1.0,
                inner_radius_um: 1.0,
                outer_radius_um: 2.0,
                crack_score: None,
                crack: false,
                halo: false,
                bbox_in_crop: [0, 0, 7, 7],
                label: 1,
                fragments: 1,
            }],
            center: Some([cx, cy]),
            cladding_radius_px: None,
            radius_y_px: None,
            locate_confidence: None,
            locate_rescue: None,
            focus: None,
            bright_level: None,
            exposure_gain: None,
            grey_step: None,
            stuck_pixels: 0,
            banding: None,
            banding_corrected: false,
            image_score: Some(0.5),
            map_score: Some(0.5),
            ring_level: Some(0.0),
            core_level: None,
            ferrule_grain: None,
            grain_spots: 0,
            edge_scan: None,
            contact_zone_in_view: Some(1.0),
            anomalous: None,
            pixel_threshold: 0.5,
            image_threshold: 0.5,
            timings_ms: Timings::default(),
            model_sha256: String::new(),
            execution_provider: "cpu".into(),
            profile: "sm-upc".into(),
            geometry: Some(g),
        };
        let labels = vec![1u32; 64];
        let frame = image::GrayImage::new(fw, fh);
        let img = endface::overlay::render(
            &frame,
            &insp,
            Some(&labels),
            &Profile::builtin("sm-upc").unwrap(),
            PixelScale { um_per_px_x: umx, um_per_px_y: umy },
        );
        prop_assert_eq!(img.dimensions(), (fw, fh));
    }

    #[test]
    fn defect_extraction_takes_any_map(
        n in 1usize..40,
        values in prop::collection::vec(prop_oneof![0.0f32..1.0, Just(f32::NAN), Just(f32::INFINITY), Just(-1.0f32)], 1600),
        thr in -0.5f32..1.5,
        s in 0.1f64..10.0,
    ) {
        let map = &values[..n * n];
        let zone = ContactZone::new(n, n, s, 125.0);
        let mut scratch = DefectScratch::default();
        let mut out = Vec::new();
        extract_defects(map, &zone, thr, &mut scratch, &mut out);
        for d in &out {
            prop_assert!(d.size_um.is_finite() && d.size_um >= 0.0);
            prop_assert!(d.inner_radius_um.is_finite() && d.inner_radius_um >= 0.0);
        }
    }
}
