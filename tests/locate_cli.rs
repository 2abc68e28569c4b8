//! `endface locate` end to end: JSON lines, human lines, per-image errors and exit codes.
//!
//! `cargo test --test locate_cli`

mod locate_render;

use locate_render::{Fiber, Look, Scene};
use std::process::Command;

fn endface() -> Command {
    Command::new(env!("CARGO_BIN_EXE_endface"))
}

#[test]
fn json_lines_for_found_not_found_and_unreadable_images() {
    let dir = tempfile::tempdir().unwrap();
    let scene = Scene::simple(Look::DarkFiber, Fiber::Mm50);
    let fiber = dir.path().join("fiber.png");
    scene.render().save(&fiber).unwrap();
    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(320, 240, image::Luma([90]))
        .save(&blank)
        .unwrap();
    let missing = dir.path().join("missing.png");

    let out = endface()
        .arg("locate")
        .arg("--json")
        .args(["--um-per-px", "0.5"])
        .args([&fiber, &blank, &missing])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");

    let found = &lines[0];
    assert_eq!(found["image"], fiber.display().to_string());
    let c = found["center"].as_array().unwrap();
    assert!((c[0].as_f64().unwrap() - scene.center_in_frame[0]).abs() < 0.2);
    assert!((c[1].as_f64().unwrap() - scene.center_in_frame[1]).abs() < 0.2);
    let r = found["cladding_radius_px"].as_f64().unwrap();
    assert!((r - scene.radius_px()).abs() < 0.01 * scene.radius_px());
    assert!(found["confidence"].as_f64().unwrap() > 0.5);
    assert!(found["focus"].as_f64().unwrap() > 0.0);
    assert!(found.get("error").is_none());

    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("cladding not found"));
    assert!(lines[2]["error"].as_str().unwrap().contains("no such file"));
    // Every image was tried; the first input problem sets the exit code (3: input I/O).
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn human_output_corrupt_image_and_bad_option() {
    let dir = tempfile::tempdir().unwrap();
    let scene = Scene::simple(Look::BrightFiber, Fiber::Sm);
    let fiber = dir.path().join("fiber.png");
    scene.render().save(&fiber).unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n not really").unwrap();

    let out = endface()
        .arg("locate")
        .args([&fiber, &corrupt])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("center (") && lines[0].contains("confidence"));
    assert!(lines[1].contains("error") && lines[1].contains("not a decodable image"));
    assert_eq!(out.status.code(), Some(4));

    let out = endface()
        .arg("locate")
        .args(["--aspect", "0"])
        .arg(&fiber)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("endface: error:") && stderr.contains("aspect_y_over_x"));
}
