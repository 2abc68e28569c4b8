//! IEC 61300-3-35 grading: features in, verdict out.
//!
//! In: a [`Profile`] (zone diameters and per-zone scratch/defect limits, loaded from a TOML
//! file under `firmware-config/profiles/` or one of the built-in copies) and a list of
//! [`Feature`]s — each a scratch or a defect with its size in µm and the distance in µm from the
//! fiber axis to its closest point. Out: a [`Grade`] — PASS / FAIL / UNABLE, human-readable
//! reasons naming zone, class and count vs limit, and a per-feature zone and fail flag.
//!
//! The acceptance criteria are data, not code. Each zone lists, for scratches and for defects,
//! a sorted set of *size bands* that together cover every size from 0 µm up; each band states
//! its bounds with explicit inclusivity and how many features may fall in it:
//!
//! ```toml
//! [zones.B]
//! label = "cladding"
//! outer_diameter_um = 115.0
//! scratches = [
//!   { size_um = "<= 3", max_count = "unlimited" },
//!   { size_um = "> 3", max_count = 0 },
//! ]
//! defects = [
//!   { size_um = "< 2", max_count = "unlimited" },
//!   { size_um = "[2, 5]", max_count = 5 },
//!   { size_um = "> 5", max_count = 0 },
//! ]
//! ```
//!
//! `size_um` is one of `"any"`, `"< X"`, `"<= X"`, `"> X"`, `">= X"` (also `≤`, `≥`), or an
//! interval `"[X, Y]"`, `"[X, Y)"`, `"(X, Y]"`, `"(X, Y)"` (`Y` may be `inf`). `max_count` is a
//! non-negative integer or `"unlimited"`. A profile whose bands overlap, leave a gap, are not
//! sorted, or whose zone diameters do not increase is refused with the file, key and problem.
//!
//! Zones are judged on `inner_radius_um`: a feature belongs to the innermost zone it touches
//! (a radius exactly on a boundary belongs to the inner zone). Nothing beyond zone D's outer
//! diameter is graded. UNABLE is never PASS: use [`check_gradable`] before grading a frame and
//! [`unable`] whenever the inputs cannot be trusted.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Errors loading or resolving a grading profile.
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    /// The profile file could not be read.
    #[error("cannot read grading profile {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("grading profile {origin}: not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    /// A key is missing, unknown, of the wrong type, or its value is not acceptable.
    #[error("grading profile {origin}: key `{key}`: {problem}")]
    Invalid {
        origin: String,
        key: String,
        problem: String,
    },
    /// No file, search-directory entry or built-in profile has this name.
    #[error("unknown grading profile `{name}`; known profiles: {}; or give a path to a .toml file", known.join(", "))]
    UnknownProfile { name: String, known: Vec<String> },
}

/// Scratch (linear feature; size = width) or defect (anything else; size = diameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    Scratch,
    Defect,
}

impl FeatureKind {
    fn noun(self, count: usize) -> &'static str {
        match (self, count == 1) {
            (FeatureKind::Scratch, true) => "scratch",
            (FeatureKind::Scratch, false) => "scratches",
            (FeatureKind::Defect, true) => "defect",
            (FeatureKind::Defect, false) => "defects",
        }
    }
}

/// One feature found on the end face, in physical units around the fiber axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub kind: FeatureKind,
    /// Scratch width or defect diameter (µm).
    pub size_um: f64,
    /// Distance (µm) from the fiber axis to the feature's closest point; decides the zone.
    pub inner_radius_um: f64,
}

/// IEC 61300-3-35 zones, innermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Zone {
    A,
    B,
    C,
    D,
}

impl Zone {
    /// All zones, innermost first.
    pub const ALL: [Zone; 4] = [Zone::A, Zone::B, Zone::C, Zone::D];
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Zone::A => "A",
            Zone::B => "B",
            Zone::C => "C",
            Zone::D => "D",
        };
        f.write_str(s)
    }
}

/// A size interval in µm with explicit inclusivity; the upper bound may be unbounded.
///
/// Serialized as a string (`"<= 3"`, `"[2, 5]"`, `"> 5"`, `"any"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeRange {
    pub lo_um: f64,
    pub lo_inclusive: bool,
    /// `None` = unbounded above.
    pub hi_um: Option<f64>,
    pub hi_inclusive: bool,
}

impl SizeRange {
    /// Whether `size_um` lies in the range.
    pub fn contains(&self, size_um: f64) -> bool {
        let above_lo = if self.lo_inclusive {
            size_um >= self.lo_um
        } else {
            size_um > self.lo_um
        };
        let below_hi = match self.hi_um {
            None => true,
            Some(hi) if self.hi_inclusive => size_um <= hi,
            Some(hi) => size_um < hi,
        };
        above_lo && below_hi
    }

    fn starts_at_zero(&self) -> bool {
        self.lo_um == 0.0 && self.lo_inclusive
    }

    /// Human form used in reasons: "≤ 3 µm", "2–5 µm", "> 5 µm", "any size".
    pub fn label(&self) -> String {
        Label(self).to_string()
    }

    fn parse(text: &str) -> Result<SizeRange, String> {
        let t = text.trim();
        let number = |s: &str| -> Result<f64, String> {
            let s = s.trim();
            let v: f64 = s
                .parse()
                .map_err(|_| format!("`{s}` is not a number in size range `{text}`"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "bound `{s}` in size range `{text}` must be a finite number ≥ 0"
                ));
            }
            Ok(v)
        };
        if t.eq_ignore_ascii_case("any") {
            return Ok(SizeRange {
                lo_um: 0.0,
                lo_inclusive: true,
                hi_um: None,
                hi_inclusive: false,
            });
        }
        for (op, lo_inc, hi_inc, upper) in [
            ("<=", false, true, true),
            ("≤", false, true, true),
            (">=", true, false, false),
            ("≥", true, false, false),
            ("<", false, false, true),
            (">", false, false, false),
        ] {
            if let Some(rest) = t.strip_prefix(op) {
                let v = number(rest)?;
                return Ok(if upper {
                    SizeRange {
                        lo_um: 0.0,
                        lo_inclusive: true,
                        hi_um: Some(v),
                        hi_inclusive: hi_inc,
                    }
                } else {
                    SizeRange {
                        lo_um: v,
                        lo_inclusive: lo_inc,
                        hi_um: None,
                        hi_inclusive: false,
                    }
                });
            }
        }
        let open = t.chars().next();
        let close = t.chars().last();
        let lo_inclusive = match open {
            Some('[') => true,
            Some('(') => false,
            _ => return Err(format!("size range `{text}` is not one of `any`, `< X`, `<= X`, `> X`, `>= X`, `[X, Y]`, `[X, Y)`, `(X, Y]`, `(X, Y)`")),
        };
        let hi_inclusive = match close {
            Some(']') => true,
            Some(')') => false,
            _ => return Err(format!("size range `{text}` must end with `]` or `)`")),
        };
        // Both delimiters are single-byte ASCII, checked above.
        let inner = &t[1..t.len() - 1];
        let Some((a, b)) = inner.split_once(',') else {
            return Err(format!(
                "size range `{text}` needs two bounds separated by a comma"
            ));
        };
        let lo = number(a)?;
        let b = b.trim();
        let hi = if b.eq_ignore_ascii_case("inf") || b == "∞" {
            if hi_inclusive {
                return Err(format!(
                    "size range `{text}`: an infinite bound must be open `)`"
                ));
            }
            None
        } else {
            let hi = number(b)?;
            if hi < lo || (hi == lo && !(lo_inclusive && hi_inclusive)) {
                return Err(format!("size range `{text}` is empty"));
            }
            Some(hi)
        };
        Ok(SizeRange {
            lo_um: lo,
            lo_inclusive,
            hi_um: hi,
            hi_inclusive: hi_inclusive && hi.is_some(),
        })
    }
}

impl fmt::Display for SizeRange {
    /// Canonical file form: comparison shorthand where it applies, else interval notation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.starts_at_zero(), self.hi_um) {
            (true, None) => f.write_str("any"),
            (true, Some(hi)) => write!(
                f,
                "{} {}",
                if self.hi_inclusive { "<=" } else { "<" },
                Num(hi)
            ),
            (false, None) => write!(
                f,
                "{} {}",
                if self.lo_inclusive { ">=" } else { ">" },
                Num(self.lo_um)
            ),
            (false, Some(hi)) => write!(
                f,
                "{}{}, {}{}",
                if self.lo_inclusive { "[" } else { "(" },
                Num(self.lo_um),
                Num(hi),
                if self.hi_inclusive { "]" } else { ")" }
            ),
        }
    }
}

impl Serialize for SizeRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SizeRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SizeRange::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How many features a band allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    /// At most this many (0 = none allowed).
    Count(u32),
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Unlimited => s.serialize_str("unlimited"),
            Limit::Count(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count ≥ 0 or \"unlimited\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Limit, E> {
                u32::try_from(v)
                    .map(Limit::Count)
                    .map_err(|_| E::custom(format!("count {v} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Limit, E> {
                if v < 0 {
                    return Err(E::custom(format!(
                        "count {v} is negative; use 0 for none allowed"
                    )));
                }
                self.visit_u64(v as u64)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Limit, E> {
                if v == "unlimited" {
                    Ok(Limit::Unlimited)
                } else {
                    Err(E::custom(format!(
                        "`{v}` is not a count; use an integer ≥ 0 or \"unlimited\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One size band of a zone's scratch or defect table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeBand {
    pub size_um: SizeRange,
    pub max_count: Limit,
}

/// The rules of one zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRule {
    /// Free text ("core", "cladding", "adhesive", "contact").
    #[serde(default)]
    pub label: String,
    /// Outer diameter of the zone (µm), centred on the fiber axis.
    pub outer_diameter_um: f64,
    pub scratches: Vec<SizeBand>,
    pub defects: Vec<SizeBand>,
}

impl ZoneRule {
    fn bands(&self, kind: FeatureKind) -> &[SizeBand] {
        match kind {
            FeatureKind::Scratch => &self.scratches,
            FeatureKind::Defect => &self.defects,
        }
    }
}

/// The four zones of a profile, keyed "A".."D" in files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zones {
    #[serde(rename = "A")]
    pub a: ZoneRule,
    #[serde(rename = "B")]
    pub b: ZoneRule,
    #[serde(rename = "C")]
    pub c: ZoneRule,
    #[serde(rename = "D")]
    pub d: ZoneRule,
}

impl Zones {
    /// The rule for `zone`.
    pub fn get(&self, zone: Zone) -> &ZoneRule {
        match zone {
            Zone::A => &self.a,
            Zone::B => &self.b,
            Zone::C => &self.c,
            Zone::D => &self.d,
        }
    }
}

/// The unvalidated file form of a profile (what serde reads); see [`Profile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub zones: Zones,
}

/// A validated grading profile: zone diameters and scratch/defect rules per zone.
///
/// Deserializing a `Profile` (from JSON, say) validates it like [`Profile::from_toml_str`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ProfileSpec", into = "ProfileSpec")]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub zones: Zones,
}

impl From<Profile> for ProfileSpec {
    fn from(p: Profile) -> Self {
        ProfileSpec {
            name: p.name,
            description: p.description,
            zones: p.zones,
        }
    }
}

impl TryFrom<ProfileSpec> for Profile {
    type Error = GradeError;
    fn try_from(spec: ProfileSpec) -> Result<Self, GradeError> {
        validate(spec, "<serialized profile>")
    }
}

const BUILTINS: [(&str, &str); 3] = [
    (
        "sm-upc",
        include_str!("../firmware-config/profiles/sm-upc.toml"),
    ),
    (
        "sm-apc",
        include_str!("../firmware-config/profiles/sm-apc.toml"),
    ),
    ("mm", include_str!("../firmware-config/profiles/mm.toml")),
];

impl Profile {
    /// Names of the profiles compiled into the binary.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|(n, _)| *n).collect()
    }

    /// A built-in profile (`sm-upc`, `sm-apc`, `mm`), embedded from firmware-config/profiles.
    pub fn builtin(name: &str) -> Option<Profile> {
        let (n, text) = BUILTINS.iter().find(|(n, _)| *n == name)?;
        match Profile::from_toml_str(text, &format!("builtin:{n}")) {
            Ok(p) => Some(p),
            Err(e) => {
                // Cannot happen for a released binary (tests parse every builtin); if it does,
                // the profile is treated as unknown rather than graded with wrong rules.
                tracing::error!("{e}");
                None
            }
        }
    }

    /// Read and validate a profile file.
    pub fn from_toml_file(path: &Path) -> Result<Profile, GradeError> {
        let text = std::fs::read_to_string(path).map_err(|source| GradeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Profile::from_toml_str(&text, &path.display().to_string())
    }

    /// Parse and validate a profile; `origin` (a file name) is used in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Profile, GradeError> {
        let spec = parse_spec(text, origin)?;
        validate(spec, origin)
    }

    /// Resolve a profile by path or name.
    ///
    /// `name_or_path` is read as a file when it exists as a file or ends in `.toml`; otherwise
    /// `DIR/NAME.toml` is tried in each of `search_dirs` in order, then the built-ins. Anything
    /// else is [`GradeError::UnknownProfile`] listing the known names.
    pub fn resolve(name_or_path: &str, search_dirs: &[PathBuf]) -> Result<Profile, GradeError> {
        let as_path = Path::new(name_or_path);
        if as_path.is_file() || name_or_path.ends_with(".toml") {
            return Profile::from_toml_file(as_path);
        }
        let plain_name = !name_or_path.is_empty()
            && !name_or_path.contains(['/', '\\'])
            && name_or_path != "."
            && name_or_path != "..";
        if plain_name {
            for dir in search_dirs {
                let candidate = dir.join(format!("{name_or_path}.toml"));
                if candidate.is_file() {
                    return Profile::from_toml_file(&candidate);
                }
            }
            if let Some(p) = Profile::builtin(name_or_path) {
                return Ok(p);
            }
        }
        let mut known: Vec<String> = Profile::builtin_names()
            .into_iter()
            .map(String::from)
            .collect();
        for dir in search_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "toml") {
                    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                        known.push(stem.to_string());
                    }
                }
            }
        }
        known.sort();
        known.dedup();
        Err(GradeError::UnknownProfile {
            name: name_or_path.to_string(),
            known,
        })
    }

    /// The rule for a zone.
    pub fn rule(&self, zone: Zone) -> &ZoneRule {
        self.zones.get(zone)
    }

    /// The zone a point at `radius_um` from the fiber axis lies in; `None` beyond the contact
    /// zone (or for a non-finite radius). A radius exactly on a boundary belongs to the inner
    /// zone; negative radii are treated as 0.
    pub fn zone_of(&self, radius_um: f64) -> Option<Zone> {
        if radius_um.is_nan() {
            return None;
        }
        let r = radius_um.max(0.0);
        Zone::ALL
            .into_iter()
            .find(|&z| r <= self.zone_outer_radius_um(z))
    }

    /// Outer radius (µm) of a zone.
    pub fn zone_outer_radius_um(&self, zone: Zone) -> f64 {
        self.rule(zone).outer_diameter_um / 2.0
    }

    /// Radius (µm) of the contact zone (zone D): nothing beyond it is graded.
    pub fn contact_radius_um(&self) -> f64 {
        self.zone_outer_radius_um(Zone::D)
    }
}

/// Format a µm value compactly: up to 2 decimals, trailing zeros dropped.
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// [`num`] on the stack; `None` when the text is too long for the buffer (|v| ≥ 1e36).
fn num_buf(v: f64) -> Option<heapless::String<40>> {
    use fmt::Write;
    let mut b = heapless::String::<40>::new();
    write!(b, "{v:.2}").ok()?;
    let keep = b.trim_end_matches('0').trim_end_matches('.').len();
    b.truncate(keep);
    Some(b)
}

/// [`num`] as `Display`, without allocating (except for absurdly large values).
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match num_buf(self.0) {
            Some(b) => f.write_str(&b),
            None => f.write_str(&num(self.0)),
        }
    }
}

/// A feature size, formatted so that it never prints equal to a bound it lies strictly beyond.
struct SizeText<'a>(f64, &'a SizeRange);

impl fmt::Display for SizeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (size_um, band) = (self.0, self.1);
        let (Some(s), Some(lo)) = (num_buf(size_um), num_buf(band.lo_um)) else {
            return f.write_str(&size_text(size_um, band));
        };
        let hi = match band.hi_um {
            Some(h) => match num_buf(h) {
                Some(b) => Some((h, b)),
                None => return f.write_str(&size_text(size_um, band)),
            },
            None => None,
        };
        let clash =
            (band.lo_um != size_um && lo == s) || hi.is_some_and(|(h, hb)| h != size_um && hb == s);
        if clash {
            write!(f, "{size_um:.4}")
        } else {
            f.write_str(&s)
        }
    }
}

/// [`SizeRange::label`] as `Display`.
struct Label<'a>(&'a SizeRange);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        match (r.starts_at_zero(), r.hi_um) {
            (true, None) => f.write_str("any size"),
            (true, Some(hi)) => write!(
                f,
                "{} {} µm",
                if r.hi_inclusive { "≤" } else { "<" },
                Num(hi)
            ),
            (false, None) => write!(
                f,
                "{} {} µm",
                if r.lo_inclusive { "≥" } else { ">" },
                Num(r.lo_um)
            ),
            (false, Some(hi)) if r.lo_inclusive && r.hi_inclusive => {
                write!(f, "{}–{} µm", Num(r.lo_um), Num(hi))
            }
            (false, Some(_)) => write!(f, "{r} µm"),
        }
    }
}

/// Format a feature size so that it never prints equal to a bound it lies strictly beyond
/// (the allocating reference form of [`SizeText`]).
fn size_text(size_um: f64, band: &SizeRange) -> String {
    let s = num(size_um);
    let bounds = [Some(band.lo_um), band.hi_um];
    if bounds
        .iter()
        .flatten()
        .any(|&b| b != size_um && num(b) == s)
    {
        format!("{size_um:.4}")
    } else {
        s
    }
}

fn invalid(origin: &str, key: impl Into<String>, problem: impl Into<String>) -> GradeError {
    GradeError::Invalid {
        origin: origin.to_string(),
        key: key.into(),
        problem: problem.into(),
    }
}

/// Parse the TOML into a [`ProfileSpec`], level by level so that every error names its key
/// path (`zones.B.defects[1].max_count`).
fn parse_spec(text: &str, origin: &str) -> Result<ProfileSpec, GradeError> {
    let root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| GradeError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim().replace('\n', " | "),
        })?;
    check_keys(&root, &["name", "description", "zones"], "", origin)?;
    let name = match root.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                origin,
                "name",
                format!("expected a string, found {}", other.type_str()),
            ))
        }
        None => return Err(invalid(origin, "name", "missing")),
    };
    let description = match root.get("description") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                origin,
                "description",
                format!("expected a string, found {}", other.type_str()),
            ))
        }
        None => String::new(),
    };
    let zones = match root.get("zones") {
        Some(toml::Value::Table(t)) => t,
        Some(other) => {
            return Err(invalid(
                origin,
                "zones",
                format!("expected a table, found {}", other.type_str()),
            ))
        }
        None => {
            return Err(invalid(
                origin,
                "zones",
                "missing: add [zones.A], [zones.B], [zones.C] and [zones.D]",
            ))
        }
    };
    check_keys(zones, &["A", "B", "C", "D"], "zones", origin)?;
    let mut rules = Vec::with_capacity(4);
    for zone in Zone::ALL {
        let key = format!("zones.{zone}");
        let table = match zones.get(&zone.to_string()) {
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                return Err(invalid(
                    origin,
                    key,
                    format!("expected a table, found {}", other.type_str()),
                ))
            }
            None => return Err(invalid(origin, key, format!("missing: add [zones.{zone}]"))),
        };
        rules.push(parse_zone(table, &key, origin)?);
    }
    let mut it = rules.into_iter();
    // infallible: exactly four rules were pushed above (or we returned early).
    let (Some(a), Some(b), Some(c), Some(d)) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(invalid(origin, "zones", "internal: expected four zones"));
    };
    Ok(ProfileSpec {
        name,
        description,
        zones: Zones { a, b, c, d },
    })
}

fn check_keys(
    table: &toml::Table,
    allowed: &[&str],
    at: &str,
    origin: &str,
) -> Result<(), GradeError> {
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            return Err(invalid(
                origin,
                path,
                format!("unknown key; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn parse_zone(table: &toml::Table, key: &str, origin: &str) -> Result<ZoneRule, GradeError> {
    check_keys(
        table,
        &["label", "outer_diameter_um", "scratches", "defects"],
        key,
        origin,
    )?;
    let label = match table.get("label") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                origin,
                format!("{key}.label"),
                format!("expected a string, found {}", other.type_str()),
            ))
        }
        None => String::new(),
    };
    let outer_diameter_um = match table.get("outer_diameter_um") {
        Some(toml::Value::Float(f)) => *f,
        Some(toml::Value::Integer(i)) => *i as f64,
        Some(other) => {
            return Err(invalid(
                origin,
                format!("{key}.outer_diameter_um"),
                format!("expected a number (µm), found {}", other.type_str()),
            ))
        }
        None => {
            return Err(invalid(
                origin,
                format!("{key}.outer_diameter_um"),
                "missing",
            ))
        }
    };
    let scratches = parse_bands(table, "scratches", key, origin)?;
    let defects = parse_bands(table, "defects", key, origin)?;
    Ok(ZoneRule {
        label,
        outer_diameter_um,
        scratches,
        defects,
    })
}

fn parse_bands(
    table: &toml::Table,
    field: &str,
    zone_key: &str,
    origin: &str,
) -> Result<Vec<SizeBand>, GradeError> {
    let key = format!("{zone_key}.{field}");
    let items = match table.get(field) {
        Some(toml::Value::Array(a)) => a,
        Some(other) => {
            return Err(invalid(
                origin,
                key,
                format!("expected an array of {{ size_um, max_count }} tables, found {}", other.type_str()),
            ))
        }
        None => {
            return Err(invalid(
                origin,
                key,
                "missing: list size bands covering every size, e.g. [{ size_um = \"any\", max_count = \"unlimited\" }]",
            ))
        }
    };
    let mut bands = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_key = format!("{key}[{i}]");
        let toml::Value::Table(t) = item else {
            return Err(invalid(
                origin,
                item_key,
                format!(
                    "expected a {{ size_um, max_count }} table, found {}",
                    item.type_str()
                ),
            ));
        };
        check_keys(t, &["size_um", "max_count"], &item_key, origin)?;
        let size_um = match t.get("size_um") {
            Some(v) => SizeRange::deserialize(v.clone()).map_err(|e| {
                invalid(
                    origin,
                    format!("{item_key}.size_um"),
                    e.message().to_string(),
                )
            })?,
            None => return Err(invalid(origin, format!("{item_key}.size_um"), "missing")),
        };
        let max_count = match t.get("max_count") {
            Some(v) => Limit::deserialize(v.clone()).map_err(|e| {
                invalid(
                    origin,
                    format!("{item_key}.max_count"),
                    e.message().to_string(),
                )
            })?,
            None => {
                return Err(invalid(
                    origin,
                    format!("{item_key}.max_count"),
                    "missing: give a count (0 = none allowed) or \"unlimited\"",
                ))
            }
        };
        bands.push(SizeBand { size_um, max_count });
    }
    Ok(bands)
}

/// Check the semantic rules and turn a spec into a profile.
fn validate(spec: ProfileSpec, origin: &str) -> Result<Profile, GradeError> {
    if spec.name.trim().is_empty() {
        return Err(invalid(origin, "name", "must not be empty"));
    }
    let mut prev_d: Option<(Zone, f64)> = None;
    for zone in Zone::ALL {
        let rule = spec.zones.get(zone);
        let d = rule.outer_diameter_um;
        let key = format!("zones.{zone}.outer_diameter_um");
        if !d.is_finite() || d <= 0.0 {
            return Err(invalid(
                origin,
                key,
                format!("must be a finite diameter > 0 µm, got {d}"),
            ));
        }
        if let Some((pz, pd)) = prev_d {
            if d <= pd {
                return Err(invalid(
                    origin,
                    key,
                    format!("zone diameters must increase: zone {zone} ({} µm) is not larger than zone {pz} ({} µm)", num(d), num(pd)),
                ));
            }
        }
        prev_d = Some((zone, d));
        for (field, bands) in [("scratches", &rule.scratches), ("defects", &rule.defects)] {
            validate_bands(bands, &format!("zones.{zone}.{field}"), origin)?;
        }
    }
    Ok(Profile {
        name: spec.name,
        description: spec.description,
        zones: spec.zones,
    })
}

/// Bands must be sorted, non-overlapping, without gaps, start at 0 µm inclusive and end
/// unbounded, so that every size falls in exactly one band.
fn validate_bands(bands: &[SizeBand], key: &str, origin: &str) -> Result<(), GradeError> {
    let Some(first) = bands.first() else {
        return Err(invalid(
            origin,
            key,
            "no size bands: list bands covering every size from 0 µm up (e.g. size_um = \"any\")",
        ));
    };
    if !first.size_um.starts_at_zero() {
        return Err(invalid(
            origin,
            format!("{key}[0].size_um"),
            format!(
                "the first band `{}` must start at 0 µm inclusive so that every size is covered",
                first.size_um
            ),
        ));
    }
    for (i, pair) in bands.windows(2).enumerate() {
        let (a, b) = (&pair[0].size_um, &pair[1].size_um);
        let bkey = format!("{key}[{}].size_um", i + 1);
        let Some(a_hi) = a.hi_um else {
            return Err(invalid(
                origin,
                bkey,
                format!("band `{b}` comes after `{a}`, which is unbounded: bands overlap"),
            ));
        };
        if b.lo_um < a_hi || (b.lo_um == a_hi && a.hi_inclusive && b.lo_inclusive) {
            let what = if b.lo_um < a.lo_um {
                "bands are not sorted by size"
            } else {
                "bands overlap"
            };
            return Err(invalid(
                origin,
                bkey,
                format!("{what}: `{b}` starts inside `{a}`"),
            ));
        }
        if b.lo_um > a_hi || (!a.hi_inclusive && !b.lo_inclusive) {
            return Err(invalid(
                origin,
                bkey,
                format!(
                    "gap between `{a}` and `{b}`: sizes at {} µm fall in no band",
                    if b.lo_um > a_hi {
                        format!("{}–{}", num(a_hi), num(b.lo_um))
                    } else {
                        num(a_hi)
                    }
                ),
            ));
        }
    }
    // infallible: `bands` is non-empty (checked above).
    if let Some(last) = bands.last() {
        if last.size_um.hi_um.is_some() {
            return Err(invalid(
                origin,
                format!("{key}[{}].size_um", bands.len() - 1),
                format!(
                    "the last band `{}` must be unbounded above (e.g. `> X` with max_count = 0) so that every size is covered",
                    last.size_um
                ),
            ));
        }
    }
    Ok(())
}

/// PASS, FAIL or UNABLE to grade. UNABLE must never be treated as PASS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Unable,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unable => "unable",
        })
    }
}

/// How one feature was judged: its zone (`None` = beyond the contact zone, not graded) and
/// whether it takes part in a failed rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureGrade {
    pub zone: Option<Zone>,
    pub fails: bool,
}

/// The outcome of grading one end face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    pub verdict: Verdict,
    /// Why it failed or could not be graded; empty on PASS.
    pub reasons: Vec<String>,
    /// One entry per input feature, in input order (empty for UNABLE from [`unable`]).
    pub per_feature: Vec<FeatureGrade>,
}

impl Grade {
    pub fn is_pass(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// An UNABLE grade with one reason.
pub fn unable(reason: impl Into<String>) -> Grade {
    Grade {
        verdict: Verdict::Unable,
        reasons: vec![reason.into()],
        per_feature: Vec::new(),
    }
}

/// UNABLE when the cladding was not found or focus is below `min_focus` (a NaN focus counts as
/// below); `None` when the frame may be graded.
pub fn check_gradable(found: bool, focus: f64, min_focus: f64) -> Option<Grade> {
    ungradable(found, focus, min_focus).map(|u| unable(u.to_string()))
}

/// Why a frame cannot be graded ([`check_gradable`]'s reason, written on demand).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ungradable {
    NotFound,
    OutOfFocus { focus: f64, min_focus: f64 },
}

impl fmt::Display for Ungradable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ungradable::NotFound => f.write_str(
                "fiber cladding not found: cannot grade (check centering and illumination)",
            ),
            Ungradable::OutOfFocus { focus, min_focus } => write!(
                f,
                "image out of focus: focus {focus:.4} below minimum {min_focus:.4}: cannot grade"
            ),
        }
    }
}

/// As [`check_gradable`], without building a [`Grade`].
pub fn ungradable(found: bool, focus: f64, min_focus: f64) -> Option<Ungradable> {
    if !found {
        return Some(Ungradable::NotFound);
    }
    if focus.is_nan() || focus < min_focus {
        return Some(Ungradable::OutOfFocus { focus, min_focus });
    }
    None
}

/// Grade features against a profile.
///
/// Each feature is placed in the zone of its `inner_radius_um` and in the size band of its
/// kind. A band with `max_count = N` fails when more than N features fall in it; then every
/// feature in that band is marked failing. Features beyond the contact zone are not graded.
/// A feature with a non-finite or negative size or radius makes the grade UNABLE.
pub fn grade(profile: &Profile, features: &[Feature]) -> Grade {
    let mut g = Grade {
        verdict: Verdict::Pass,
        reasons: Vec::new(),
        per_feature: Vec::new(),
    };
    grade_into(profile, features, &mut g, &mut GradeScratch::default());
    g
}

/// Buffers [`grade_into`] reuses from one frame to the next.
#[derive(Debug, Default)]
pub struct GradeScratch {
    band_of: Vec<Option<usize>>,
    members: Vec<usize>,
    /// Reason strings not in use.
    spare: Vec<String>,
}

/// Reasons written into reused strings.
struct ReasonWriter<'a> {
    reasons: &'a mut Vec<String>,
    spare: &'a mut Vec<String>,
    n: usize,
}

impl ReasonWriter<'_> {
    fn push(&mut self, text: fmt::Arguments<'_>) {
        use fmt::Write;
        if self.n == self.reasons.len() {
            self.reasons.push(self.spare.pop().unwrap_or_default());
        }
        let s = &mut self.reasons[self.n];
        s.clear();
        let _ = s.write_fmt(text);
        self.n += 1;
    }

    fn finish(self) {
        self.spare.extend(self.reasons.drain(self.n..));
    }
}

/// As [`grade`], into a [`Grade`] that held an earlier result (every field overwritten, its
/// buffers reused): no heap allocation once the buffers have grown to the frame's needs.
pub fn grade_into(
    profile: &Profile,
    features: &[Feature],
    out: &mut Grade,
    scratch: &mut GradeScratch,
) {
    let Grade {
        verdict,
        reasons,
        per_feature,
    } = out;
    let GradeScratch {
        band_of,
        members,
        spare,
    } = scratch;
    let mut reasons = ReasonWriter {
        reasons,
        spare,
        n: 0,
    };
    per_feature.clear();
    per_feature.extend(features.iter().map(|f| FeatureGrade {
        zone: profile.zone_of(f.inner_radius_um),
        fails: false,
    }));
    for (i, f) in features.iter().enumerate() {
        if !f.size_um.is_finite() || f.size_um < 0.0 {
            reasons.push(format_args!(
                "feature {i} ({}): size {} µm is not a finite size ≥ 0: cannot grade",
                f.kind.noun(1),
                f.size_um
            ));
        } else if !f.inner_radius_um.is_finite() || f.inner_radius_um < 0.0 {
            reasons.push(format_args!(
                "feature {i} ({}): radius {} µm is not a finite distance ≥ 0: cannot grade",
                f.kind.noun(1),
                f.inner_radius_um
            ));
        }
    }
    if reasons.n > 0 {
        reasons.finish();
        *verdict = Verdict::Unable;
        return;
    }

    // Band index of each feature within its zone/kind table (None when not graded).
    band_of.clear();
    band_of.extend(features.iter().zip(per_feature.iter()).map(|(f, g)| {
        let zone = g.zone?;
        profile
            .rule(zone)
            .bands(f.kind)
            .iter()
            .position(|b| b.size_um.contains(f.size_um))
    }));

    for zone in Zone::ALL {
        let rule = profile.rule(zone);
        for kind in [FeatureKind::Scratch, FeatureKind::Defect] {
            for (bi, band) in rule.bands(kind).iter().enumerate() {
                let Limit::Count(limit) = band.max_count else {
                    continue;
                };
                members.clear();
                members.extend((0..features.len()).filter(|&i| {
                    features[i].kind == kind
                        && per_feature[i].zone == Some(zone)
                        && band_of[i] == Some(bi)
                }));
                if members.len() <= limit as usize {
                    continue;
                }
                for &i in members.iter() {
                    per_feature[i].fails = true;
                }
                band_reasons(zone, kind, band, limit, members, features, &mut reasons);
            }
        }
    }
    *verdict = if reasons.n == 0 {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    reasons.finish();
}

fn band_reasons(
    zone: Zone,
    kind: FeatureKind,
    band: &SizeBand,
    limit: u32,
    members: &[usize],
    features: &[Feature],
    out: &mut ReasonWriter<'_>,
) {
    let r = &band.size_um;
    let n = members.len();
    if limit > 0 {
        out.push(format_args!(
            "zone {zone}: {n} {} of {}, limit {limit}",
            kind.noun(n),
            Label(r)
        ));
        return;
    }
    // None allowed: name each feature (up to 3), else summarise.
    if n <= 3 {
        for &i in members {
            let s = SizeText(features[i].size_um, r);
            let noun = kind.noun(1);
            match (r.starts_at_zero(), r.hi_um) {
                (true, None) => out.push(format_args!("zone {zone}: {noun} {s} µm, none allowed")),
                (false, None) => out.push(format_args!("zone {zone}: {noun} {s} µm {}", Label(r))),
                _ => out.push(format_args!(
                    "zone {zone}: {noun} {s} µm in {}, none allowed",
                    Label(r)
                )),
            }
        }
    } else {
        let largest = members
            .iter()
            .map(|&i| features[i].size_um)
            .fold(0.0_f64, f64::max);
        out.push(format_args!(
            "zone {zone}: {n} {} of {}, none allowed (largest {} µm)",
            kind.noun(n),
            Label(r),
            SizeText(largest, r)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_range_parsing() {
        let r = SizeRange::parse("[2, 5]").unwrap();
        assert!(r.contains(2.0) && r.contains(5.0) && !r.contains(1.999) && !r.contains(5.001));
        let r = SizeRange::parse("< 2").unwrap();
        assert!(r.contains(0.0) && r.contains(1.999) && !r.contains(2.0));
        let r = SizeRange::parse(">= 10").unwrap();
        assert!(r.contains(10.0) && !r.contains(9.999));
        let r = SizeRange::parse("(5, inf)").unwrap();
        assert!(!r.contains(5.0) && r.contains(1e9));
        assert!(SizeRange::parse("[5, 2]").is_err());
        assert!(SizeRange::parse("[5, inf]").is_err());
        assert!(SizeRange::parse("about 3").is_err());
        for s in [
            "any", "<= 3", "< 2", "> 5", ">= 10", "[2, 5]", "(2, 5)", "[2, 5)",
        ] {
            let r = SizeRange::parse(s).unwrap();
            assert_eq!(r.to_string(), s);
            assert_eq!(SizeRange::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn num_formatting() {
        for r in ["<= 3", "[2, 5]", "(2, 5)", "> 5", "any", "< 2.5"] {
            let r = SizeRange::parse(r).unwrap();
            for v in [
                0.0,
                -0.0,
                1.999,
                2.0,
                2.001,
                2.004,
                2.996,
                3.0,
                3.001,
                4.9999,
                5.0,
                5.004,
                62.5,
                1e20,
                1e40,
                f64::NAN,
                f64::INFINITY,
            ] {
                assert_eq!(SizeText(v, &r).to_string(), size_text(v, &r), "{v} in {r}");
                assert_eq!(Num(v).to_string(), num(v));
            }
        }
        assert_eq!(num(3.0), "3");
        assert_eq!(num(3.4), "3.4");
        assert_eq!(num(62.5), "62.5");
        let r = SizeRange::parse("> 3").unwrap();
        assert_eq!(size_text(3.001, &r), "3.0010");
    }

    #[test]
    fn zone_boundaries_belong_inside() {
        let p = Profile::builtin("sm-upc").unwrap();
        assert_eq!(p.zone_of(0.0), Some(Zone::A));
        assert_eq!(p.zone_of(12.5), Some(Zone::A));
        assert_eq!(p.zone_of(12.5001), Some(Zone::B));
        assert_eq!(p.zone_of(57.5), Some(Zone::B));
        assert_eq!(p.zone_of(67.5), Some(Zone::C));
        assert_eq!(p.zone_of(125.0), Some(Zone::D));
        assert_eq!(p.zone_of(125.01), None);
        assert_eq!(p.zone_of(f64::NAN), None);
        assert_eq!(p.contact_radius_um(), 125.0);
    }
}
