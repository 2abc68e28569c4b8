//! Property tests for src/metrics.rs against brute-force definitions.

use endface::metrics::{label_components, roc_auc, BinnedPixelCurves, PixelCurves};
use proptest::prelude::*;

/// Brute-force 8-connected labelling by flood fill, numbered in raster order.
fn flood_labels(mask: &[u8], w: usize, h: usize) -> (usize, Vec<u32>) {
    let mut labels = vec![0u32; w * h];
    let mut n = 0;
    for start in 0..w * h {
        if mask[start] == 0 || labels[start] != 0 {
            continue;
        }
        n += 1;
        let mut stack = vec![start];
        labels[start] = n as u32;
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] != 0 && labels[j] == 0 {
                        labels[j] = n as u32;
                        stack.push(j);
                    }
                }
            }
        }
    }
    (n, labels)
}

fn brute_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (i, &si) in scores.iter().enumerate() {
        for (j, &sj) in scores.iter().enumerate() {
            if labels[i] && !labels[j] {
                den += 1.0;
                num += if si > sj {
                    1.0
                } else if si == sj {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    num / den
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn labelling_equals_flood_fill(
        w in 1usize..24, h in 1usize..24, density in 0.0f64..0.8, blank in 0.0f64..0.9,
        seed in any::<u64>(),
    ) {
        // A cheap LCG mask so that the density parameter shapes it; whole rows left empty with
        // probability `blank` (the labelling skips empty rows).
        let mut s = seed | 1;
        let mut next = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut mask: Vec<u8> = (0..w * h).map(|_| u8::from(next() < density)).collect();
        for row in mask.chunks_exact_mut(w) {
            if next() < blank {
                row.fill(0);
            }
        }
        // a buffer left dirty by a larger mask first
        let mut labels = vec![7u32; 2 * w * h + 3];
        let n = label_components(&mask, w, h, &mut labels);
        let (n2, l2) = flood_labels(&mask, w, h);
        prop_assert_eq!(n, n2);
        prop_assert_eq!(labels, l2);
    }

    #[test]
    fn auroc_equals_pair_counting(
        data in prop::collection::vec((0u8..12, any::<bool>()), 2..80),
    ) {
        let scores: Vec<f64> = data.iter().map(|(s, _)| *s as f64 / 4.0).collect();
        let labels: Vec<bool> = data.iter().map(|(_, l)| *l).collect();
        let both = labels.iter().any(|&l| l) && labels.iter().any(|&l| !l);
        let got = roc_auc(&scores, &labels);
        prop_assert_eq!(got.is_ok(), both);
        if both {
            let want = brute_auc(&scores, &labels);
            prop_assert!((got.unwrap() - want).abs() < 1e-12);
            // The pixel accumulators agree with the image version on the same numbers.
            let s32: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
            let gt: Vec<u8> = labels.iter().map(|&l| u8::from(l)).collect();
            let mut exact = PixelCurves::new();
            exact.push(&s32, &gt, None, s32.len(), 1).unwrap();
            prop_assert!((exact.auroc().unwrap() - want).abs() < 1e-12);
            let mut binned = BinnedPixelCurves::new(0.0, 3.0, 1024).unwrap();
            binned.push(&s32, &gt, None, s32.len(), 1).unwrap();
            let (b, bound) = binned.auroc().unwrap();
            prop_assert!((b - want).abs() <= bound + 1e-12);
        }
    }
}
