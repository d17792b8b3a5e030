//! Value parsers for flags, so that every out-of-range value is a bad command line
//! (exit 2, clap's message naming the flag) before any I/O.

/// A count of at least 1.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// A lease duration: 2 s to a day. Shorter would expire between two renewals of a
/// busy process; longer keeps a crashed process's ranges blocked for no gain.
pub fn lease_seconds(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of seconds"))?;
    if !(2..=86_400).contains(&n) {
        return Err("must be 2 to 86400 seconds".into());
    }
    Ok(n)
}

/// A page size: 1 to `i32::MAX` (Firestore's `limit` is an int32).
pub fn page_size(s: &str) -> Result<i32, String> {
    let n = at_least_one(s)?;
    i32::try_from(n).map_err(|_| format!("must be at most {}", i32::MAX))
}

/// Documents per MongoDB write batch: 1 to 100,000 (the server's `maxWriteBatchSize`).
pub fn batch_size(s: &str) -> Result<usize, String> {
    let n = at_least_one(s)?;
    if n > 100_000 {
        return Err("must be at most 100000 (the server's maxWriteBatchSize)".into());
    }
    Ok(n)
}

/// Bytes per MongoDB write batch: 1 KiB to 16 MiB less the command envelope.
pub fn batch_bytes(s: &str) -> Result<usize, String> {
    let n = at_least_one(s)?;
    let max = fireshift::sink::MAX_BATCH_BYTES;
    if !(1024..=max).contains(&n) {
        return Err(format!(
            "must be between 1024 and {max} (16 MiB less the command envelope)"
        ));
    }
    Ok(n)
}

/// Documents sampled per pattern by `plan`: 1 to [`fireshift::plan::MAX_SAMPLE`] (a
/// sample is held in memory while it is analysed).
pub fn sample(s: &str) -> Result<usize, String> {
    let n = at_least_one(s)?;
    let max = fireshift::plan::MAX_SAMPLE;
    if n > max {
        return Err(format!("must be at most {max}"));
    }
    Ok(n)
}

/// A fraction in (0, 1].
pub fn fraction(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(p > 0.0 && p <= 1.0) {
        return Err("must be greater than 0 and at most 1".into());
    }
    Ok(p)
}

/// Seconds, zero or more, finite.
pub fn seconds(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(x >= 0.0 && x.is_finite()) {
        return Err("must be a number of seconds ≥ 0".into());
    }
    Ok(x)
}

/// A log filter in `tracing`'s syntax (`info`, `fireshift=debug,warn`).
pub fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log filter ({e}); e.g. `info` or `fireshift=debug`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_refused_with_the_reason() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").unwrap_err().contains("at least 1"));
        assert!(at_least_one("x").is_err());
        assert!(batch_size("100001")
            .unwrap_err()
            .contains("maxWriteBatchSize"));
        assert!(batch_bytes("10").is_err());
        assert!(page_size("3000000000").is_err());
        assert!(fraction("0").is_err() && fraction("1.5").is_err() && fraction("NaN").is_err());
        assert_eq!(fraction("0.25"), Ok(0.25));
        assert!(seconds("-1").is_err() && seconds("inf").is_err());
        assert!(log_filter("fireshift=debug").is_ok());
        assert!(log_filter("fireshift=loud").is_err());
    }
}
