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

/// A rate limit: a positive number of documents per second (fractions allowed, for a
/// trickle).
pub fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of documents per second"))?;
    if !(r.is_finite() && r > 0.0) {
        return Err("must be a positive number of documents per second".into());
    }
    Ok(r)
}

/// A price in USD: a finite number, not negative.
pub fn price(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a price"))?;
    if !(p.is_finite() && p >= 0.0) {
        return Err("must be a price of 0 or more".into());
    }
    Ok(p)
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

/// `--shard`: `K/N`, or `auto` for K and N from the engine that started this process.
#[derive(Debug, Clone)]
pub struct ShardChoice {
    pub shard: fireshift::migrate::job::Shard,
    /// For `auto`: where K and N came from, e.g. `JOB_COMPLETION_INDEX=1, FIRESHIFT_SHARD_COUNT=4`.
    pub from: Option<String>,
}

pub fn shard(s: &str) -> Result<ShardChoice, String> {
    if s.trim() == "auto" {
        return shard_from_env(|name| std::env::var(name).ok());
    }
    Ok(ShardChoice {
        shard: s.parse()?,
        from: None,
    })
}

/// K and N from a Cloud Run job (`CLOUD_RUN_TASK_INDEX`, `CLOUD_RUN_TASK_COUNT`) or a
/// Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, with N in `FIRESHIFT_SHARD_COUNT`, which
/// the manifest sets to the Job's completions: Kubernetes does not pass it). Both
/// engines count from 0; shards count from 1.
fn shard_from_env(get: impl Fn(&str) -> Option<String>) -> Result<ShardChoice, String> {
    let (index_var, count_var) = if get("CLOUD_RUN_TASK_INDEX").is_some() {
        ("CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT")
    } else if get("JOB_COMPLETION_INDEX").is_some() {
        ("JOB_COMPLETION_INDEX", "FIRESHIFT_SHARD_COUNT")
    } else {
        return Err("auto: neither CLOUD_RUN_TASK_INDEX (a Cloud Run job) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give --shard K/N".into());
    };
    let number = |var: &str| -> Result<usize, String> {
        let v = get(var).ok_or_else(|| {
            format!("auto: {index_var} is set but {count_var} is not (set it to the number of tasks/completions)")
        })?;
        v.trim()
            .parse()
            .map_err(|_| format!("auto: {var}=`{v}` is not a whole number"))
    };
    let (index, count) = (number(index_var)?, number(count_var)?);
    if index >= count {
        return Err(format!(
            "auto: {index_var}={index} is not below {count_var}={count}"
        ));
    }
    Ok(ShardChoice {
        shard: fireshift::migrate::job::Shard {
            index: index + 1,
            count,
        },
        from: Some(format!("{index_var}={index}, {count_var}={count}")),
    })
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_shard_comes_from_cloud_run_or_an_indexed_job() {
        let s = shard_from_env(env(&[
            ("CLOUD_RUN_TASK_INDEX", "0"),
            ("CLOUD_RUN_TASK_COUNT", "3"),
        ]))
        .unwrap();
        assert_eq!((s.shard.index, s.shard.count), (1, 3));
        assert_eq!(
            s.from.as_deref(),
            Some("CLOUD_RUN_TASK_INDEX=0, CLOUD_RUN_TASK_COUNT=3")
        );
        let s = shard_from_env(env(&[
            ("JOB_COMPLETION_INDEX", "3"),
            ("FIRESHIFT_SHARD_COUNT", "4"),
        ]))
        .unwrap();
        assert_eq!((s.shard.index, s.shard.count), (4, 4));
    }

    #[test]
    fn auto_shard_refuses_what_it_cannot_use() {
        let e = shard_from_env(env(&[])).unwrap_err();
        assert!(
            e.contains("CLOUD_RUN_TASK_INDEX") && e.contains("JOB_COMPLETION_INDEX"),
            "{e}"
        );
        let e = shard_from_env(env(&[("JOB_COMPLETION_INDEX", "0")])).unwrap_err();
        assert!(e.contains("FIRESHIFT_SHARD_COUNT"), "{e}");
        let e = shard_from_env(env(&[
            ("JOB_COMPLETION_INDEX", "4"),
            ("FIRESHIFT_SHARD_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(e.contains("not below"), "{e}");
        let e = shard_from_env(env(&[
            ("CLOUD_RUN_TASK_INDEX", "x"),
            ("CLOUD_RUN_TASK_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(e.contains("not a whole number"), "{e}");
    }
}
