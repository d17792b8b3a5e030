//! Keeps secrets in connection strings out of logs, progress lines and reports.

/// Replaces the password (and any credential-like query parameter) of a URI with `***`.
///
/// `mongodb+srv://app:s3cret@cluster0.example.net/?authSource=admin` becomes
/// `mongodb+srv://app:***@cluster0.example.net/?authSource=admin`.
pub fn redact_uri(uri: &str) -> String {
    let (scheme, rest) = match uri.find("://") {
        Some(i) => (&uri[..i + 3], &uri[i + 3..]),
        None => ("", uri),
    };
    // The authority ends at the first `/` or `?`; user info is before its last `@`.
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let user_info = &authority[..at];
            let user = user_info.split(':').next().unwrap_or("");
            format!("{user}:***@{}", &authority[at + 1..])
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                    Some((k, v)) if k.eq_ignore_ascii_case("authMechanismProperties") => {
                        format!("{k}={}", redact_properties(v))
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

fn is_secret_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // A file option holds a path, which an operator needs to see in an error; the
    // secret is in the file (or in its `…Password` option).
    if k.ends_with("file") {
        return false;
    }
    ["password", "secret", "token", "key", "credential"]
        .iter()
        .any(|s| k.contains(s))
}

/// `authMechanismProperties` is a list of `NAME:value` pairs, some of them secrets
/// (`AWS_SESSION_TOKEN`, a Kerberos `SERVICE_REALM` is not, but telling them apart by
/// name would miss the next one): every value is hidden, the names stay readable. A
/// value that is not such a list (percent-encoded separators, say) is hidden whole.
fn redact_properties(v: &str) -> String {
    if v.contains('%') || !v.contains(':') {
        return "***".into();
    }
    v.split(',')
        .map(|pair| match pair.split_once(':') {
            Some((name, _)) => format!("{name}:***"),
            None => "***".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::redact_uri;

    #[test]
    fn hides_passwords_and_secret_parameters() {
        assert_eq!(
            redact_uri("mongodb+srv://app:s3cret@c0.example.net/db?authSource=admin"),
            "mongodb+srv://app:***@c0.example.net/db?authSource=admin"
        );
        assert_eq!(
            redact_uri("mongodb://u:p@a:1,b:2/?tlsCertificateKeyFilePassword=zz&w=1"),
            "mongodb://u:***@a:1,b:2/?tlsCertificateKeyFilePassword=***&w=1"
        );
        assert_eq!(
            redact_uri("mongodb://h/?tlsCertificateKeyFile=/etc/c.pem&tlsCAFile=/etc/ca.pem"),
            "mongodb://h/?tlsCertificateKeyFile=/etc/c.pem&tlsCAFile=/etc/ca.pem"
        );
        // A password may itself contain `@` when not percent-encoded.
        assert_eq!(redact_uri("mongodb://u:p@ss@h/"), "mongodb://u:***@h/");
    }

    #[test]
    fn hides_every_secret_bearing_option() {
        let cases = [
            (
                "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FQoGZXIvYXdzE1,SERVICE_NAME:x",
                "FQoGZXIvYXdzE1",
                "authMechanismProperties=AWS_SESSION_TOKEN:***,SERVICE_NAME:***",
            ),
            (
                "mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN%3AFQoGZXIvYXdzE1",
                "FQoGZXIvYXdzE1",
                "authMechanismProperties=***",
            ),
            (
                "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=hunter2",
                "hunter2",
                "tlsCertificateKeyFilePassword=***",
            ),
            (
                "mongodb://h/?proxyUsername=u&proxyPassword=hunter2",
                "hunter2",
                "proxyPassword=***",
            ),
            (
                "mongodb+srv://u:hunter2@c.example.net/?appName=x",
                "hunter2",
                "u:***@c.example.net",
            ),
        ];
        for (uri, secret, shown) in cases {
            let r = redact_uri(uri);
            assert!(!r.contains(secret), "{r}");
            assert!(r.contains(shown), "{r}");
        }
    }

    #[test]
    fn leaves_uris_without_secrets_unchanged() {
        let uri = "mongodb://127.0.0.1:27017/?directConnection=true";
        assert_eq!(redact_uri(uri), uri);
    }
}
