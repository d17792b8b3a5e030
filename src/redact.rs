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
    ["password", "secret", "token", "key"]
        .iter()
        .any(|s| k.contains(s))
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
        // A password may itself contain `@` when not percent-encoded.
        assert_eq!(redact_uri("mongodb://u:p@ss@h/"), "mongodb://u:***@h/");
    }

    #[test]
    fn leaves_uris_without_secrets_unchanged() {
        let uri = "mongodb://127.0.0.1:27017/?directConnection=true";
        assert_eq!(redact_uri(uri), uri);
    }
}
