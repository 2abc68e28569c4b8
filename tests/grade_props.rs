//! Property tests: grading is monotone (adding a feature never turns FAIL into PASS, and a
//! feature that failed keeps failing), order-independent, and PASS iff no feature fails.

use endface::grade::{grade, Feature, FeatureKind, Profile, Verdict};
use proptest::prelude::*;

fn feature() -> impl Strategy<Value = Feature> {
    (
        prop_oneof![Just(FeatureKind::Scratch), Just(FeatureKind::Defect)],
        // Bias sizes towards the class boundaries.
        prop_oneof![
            0.0..40.0f64,
            prop::sample::select(vec![2.0, 3.0, 5.0, 10.0, 20.0, 30.0]),
        ],
        0.0..140.0f64,
    )
        .prop_map(|(kind, size_um, inner_radius_um)| Feature {
            kind,
            size_um,
            inner_radius_um,
        })
}

fn profile() -> impl Strategy<Value = Profile> {
    prop::sample::select(vec!["sm-upc", "sm-apc", "mm"])
        .prop_map(|n| Profile::builtin(n).expect("builtin"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn adding_a_feature_is_monotone(
        pr in profile(),
        base in prop::collection::vec(feature(), 0..12),
        extra in feature(),
        at in 0usize..13,
    ) {
        let before = grade(&pr, &base);
        let mut more = base.clone();
        let at = at.min(more.len());
        more.insert(at, extra);
        let after = grade(&pr, &more);
        prop_assert!(before.verdict != Verdict::Unable && after.verdict != Verdict::Unable);
        if before.verdict == Verdict::Fail {
            prop_assert_eq!(after.verdict, Verdict::Fail);
        }
        if after.verdict == Verdict::Pass {
            prop_assert_eq!(before.verdict, Verdict::Pass);
        }
        // Every feature that failed before still fails.
        for (i, g) in before.per_feature.iter().enumerate() {
            let j = if i < at { i } else { i + 1 };
            prop_assert!(!g.fails || after.per_feature[j].fails);
            prop_assert_eq!(g.zone, after.per_feature[j].zone);
        }
    }

    #[test]
    fn order_does_not_matter_and_pass_iff_nothing_fails(
        pr in profile(),
        mut fs in prop::collection::vec(feature(), 0..15),
    ) {
        let a = grade(&pr, &fs);
        prop_assert_eq!(a.verdict == Verdict::Pass, !a.per_feature.iter().any(|f| f.fails));
        prop_assert_eq!(a.verdict == Verdict::Pass, a.reasons.is_empty());
        fs.reverse();
        let b = grade(&pr, &fs);
        prop_assert_eq!(a.verdict, b.verdict);
        let mut ra = a.reasons.clone();
        let mut rb = b.reasons.clone();
        ra.sort();
        rb.sort();
        prop_assert_eq!(ra, rb);
    }
}
