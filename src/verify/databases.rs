//! Which databases verify touches, decided before any Firestore read: the target it
//! compares (only read, and it must exist) and the state database where its runs and
//! mismatches live (written; never the target).
//!
//! MongoDB creates a database on its first write, so a verifier that kept its state in
//! the target would create a mistyped `--database` and "verify" an empty copy. Keeping
//! the state elsewhere means verify needs only read access to the target, and checking
//! that the target has collections turns a typo into an error.

use mongodb::Database;

use crate::error::{Error, Result};

/// Suffix of the default state database: `<database>_fireshift`.
pub const STATE_SUFFIX: &str = "_fireshift";

/// MongoDB's limit on a database name, in bytes.
const MAX_NAME_BYTES: usize = 63;

/// Names listed in the "does not exist" message at most (a server may hold thousands).
const MAX_LISTED: usize = 20;

/// The state database for a target: `explicit` if given, otherwise
/// `<target>_fireshift`. Refused when it is the target itself or not a valid name.
pub fn state_database_name(target: &str, explicit: Option<&str>) -> Result<String> {
    let name = match explicit {
        Some(n) => n.to_string(),
        None => format!("{target}{STATE_SUFFIX}"),
    };
    if name == target {
        return Err(Error::Config(format!(
            "--state-database `{name}` is the verified database: verify keeps its state in \
             another database so that it never writes to the one it checks"
        )));
    }
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || name.contains(['/', '\\', '.', ' ', '"', '$', '\0'])
    {
        return Err(Error::Config(format!(
            "state database name `{name}` is not a valid MongoDB database name (at most \
             {MAX_NAME_BYTES} bytes, none of / \\ . space \" $){}",
            if explicit.is_none() {
                ": name one with --state-database"
            } else {
                ""
            }
        )));
    }
    Ok(name)
}

/// Fails with [`Error::NoSuchDatabase`] when `target` has no collection, naming the
/// databases the server holds (when it lets us list them). Only reads.
pub async fn require_existing(target: &Database, uri: &str) -> Result<()> {
    let names = target
        .list_collection_names()
        .await
        .map_err(|e| crate::mongo::error("listCollections", target.name().to_string(), uri, e))?;
    if !names.is_empty() {
        return Ok(());
    }
    let existing = match target.client().list_database_names().await {
        Ok(all) => existing_text(all),
        // Listing databases needs a privilege a read-only user may lack; the error
        // stands without the list.
        Err(_) => String::new(),
    };
    Err(Error::NoSuchDatabase {
        database: target.name().to_string(),
        existing,
    })
}

/// "Databases on this server: a, b" without the server's own, at most [`MAX_LISTED`].
fn existing_text(mut all: Vec<String>) -> String {
    all.retain(|n| !matches!(n.as_str(), "admin" | "config" | "local"));
    all.sort();
    if all.is_empty() {
        return "The server holds no database yet.".into();
    }
    let more = all.len().saturating_sub(MAX_LISTED);
    all.truncate(MAX_LISTED);
    let mut s = format!("Databases on this server: {}", all.join(", "));
    if more > 0 {
        s.push_str(&format!(" (and {more} more)"));
    }
    s.push('.');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_database_defaults_beside_the_target_and_is_never_the_target() {
        assert_eq!(state_database_name("app", None).unwrap(), "app_fireshift");
        assert_eq!(
            state_database_name("app", Some("ops")).unwrap(),
            "ops".to_string()
        );
        let e = state_database_name("app", Some("app")).unwrap_err();
        assert!(e.to_string().contains("is the verified database"), "{e}");
        let long = "x".repeat(60);
        let e = state_database_name(&long, None).unwrap_err();
        assert!(e.to_string().contains("--state-database"), "{e}");
        assert!(state_database_name("app", Some("a.b")).is_err());
    }

    #[test]
    fn the_list_of_existing_databases_leaves_out_the_servers_own_and_is_capped() {
        let s = existing_text(vec!["b".into(), "admin".into(), "a".into(), "local".into()]);
        assert_eq!(s, "Databases on this server: a, b.");
        let many: Vec<String> = (0..25).map(|i| format!("d{i:02}")).collect();
        let s = existing_text(many);
        assert!(s.ends_with("d19 (and 5 more)."), "{s}");
        assert_eq!(
            existing_text(vec!["config".into()]),
            "The server holds no database yet."
        );
    }
}
