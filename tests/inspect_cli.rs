//! `endface inspect` as a process: JSON output, overlays, and every bad input giving one clear
//! line and its own exit code (never a panic).

mod common;

use common::*;
use endface::error::exit;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn endface() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_endface"));
    c.env_remove("ENDFACE_ORT_LIB").env("ENDFACE_LOG", "warn");
    c
}

/// A temp folder with a copy of the recon256 model + manifest and a station config using it.
struct Station {
    dir: tempfile::TempDir,
}

impl Station {
    fn new() -> Station {
        let dir = tempfile::tempdir().unwrap();
        for f in ["recon256.onnx", "recon256.manifest.json"] {
            std::fs::copy(fixture(f), dir.path().join(f)).unwrap();
        }
        let s = Station { dir };
        s.write_config("");
        s
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn config(&self) -> PathBuf {
        self.path("station.toml")
    }
    /// Station config with the test library and model; `extra` is appended verbatim.
    fn write_config(&self, extra: &str) {
        let text = format!(
            "[runtime]\nonnxruntime_library = \"{}\"\nproviders = [\"cpu\"]\nintra_threads = 1\n\
             [model]\nmanifest = \"recon256.manifest.json\"\n{extra}",
            ort_lib().display()
        );
        std::fs::write(self.config(), text).unwrap();
    }
    fn inspect(&self, args: &[&str]) -> Output {
        let mut c = endface();
        c.arg("inspect").arg("--config").arg(self.config());
        c.args(args);
        c.output().unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code `code`, no panic, and exactly one `endface: error:` line naming `needle`.
fn assert_fails(o: &Output, code: u8, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code as i32), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("endface: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(needle),
        "expected {needle:?} in {:?}",
        lines[0]
    );
}

fn write_png_gray(path: &Path, w: u32, h: u32) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
        .save(path)
        .unwrap();
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn json_line_per_image_with_the_contract_keys() {
    let st = Station::new();
    let a = st.path("a.png");
    let b = st.path("b.png");
    write_png_gray(&a, 320, 240);
    write_png_gray(&b, 200, 200);
    let o = st.inspect(&["--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, img) in lines.iter().zip([&a, &b]) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["image"], img.to_str().unwrap());
        for key in [
            "verdict",
            "reasons",
            "defects",
            "center",
            "cladding_radius_px",
            "image_score",
            "timings_ms",
            "model_sha256",
            "execution_provider",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {line}");
        }
        assert!(["pass", "fail", "unable"].contains(&v["verdict"].as_str().unwrap()));
        assert_eq!(v["execution_provider"], "cpu");
        assert_eq!(v["model_sha256"].as_str().unwrap().len(), 64);
        for stage in ["locate", "crop", "infer", "anomaly", "grade", "total"] {
            assert!(v["timings_ms"][stage].is_number(), "{stage} in {line}");
        }
    }
}

#[test]
fn rgb_images_are_converted_not_refused() {
    let st = Station::new();
    let p = st.path("rgb.png");
    image::RgbImage::from_fn(160, 120, |x, _| image::Rgb([x as u8, 10, 200]))
        .save(&p)
        .unwrap();
    let o = st.inspect(&["--json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn overlay_png_is_written() {
    let st = Station::new();
    let p = st.path("frame.png");
    write_png_gray(&p, 320, 240);
    let out = st.path("overlays");
    let o = st.inspect(&["--overlay", out.to_str().unwrap(), p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let img = image::open(out.join("frame.overlay.png")).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
}

#[test]
fn rendered_end_faces_are_graded_with_overlays() {
    let st = Station::new();
    let ds = st.path("ds");
    let o = endface()
        .args(["synth", "--out"])
        .arg(&ds)
        .args([
            "--seed",
            "77",
            "--train-good",
            "0",
            "--test-good",
            "1",
            "--per-kind",
            "1",
        ])
        .args([
            "--kinds",
            "pit",
            "--um-per-px",
            "0.5",
            "--aspect",
            "1.09",
            "--jpeg-prob",
            "0",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let good = ds.join("test/good/0000.png");
    let pit = ds.join("test/pit/0000.png");
    let out = st.path("overlays");
    let o = st.inspect(&[
        "--json",
        "--um-per-px",
        "0.5",
        "--um-per-px-y",
        &(0.5 / 1.09).to_string(),
        "--overlay",
        out.to_str().unwrap(),
        good.to_str().unwrap(),
        pit.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout).unwrap();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_ne!(v["verdict"], "unable", "{line}");
        assert!(
            v["center"][0].is_number() && v["image_score"].is_number(),
            "{line}"
        );
        assert!(v["timings_ms"]["infer"].as_f64().unwrap() > 0.0, "{line}");
    }
    // Same stem in two folders: two overlays.
    assert!(out.join("0000.overlay.png").is_file());
    assert!(out.join("0000-2.overlay.png").is_file());
}

#[test]
fn corrupt_image() {
    let st = Station::new();
    let p = st.path("corrupt.png");
    std::fs::write(&p, b"\x89PNG\r\n\x1a\nthis is not a png at all").unwrap();
    assert_fails(
        &st.inspect(&[p.to_str().unwrap()]),
        exit::BAD_IMAGE,
        "corrupt.png",
    );
}

#[test]
fn truncated_image() {
    let st = Station::new();
    let good = st.path("good.png");
    write_png_gray(&good, 200, 150);
    let bytes = std::fs::read(&good).unwrap();
    let p = st.path("truncated.png");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        &st.inspect(&[p.to_str().unwrap()]),
        exit::BAD_IMAGE,
        "truncated.png",
    );
}

#[test]
fn zero_size_image() {
    let st = Station::new();
    let p = st.path("empty.png");
    std::fs::write(&p, b"").unwrap();
    assert_fails(
        &st.inspect(&[p.to_str().unwrap()]),
        exit::UNSUPPORTED_IMAGE,
        "empty.png",
    );
}

#[test]
fn sixteen_bit_image() {
    let st = Station::new();
    let p = st.path("deep.png");
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(64, 64, image::Luma([4000]))
        .save(&p)
        .unwrap();
    assert_fails(
        &st.inspect(&[p.to_str().unwrap()]),
        exit::UNSUPPORTED_IMAGE,
        "deep.png",
    );
}

#[test]
fn enormous_image_is_refused_from_its_header() {
    let st = Station::new();
    let good = st.path("small.png");
    write_png_gray(&good, 8, 8);
    let mut bytes = std::fs::read(&good).unwrap();
    // IHDR data starts at byte 16: width, height (big endian); its CRC follows the 13 bytes.
    bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    let p = st.path("huge.png");
    std::fs::write(&p, &bytes).unwrap();
    assert_fails(
        &st.inspect(&[p.to_str().unwrap()]),
        exit::UNSUPPORTED_IMAGE,
        "huge.png",
    );
}

#[test]
fn directory_and_missing_file() {
    let st = Station::new();
    let d = st.path("adir");
    std::fs::create_dir(&d).unwrap();
    assert_fails(&st.inspect(&[d.to_str().unwrap()]), exit::INPUT_IO, "adir");
    let m = st.path("missing.png");
    assert_fails(
        &st.inspect(&[m.to_str().unwrap()]),
        exit::INPUT_IO,
        "missing.png",
    );
}

#[test]
fn a_bad_image_among_good_ones_is_reported_and_the_rest_run() {
    let st = Station::new();
    let good = st.path("good.png");
    write_png_gray(&good, 200, 150);
    let missing = st.path("missing.png");
    let o = st.inspect(&["--json", missing.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(exit::INPUT_IO as i32));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["exit_code"], exit::INPUT_IO);
    assert!(lines[1]["verdict"].is_string());
}

#[test]
fn missing_model() {
    let st = Station::new();
    std::fs::remove_file(st.path("recon256.onnx")).unwrap();
    let img = st.path("f.png");
    write_png_gray(&img, 100, 100);
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_MODEL,
        "recon256.onnx",
    );
    std::fs::remove_file(st.path("recon256.manifest.json")).unwrap();
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_MODEL,
        "recon256.manifest.json",
    );
}

#[test]
fn missing_runtime_library_says_what_to_run() {
    let st = Station::new();
    let text = std::fs::read_to_string(st.config()).unwrap().replace(
        &ort_lib().display().to_string(),
        "/nonexistent/libonnxruntime.so",
    );
    std::fs::write(st.config(), text).unwrap();
    let img = st.path("f.png");
    write_png_gray(&img, 100, 100);
    let o = st.inspect(&[img.to_str().unwrap()]);
    assert_fails(&o, exit::RUNTIME_MISSING, "/nonexistent/libonnxruntime.so");
    assert!(
        stderr(&o).contains("scripts/setup-ort.sh"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_file_that_is_not_a_library() {
    let st = Station::new();
    let fake = st.path("libonnxruntime.so");
    std::fs::write(&fake, b"not an ELF").unwrap();
    let text = std::fs::read_to_string(st.config())
        .unwrap()
        .replace(&ort_lib().display().to_string(), fake.to_str().unwrap());
    std::fs::write(st.config(), text).unwrap();
    let img = st.path("f.png");
    write_png_gray(&img, 100, 100);
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::RUNTIME_MISSING,
        "libonnxruntime.so",
    );
}

#[test]
fn manifest_not_matching_the_model() {
    let st = Station::new();
    let img = st.path("f.png");
    write_png_gray(&img, 100, 100);
    let manifest = st.path("recon256.manifest.json");
    let orig = std::fs::read_to_string(&manifest).unwrap();
    // Wrong hash.
    let v: serde_json::Value = serde_json::from_str(&orig).unwrap();
    let sha = v["sha256"].as_str().unwrap().to_string();
    std::fs::write(&manifest, orig.replace(&sha, &"ab".repeat(32))).unwrap();
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_MODEL,
        "sha256",
    );
    // Right hash, wrong input name.
    std::fs::write(
        &manifest,
        orig.replace("\"name\": \"image\"", "\"name\": \"pixels\""),
    )
    .unwrap();
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_MODEL,
        "pixels",
    );
    // Right hash, wrong output shape.
    std::fs::write(
        &manifest,
        orig.replacen(
            "\"shape\": [\n        1,\n        1,\n        256,\n        256\n      ]",
            "\"shape\": [1, 1, 128, 128]",
            2,
        ),
    )
    .unwrap();
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_MODEL,
        "manifest",
    );
    // Not JSON.
    std::fs::write(&manifest, "{ nope").unwrap();
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_MODEL,
        "recon256.manifest.json",
    );
}

#[test]
fn wrong_profile_name() {
    let st = Station::new();
    let img = st.path("f.png");
    write_png_gray(&img, 100, 100);
    let o = st.inspect(&["--profile", "sm-upcc", img.to_str().unwrap()]);
    assert_fails(&o, exit::UNKNOWN_PROFILE, "sm-upcc");
    assert!(
        stderr(&o).contains("sm-upc"),
        "lists known profiles: {}",
        stderr(&o)
    );
}

#[test]
fn bad_config() {
    let st = Station::new();
    let img = st.path("f.png");
    write_png_gray(&img, 100, 100);
    st.write_config("[calibration]\num_per_px_x = -2.0\n");
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_CONFIG,
        "calibration.um_per_px_x",
    );
    st.write_config("[modell]\n");
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::BAD_CONFIG,
        "modell",
    );
    let o = endface()
        .args([
            "inspect",
            "--config",
            "/nonexistent/station.toml",
            img.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_fails(&o, exit::BAD_CONFIG, "/nonexistent/station.toml");
    st.write_config("");
    let o = st.inspect(&["--um-per-px", "0", img.to_str().unwrap()]);
    assert_fails(&o, exit::BAD_CONFIG, "um_per_px");
}

#[test]
fn required_accelerator_missing_is_fatal() {
    let st = Station::new();
    let text = std::fs::read_to_string(st.config()).unwrap().replace(
        "providers = [\"cpu\"]",
        "providers = [\"cuda\", \"cpu\"]\nrequire_accelerator = true",
    );
    std::fs::write(st.config(), text).unwrap();
    let img = st.path("f.png");
    write_png_gray(&img, 100, 100);
    assert_fails(
        &st.inspect(&[img.to_str().unwrap()]),
        exit::NO_ACCELERATOR,
        "CUDAExecutionProvider",
    );
}

#[test]
fn workers_print_the_same_results_in_the_images_order() {
    let st = Station::new();
    let ds = st.path("ds");
    let o = endface()
        .args(["synth", "--out"])
        .arg(&ds)
        .args(["--seed", "91", "--train-good", "0", "--test-good", "3"])
        .args([
            "--per-kind",
            "1",
            "--kinds",
            "pit,scratch",
            "--um-per-px",
            "0.5",
        ])
        .args(["--aspect", "1", "--jpeg-prob", "0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut images: Vec<String> = [
        "good/0000",
        "pit/0000",
        "good/0001",
        "scratch/0000",
        "good/0002",
    ]
    .iter()
    .map(|n| ds.join(format!("test/{n}.png")).display().to_string())
    .collect();
    // An unreadable one in the middle: reported in its place, the rest still run.
    images.insert(2, st.path("missing.png").display().to_string());
    let run = |workers: &str| {
        let mut args = vec!["--json", "--um-per-px", "0.5", "--workers", workers];
        args.extend(images.iter().map(String::as_str));
        let o = st.inspect(&args);
        assert_eq!(
            o.status.code(),
            Some(exit::INPUT_IO as i32),
            "{}",
            stderr(&o)
        );
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let one = run("1");
    let three = run("3");
    assert_eq!(one.len(), images.len());
    assert_eq!(three.len(), images.len());
    for ((a, b), img) in one.iter().zip(&three).zip(&images) {
        assert_eq!(a["image"].as_str(), Some(img.as_str()));
        assert_eq!(b["image"].as_str(), Some(img.as_str()));
        assert_eq!(a["verdict"], b["verdict"]);
        assert_eq!(a["defects"], b["defects"]);
        assert_eq!(a["image_score"], b["image_score"]);
        assert_eq!(a["exit_code"], b["exit_code"]);
    }
    assert_eq!(three[2]["exit_code"], exit::INPUT_IO);

    let o = st.inspect(&["--workers", "0", images[0].as_str()]);
    assert_fails(&o, exit::USAGE, "--workers");
}
