//! The Cloud Storage emulator (fake-gcs-server, started by `scripts/services up`,
//! addressed by `STORAGE_EMULATOR_HOST`): a bucket per test, objects uploaded through
//! its JSON API.

use std::path::Path;

/// The emulator's base URL.
pub fn emulator() -> String {
    let host = std::env::var("STORAGE_EMULATOR_HOST").unwrap_or_default();
    assert!(
        !host.trim().is_empty(),
        "STORAGE_EMULATOR_HOST is not set: start the Cloud Storage emulator with \
         `eval \"$(scripts/services up)\"` (scripts/test does it)"
    );
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

/// A bucket of its own for each test, so tests run in parallel and against an
/// emulator that other runs use.
pub struct Bucket {
    pub http: reqwest::Client,
    pub base: String,
    pub name: String,
}

impl Bucket {
    pub async fn new(tag: &str) -> Self {
        fireshift::tls::install_crypto_provider();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = emulator();
        let name = format!("fireshift-{tag}-{:08x}", rand::random::<u32>());
        let response = http
            .post(format!("{base}/storage/v1/b?project=fireshift-test"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "name": name }).to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("the emulator at {base} does not answer: {e}"));
        assert!(
            response.status().is_success(),
            "creating bucket {name}: {}",
            response.status()
        );
        Self { http, base, name }
    }

    pub async fn upload(&self, object: &str, data: &[u8]) {
        let mut url = reqwest::Url::parse(&format!(
            "{}/upload/storage/v1/b/{}/o",
            self.base, self.name
        ))
        .unwrap();
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", object);
        let response = self
            .http
            .post(url)
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "uploading {object}: {}",
            response.status()
        );
    }
}

impl Bucket {
    /// Uploads every file under `dir` as `prefix/<relative path>`.
    pub async fn upload_dir(&self, dir: &Path, prefix: &str) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(dir).unwrap().to_str().unwrap();
                    self.upload(&format!("{prefix}/{rel}"), &std::fs::read(&path).unwrap())
                        .await;
                }
            }
        }
    }
}
