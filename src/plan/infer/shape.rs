//! What the values of one field look like, counted and never kept: the shapes of its
//! strings (dates, numbers, booleans, ObjectIds, paths), integers (epochs, beyond a
//! double) and doubles (non-finite), for cast suggestions.

use serde::Serialize;

/// What the string values of one field look like (counts of values, not documents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StringShape {
    pub values: u64,
    pub empty: u64,
    /// RFC 3339 date-times (`2026-01-31T12:00:00Z`).
    pub rfc3339: u64,
    /// `YYYY-MM-DD`.
    pub date_only: u64,
    /// `YYYY-MM-DD HH:MM:SS`.
    pub date_time_space: u64,
    /// Whole numbers written canonically (`-12`, `0`; no leading zero, no `+`).
    pub integer: u64,
    /// Digits with a leading zero (`00123`): codes, not numbers.
    pub leading_zero: u64,
    /// Decimal numbers with a fraction (`12.30`, `-0.5`).
    pub decimal: u64,
    /// `true`/`false` in any case.
    pub boolean: u64,
    /// 24 hexadecimal digits (an ObjectId's text form).
    pub hex24: u64,
    /// Values with a `/` (paths, URLs): never foreign keys by id.
    pub with_slash: u64,
}

impl StringShape {
    pub(super) fn add(&mut self, s: &str) {
        self.values += 1;
        if s.is_empty() {
            self.empty += 1;
            return;
        }
        if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
            self.rfc3339 += 1;
        } else if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10 {
            self.date_only += 1;
        } else if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok() {
            self.date_time_space += 1;
        }
        let digits = s.strip_prefix('-').unwrap_or(s);
        let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if all_digits {
            if digits.len() > 1 && digits.starts_with('0') {
                self.leading_zero += 1;
            } else if digits.len() <= 18 {
                self.integer += 1;
            } else {
                // Longer than i64 can always hold: a decimal, if anything.
                self.decimal += 1;
            }
        } else if let Some((int, frac)) = digits.split_once('.') {
            let ok = !int.is_empty()
                && !frac.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.len() > 1 && int.starts_with('0'));
            if ok {
                self.decimal += 1;
            }
        }
        if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
            self.boolean += 1;
        }
        if s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.hex24 += 1;
        }
        if s.contains('/') {
            self.with_slash += 1;
        }
    }

    /// Non-empty values.
    pub fn non_empty(&self) -> u64 {
        self.values - self.empty
    }
}

/// What the integer values of one field look like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntegerShape {
    pub values: u64,
    /// In 2001..2100 as seconds since the epoch.
    pub epoch_seconds: u64,
    /// In 2001..2100 as milliseconds since the epoch.
    pub epoch_millis: u64,
    /// Beyond ±2^53: a double cannot hold them exactly (a `double` cast fails).
    pub beyond_double: u64,
}

/// What the double values of one field look like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DoubleShape {
    pub values: u64,
    /// NaN or ±Infinity: a `decimal128` cast fails on them.
    pub non_finite: u64,
}

impl DoubleShape {
    pub(super) fn add(&mut self, d: f64) {
        self.values += 1;
        if !d.is_finite() {
            self.non_finite += 1;
        }
    }
}

const EPOCH_2001_S: i64 = 978_307_200;
const EPOCH_2100_S: i64 = 4_102_444_800;

impl IntegerShape {
    pub(super) fn add(&mut self, n: i64) {
        self.values += 1;
        if n.unsigned_abs() > 1 << 53 {
            self.beyond_double += 1;
        }
        if (EPOCH_2001_S..EPOCH_2100_S).contains(&n) {
            self.epoch_seconds += 1;
        } else if (EPOCH_2001_S * 1000..EPOCH_2100_S * 1000).contains(&n) {
            self.epoch_millis += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_integer_shapes() {
        let mut sh = StringShape::default();
        for x in [
            "2026-01-31T12:00:00Z",
            "2026-01-31",
            "2026-01-31 12:00:00",
            "42",
            "-7",
            "00123",
            "12.30",
            "TRUE",
            "5f0000000000000000000000",
            "a/b",
            "",
        ] {
            sh.add(x);
        }
        assert_eq!(
            (sh.rfc3339, sh.date_only, sh.date_time_space),
            (1, 1, 1),
            "{sh:?}"
        );
        assert_eq!((sh.integer, sh.leading_zero, sh.decimal), (2, 1, 1));
        assert_eq!(
            (sh.boolean, sh.hex24, sh.with_slash, sh.empty),
            (1, 1, 1, 1)
        );
        let mut n = IntegerShape::default();
        n.add(1_767_225_600);
        n.add(1_767_225_600_000);
        n.add(5);
        n.add(i64::MIN);
        assert_eq!(
            (n.values, n.epoch_seconds, n.epoch_millis, n.beyond_double),
            (4, 1, 1, 1)
        );
        let mut d = DoubleShape::default();
        d.add(f64::NAN);
        d.add(1.5);
        assert_eq!((d.values, d.non_finite), (2, 1));
    }
}
