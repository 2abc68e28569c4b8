//! Optional status display on the Linux framebuffer, drawn with embedded-graphics.
//!
//! In: `[display] framebuffer` and a [`Status`] after every result (newest only). Out: the
//! latest frame (scaled to fit, framed in the verdict's colour), the verdict in large letters,
//! READY, and the counts, written to `/dev/fbN` in its pixel format (16-bit RGB565 or 32-bit
//! XRGB, read from sysfs). Rendering is pure ([`render`]) and tested without a screen.

use super::Verdict;
use crate::capture::InvalidKey;
use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X13};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::Text;
use image::GrayImage;
use serde::{Deserialize, Serialize};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `[display]`.
///
/// ```toml
/// [display]
/// framebuffer = "/dev/fb0"   # absent: no display
/// refresh_ms = 250           # at most one redraw per this interval
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    pub framebuffer: Option<PathBuf>,
    pub refresh_ms: u64,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            framebuffer: None,
            refresh_ms: 250,
        }
    }
}

impl DisplayConfig {
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if !(10..=60_000).contains(&self.refresh_ms) {
            return Err(InvalidKey::new(
                "display.refresh_ms",
                self.refresh_ms,
                "must be 10..=60000",
            ));
        }
        Ok(())
    }

    pub fn resolve_paths(&mut self, _base: &Path) {}
}

/// What the screen shows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub verdict: Option<Verdict>,
    pub reason: String,
    pub ready: bool,
    pub inspections: u64,
    pub pass: u64,
    pub fail: u64,
    pub unable: u64,
    pub frame: Option<GrayImage>,
}

/// An RGB drawing surface.
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<Rgb888>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![Rgb888::BLACK; width as usize * height as usize],
        }
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                self.pixels[p.y as usize * self.width as usize + p.x as usize] = c;
            }
        }
        Ok(())
    }
}

fn verdict_colour(v: Option<Verdict>) -> Rgb888 {
    match v {
        Some(Verdict::Pass) => Rgb888::new(0, 200, 0),
        Some(Verdict::Fail) => Rgb888::new(230, 0, 0),
        Some(Verdict::Unable) => Rgb888::new(240, 170, 0),
        None => Rgb888::new(90, 90, 90),
    }
}

/// Draw a status screen: frame on the left (a square of the canvas height), text on the right.
pub fn render(status: &Status, canvas: &mut Canvas) {
    let infallible = |r: Result<(), core::convert::Infallible>| match r {
        Ok(()) => (),
        Err(never) => match never {},
    };
    infallible(canvas.clear(Rgb888::BLACK));
    let colour = verdict_colour(status.verdict);
    let side = canvas.height.min(canvas.width * 2 / 3);
    let border = 4u32;
    infallible(
        Rectangle::new(Point::zero(), Size::new(side, side))
            .into_styled(PrimitiveStyle::with_fill(colour))
            .draw(canvas),
    );
    if let Some(frame) = &status.frame {
        let inner = side.saturating_sub(2 * border);
        if inner > 0 && frame.width() > 0 && frame.height() > 0 {
            let scale =
                (frame.width() as f64 / inner as f64).max(frame.height() as f64 / inner as f64);
            let (w, h) = (
                (frame.width() as f64 / scale) as u32,
                (frame.height() as f64 / scale) as u32,
            );
            let (ox, oy) = (
                border + (inner - w.min(inner)) / 2,
                border + (inner - h.min(inner)) / 2,
            );
            for y in 0..h.min(inner) {
                let sy = ((y as f64 * scale) as u32).min(frame.height() - 1);
                for x in 0..w.min(inner) {
                    let sx = ((x as f64 * scale) as u32).min(frame.width() - 1);
                    let g = frame.get_pixel(sx, sy).0[0];
                    let i = (oy + y) as usize * canvas.width as usize + (ox + x) as usize;
                    canvas.pixels[i] = Rgb888::new(g, g, g);
                }
            }
        }
    }
    let x = side as i32 + 12;
    let big = MonoTextStyle::new(&FONT_10X20, colour);
    let small = MonoTextStyle::new(&FONT_6X13, Rgb888::WHITE);
    let verdict = status
        .verdict
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into());
    infallible(
        Text::new(&verdict, Point::new(x, 28), big)
            .draw(canvas)
            .map(|_| ()),
    );
    let ready = MonoTextStyle::new(
        &FONT_10X20,
        if status.ready {
            Rgb888::new(0, 200, 0)
        } else {
            Rgb888::new(230, 0, 0)
        },
    );
    let ready_text = if status.ready { "READY" } else { "NOT READY" };
    infallible(
        Text::new(ready_text, Point::new(x, 56), ready)
            .draw(canvas)
            .map(|_| ()),
    );
    let lines = [
        format!("inspected {}", status.inspections),
        format!("pass   {}", status.pass),
        format!("fail   {}", status.fail),
        format!("unable {}", status.unable),
    ];
    for (i, line) in lines.iter().enumerate() {
        let p = Point::new(x, 84 + 16 * i as i32);
        infallible(Text::new(line, p, small).draw(canvas).map(|_| ()));
    }
    let reason: String = status
        .reason
        .chars()
        .take(((canvas.width as i32 - x) / 6).max(0) as usize)
        .collect();
    infallible(
        Text::new(&reason, Point::new(x, 160), small)
            .draw(canvas)
            .map(|_| ()),
    );
}

/// A Linux framebuffer device.
pub struct Framebuffer {
    path: PathBuf,
    file: std::fs::File,
    width: u32,
    height: u32,
    bits_per_pixel: u32,
    stride_bytes: u32,
    bytes: Vec<u8>,
}

fn sysfs_value(dir: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(dir.join(name))
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", dir.join(name).display()))
}

impl Framebuffer {
    /// Open `/dev/fbN` and read its geometry from `/sys/class/graphics/fbN`.
    pub fn open(path: &Path) -> Result<Framebuffer, String> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{}: not a framebuffer device path", path.display()))?;
        let sys = Path::new("/sys/class/graphics").join(&name);
        let size = sysfs_value(&sys, "virtual_size")?;
        let (w, h) = size
            .split_once(',')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
            .ok_or_else(|| format!("{}: cannot parse virtual_size {size:?}", sys.display()))?;
        let bpp: u32 = sysfs_value(&sys, "bits_per_pixel")?
            .parse()
            .map_err(|_| format!("{}: bad bits_per_pixel", sys.display()))?;
        if bpp != 16 && bpp != 32 {
            return Err(format!(
                "{}: {bpp} bits per pixel not supported (16 or 32)",
                path.display()
            ));
        }
        let stride: u32 = sysfs_value(&sys, "stride")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(w * bpp / 8);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Framebuffer {
            path: path.to_path_buf(),
            file,
            width: w,
            height: h,
            bits_per_pixel: bpp,
            stride_bytes: stride,
            bytes: vec![0; stride as usize * h as usize],
        })
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Write a canvas of the framebuffer's size.
    pub fn show(&mut self, canvas: &Canvas) -> Result<(), String> {
        let w = self.width.min(canvas.width) as usize;
        let h = self.height.min(canvas.height) as usize;
        for y in 0..h {
            let row = &mut self.bytes[y * self.stride_bytes as usize..];
            for x in 0..w {
                let c = canvas.pixels[y * canvas.width as usize + x];
                if self.bits_per_pixel == 16 {
                    let v: u16 = ((c.r() as u16 >> 3) << 11)
                        | ((c.g() as u16 >> 2) << 5)
                        | (c.b() as u16 >> 3);
                    row[2 * x..2 * x + 2].copy_from_slice(&v.to_le_bytes());
                } else {
                    row[4 * x..4 * x + 4].copy_from_slice(&[c.b(), c.g(), c.r(), 0xff]);
                }
            }
        }
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(&self.bytes))
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_verdict_colour_and_frame() {
        let mut c = Canvas::new(320, 200);
        let status = Status {
            verdict: Some(Verdict::Fail),
            reason: "zone A: scratch".into(),
            ready: true,
            inspections: 3,
            pass: 2,
            fail: 1,
            unable: 0,
            frame: Some(GrayImage::from_pixel(64, 48, image::Luma([128]))),
        };
        render(&status, &mut c);
        // Border in FAIL red, frame gray inside.
        assert_eq!(c.pixels[0], Rgb888::new(230, 0, 0));
        let mid = 100 * 320 + 100;
        assert_eq!(c.pixels[mid], Rgb888::new(128, 128, 128));
        // Some text was drawn to the right of the frame.
        let right_side = c
            .pixels
            .iter()
            .enumerate()
            .filter(|(i, p)| (*i % 320) > 210 && **p != Rgb888::BLACK)
            .count();
        assert!(right_side > 50, "{right_side}");
    }
}
