//! Dataset writer and reader: a synthetic dataset written then read back has every image,
//! mask and label; output is identical for any thread count; labels' verdicts are the grade
//! of their defects; the reader tolerates unknown things and refuses malformed ones with the
//! file named.

use endface::dataset::{
    write_synthetic, Dataset, DatasetError, DatasetImage, Label, Split, SynthDatasetOptions,
};
use endface::imageio;
use endface::synth::{verdict, DefectKind, FiberProfile, SynthConfig};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn tiny_opts(threads: usize) -> SynthDatasetOptions {
    SynthDatasetOptions {
        config: SynthConfig {
            width: 256,
            height: 192,
            ..SynthConfig::default()
        },
        seed: 42,
        train_good: 3,
        test_good: 2,
        per_kind: 2,
        kinds: DefectKind::ALL.to_vec(),
        threads,
        overwrite: false,
        label_train: false,
    }
}

fn all_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn write_then_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let summary = write_synthetic(&root, &tiny_opts(2)).unwrap();
    assert_eq!(summary.images, 3 + 2 + 5 * 2);
    assert_eq!(summary.missing_kind, 0);

    let ds = Dataset::open(&root).unwrap();
    assert!(ds.warnings.is_empty(), "{:?}", ds.warnings);
    assert_eq!(ds.train_good.len(), 3);
    assert_eq!(ds.test.len(), 2 + 10);
    assert_eq!(
        ds.kinds(),
        vec!["chip", "contamination", "crack", "pit", "scratch"]
    );
    for img in &ds.train_good {
        assert_eq!(img.split, Split::Train);
        assert!(img.label.is_none(), "labels are per test image");
    }
    for img in &ds.test {
        let label = img.label.as_ref().expect("every test image has a label");
        assert_eq!(label.image, img.rel);
        let pixels = imageio::load_gray(&img.path).unwrap();
        assert_eq!(pixels.dimensions(), (256, 192));
        let mask = img.load_mask(256, 192).unwrap();
        let on = mask.pixels().filter(|p| p.0[0] == 255).count();
        assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        if img.is_good() {
            assert!(img.mask_path.is_none());
            assert_eq!(on, 0);
            assert!(label.defects.is_empty());
            assert_eq!(label.verdict.as_deref(), Some("pass"));
        } else {
            assert!(img.mask_path.is_some(), "{} has a mask", img.rel);
            assert!(on > 0);
            // The folder's kind is among the labelled defects; every bbox lies on the mask.
            assert!(label.defects.iter().any(|d| d.kind == img.kind));
            for d in &label.defects {
                let [x0, y0, x1, y1] = d.bbox.unwrap();
                assert!(x0 <= x1 && y0 <= y1 && x1 < 256 && y1 < 192);
                let inside = (y0..=y1)
                    .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
                    .any(|(x, y)| mask.get_pixel(x, y).0[0] == 255);
                assert!(inside, "{}: bbox {:?} holds mask pixels", img.rel, d.bbox);
                assert!(matches!(d.zone.as_deref(), Some("A" | "B" | "C" | "D")));
            }
        }
        // Localization truth and scale.
        let s = ds.scale_of(img).unwrap();
        assert!((0.4..=0.7).contains(&s.um_per_px_x), "{}", s.um_per_px_x);
        let r = label.cladding_radius_px.unwrap();
        assert!((r * s.um_per_px_x - 62.5).abs() < 1e-6);
        let c = label.center.unwrap();
        assert!(c[0] > 0.0 && c[0] < 256.0 && c[1] > 0.0 && c[1] < 192.0);
        assert!(ds.fiber_of(img).is_some());
    }
}

#[test]
fn label_train_labels_the_training_frames_with_their_own_scale() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    let labelled = dir.path().join("labelled");
    write_synthetic(&plain, &tiny_opts(2)).unwrap();
    let opts = SynthDatasetOptions {
        label_train: true,
        ..tiny_opts(2)
    };
    write_synthetic(&labelled, &opts).unwrap();
    let (a, b) = (all_files(&plain), all_files(&labelled));
    // The same pixels; only labels.jsonl grows by one line per training frame.
    for (k, v) in &a {
        if k != "labels.jsonl" {
            assert_eq!(b.get(k), Some(v), "{k} differs");
        }
    }
    let ds = Dataset::open(&labelled).unwrap();
    assert!(ds.warnings.is_empty(), "{:?}", ds.warnings);
    let mut scales = Vec::new();
    for img in &ds.train_good {
        let label = img
            .label
            .as_ref()
            .expect("every training frame is labelled");
        assert_eq!(label.verdict.as_deref(), Some("pass"));
        assert!(label.defects.is_empty());
        let s = ds.scale_of(img).unwrap();
        let r = label.cladding_radius_px.unwrap();
        assert!((r * s.um_per_px_x - 62.5).abs() < 1e-6);
        assert!(label.center.is_some());
        scales.push(s.um_per_px_x);
    }
    assert_eq!(scales.len(), 3);
    assert!(
        scales.iter().any(|s| (s - scales[0]).abs() > 1e-6),
        "frames vary in scale: {scales:?}"
    );
    // Test labels unchanged.
    let plain_ds = Dataset::open(&plain).unwrap();
    for (x, y) in plain_ds.test.iter().zip(&ds.test) {
        assert_eq!(
            x.label.as_ref().unwrap().center,
            y.label.as_ref().unwrap().center
        );
    }
}

#[test]
fn label_verdict_is_the_grade_of_its_defects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let mut opts = tiny_opts(2);
    opts.train_good = 0;
    opts.test_good = 1;
    opts.per_kind = 4;
    write_synthetic(&root, &opts).unwrap();
    let ds = Dataset::open(&root).unwrap();
    let mut verdicts = BTreeMap::new();
    for img in &ds.test {
        let label = img.label.as_ref().unwrap();
        let fiber: FiberProfile = ds.fiber_of(img).unwrap().parse().unwrap();
        let feats: Vec<_> = label
            .defects
            .iter()
            .map(|d| {
                let kind: DefectKind = d.kind.parse().unwrap();
                let inner = d.extra["inner_radius_um"].as_f64().unwrap();
                // The label's zone is the zone of the inner radius.
                let z = verdict::zone_of(fiber, inner).map(verdict::zone_letter);
                assert_eq!(z, d.zone.as_deref());
                verdict::feature(kind, d.size_um.unwrap(), inner)
            })
            .collect();
        let (v, _) = verdict::grade_features(fiber, &feats);
        assert_eq!(
            Some(verdict::verdict_str(v)),
            label.verdict.as_deref(),
            "{}",
            img.rel
        );
        *verdicts.entry(verdict::verdict_str(v)).or_insert(0) += 1;
    }
    assert!(verdicts.contains_key("pass") && verdicts.contains_key("fail"));
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut o1 = tiny_opts(1);
    o1.per_kind = 1;
    let mut o3 = o1.clone();
    o3.threads = 3;
    write_synthetic(dir.path().join("a"), &o1).unwrap();
    write_synthetic(dir.path().join("b"), &o3).unwrap();
    let a = all_files(&dir.path().join("a"));
    let b = all_files(&dir.path().join("b"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between 1 and 3 threads");
    }
}

#[test]
fn writer_refuses_a_non_empty_folder_without_force() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("something.txt"), "x").unwrap();
    let mut o = tiny_opts(1);
    o.train_good = 1;
    o.test_good = 0;
    o.per_kind = 0;
    let e = write_synthetic(dir.path(), &o).unwrap_err();
    assert!(matches!(e, DatasetError::NotEmpty(_)), "{e}");
    assert!(e.to_string().contains("--force"));
    o.overwrite = true;
    write_synthetic(dir.path(), &o).unwrap();
}

fn write_png(p: &Path, w: u32, h: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    imageio::save_png_atomic(p, &image::GrayImage::new(w, h)).unwrap();
}

#[test]
fn reader_handles_hand_made_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write_png(&r.join("train/good/a.png"), 8, 6);
    write_png(&r.join("test/good/g.png"), 8, 6);
    write_png(&r.join("test/pit/p1.png"), 8, 6);
    write_png(&r.join("test/pit/p2.png"), 8, 6);
    write_png(&r.join("ground_truth/pit/p1_mask.png"), 8, 6);
    fs::write(r.join("test/pit/notes.txt"), "hello").unwrap();
    fs::create_dir_all(r.join("extras")).unwrap();
    fs::write(
        r.join("dataset.toml"),
        "fiber = \"sm-upc\"\num_per_px = 0.52\ncamera_model = \"x\"\n",
    )
    .unwrap();
    fs::write(
        r.join("labels.jsonl"),
        concat!(
            r#"{"image": "test/pit/p1.png", "fiber": "mm", "um_per_px_x": 0.5, "um_per_px_y": 0.46, "verdict": "fail", "exposure_ms": 3, "defects": [{"kind": "pit", "zone": "B", "size_um": 6.1, "bbox": [1, 1, 2, 2], "contrast": 0.3}]}"#,
            "\n\n",
            r#"{"image": "test/missing.png"}"#,
            "\n"
        ),
    )
    .unwrap();
    let ds = Dataset::open(r).unwrap();
    assert_eq!(ds.train_good.len(), 1);
    assert_eq!(ds.test.len(), 3);
    // Warnings for: unknown toml key, unknown folder, non-image file, unknown label key,
    // a label naming no image.
    let w = ds.warnings.join("\n");
    for needle in [
        "camera_model",
        "extras",
        "notes.txt",
        "exposure_ms",
        "missing.png",
    ] {
        assert!(w.contains(needle), "warning about {needle}: {w}");
    }
    let get = |rel: &str| -> &DatasetImage { ds.test.iter().find(|i| i.rel == rel).unwrap() };
    // Per-image label overrides dataset.toml; otherwise dataset.toml applies.
    let p1 = get("test/pit/p1.png");
    assert_eq!(ds.fiber_of(p1), Some("mm"));
    let s = ds.scale_of(p1).unwrap();
    assert_eq!((s.um_per_px_x, s.um_per_px_y), (0.5, 0.46));
    let l: &Label = p1.label.as_ref().unwrap();
    assert_eq!(l.defects[0].size_um, Some(6.1));
    assert!(l.defects[0].extra.contains_key("contrast"));
    let p2 = get("test/pit/p2.png");
    assert_eq!(ds.fiber_of(p2), Some("sm-upc"));
    assert_eq!(ds.scale_of(p2).unwrap().um_per_px_x, 0.52);
    // Masks: good without mask = all zero; defect without mask = error naming the file.
    let g = get("test/good/g.png");
    assert_eq!(
        g.load_mask(8, 6)
            .unwrap()
            .pixels()
            .filter(|p| p.0[0] > 0)
            .count(),
        0
    );
    assert!(p1.load_mask(8, 6).is_ok());
    let e = p1.load_mask(9, 6).unwrap_err();
    assert!(matches!(e, DatasetError::MaskSize { .. }), "{e}");
    let e = p2.load_mask(8, 6).unwrap_err();
    assert!(matches!(e, DatasetError::MissingMask { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("p2.png") && msg.contains("p2_mask.png"),
        "{msg}"
    );
    assert_eq!(
        endface::dataset::exit_code(&e),
        endface::error::exit::BAD_DATASET
    );
}

#[test]
fn reader_refuses_malformed_inputs_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    assert!(matches!(
        Dataset::open(r.join("nope")).unwrap_err(),
        DatasetError::NotFound(_)
    ));
    assert!(matches!(
        Dataset::open(r).unwrap_err(),
        DatasetError::NoImages(_)
    ));
    write_png(&r.join("train/good/a.png"), 4, 4);
    fs::write(
        r.join("labels.jsonl"),
        "{\"image\": \"train/good/a.png\"}\n{not json\n",
    )
    .unwrap();
    let e = Dataset::open(r).unwrap_err();
    assert!(matches!(e, DatasetError::BadLabels { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("labels.jsonl"));
    fs::remove_file(r.join("labels.jsonl")).unwrap();
    fs::write(r.join("dataset.toml"), "um_per_px = \"wide\"\n").unwrap();
    let e = Dataset::open(r).unwrap_err();
    assert!(matches!(e, DatasetError::BadConfig { .. }), "{e}");
    assert!(e.to_string().contains("dataset.toml"));
}
