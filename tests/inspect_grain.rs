//! `[model] ferrule_grain` with the shipped model on a frame from the third renderer
//! (`tests/fixtures/third-render-seed1-good-0002.jpg` is `test/good/0002.jpg` of
//! `.venv/bin/python scripts/third_render.py --out DIR --seed 1 --good 50 --per-kind 30`: a good
//! single-mode part, 640x480 analog look, 0.61741 µm/px, fiber axis at (399.93, 273.65)). The
//! model marks a 10.6 µm blob of the ferrule's mottling in zone D — a FAIL without the pass — and
//! the part passes with it, the grain and the spot taken out reported; a 12 µm particle 60 grey
//! levels dark painted into zone D still fails.

mod common;

use common::*;
use endface::grade::{Profile, Verdict, Zone};
use endface::inspect::Inspector;
use image::GrayImage;

const UM_PER_PX: f64 = 0.61741;
const CENTER: [f64; 2] = [399.93, 273.65];

fn frame() -> GrayImage {
    image::open(fixture("third-render-seed1-good-0002.jpg"))
        .unwrap()
        .to_luma8()
}

fn inspector(grain: bool) -> Inspector {
    let mut cfg = shipped_station();
    cfg.model.ferrule_grain = grain;
    cfg.calibration.um_per_px_x = UM_PER_PX;
    cfg.calibration.um_per_px_y = UM_PER_PX;
    Inspector::new(&cfg, Profile::builtin("sm-upc").unwrap()).unwrap()
}

#[test]
fn a_blob_of_ferrule_grain_in_zone_d_is_not_a_defect_and_a_particle_there_still_is() {
    let img = frame();
    // located by the station (its centre 2.9 px from the renderer's on this analog look)
    let off = inspector(false).inspect(&img).unwrap();
    assert_eq!(
        off.verdict,
        Verdict::Fail,
        "the model marks the grain: {off:?}"
    );
    assert!(
        off.defects
            .iter()
            .any(|d| d.fails && d.zone == Some(Zone::D) && d.size_um >= 10.0),
        "{off:?}"
    );
    assert_eq!(off.ferrule_grain, None);
    let c = off.center.unwrap();
    assert!((c[0] - CENTER[0]).hypot(c[1] - CENTER[1]) < 5.0, "{c:?}");

    let on = inspector(true).inspect(&img).unwrap();
    assert_eq!(on.verdict, Verdict::Pass, "{on:?}");
    assert!(on.grain_spots >= 1, "{on:?}");
    let grain = on.ferrule_grain.unwrap();
    assert!(grain > 0.5 && grain < 10.0, "grain {grain} grey levels");
    // the map and the image score are left as they were
    assert_eq!(on.image_score, off.image_score);

    // a dark particle 12 µm across, 95 µm left of the axis (zone D): still a defect
    let mut dusty = img.clone();
    let c = [CENTER[0] - 95.0 / UM_PER_PX, CENTER[1]];
    for (x, y, p) in dusty.enumerate_pixels_mut() {
        let r = (x as f64 - c[0]).hypot(y as f64 - c[1]) * UM_PER_PX;
        let w = ((6.0 - r) / 0.6 + 0.5).clamp(0.0, 1.0);
        p.0[0] = (p.0[0] as f64 - 60.0 * w).round().clamp(0.0, 255.0) as u8;
    }
    let r = inspector(true).inspect(&dusty).unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    assert!(
        r.defects
            .iter()
            .any(|d| d.fails && d.zone == Some(Zone::D) && d.size_um >= 10.0),
        "{r:?}"
    );
}
