mod locate_render;
use endface::geometry::PixelScale;
use endface::locate::{LocateConfig, Locator};
use locate_render::Scene;

#[test]
#[ignore]
fn debug_seed() {
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let scene = Scene::random(seed);
    eprintln!("{scene:?}\ntruth r={:.2}", scene.radius_px());
    let img = scene.render();
    img.save(format!("/tmp/locdbg_{seed}.png")).unwrap();
    let cfg = LocateConfig::with_scale(PixelScale { um_per_px_x: scene.um_per_px_x, um_per_px_y: scene.um_per_px_y() });
    let mut l = Locator::new(cfg).unwrap();
    let r = l.locate(&img);
    eprintln!("{r:?}\n{:?}", l.last_diagnostics());
}

#[test]
#[ignore]
fn debug_table() {
    let n: u64 = std::env::var("N").map(|v| v.parse().unwrap()).unwrap_or(60);
    println!("seed look fiber upx blur noise epoxy mix rin rout rimw fit_err_um shift_um final_err_um conf");
    for seed in 5000..5000 + n {
        let scene = Scene::random(seed);
        let img = scene.render();
        let cfg = LocateConfig::with_scale(PixelScale { um_per_px_x: scene.um_per_px_x, um_per_px_y: scene.um_per_px_y() });
        let mut l = Locator::new(cfg).unwrap();
        let r = l.locate(&img);
        let d = l.last_diagnostics().copied();
        let u = scene.um_per_px_x;
        eprintln!("TRUTH {{\"seed\": {seed}, \"r\": {}, \"upx\": {u}, \"blur\": {}, \"soft\": {}, \"epoxy\": {}, \"mix\": {}, \"rin\": {}, \"rout\": {}, \"rimw\": {}}}", scene.radius_px(), scene.blur_px, scene.edge_softness_um, scene.epoxy_um, scene.epoxy_mix, scene.inner_rim, scene.outer_rim, scene.rim_width_um);
        let (fe, sh, fin, conf) = match (r, d) {
            (Ok(l), Some(d)) => ((d.fitted_radius_px - scene.radius_px()) * u, d.radius_shift_px * u, (l.cladding_radius_px - scene.radius_px()) * u, l.confidence),
            (_, Some(d)) => ((d.fitted_radius_px - scene.radius_px()) * u, d.radius_shift_px * u, f64::NAN, 0.0),
            _ => (f64::NAN, f64::NAN, f64::NAN, 0.0),
        };
        println!("{seed} {:?} {:?} {:.2} {:.1} {:.1} {:.1} {:.2} {:.0} {:.0} {:.2} {fe:.2} {sh:.2} {fin:.2} {conf:.2}",
            scene.look, scene.fiber, u, scene.blur_px, scene.noise, scene.epoxy_um, scene.epoxy_mix, scene.inner_rim, scene.outer_rim, scene.rim_width_um);
    }
}
