//! `endface locate IMAGE...`: find the cladding circle in each image.
//!
//! In: image files (PNG/JPEG/BMP, color converted to gray), an optional calibration
//! (`--um-per-px`, `--aspect`). Out: one line per image on stdout — with `--json` one JSON
//! object `{"image", "center", "cladding_radius_px", "radius_y_px", "confidence", "focus"}` or
//! `{"image", "error"}` — else a human-readable line. An image that cannot be located is a
//! result (an `error` line), not a failure; an image that cannot be read or decoded is
//! reported the same way and makes the exit code that of the first such input problem
//! (`imageio::exit_code`: input I/O, bad or unsupported image), after every image was tried.

use anyhow::Context;
use endface::error::{coded, exit};
use endface::geometry::PixelScale;
use endface::imageio;
use endface::locate::{LocateConfig, Located, Locator};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Images to search (PNG, JPEG or BMP; color is converted to gray).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Print one JSON object per image per line.
    #[arg(long)]
    pub json: bool,
    /// Calibrated µm per pixel along x: the cladding (125 µm) is then searched at its
    /// expected size only.
    #[arg(long, value_name = "X")]
    pub um_per_px: Option<f64>,
    /// Pixel aspect y/x: how many times taller than wide a round fiber looks (1.09 on PAL
    /// frame grabbers).
    #[arg(long, value_name = "Y", default_value_t = 1.0)]
    pub aspect: f64,
    /// Refuse results below this confidence (0..1; default from the locate config).
    #[arg(long, value_name = "C")]
    pub min_confidence: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let mut cfg = match args.um_per_px {
        Some(x) => LocateConfig::with_scale(PixelScale {
            um_per_px_x: x,
            um_per_px_y: x / args.aspect,
        }),
        None => LocateConfig {
            aspect_y_over_x: args.aspect,
            ..LocateConfig::default()
        },
    };
    if let Some(c) = args.min_confidence {
        cfg.min_confidence = c;
    }
    let mut locator = Locator::new(cfg).map_err(|e| coded(exit::USAGE, e))?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut code = 0u8;
    for path in &args.images {
        let line = match imageio::load_gray(path) {
            Ok(img) => {
                let result = locator.locate(&img);
                tracing::debug!(image = %path.display(), ?result, "located");
                match result {
                    Ok(l) => render_ok(path, &l, args.json),
                    Err(e) => render_err(path, &e.to_string(), args.json),
                }
            }
            Err(e) => {
                if code == 0 {
                    code = imageio::exit_code(&e);
                }
                render_err(path, &e.to_string(), args.json)
            }
        };
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(code)
}

fn render_ok(path: &Path, l: &Located, json: bool) -> String {
    if json {
        json!({
            "image": path.display().to_string(),
            "center": [round3(l.center_in_frame[0]), round3(l.center_in_frame[1])],
            "cladding_radius_px": round3(l.cladding_radius_px),
            "radius_y_px": round3(l.radius_y_px),
            "confidence": round3(l.confidence),
            "focus": round3(l.focus),
        })
        .to_string()
    } else {
        format!(
            "{}: center ({:.2}, {:.2}) px, cladding radius {:.2} px (y {:.2} px), confidence \
             {:.2}, focus {:.3}",
            path.display(),
            l.center_in_frame[0],
            l.center_in_frame[1],
            l.cladding_radius_px,
            l.radius_y_px,
            l.confidence,
            l.focus
        )
    }
}

fn render_err(path: &Path, msg: &str, json: bool) -> String {
    if json {
        json!({ "image": path.display().to_string(), "error": msg }).to_string()
    } else {
        format!("{}: error: {msg}", path.display())
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
