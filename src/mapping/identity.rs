//! Identities derived from document paths alone, so that a document's `_id` and every
//! reference to it are computed in the same single pass, on any machine, on any rerun —
//! with no id-map table and no lookup.
//!
//! * `keep`: the Firestore id (root) or the relative path (subcollection), as
//!   [`crate::path::default_target_id`].
//! * `objectid`: the first 12 bytes of HMAC-SHA256(`id_key`, relative document path).
//!   Keyed, so that two datasets (or two deployments) can keep their ids apart; stable,
//!   because the key comes from the dataset's mapping files, not from the machine.

use hmac::{KeyInit, Mac};
use mongodb::bson::oid::ObjectId;
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The ObjectId of the document at `relative_path` (`users/u1`, no project prefix).
pub fn derive_object_id(id_key: &str, relative_path: &str) -> ObjectId {
    let mut mac = HmacSha256::new_from_slice(id_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(relative_path.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut bytes = [0u8; 12];
    bytes.copy_from_slice(&digest[..12]);
    ObjectId::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_the_first_12_bytes_of_the_keyed_hash() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") is the RFC
        // 4231-style test vector f7bc83f4…; the ObjectId is its first 12 bytes.
        assert_eq!(
            derive_object_id("key", "The quick brown fox jumps over the lazy dog").to_hex(),
            "f7bc83f430538424b13298e6"
        );
    }

    #[test]
    fn object_ids_depend_on_the_path_and_the_key_only() {
        let a = derive_object_id("k", "users/u1");
        assert_eq!(a, derive_object_id("k", "users/u1"));
        assert_ne!(a, derive_object_id("k", "users/u2"));
        assert_ne!(a, derive_object_id("other", "users/u1"));
        assert_ne!(
            derive_object_id("k", "a/1/b/2"),
            derive_object_id("k", "c/1/b/2")
        );
    }
}
