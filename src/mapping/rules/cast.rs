//! Casts (`cast = "int32"`, `"decimal128"`, `"date"` with `format` and `unit`, …):
//! one value converted to the declared type, or a message saying why it cannot be.

use std::str::FromStr;

use mongodb::bson::{oid::ObjectId, Bson, DateTime, Decimal128};

use super::tree::Cast;
use crate::mapping::spec::{CastType, EpochUnit};

/// Applies a cast: null stays null, arrays convert element by element.
pub fn cast_value(v: Bson, c: &Cast) -> Result<Bson, String> {
    match v {
        Bson::Null => Ok(Bson::Null),
        Bson::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, x)| cast_value(x, c).map_err(|e| format!("element [{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Bson::Array),
        v => cast_scalar(v, c),
    }
}

fn bson_type(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "map",
        Bson::Array(_) => "array",
        Bson::Boolean(_) => "boolean",
        Bson::Null => "null",
        Bson::Int32(_) => "int32",
        Bson::Int64(_) => "integer",
        Bson::DateTime(_) => "timestamp",
        Bson::Binary(_) => "bytes",
        Bson::ObjectId(_) => "objectid",
        Bson::Decimal128(_) => "decimal128",
        _ => "value",
    }
}

/// A short rendering of a value for a message.
pub fn render(v: &Bson) -> String {
    let mut s = match v {
        Bson::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

const TWO_POW_53: u64 = 1 << 53;
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn cast_scalar(v: Bson, c: &Cast) -> Result<Bson, String> {
    let fail = |v: &Bson, why: &str| {
        format!(
            "cannot cast {} {} to {}{why}",
            bson_type(v),
            render(v),
            c.to.name()
        )
    };
    let out = match (c.to, &v) {
        (CastType::String, Bson::String(_)) => v,
        (CastType::String, Bson::Int32(i)) => Bson::String(i.to_string()),
        (CastType::String, Bson::Int64(i)) => Bson::String(i.to_string()),
        (CastType::String, Bson::Double(d)) => Bson::String(d.to_string()),
        (CastType::String, Bson::Boolean(b)) => Bson::String(b.to_string()),
        (CastType::String, Bson::ObjectId(o)) => Bson::String(o.to_hex()),
        (CastType::String, Bson::Decimal128(d)) => Bson::String(d.to_string()),
        (CastType::String, Bson::DateTime(d)) => {
            Bson::String(d.try_to_rfc3339_string().map_err(|_| fail(&v, ""))?)
        }
        (CastType::Int32, Bson::Int32(_)) => v,
        (CastType::Int32, Bson::Int64(i)) => {
            Bson::Int32(i32::try_from(*i).map_err(|_| fail(&v, ": out of the int32 range"))?)
        }
        (CastType::Int32, Bson::Double(d)) => {
            if d.fract() == 0.0 && *d >= f64::from(i32::MIN) && *d <= f64::from(i32::MAX) {
                Bson::Int32(*d as i32)
            } else {
                return Err(fail(&v, ": not a whole number in the int32 range"));
            }
        }
        (CastType::Int32, Bson::String(s)) => Bson::Int32(
            s.trim()
                .parse()
                .map_err(|_| fail(&v, ": not a whole number in the int32 range"))?,
        ),
        (CastType::Int64, Bson::Int32(i)) => Bson::Int64(i64::from(*i)),
        (CastType::Int64, Bson::Int64(_)) => v,
        (CastType::Int64, Bson::Double(d)) => {
            if d.fract() == 0.0 && *d >= -TWO_POW_63 && *d < TWO_POW_63 {
                Bson::Int64(*d as i64)
            } else {
                return Err(fail(&v, ": not a whole number in the int64 range"));
            }
        }
        (CastType::Int64, Bson::String(s)) => Bson::Int64(
            s.trim()
                .parse()
                .map_err(|_| fail(&v, ": not a whole number in the int64 range"))?,
        ),
        (CastType::Double, Bson::Int32(i)) => Bson::Double(f64::from(*i)),
        (CastType::Double, Bson::Int64(i)) => {
            if i.unsigned_abs() > TWO_POW_53 {
                return Err(fail(
                    &v,
                    ": beyond 2^53 a double loses digits (cast to decimal128 instead)",
                ));
            }
            Bson::Double(*i as f64)
        }
        (CastType::Double, Bson::Double(_)) => v,
        (CastType::Double, Bson::String(s)) => {
            Bson::Double(s.trim().parse().map_err(|_| fail(&v, ": not a number"))?)
        }
        (CastType::Double, Bson::Decimal128(d)) => Bson::Double(
            d.to_string()
                .parse()
                .map_err(|_| fail(&v, ": not a number"))?,
        ),
        (CastType::Decimal128, Bson::Int32(i)) => Bson::Decimal128(decimal(&i.to_string())?),
        (CastType::Decimal128, Bson::Int64(i)) => Bson::Decimal128(decimal(&i.to_string())?),
        (CastType::Decimal128, Bson::Double(d)) => {
            if !d.is_finite() {
                return Err(fail(&v, ": not a finite number"));
            }
            // `{:e}` is the shortest text that reads back as the same double, so 19.99
            // becomes 19.99, not 19.989999999999998436805981327779591083526611328125.
            Bson::Decimal128(decimal(&format!("{d:e}"))?)
        }
        (CastType::Decimal128, Bson::String(s)) => {
            let t = s.trim();
            let ok = !t.is_empty()
                && t.chars()
                    .all(|ch| ch.is_ascii_digit() || matches!(ch, '.' | '-' | '+' | 'e' | 'E'));
            if !ok {
                return Err(fail(&v, ": not a decimal number"));
            }
            Bson::Decimal128(decimal(t).map_err(|_| fail(&v, ": not a decimal number"))?)
        }
        (CastType::Decimal128, Bson::Decimal128(_)) => v,
        (CastType::Date, Bson::DateTime(_)) => v,
        (CastType::Date, Bson::String(s)) => {
            Bson::DateTime(parse_date(s, c).map_err(|e| fail(&v, &e))?)
        }
        (CastType::Date, Bson::Int32(n)) => {
            Bson::DateTime(epoch(i64::from(*n), c).ok_or_else(|| fail(&v, ": out of range"))?)
        }
        (CastType::Date, Bson::Int64(n)) => {
            Bson::DateTime(epoch(*n, c).ok_or_else(|| fail(&v, ": out of range"))?)
        }
        (CastType::Date, Bson::Double(d)) => {
            let ms = match c.unit {
                EpochUnit::Ms => *d,
                EpochUnit::S => d * 1000.0,
            };
            if !ms.is_finite() || ms.abs() >= TWO_POW_63 {
                return Err(fail(&v, ": out of range"));
            }
            Bson::DateTime(DateTime::from_millis(ms.floor() as i64))
        }
        (CastType::Bool, Bson::Boolean(_)) => v,
        (CastType::Bool, Bson::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Bson::Boolean(true),
            "false" | "no" | "0" | "off" => Bson::Boolean(false),
            _ => return Err(fail(&v, ": expected true/false, yes/no, on/off or 1/0")),
        },
        (CastType::Bool, Bson::Int32(0)) | (CastType::Bool, Bson::Int64(0)) => Bson::Boolean(false),
        (CastType::Bool, Bson::Int32(1)) | (CastType::Bool, Bson::Int64(1)) => Bson::Boolean(true),
        (CastType::ObjectId, Bson::ObjectId(_)) => v,
        (CastType::ObjectId, Bson::String(s)) => Bson::ObjectId(
            ObjectId::parse_str(s.trim()).map_err(|_| fail(&v, ": expected 24 hex digits"))?,
        ),
        _ => return Err(fail(&v, "")),
    };
    Ok(out)
}

fn decimal(s: &str) -> Result<Decimal128, String> {
    Decimal128::from_str(s).map_err(|e| format!("`{s}` is not a decimal128: {e}"))
}

fn epoch(n: i64, c: &Cast) -> Option<DateTime> {
    match c.unit {
        EpochUnit::Ms => Some(n),
        EpochUnit::S => n.checked_mul(1000),
    }
    .map(DateTime::from_millis)
}

fn parse_date(s: &str, c: &Cast) -> Result<DateTime, String> {
    let ms = match c.format.as_deref() {
        None | Some("rfc3339") => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map_err(|e| format!(": not an RFC 3339 date-time like 2026-01-31T12:00:00Z ({e}); set `format` for other layouts"))?
            .timestamp_millis(),
        Some(fmt) if fmt.contains("%z") || fmt.contains("%:z") => {
            chrono::DateTime::parse_from_str(s.trim(), fmt)
                .map_err(|e| format!(": does not match `{fmt}` ({e})"))?
                .timestamp_millis()
        }
        Some(fmt) => match chrono::NaiveDateTime::parse_from_str(s.trim(), fmt) {
            Ok(t) => t.and_utc().timestamp_millis(),
            Err(e) => chrono::NaiveDate::parse_from_str(s.trim(), fmt)
                .map_err(|_| format!(": does not match `{fmt}` ({e})"))?
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_millis(),
        },
    };
    Ok(DateTime::from_millis(ms))
}

pub(super) fn check_date_format(fmt: &str) -> Result<(), String> {
    if fmt == "rfc3339" {
        return Ok(());
    }
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        return Err(format!("`{fmt}` is not a valid strftime pattern"));
    }
    if !fmt.contains('%') {
        return Err(format!(
            "`{fmt}` has no `%` field: it can only match itself"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::Document;

    fn cast(to: CastType) -> Cast {
        Cast {
            to,
            format: None,
            unit: EpochUnit::Ms,
        }
    }

    #[test]
    fn casts_to_numbers_check_range_and_precision() {
        let c = cast(CastType::Int32);
        assert_eq!(cast_value(Bson::Int64(7), &c).unwrap(), Bson::Int32(7));
        assert_eq!(cast_value(Bson::Double(7.0), &c).unwrap(), Bson::Int32(7));
        assert_eq!(
            cast_value(Bson::String(" 12 ".into()), &c).unwrap(),
            Bson::Int32(12)
        );
        assert!(cast_value(Bson::Int64(1 << 40), &c)
            .unwrap_err()
            .contains("int32 range"));
        assert!(cast_value(Bson::Double(1.5), &c)
            .unwrap_err()
            .contains("whole number"));
        let c = cast(CastType::Int64);
        assert_eq!(cast_value(Bson::Double(-3.0), &c).unwrap(), Bson::Int64(-3));
        assert_eq!(
            cast_value(Bson::String("42".into()), &c).unwrap(),
            Bson::Int64(42)
        );
        assert!(cast_value(Bson::Double(f64::NAN), &c).is_err());
        let c = cast(CastType::Double);
        assert_eq!(cast_value(Bson::Int64(3), &c).unwrap(), Bson::Double(3.0));
        assert!(cast_value(Bson::Int64(i64::MAX), &c)
            .unwrap_err()
            .contains("2^53"));
        assert_eq!(
            cast_value(Bson::String("2.5".into()), &c).unwrap(),
            Bson::Double(2.5)
        );
        assert_eq!(
            cast_value(Bson::String("abc".into()), &c).unwrap_err(),
            "cannot cast string \"abc\" to double: not a number"
        );
    }

    #[test]
    fn money_becomes_decimal128_without_binary_noise() {
        let c = cast(CastType::Decimal128);
        let d = |s: &str| Bson::Decimal128(s.parse().unwrap());
        assert_eq!(
            cast_value(Bson::Double(19.99), &c).unwrap().to_string(),
            d("19.99").to_string()
        );
        assert_eq!(
            cast_value(Bson::Double(0.1), &c).unwrap().to_string(),
            "0.1"
        );
        assert_eq!(
            cast_value(Bson::Int64(1500), &c).unwrap().to_string(),
            "1500"
        );
        assert_eq!(
            cast_value(Bson::String("12.30".into()), &c)
                .unwrap()
                .to_string(),
            "12.30"
        );
        assert!(cast_value(Bson::Double(f64::INFINITY), &c)
            .unwrap_err()
            .contains("finite"));
        assert!(cast_value(Bson::String("12,30".into()), &c)
            .unwrap_err()
            .contains("decimal"));
        assert!(cast_value(Bson::Boolean(true), &c).is_err());
    }

    #[test]
    fn dates_from_rfc3339_patterns_and_epochs() {
        let c = cast(CastType::Date);
        assert_eq!(
            cast_value(Bson::String("2026-01-01T00:00:00.123456Z".into()), &c).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_123))
        );
        assert!(cast_value(Bson::String("01/02/2026".into()), &c)
            .unwrap_err()
            .contains("RFC 3339"));
        let pattern = Cast {
            format: Some("%d/%m/%Y".into()),
            ..cast(CastType::Date)
        };
        assert_eq!(
            cast_value(Bson::String("01/01/2026".into()), &pattern).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_000))
        );
        let pattern = Cast {
            format: Some("%Y-%m-%d %H:%M".into()),
            ..cast(CastType::Date)
        };
        assert_eq!(
            cast_value(Bson::String("2026-01-01 00:01".into()), &pattern).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_660_000))
        );
        assert_eq!(
            cast_value(Bson::Int64(1_767_225_600_000), &c).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_000))
        );
        let secs = Cast {
            unit: EpochUnit::S,
            ..cast(CastType::Date)
        };
        assert_eq!(
            cast_value(Bson::Int64(1_767_225_600), &secs).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_000))
        );
        assert!(cast_value(Bson::Int64(i64::MAX), &secs).is_err());
        assert!(check_date_format("%Q").is_err());
        assert!(check_date_format("yyyy").is_err());
    }

    #[test]
    fn bools_strings_objectids_nulls_and_arrays() {
        let b = cast(CastType::Bool);
        assert_eq!(
            cast_value(Bson::String("Yes".into()), &b).unwrap(),
            Bson::Boolean(true)
        );
        assert_eq!(
            cast_value(Bson::Int64(0), &b).unwrap(),
            Bson::Boolean(false)
        );
        assert!(cast_value(Bson::Int64(2), &b).is_err());
        assert!(cast_value(Bson::String("maybe".into()), &b).is_err());
        let s = cast(CastType::String);
        assert_eq!(
            cast_value(Bson::Int64(5), &s).unwrap(),
            Bson::String("5".into())
        );
        assert_eq!(
            cast_value(Bson::Double(0.5), &s).unwrap(),
            Bson::String("0.5".into())
        );
        assert!(cast_value(Bson::Document(Document::new()), &s).is_err());
        let o = cast(CastType::ObjectId);
        let hex = "65a1b2c3d4e5f60718293a4b";
        assert_eq!(
            cast_value(Bson::String(hex.into()), &o).unwrap(),
            Bson::ObjectId(ObjectId::parse_str(hex).unwrap())
        );
        assert!(cast_value(Bson::String("nope".into()), &o)
            .unwrap_err()
            .contains("24 hex"));
        assert_eq!(cast_value(Bson::Null, &o).unwrap(), Bson::Null);
        let i = cast(CastType::Int64);
        assert_eq!(
            cast_value(
                Bson::Array(vec![Bson::String("1".into()), Bson::Double(2.0)]),
                &i
            )
            .unwrap(),
            Bson::Array(vec![Bson::Int64(1), Bson::Int64(2)])
        );
        assert!(cast_value(
            Bson::Array(vec![Bson::Int64(1), Bson::String("x".into())]),
            &i
        )
        .unwrap_err()
        .starts_with("element [1]"));
    }
}
