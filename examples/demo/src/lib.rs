//! The deterministic demo data set: documents shaped like the seed app (a social video
//! platform), for the demo, the integration tests and the benchmarks. A dev-only crate:
//! nothing fireshift ships depends on it.
//!
//! * [`generate`] streams the documents of a data set sized by its number of users (about
//!   60 documents per user, plus about 200 fixed ones). Same `users` → same documents,
//!   same order, same values: ids and values come from a seeded generator keyed by the
//!   document's place in the set, timestamps from the `now` the caller gives, and
//!   nothing reads the clock. Tests pass [`FIXED_NOW`] and can therefore regenerate any
//!   document to compare it with what a migration wrote; the demo passes the time of the
//!   run, so its stories and upload sessions are still live when TTL indexes are built.
//! * [`expected_count`] / [`expected_counts`] say how many documents [`generate`] yields
//!   (per collection pattern) without generating them.
//! * [`DemoDoc::into_document`] gives the Firestore document to write; writing is the
//!   library's (`fireshift::firestore::write_documents`).
//!
//! Document ids look like Firestore auto-ids (20 base62 characters), so key-range splits
//! of the `__name__` space see the same spread as on a real database. Every Firestore
//! value type occurs (null, boolean, integer, double, timestamp, string, bytes, reference,
//! geopoint, array, map and vector), and the `edge_cases` collection holds the awkward
//! values: NaN, ±Infinity, -0.0, `i64::MIN`/`MAX`, the first and last representable
//! timestamps, pre-1970 timestamps with microseconds, empty containers, 20 levels of
//! nesting, field names with `.`, leading `$`, spaces and non-ASCII, a reference to a
//! subcollection document, a dangling reference and documents under parents that do not
//! exist (as does `archives/{id}/items/{id}`).
//!
//! Collections: one per model of the seed app (66 models, `mappings/mixillo` maps each),
//! per user on average unless fixed:
//!
//! * social: `users` 1, `follows` 5, `content` 2 with `comments` 6 (and `replies` 3 under
//!   them), `likes` 8 (id = liker's user id), `qualities` 3 (video renditions) and
//!   `metrics` 0.8; `users/*/saves` 1, `shares` 0.5, `views` 2, `stories` 1,
//!   `conversations` 0.5 with `messages` 3.5, `notifications` 4;
//! * live: `livestreams` 0.2, `pk_battles` 0.1, `multi_host_sessions` 0.1,
//!   `live_shopping_sessions` 0.1, `gift_transactions` 0.7, `supporter_badges` 0.3;
//! * shop: `stores` 0.1 with `stores/*/coupons` 0.2, `products` 0.5 (root, with the
//!   store's id), `orders` 1 with `orders/*/shipping` 0.5, `payments` 1, `carts` 0.5,
//!   `seller_applications` 0.2, `ad_campaigns` 0.1;
//! * money: `wallets` 1 (id = user id) with `transactions` 3, `subscriptions` 0.25,
//!   `users/*/earnings` 0.8, `credits` 0.3;
//! * safety and support: `reports` 0.1, `ai_moderation` 0.4, `moderation_queue` 0.1,
//!   `strikes` 0.07, `audit_logs` 0.17, `customer_service` 0.12;
//! * analytics and discovery: `users/*/analytics` 0.5, `user_activity` 2,
//!   `trending_records` 0.2, `search_queries` 1, `content_recommendations` 0.5;
//! * media pipeline: `sounds` 0.25 (plus 12 licensed), `scheduled_content` 0.25,
//!   `transcode_jobs` 0.8, `upload_sessions` 0.5, `content_rights` 0.3;
//! * fixed catalogues: `gifts` 20, `categories` 12, `levels` 10, `languages` 8 with
//!   `translations` 40, `themes` 5, `coin_packages` 6, `subscription_tiers` 4,
//!   `trending_config` 4, `stream_providers` 4, `stream_filters` 10, `explorer_sections` 6,
//!   `tags` 24, `banners` 6, `settings` 10, `recommendation_metadata` 3;
//! * synthetic: `archives/*/items` 0.1 (parents never written), `edge_cases` (with
//!   `edge_cases/*/children`).
//!
//! String foreign keys (`userId`, `contentId`, `storeId`, …) always name a generated
//! document; money comes as doubles or decimal text, some times as RFC 3339 text,
//! `%Y-%m-%d` days, `%Y-%m-%d %H:%M:%S` text or epoch numbers, as the mappings expect.
//! The documents of the original collections did not change when the later models were
//! added (their values come from streams of their own, see `models.rs`).

mod models;

use std::collections::{BTreeMap, HashMap};

use gcloud_sdk::google::firestore::v1::{value::ValueType, ArrayValue, Document, MapValue, Value};
use gcloud_sdk::google::r#type::LatLng;
use gcloud_sdk::prost_types::Timestamp;

/// One generated document: its path relative to the database's `documents` root (e.g.
/// `content/AbC…/comments/XyZ…`) and its fields.
///
/// `PartialEq` compares values as protobuf does, so a document holding NaN (one of the
/// `edge_cases`) is not equal to itself.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoDoc {
    pub path: String,
    pub fields: HashMap<String, Value>,
}

impl DemoDoc {
    /// The document's full resource name:
    /// `projects/{project}/databases/{database_id}/documents/{path}`.
    pub fn full_name(&self, project: &str, database_id: &str) -> String {
        format!("{}{}", documents_prefix(project, database_id), self.path)
    }

    /// The Firestore document to write (a full-document write of these fields).
    pub fn into_document(self, project: &str, database_id: &str) -> Document {
        Document {
            name: self.full_name(project, database_id),
            fields: self.fields,
            ..Default::default()
        }
    }

    /// The document's id (last path segment).
    pub fn id(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The collection pattern of the document: its path without the document id and with
    /// parent document ids replaced by `*`, e.g. `content/*/comments`. The keys of
    /// [`expected_counts`].
    pub fn collection_pattern(&self) -> String {
        collection_pattern(&self.path)
    }
}

/// The collection pattern of a relative document path (see [`DemoDoc::collection_pattern`]).
pub fn collection_pattern(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let collection_segments = segments.len().saturating_sub(1);
    segments[..collection_segments]
        .iter()
        .enumerate()
        .map(|(i, s)| if i % 2 == 0 { *s } else { "*" })
        .collect::<Vec<_>>()
        .join("/")
}

/// `projects/{project}/databases/{database_id}/documents/`: the prefix of every document
/// name and reference value in the data set.
pub fn documents_prefix(project: &str, database_id: &str) -> String {
    format!("projects/{project}/databases/{database_id}/documents/")
}

/// The documents of the data set for `users` users, streamed (about 60 documents per
/// user are built at a time, never the whole set). Reference values are full names under
/// `projects/{project}/databases/{database_id}/documents/`.
///
/// `now` (microseconds since the epoch) is the data set's present: every timestamp is
/// at most that (stories and upload sessions expire within days after it).
///
/// Deterministic: same `users`, names and `now` → same documents, same order, same
/// values.
/// The fixed documents (`edge_cases`, `gifts`) come first, then each user's documents,
/// parents before their subcollections.
pub fn generate(
    users: usize,
    project: &str,
    database_id: &str,
    now: i64,
) -> impl Iterator<Item = DemoDoc> + Send + 'static {
    let gen = Gen {
        users: users as u64,
        prefix: documents_prefix(project, database_id),
        now,
    };
    let fixed = gen.fixed_docs();
    fixed
        .into_iter()
        .chain((0..users as u64).flat_map(move |i| gen.user_docs(i)))
}

/// The exact number of documents [`generate`] yields for `users` users.
pub fn expected_count(users: usize) -> usize {
    expected_counts(users).values().sum()
}

/// The exact number of documents [`generate`] yields for `users` users, per collection
/// pattern (see [`DemoDoc::collection_pattern`]). Patterns with no document are omitted.
pub fn expected_counts(users: usize) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut add = |pattern: &'static str, n: u64| {
        if n > 0 {
            *counts.entry(pattern).or_default() += n as usize;
        }
    };
    for (path, _) in edge_case_paths() {
        // Counted by pattern, so the fixed set and this table cannot drift apart.
        add(pattern_static(&collection_pattern(path)), 1);
    }
    add(GIFTS, GIFT_NAMES.len() as u64);
    for (pattern, n) in models::catalogue_counts() {
        add(pattern, n);
    }
    for i in 0..users as u64 {
        Plan::new(i, users as u64).count(&mut add);
    }
    counts
}

fn pattern_static(pattern: &str) -> &'static str {
    match pattern {
        "edge_cases" => EDGE_CASES,
        "edge_cases/*/children" => EDGE_CHILDREN,
        other => unreachable!("edge case pattern {other} has no static name"),
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------

const SEED: u64 = 0x6669_7265_7368_6966; // "fireshif"
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit key for a place in the data set (a tag and indices).
fn key(parts: &[u64]) -> u64 {
    parts.iter().fold(SEED, |h, &p| {
        fmix(h.rotate_left(23) ^ fmix(p.wrapping_add(GOLDEN)))
    })
}

/// SplitMix64: tiny, fast and, unlike `rand`'s `StdRng`, fixed forever, so the data set
/// never changes with a dependency update.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        fmix(self.0)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below((hi - lo) as u64) as i64
        }
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A Firestore-auto-id-like id (20 base62 characters) for a place in the data set.
fn auto_id(parts: &[u64]) -> String {
    let mut rng = Rng::new(key(parts));
    (0..20)
        .map(|_| ALPHABET[rng.below(62) as usize] as char)
        .collect()
}

// Tags of the places ids and value streams are keyed by.
const T_USER: u64 = 1;
const T_FOLLOW: u64 = 2;
const T_CONTENT: u64 = 3;
const T_COMMENT: u64 = 4;
const T_REPLY: u64 = 5;
const T_STORY: u64 = 6;
const T_CONVERSATION: u64 = 7;
const T_MESSAGE: u64 = 8;
const T_PRODUCT: u64 = 9;
const T_STORE: u64 = 10;
const T_ORDER: u64 = 11;
const T_CART: u64 = 12;
const T_TRANSACTION: u64 = 13;
const T_GIFT: u64 = 14;
const T_NOTIFICATION: u64 = 15;
const T_LIVESTREAM: u64 = 16;
const T_ARCHIVE: u64 = 17;
const T_ARCHIVE_ITEM: u64 = 18;
const T_USER_VALUES: u64 = 100;
const T_GIFT_VALUES: u64 = 101;
const T_PRODUCT_VALUES: u64 = 102;
const T_PRICE: u64 = 103;

// ---------------------------------------------------------------------------------------
// Value builders
// ---------------------------------------------------------------------------------------

fn val(t: ValueType) -> Value {
    Value {
        value_type: Some(t),
    }
}

fn null() -> Value {
    val(ValueType::NullValue(0))
}

fn boolean(b: bool) -> Value {
    val(ValueType::BooleanValue(b))
}

fn int(i: i64) -> Value {
    val(ValueType::IntegerValue(i))
}

fn double(d: f64) -> Value {
    val(ValueType::DoubleValue(d))
}

fn string(s: impl Into<String>) -> Value {
    val(ValueType::StringValue(s.into()))
}

fn bytes(b: Vec<u8>) -> Value {
    val(ValueType::BytesValue(b))
}

fn geo(latitude: f64, longitude: f64) -> Value {
    val(ValueType::GeoPointValue(LatLng {
        latitude,
        longitude,
    }))
}

fn array(values: Vec<Value>) -> Value {
    val(ValueType::ArrayValue(ArrayValue { values }))
}

fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
    val(ValueType::MapValue(MapValue {
        fields: entries.into_iter().map(|(k, v)| (k.into(), v)).collect(),
    }))
}

/// A Firestore vector value: `{"__type__": "__vector__", "value": [doubles]}`.
fn vector(values: &[f64]) -> Value {
    map([
        ("__type__", string("__vector__")),
        ("value", array(values.iter().map(|&d| double(d)).collect())),
    ])
}

/// A timestamp from microseconds since the Unix epoch (Firestore keeps microseconds).
fn ts(micros: i64) -> Value {
    val(ValueType::TimestampValue(Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }))
}

fn doc<K: Into<String>>(path: String, fields: impl IntoIterator<Item = (K, Value)>) -> DemoDoc {
    DemoDoc {
        path,
        fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Time and words
// ---------------------------------------------------------------------------------------

const SECOND: i64 = 1_000_000;
const HOUR: i64 = 3_600 * SECOND;
const DAY: i64 = 24 * HOUR;
/// 2026-01-01T00:00:00Z in microseconds: the `now` tests pass, so every run yields the
/// same documents.
pub const FIXED_NOW: i64 = 1_767_225_600 * SECOND;
/// How long before `now` the app opened.
const APP_AGE: i64 = 3 * 365 * DAY;

/// `now` for a data set made at this moment (microseconds since the epoch, rounded down
/// to the second).
pub fn wall_clock_now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(FIXED_NOW / SECOND);
    secs * SECOND
}

const ADJECTIVES: &[&str] = &[
    "sunny", "quiet", "brave", "lazy", "fuzzy", "neon", "cosmic", "tiny", "wild", "mellow",
    "swift", "golden", "salty", "happy", "rusty", "lucky",
];
const NOUNS: &[&str] = &[
    "otter", "falcon", "panda", "comet", "pixel", "tiger", "maple", "river", "koala", "wolf",
    "lotus", "echo", "mango", "raven", "cactus", "nova",
];
const FIRST_NAMES: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dmitri", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas", "Kemal",
    "Léa", "Mateo", "Noor", "Olu", "Priya", "Zoë", "李雷", "Søren", "Ayşe",
];
const LAST_NAMES: &[&str] = &[
    "Silva",
    "Smith",
    "Müller",
    "Okafor",
    "Rossi",
    "Tanaka",
    "García",
    "Nowak",
    "Khan",
    "Dubois",
    "Ivanova",
    "Kim",
    "Haddad",
    "Johansson",
    "O'Brien",
    "Nguyễn",
];
const WORDS: &[&str] = &[
    "dance",
    "challenge",
    "sunset",
    "recipe",
    "vibes",
    "tutorial",
    "beach",
    "coffee",
    "cat",
    "street",
    "music",
    "live",
    "new",
    "today",
    "crazy",
    "best",
    "friends",
    "trip",
    "city",
    "night",
    "morning",
    "glow",
    "workout",
    "fail",
    "duet",
    "remix",
    "cover",
    "art",
    "sketch",
    "game",
    "win",
    "wow",
    "love",
    "mood",
    "weekend",
    "road",
    "rain",
    "snow",
];
const INTERESTS: &[&str] = &[
    "music",
    "comedy",
    "sports",
    "gaming",
    "cooking",
    "travel",
    "fashion",
    "pets",
    "dance",
    "tech",
    "art",
    "fitness",
    "beauty",
    "diy",
    "education",
    "anime",
];
const PLACE_NAMES: &[&str] = &[
    "Lisbon",
    "Lagos",
    "Tokyo",
    "São Paulo",
    "Kraków",
    "Seoul",
    "Nairobi",
    "Reykjavík",
    "Montréal",
    "Zürich",
    "Mumbai",
    "Austin",
];
const GIFT_NAMES: &[&str] = &[
    "Rose",
    "Heart",
    "Thumbs Up",
    "Fire",
    "Star",
    "Crown",
    "Rocket",
    "Diamond",
    "Unicorn",
    "Rainbow",
    "Lion",
    "Castle",
    "Galaxy",
    "Sports Car",
    "Yacht",
    "Planet",
    "Phoenix",
    "Dragon",
    "Universe",
    "Confetti",
];
const GIFT_COSTS: &[i64] = &[
    1, 5, 10, 20, 50, 99, 199, 299, 499, 699, 999, 1499, 1999, 2999, 4999, 7999, 9999, 14999,
    29999, 3,
];

fn sentence(rng: &mut Rng, min: u64, max: u64) -> String {
    let n = min + rng.below(max - min + 1);
    let words: Vec<&str> = (0..n).map(|_| *rng.pick(WORDS)).collect();
    words.join(" ")
}

fn hashtags(rng: &mut Rng) -> Vec<Value> {
    (0..rng.below(5))
        .map(|_| string(format!("#{}", rng.pick(WORDS))))
        .collect()
}

fn round_to(d: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (d * f).round() / f
}

fn random_geo(rng: &mut Rng) -> Value {
    geo(
        round_to(rng.unit() * 180.0 - 90.0, 6),
        round_to(rng.unit() * 360.0 - 180.0, 6),
    )
}

// ---------------------------------------------------------------------------------------
// Collection names and the per-user plan
// ---------------------------------------------------------------------------------------

const USERS: &str = "users";
const FOLLOWS: &str = "follows";
const CONTENT: &str = "content";
const COMMENTS: &str = "content/*/comments";
const REPLIES: &str = "content/*/comments/*/replies";
const LIKES: &str = "content/*/likes";
const STORIES: &str = "stories";
const CONVERSATIONS: &str = "conversations";
const MESSAGES: &str = "conversations/*/messages";
const PRODUCTS: &str = "products";
const STORES: &str = "stores";
const ORDERS: &str = "orders";
const CARTS: &str = "carts";
const WALLETS: &str = "wallets";
const TRANSACTIONS: &str = "wallets/*/transactions";
const GIFTS: &str = "gifts";
const NOTIFICATIONS: &str = "notifications";
const LIVESTREAMS: &str = "livestreams";
const ARCHIVE_ITEMS: &str = "archives/*/items";
const EDGE_CASES: &str = "edge_cases";
const EDGE_CHILDREN: &str = "edge_cases/*/children";

/// Products each store sells.
const PRODUCTS_PER_STORE: u64 = 5;
/// Every this many users, one owns a store (user 0 always does).
const STORE_EVERY: u64 = 10;

/// How many documents of each kind user `i` owns: a pure function of `i` and `users`
/// (never of the random stream), so [`expected_counts`] needs no generation.
struct Plan {
    i: u64,
    users: u64,
}

impl Plan {
    fn new(i: u64, users: u64) -> Self {
        Plan { i, users }
    }
    fn follows(&self) -> u64 {
        if self.users < 2 {
            0
        } else {
            (2 + self.i % 7).min(self.users - 1)
        }
    }
    fn contents(&self) -> u64 {
        self.i % 5
    }
    fn comments(&self, k: u64) -> u64 {
        (self.i + 3 * k) % 7
    }
    fn replies(&self, k: u64, c: u64) -> u64 {
        if (self.i + k + c).is_multiple_of(3) {
            1 + (self.i + c) % 2
        } else {
            0
        }
    }
    fn likes(&self, k: u64) -> u64 {
        ((self.i + 2 * k) % 9).min(self.users.saturating_sub(1))
    }
    fn stories(&self) -> u64 {
        self.i % 3
    }
    fn transactions(&self) -> u64 {
        self.i % 7
    }
    fn has_conversation(&self) -> bool {
        self.i.is_multiple_of(2) && self.users >= 2
    }
    fn messages(&self) -> u64 {
        3 + (self.i / 2) % 9
    }
    fn notifications(&self) -> u64 {
        self.i % 9
    }
    fn orders(&self) -> u64 {
        self.i % 3
    }
    fn has_cart(&self) -> bool {
        self.i % 2 == 1
    }
    fn has_livestream(&self) -> bool {
        self.i.is_multiple_of(5)
    }
    fn has_store(&self) -> bool {
        self.i.is_multiple_of(STORE_EVERY)
    }
    fn archive_items(&self) -> u64 {
        if self.i % 20 == 7 {
            2
        } else {
            0
        }
    }

    /// Whether the set has any content document (users 1, 2, 3, 4, 6, … post).
    fn any_content(&self) -> bool {
        self.users >= 2
    }
    fn saves(&self) -> u64 {
        if self.any_content() {
            self.i % 3
        } else {
            0
        }
    }
    fn shares(&self) -> u64 {
        (self.any_content() && self.i % 2 == 1) as u64
    }
    fn views(&self) -> u64 {
        if self.any_content() {
            1 + self.i % 3
        } else {
            0
        }
    }
    /// Hosts 5, 15, 25, … battle the host five users before them.
    fn has_pk_battle(&self) -> bool {
        self.i % 10 == 5
    }
    fn has_multi_host(&self) -> bool {
        self.i.is_multiple_of(10)
    }
    fn has_live_shopping(&self) -> bool {
        self.has_store() && self.has_livestream()
    }
    fn coupons(&self) -> u64 {
        if self.has_store() {
            models::COUPONS_PER_STORE
        } else {
            0
        }
    }
    fn shipments(&self, o: u64) -> u64 {
        (self.i + o).is_multiple_of(2) as u64
    }
    fn gift_transactions(&self) -> u64 {
        if self.i.is_multiple_of(3) {
            2
        } else {
            0
        }
    }
    fn has_supporter_badge(&self) -> bool {
        self.gift_transactions() > 0
    }
    fn has_subscription(&self) -> bool {
        self.i % 4 == 1 && self.users >= 2
    }
    fn earnings(&self) -> u64 {
        if matches!(self.i % 5, 1 | 2) {
            2
        } else {
            0
        }
    }
    fn has_report(&self) -> bool {
        self.i % 7 == 3 && self.any_content()
    }
    fn has_audit_log(&self) -> bool {
        self.i.is_multiple_of(6)
    }
    fn analytics(&self) -> u64 {
        self.i.is_multiple_of(2) as u64
    }
    /// Daily metrics documents of the user's first content document.
    fn content_metrics(&self) -> u64 {
        1
    }
    fn qualities(&self, k: u64) -> u64 {
        1 + (self.i + k) % 2
    }
    fn has_trending(&self) -> bool {
        self.i % 4 == 2 && self.contents() > 0
    }
    fn has_ai_moderation(&self) -> bool {
        self.i % 2 == 1 && self.contents() > 0
    }
    fn has_moderation_queue_item(&self) -> bool {
        self.i % 6 == 1 && self.contents() > 0
    }
    fn has_strike(&self) -> bool {
        self.i % 15 == 4
    }
    fn has_content_rights(&self) -> bool {
        self.i % 3 == 2 && self.contents() > 0
    }
    fn activities(&self) -> u64 {
        2
    }
    fn has_original_sound(&self) -> bool {
        self.i.is_multiple_of(4)
    }
    fn has_scheduled_content(&self) -> bool {
        self.i % 4 == 3
    }
    fn has_upload_session(&self) -> bool {
        self.i % 2 == 1
    }
    fn has_seller_application(&self) -> bool {
        matches!(self.i % 10, 0 | 3)
    }
    fn searches(&self) -> u64 {
        1
    }
    fn has_recommendations(&self) -> bool {
        self.i.is_multiple_of(2) && self.any_content()
    }
    fn has_ticket(&self) -> bool {
        self.i % 8 == 2
    }
    fn has_ad_campaign(&self) -> bool {
        self.has_store()
    }
    fn has_credit(&self) -> bool {
        self.i % 3 == 1
    }

    fn count(&self, add: &mut impl FnMut(&'static str, u64)) {
        add(USERS, 1);
        add(WALLETS, 1);
        add(TRANSACTIONS, self.transactions());
        add(FOLLOWS, self.follows());
        add(CONTENT, self.contents());
        for k in 0..self.contents() {
            add(COMMENTS, self.comments(k));
            for c in 0..self.comments(k) {
                add(REPLIES, self.replies(k, c));
            }
            add(LIKES, self.likes(k));
        }
        add(STORIES, self.stories());
        if self.has_conversation() {
            add(CONVERSATIONS, 1);
            add(MESSAGES, self.messages());
        }
        add(NOTIFICATIONS, self.notifications());
        add(ORDERS, self.orders());
        add(CARTS, self.has_cart() as u64);
        add(LIVESTREAMS, self.has_livestream() as u64);
        if self.has_store() {
            add(STORES, 1);
            add(PRODUCTS, PRODUCTS_PER_STORE);
        }
        add(ARCHIVE_ITEMS, self.archive_items());
        self.count_models(add);
    }

    /// The later models (see [`models`]).
    fn count_models(&self, add: &mut impl FnMut(&'static str, u64)) {
        use models::*;
        add(SAVES, self.saves());
        add(SHARES, self.shares());
        add(VIEWS, self.views());
        add(PK_BATTLES, self.has_pk_battle() as u64);
        add(MULTI_HOST_SESSIONS, self.has_multi_host() as u64);
        add(LIVE_SHOPPING, self.has_live_shopping() as u64);
        add(COUPONS, self.coupons());
        add(PAYMENTS, self.orders());
        for o in 0..self.orders() {
            add(SHIPPING, self.shipments(o));
        }
        add(GIFT_TRANSACTIONS, self.gift_transactions());
        add(SUPPORTER_BADGES, self.has_supporter_badge() as u64);
        add(SUBSCRIPTIONS, self.has_subscription() as u64);
        add(CREATOR_EARNINGS, self.earnings());
        add(REPORTS, self.has_report() as u64);
        add(AUDIT_LOGS, self.has_audit_log() as u64);
        add(ANALYTICS, self.analytics());
        for k in 0..self.contents() {
            if k == 0 {
                add(CONTENT_METRICS, self.content_metrics());
            }
            add(VIDEO_QUALITIES, self.qualities(k));
        }
        add(TRENDING_RECORDS, self.has_trending() as u64);
        add(AI_MODERATION, self.has_ai_moderation() as u64);
        add(MODERATION_QUEUE, self.has_moderation_queue_item() as u64);
        add(TRANSCODE_JOBS, (self.contents() > 0) as u64);
        add(CONTENT_RIGHTS, self.has_content_rights() as u64);
        add(STRIKES, self.has_strike() as u64);
        add(USER_ACTIVITY, self.activities());
        add(SOUNDS, self.has_original_sound() as u64);
        add(SCHEDULED_CONTENT, self.has_scheduled_content() as u64);
        add(UPLOAD_SESSIONS, self.has_upload_session() as u64);
        add(SELLER_APPLICATIONS, self.has_seller_application() as u64);
        add(SEARCH_QUERIES, self.searches());
        add(RECOMMENDATIONS, self.has_recommendations() as u64);
        add(CUSTOMER_SERVICE, self.has_ticket() as u64);
        add(AD_CAMPAIGNS, self.has_ad_campaign() as u64);
        add(CREDITS, self.has_credit() as u64);
    }
}

fn user_id(i: u64) -> String {
    auto_id(&[T_USER, i])
}
fn content_id(i: u64, k: u64) -> String {
    auto_id(&[T_CONTENT, i, k])
}
fn order_id(i: u64, k: u64) -> String {
    auto_id(&[T_ORDER, i, k])
}
fn gift_id(g: u64) -> String {
    auto_id(&[T_GIFT, g])
}
fn store_id(owner: u64) -> String {
    auto_id(&[T_STORE, owner])
}
fn product_id(owner: u64, p: u64) -> String {
    auto_id(&[T_PRODUCT, owner, p])
}
/// A product's price, shared by the product and the orders that buy it.
fn product_price(owner: u64, p: u64) -> f64 {
    let mut rng = Rng::new(key(&[T_PRICE, owner, p]));
    (99 + rng.below(19_900)) as f64 / 100.0
}

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
struct Gen {
    users: u64,
    /// `projects/{p}/databases/{d}/documents/`
    prefix: String,
    /// The data set's present, in microseconds since the epoch.
    now: i64,
}

impl Gen {
    /// When the app opened.
    fn launch(&self) -> i64 {
        self.now - APP_AGE
    }

    fn reference(&self, path: &str) -> Value {
        val(ValueType::ReferenceValue(format!("{}{path}", self.prefix)))
    }

    fn user_ref(&self, j: u64) -> Value {
        self.reference(&format!("users/{}", user_id(j)))
    }

    /// Distinct users other than `i`, `n <= users - 1` of them, starting at a random offset.
    fn others(&self, rng: &mut Rng, i: u64, n: u64) -> Vec<u64> {
        let span = self.users - 1;
        let start = rng.below(span);
        (0..n)
            .map(|k| (i + 1 + (start + k) % span) % self.users)
            .collect()
    }

    /// A random existing product: (store owner, product index).
    fn random_product(&self, rng: &mut Rng) -> (u64, u64) {
        let stores = (self.users - 1) / STORE_EVERY + 1;
        (
            rng.below(stores) * STORE_EVERY,
            rng.below(PRODUCTS_PER_STORE),
        )
    }

    fn fixed_docs(&self) -> Vec<DemoDoc> {
        let mut docs = self.edge_cases();
        for (g, name) in GIFT_NAMES.iter().enumerate() {
            let mut rng = Rng::new(key(&[T_GIFT_VALUES, g as u64]));
            let slug = name.to_lowercase().replace(' ', "-");
            docs.push(doc(
                format!("gifts/{}", gift_id(g as u64)),
                [
                    ("name", string(*name)),
                    ("coinCost", int(GIFT_COSTS[g])),
                    (
                        "animationUrl",
                        string(format!("https://cdn.example.com/gifts/{slug}.webp")),
                    ),
                    ("active", boolean(g % 7 != 6)),
                    ("createdAt", ts(self.launch() + rng.range(0, 30 * DAY))),
                ],
            ));
        }
        self.catalogue_docs(&mut docs);
        docs
    }

    /// All documents user `i` owns, parents before children.
    fn user_docs(&self, i: u64) -> Vec<DemoDoc> {
        let plan = Plan::new(i, self.users);
        let mut rng = Rng::new(key(&[T_USER_VALUES, i]));
        let uid = user_id(i);
        let mut docs = Vec::with_capacity(64);

        // users
        let created = rng.range(self.launch(), self.now - DAY);
        let username = format!("{}_{}{}", rng.pick(ADJECTIVES), rng.pick(NOUNS), i);
        let mut user = vec![
            ("username", string(username.clone())),
            ("email", string(format!("{username}@example.com"))),
            (
                "displayName",
                string(format!(
                    "{} {}",
                    rng.pick(FIRST_NAMES),
                    rng.pick(LAST_NAMES)
                )),
            ),
            (
                "bio",
                string(if rng.chance(1, 5) {
                    String::new()
                } else {
                    sentence(&mut rng, 2, 12)
                }),
            ),
            (
                "avatarUrl",
                string(format!("https://cdn.example.com/avatars/{uid}.jpg")),
            ),
            ("createdAt", ts(created)),
            ("lastActiveAt", ts(rng.range(created, self.now))),
            ("isVerified", boolean(rng.chance(1, 10))),
            ("followerCount", {
                // Roughly log-uniform: most users have few followers, some very many.
                let magnitude = 10u64.pow(rng.below(7) as u32);
                int(rng.below(magnitude) as i64)
            }),
            ("coins", int(rng.below(5_000) as i64)),
            ("rating", double(round_to(1.0 + rng.unit() * 4.0, 2))),
            (
                "settings",
                map([
                    ("theme", string(*rng.pick(&["dark", "light", "system"]))),
                    (
                        "notifications",
                        map([
                            ("push", boolean(rng.chance(4, 5))),
                            ("email", boolean(rng.chance(1, 3))),
                        ]),
                    ),
                    (
                        "language",
                        string(*rng.pick(&["en", "pt-BR", "ja", "de", "fr"])),
                    ),
                ]),
            ),
            (
                "interests",
                array(
                    (0..rng.below(6))
                        .map(|_| string(*rng.pick(INTERESTS)))
                        .collect(),
                ),
            ),
            (
                "deletedAt",
                if rng.chance(1, 50) {
                    ts(rng.range(created, self.now))
                } else {
                    null()
                },
            ),
        ];
        if rng.chance(1, 3) {
            user.push(("location", random_geo(&mut rng)));
        }
        docs.push(doc(format!("users/{uid}"), user));

        // wallets/{uid} and its transactions
        docs.push(doc(
            format!("wallets/{uid}"),
            [
                ("balance", int(rng.below(100_000) as i64)),
                ("currency", string("COIN")),
                ("updatedAt", ts(rng.range(created, self.now))),
            ],
        ));
        for t in 0..plan.transactions() {
            let (kind, amount, reference) = if plan.orders() > 0 && rng.chance(1, 3) {
                let o = rng.below(plan.orders());
                (
                    "purchase",
                    -(rng.range(1, 500)),
                    self.reference(&format!("orders/{}", order_id(i, o))),
                )
            } else {
                let g = rng.below(GIFT_NAMES.len() as u64);
                let gift = self.reference(&format!("gifts/{}", gift_id(g)));
                if rng.chance(1, 2) {
                    ("gift_sent", -GIFT_COSTS[g as usize], gift)
                } else {
                    ("gift_received", GIFT_COSTS[g as usize], gift)
                }
            };
            docs.push(doc(
                format!(
                    "wallets/{uid}/transactions/{}",
                    auto_id(&[T_TRANSACTION, i, t])
                ),
                [
                    ("amount", int(amount)),
                    ("type", string(kind)),
                    ("createdAt", ts(rng.range(created, self.now))),
                    ("ref", reference),
                ],
            ));
        }

        // follows
        for (k, j) in self
            .others(&mut rng, i, plan.follows())
            .into_iter()
            .enumerate()
        {
            docs.push(doc(
                format!("follows/{}", auto_id(&[T_FOLLOW, i, k as u64])),
                [
                    ("followerId", string(uid.clone())),
                    ("followingId", string(user_id(j))),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // content, comments, replies, likes
        for k in 0..plan.contents() {
            let cid = content_id(i, k);
            let posted = rng.range(created, self.now);
            let likes = plan.likes(k);
            let mut fields = vec![
                ("authorId", string(uid.clone())),
                ("author", self.user_ref(i)),
                ("caption", string(sentence(&mut rng, 0, 10))),
                ("hashtags", array(hashtags(&mut rng))),
                ("duration", double(round_to(1.0 + rng.unit() * 179.0, 3))),
                ("createdAt", ts(posted)),
                (
                    "stats",
                    map([
                        ("views", int((likes * 37 + rng.below(100_000)) as i64)),
                        ("likes", int(likes as i64)),
                        ("shares", int(rng.below(500) as i64)),
                    ]),
                ),
                (
                    "visibility",
                    string(*rng.pick(&["public", "public", "public", "followers", "private"])),
                ),
                ("thumbnail", {
                    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
                    let n = 16 + rng.below(48) as usize;
                    b.extend(rng.bytes(n));
                    bytes(b)
                }),
                (
                    "embedding",
                    vector(
                        &(0..16)
                            .map(|_| round_to(rng.unit() * 2.0 - 1.0, 4))
                            .collect::<Vec<_>>(),
                    ),
                ),
            ];
            if rng.chance(1, 3) {
                let places = (0..1 + rng.below(3))
                    .map(|_| {
                        map([
                            ("name", string(*rng.pick(PLACE_NAMES))),
                            ("geo", random_geo(&mut rng)),
                        ])
                    })
                    .collect();
                fields.push(("places", array(places)));
            }
            docs.push(doc(format!("content/{cid}"), fields));

            for c in 0..plan.comments(k) {
                let comment_id = auto_id(&[T_COMMENT, i, k, c]);
                let commented = rng.range(posted, self.now);
                docs.push(doc(
                    format!("content/{cid}/comments/{comment_id}"),
                    [
                        ("authorId", string(user_id(rng.below(self.users)))),
                        ("text", string(sentence(&mut rng, 1, 15))),
                        ("createdAt", ts(commented)),
                        ("likeCount", int(rng.below(200) as i64)),
                    ],
                ));
                for r in 0..plan.replies(k, c) {
                    docs.push(doc(
                        format!(
                            "content/{cid}/comments/{comment_id}/replies/{}",
                            auto_id(&[T_REPLY, i, k, c, r])
                        ),
                        [
                            ("authorId", string(user_id(rng.below(self.users)))),
                            ("text", string(sentence(&mut rng, 1, 10))),
                            ("createdAt", ts(rng.range(commented, self.now))),
                            ("likeCount", int(rng.below(50) as i64)),
                        ],
                    ));
                }
            }
            for j in self.others(&mut rng, i, likes) {
                let liker = user_id(j);
                docs.push(doc(
                    format!("content/{cid}/likes/{liker}"),
                    [
                        ("userId", string(liker)),
                        ("createdAt", ts(rng.range(posted, self.now))),
                    ],
                ));
            }
        }

        // stories
        for s in 0..plan.stories() {
            let at = rng.range(self.now - 2 * DAY, self.now);
            let viewers = (0..rng.below(6))
                .map(|_| self.user_ref(rng.below(self.users)))
                .collect();
            docs.push(doc(
                format!("stories/{}", auto_id(&[T_STORY, i, s])),
                [
                    ("authorId", string(uid.clone())),
                    (
                        "mediaUrl",
                        string(format!("https://cdn.example.com/stories/{uid}/{s}.mp4")),
                    ),
                    ("createdAt", ts(at)),
                    ("expiresAt", ts(at + DAY)),
                    ("viewers", array(viewers)),
                ],
            ));
        }

        // conversations and messages
        if plan.has_conversation() {
            let conv = auto_id(&[T_CONVERSATION, i]);
            let mut participants = vec![i, (i + 1) % self.users];
            if self.users >= 3 && rng.chance(1, 4) {
                participants.push((i + 2) % self.users);
            }
            let started = rng.range(created, self.now - DAY);
            let mut at = started;
            let mut messages = Vec::new();
            for m in 0..plan.messages() {
                at += rng.range(SECOND, 6 * HOUR);
                let sender = *rng.pick(&participants);
                let mut read_by = Vec::new();
                for &p in participants.iter().filter(|&&p| p != sender) {
                    if rng.chance(2, 3) {
                        read_by.push((user_id(p), ts(at + rng.range(SECOND, HOUR))));
                    }
                }
                messages.push(doc(
                    format!(
                        "conversations/{conv}/messages/{}",
                        auto_id(&[T_MESSAGE, i, m])
                    ),
                    [
                        ("senderId", string(user_id(sender))),
                        ("text", string(sentence(&mut rng, 1, 20))),
                        ("sentAt", ts(at)),
                        ("readBy", map(read_by)),
                    ],
                ));
            }
            docs.push(doc(
                format!("conversations/{conv}"),
                [
                    (
                        "participants",
                        array(participants.iter().map(|&p| string(user_id(p))).collect()),
                    ),
                    ("isGroup", boolean(participants.len() > 2)),
                    ("createdAt", ts(started)),
                    ("lastMessageAt", ts(at)),
                ],
            ));
            docs.extend(messages);
        }

        // notifications
        for n in 0..plan.notifications() {
            let kind = *rng.pick(&["like", "comment", "follow", "gift", "mention"]);
            let actor = user_id(rng.below(self.users));
            let target = if plan.contents() > 0 {
                self.reference(&format!(
                    "content/{}",
                    content_id(i, rng.below(plan.contents()))
                ))
            } else {
                self.user_ref(i)
            };
            docs.push(doc(
                format!("notifications/{}", auto_id(&[T_NOTIFICATION, i, n])),
                [
                    ("userId", string(uid.clone())),
                    ("type", string(kind)),
                    (
                        "payload",
                        map([
                            ("actorId", string(actor)),
                            ("target", target),
                            ("message", string(sentence(&mut rng, 2, 8))),
                        ]),
                    ),
                    ("read", boolean(rng.chance(1, 2))),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // orders
        for o in 0..plan.orders() {
            let mut total = 0.0;
            let items = (0..1 + rng.below(3))
                .map(|_| {
                    let (owner, p) = self.random_product(&mut rng);
                    let qty = 1 + rng.below(4);
                    let price = product_price(owner, p);
                    total += price * qty as f64;
                    map([
                        (
                            "productId",
                            self.reference(&format!("products/{}", product_id(owner, p))),
                        ),
                        ("qty", int(qty as i64)),
                        ("price", double(price)),
                    ])
                })
                .collect();
            let mut fields = vec![
                ("userId", string(uid.clone())),
                ("items", array(items)),
                ("total", double(round_to(total, 2))),
                (
                    "status",
                    string(*rng.pick(&["placed", "paid", "shipped", "delivered", "cancelled"])),
                ),
                ("placedAt", ts(rng.range(created, self.now))),
            ];
            if rng.chance(1, 2) {
                fields.push((
                    "shippingAddress",
                    map([
                        ("city", string(*rng.pick(PLACE_NAMES))),
                        ("postalCode", string(format!("{:05}", rng.below(100_000)))),
                        ("geo", random_geo(&mut rng)),
                    ]),
                ));
            }
            docs.push(doc(format!("orders/{}", order_id(i, o)), fields));
        }

        // carts
        if plan.has_cart() {
            let items = (0..rng.below(4))
                .map(|_| {
                    let (owner, p) = self.random_product(&mut rng);
                    map([
                        (
                            "productId",
                            self.reference(&format!("products/{}", product_id(owner, p))),
                        ),
                        ("qty", int(1 + rng.below(3) as i64)),
                    ])
                })
                .collect();
            docs.push(doc(
                format!("carts/{}", auto_id(&[T_CART, i])),
                [
                    ("userId", string(uid.clone())),
                    ("items", array(items)),
                    ("updatedAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // livestreams
        if plan.has_livestream() {
            let started = rng.range(created, self.now - HOUR);
            let ended = if rng.chance(1, 4) {
                null()
            } else {
                ts(started + rng.range(5 * 60 * SECOND, 4 * HOUR))
            };
            docs.push(doc(
                format!("livestreams/{}", auto_id(&[T_LIVESTREAM, i])),
                [
                    ("hostId", string(uid.clone())),
                    ("title", string(sentence(&mut rng, 2, 8))),
                    ("startedAt", ts(started)),
                    ("endedAt", ended),
                    ("viewerPeak", int(rng.below(50_000) as i64)),
                    ("tags", array(hashtags(&mut rng))),
                ],
            ));
        }

        // stores and their products
        if plan.has_store() {
            let sid = store_id(i);
            docs.push(doc(
                format!("stores/{sid}"),
                [
                    ("ownerId", self.user_ref(i)),
                    (
                        "name",
                        string(format!("{} {} Shop", rng.pick(ADJECTIVES), rng.pick(NOUNS))),
                    ),
                    ("rating", double(round_to(2.5 + rng.unit() * 2.5, 1))),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
            for p in 0..PRODUCTS_PER_STORE {
                let pid = product_id(i, p);
                let mut prng = Rng::new(key(&[T_PRODUCT_VALUES, i, p]));
                let images = (0..1 + prng.below(4))
                    .map(|n| string(format!("https://cdn.example.com/products/{pid}/{n}.jpg")))
                    .collect();
                let tags = (0..prng.below(4))
                    .map(|_| string(*prng.pick(INTERESTS)))
                    .collect();
                docs.push(doc(
                    format!("products/{pid}"),
                    [
                        ("storeId", string(sid.clone())),
                        (
                            "title",
                            string(format!("{} {}", prng.pick(ADJECTIVES), prng.pick(WORDS))),
                        ),
                        ("price", double(product_price(i, p))),
                        (
                            "currency",
                            string(*prng.pick(&["USD", "EUR", "BRL", "JPY"])),
                        ),
                        ("stock", int(prng.below(1_000) as i64)),
                        ("tags", array(tags)),
                        ("images", array(images)),
                    ],
                ));
            }
        }

        // archives/{missing}/items: subcollection documents whose parent is never written
        let archive = auto_id(&[T_ARCHIVE, i]);
        for a in 0..plan.archive_items() {
            docs.push(doc(
                format!(
                    "archives/{archive}/items/{}",
                    auto_id(&[T_ARCHIVE_ITEM, i, a])
                ),
                [
                    ("archivedAt", ts(rng.range(created, self.now))),
                    (
                        "reason",
                        string(*rng.pick(&["moderation", "user_request", "expired"])),
                    ),
                    (
                        "originalPath",
                        string(format!("content/{}", auto_id(&[T_ARCHIVE_ITEM, i, a, 1]))),
                    ),
                    (
                        "data",
                        map([
                            ("caption", string(sentence(&mut rng, 1, 6))),
                            ("ownerId", string(uid.clone())),
                        ]),
                    ),
                ],
            ));
        }

        self.model_docs(i, &plan, &mut docs);
        docs
    }

    /// The fixed `edge_cases` documents (see [`edge_case_paths`]).
    fn edge_cases(&self) -> Vec<DemoDoc> {
        edge_case_paths()
            .into_iter()
            .map(|(path, build)| doc(path.to_string(), build(self)))
            .collect()
    }
}

type EdgeFields = Vec<(String, Value)>;

fn fields<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> EdgeFields {
    entries.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// The document id with a space and non-ASCII characters.
const UNICODE_ID: &str = "unicode ключ 🔥";
/// A user id that no document has.
const DANGLING_USER: &str = "dangling000000000000";

/// The fixed edge-case documents: paths and field builders.
#[allow(clippy::type_complexity)]
fn edge_case_paths() -> Vec<(&'static str, fn(&Gen) -> EdgeFields)> {
    vec![
        ("edge_cases/doubles", |_| {
            fields([
                ("nan", double(f64::NAN)),
                ("positiveInfinity", double(f64::INFINITY)),
                ("negativeInfinity", double(f64::NEG_INFINITY)),
                ("negativeZero", double(-0.0)),
                ("zero", double(0.0)),
                ("minPositive", double(f64::MIN_POSITIVE)),
                ("subnormal", double(5e-324)),
                ("max", double(f64::MAX)),
                ("lowest", double(f64::MIN)),
                ("integral", double(1.0)),
                ("tenth", double(0.1)),
                (
                    "inArray",
                    array(vec![
                        double(f64::NAN),
                        double(f64::NEG_INFINITY),
                        double(-0.0),
                        int(0),
                    ]),
                ),
            ])
        }),
        ("edge_cases/integers", |_| {
            fields([
                ("min", int(i64::MIN)),
                ("max", int(i64::MAX)),
                ("zero", int(0)),
                ("minusOne", int(-1)),
                ("maxSafePlusOne", int((1 << 53) + 1)),
                ("i32MaxPlusOne", int(i32::MAX as i64 + 1)),
                ("i32Min", int(i32::MIN as i64)),
            ])
        }),
        ("edge_cases/timestamps", |_| {
            fields([
                // 0001-01-01T00:00:00Z, the first instant Firestore accepts.
                ("minimum", ts(-62_135_596_800 * SECOND)),
                // 9999-12-31T23:59:59.999999Z, the last one (at microsecond precision).
                ("maximum", ts(253_402_300_799 * SECOND + 999_999)),
                // 1969-07-20T20:17:40.123456Z: before the epoch, with microseconds.
                ("moonLanding", ts(-14_182_940 * SECOND + 123_456)),
                ("epoch", ts(0)),
                ("microBeforeEpoch", ts(-1)),
                ("microAfterEpoch", ts(1)),
                ("base", ts(FIXED_NOW)),
                ("subMillisecond", ts(FIXED_NOW + 999)),
                ("inArray", array(vec![ts(-1), ts(0), ts(1)])),
            ])
        }),
        ("edge_cases/empties", |_| {
            fields([
                ("emptyMap", map(Vec::<(String, Value)>::new())),
                ("emptyArray", array(vec![])),
                ("emptyString", string("")),
                ("emptyBytes", bytes(vec![])),
                ("null", null()),
                (
                    "nestedEmpties",
                    map([
                        ("map", map(Vec::<(String, Value)>::new())),
                        ("array", array(vec![])),
                    ]),
                ),
                (
                    "arrayOfEmpties",
                    array(vec![
                        null(),
                        string(""),
                        map(Vec::<(String, Value)>::new()),
                        bytes(vec![]),
                    ]),
                ),
                ("false", boolean(false)),
            ])
        }),
        ("edge_cases/deep", |_| {
            // 20 levels of containers, alternating maps and arrays (Firestore does not
            // allow an array directly inside an array).
            let mut v = string("bottom");
            for level in (1..=20).rev() {
                v = if level % 2 == 1 {
                    map([(format!("level{level}"), v)])
                } else {
                    array(vec![v, int(level)])
                };
            }
            fields([("nested", v)])
        }),
        ("edge_cases/field_names", |_| {
            fields([
                ("a.b", string("dot")),
                ("$dollar", string("leading dollar")),
                ("$", string("just a dollar")),
                ("mid$dle", string("dollar inside")),
                ("with space", string("space")),
                ("naïve ключ 🔥", string("unicode")),
                ("`backtick`", string("backticks")),
                ("123", string("numeric")),
                ("UPPER_lower", string("case")),
                (
                    "nested.map",
                    map([
                        ("$inner", int(1)),
                        ("x.y.z", int(2)),
                        ("ключ", map([("$deeper.key", boolean(true))])),
                    ]),
                ),
                (
                    "arrayOfOddKeys",
                    array(vec![map([("$k", int(1)), ("a.b", int(2))])]),
                ),
            ])
        }),
        ("edge_cases/references", |g| {
            fields([
                // A subcollection document (which exists).
                (
                    "subcollectionDoc",
                    g.reference("edge_cases/nested-parent/children/child"),
                ),
                // A document that does not exist.
                ("dangling", g.reference(&format!("users/{DANGLING_USER}"))),
                // A document whose parent document does not exist.
                (
                    "orphan",
                    g.reference("edge_cases/ghost-parent/children/orphan"),
                ),
                // A document id with a space and non-ASCII characters.
                (
                    "unicodeId",
                    g.reference(&format!("edge_cases/{UNICODE_ID}")),
                ),
                (
                    "inArray",
                    array(vec![
                        g.reference("edge_cases/doubles"),
                        g.reference("edge_cases/integers"),
                        null(),
                    ]),
                ),
                (
                    "inMap",
                    map([("self", g.reference("edge_cases/references"))]),
                ),
                ("gift", g.reference(&format!("gifts/{}", gift_id(0)))),
            ])
        }),
        ("edge_cases/geopoints", |_| {
            fields([
                ("origin", geo(0.0, 0.0)),
                ("southWest", geo(-90.0, -180.0)),
                ("northEast", geo(90.0, 180.0)),
                (
                    "inArray",
                    array(vec![
                        geo(0.0, 0.0),
                        geo(-90.0, -180.0),
                        geo(90.0, 180.0),
                        geo(48.858_37, 2.294_481),
                    ]),
                ),
                (
                    "placesInArray",
                    array(vec![
                        map([
                            ("name", string("Eiffel Tower")),
                            ("geo", geo(48.858_37, 2.294_481)),
                        ]),
                        map([("name", string("Null Island")), ("geo", geo(0.0, 0.0))]),
                    ]),
                ),
            ])
        }),
        ("edge_cases/strings_bytes", |_| {
            fields([
                ("unicode", string("naïve ключ 🔥")),
                ("rightToLeft", string("שלום עולם")),
                ("emojiSequence", string("👩‍👩‍👧‍👦 🏳️‍🌈")),
                ("combining", string("e\u{301} vs \u{e9}")),
                ("nulInside", string("a\u{0}b")),
                ("controlChars", string("tab\tnewline\nreturn\r")),
                ("long", string("x".repeat(10_000))),
                ("allBytes", bytes((0..=255u8).collect())),
                ("zeroByte", bytes(vec![0])),
                (
                    "jsonLooking",
                    string("{\"$oid\": \"5f0000000000000000000000\"}"),
                ),
            ])
        }),
        ("edge_cases/vectors", |_| {
            fields([
                ("oneDimension", vector(&[0.5])),
                (
                    "sixteen",
                    vector(&(0..16).map(|d| d as f64 / 16.0 - 0.5).collect::<Vec<_>>()),
                ),
                (
                    "extremes",
                    vector(&[f64::MAX, -f64::MAX, f64::MIN_POSITIVE, -0.0]),
                ),
                ("inMap", map([("embedding", vector(&[1.0, 2.0, 3.0]))])),
                // Not inside an array: Firestore rejects that ("Cannot convert a vector
                // value in an array value").
                (
                    "inMapInArray",
                    array(vec![map([("embedding", vector(&[1.0, 0.0]))])]),
                ),
            ])
        }),
        ("edge_cases/large", |_| {
            fields([
                ("ints", array((0..1_000).map(int).collect())),
                (
                    "wideMap",
                    map((0..500).map(|k| (format!("key{k:03}"), int(k)))),
                ),
            ])
        }),
        ("edge_cases/type_conflict_a", |g| {
            fields([
                ("conflict", string("a string")),
                ("sometimes", g.user_ref(0)),
            ])
        }),
        ("edge_cases/type_conflict_b", |_| {
            fields([("conflict", int(42)), ("sometimes", null())])
        }),
        ("edge_cases/type_conflict_c", |_| {
            fields([("conflict", map([("was", string("a map"))]))])
        }),
        // A document with no fields at all.
        ("edge_cases/empty", |_| Vec::new()),
        ("edge_cases/unicode ключ 🔥", |_| {
            fields([(
                "note",
                string("document id with a space and non-ASCII characters"),
            )])
        }),
        ("edge_cases/nested-parent", |_| {
            fields([("note", string("parent of a subcollection"))])
        }),
        ("edge_cases/nested-parent/children/child", |g| {
            fields([
                ("note", string("a subcollection document")),
                ("parent", g.reference("edge_cases/nested-parent")),
            ])
        }),
        // Its parent `edge_cases/ghost-parent` is never written.
        ("edge_cases/ghost-parent/children/orphan", |_| {
            fields([(
                "note",
                string("subcollection document under a missing parent"),
            )])
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    /// A canonical, order-independent rendering of a value (map keys sorted, doubles by
    /// bits so NaN equals itself).
    fn canon(v: &Value) -> String {
        match &v.value_type {
            None => "none".into(),
            Some(ValueType::NullValue(_)) => "null".into(),
            Some(ValueType::BooleanValue(b)) => format!("bool:{b}"),
            Some(ValueType::IntegerValue(i)) => format!("int:{i}"),
            Some(ValueType::DoubleValue(d)) => format!("double:{:x}", d.to_bits()),
            Some(ValueType::TimestampValue(t)) => format!("ts:{}.{}", t.seconds, t.nanos),
            Some(ValueType::StringValue(s)) => format!("str:{s:?}"),
            Some(ValueType::BytesValue(b)) => format!("bytes:{b:?}"),
            Some(ValueType::ReferenceValue(r)) => format!("ref:{r:?}"),
            Some(ValueType::GeoPointValue(g)) => {
                format!("geo:{:x},{:x}", g.latitude.to_bits(), g.longitude.to_bits())
            }
            Some(ValueType::ArrayValue(a)) => {
                format!(
                    "[{}]",
                    a.values.iter().map(canon).collect::<Vec<_>>().join(",")
                )
            }
            Some(ValueType::MapValue(m)) => canon_fields(&m.fields),
            Some(ValueType::FieldReferenceValue(f)) => format!("field:{f}"),
            Some(other) => format!("other:{other:?}"),
        }
    }

    fn canon_fields(fields: &HashMap<String, Value>) -> String {
        let sorted: BTreeMap<_, _> = fields.iter().collect();
        let parts: Vec<String> = sorted
            .into_iter()
            .map(|(k, v)| format!("{k:?}:{}", canon(v)))
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    fn canon_doc(d: &DemoDoc) -> String {
        format!("{}={}", d.path, canon_fields(&d.fields))
    }

    fn is_vector(v: &Value) -> bool {
        match &v.value_type {
            Some(ValueType::MapValue(m)) => {
                m.fields.get("__type__").and_then(|t| t.value_type.as_ref())
                    == Some(&ValueType::StringValue("__vector__".into()))
            }
            _ => false,
        }
    }

    /// Calls `f` on every value, nested ones included, with its container depth.
    fn walk(v: &Value, depth: usize, f: &mut impl FnMut(&Value, usize)) {
        f(v, depth);
        match &v.value_type {
            Some(ValueType::ArrayValue(a)) => a.values.iter().for_each(|x| walk(x, depth + 1, f)),
            Some(ValueType::MapValue(m)) => m.fields.values().for_each(|x| walk(x, depth + 1, f)),
            _ => {}
        }
    }

    fn kind(v: &Value) -> &'static str {
        if is_vector(v) {
            return "vector";
        }
        match &v.value_type {
            None => "none",
            Some(ValueType::NullValue(_)) => "null",
            Some(ValueType::BooleanValue(_)) => "boolean",
            Some(ValueType::IntegerValue(_)) => "integer",
            Some(ValueType::DoubleValue(_)) => "double",
            Some(ValueType::TimestampValue(_)) => "timestamp",
            Some(ValueType::StringValue(_)) => "string",
            Some(ValueType::BytesValue(_)) => "bytes",
            Some(ValueType::ReferenceValue(_)) => "reference",
            Some(ValueType::GeoPointValue(_)) => "geopoint",
            Some(ValueType::ArrayValue(_)) => "array",
            Some(ValueType::MapValue(_)) => "map",
            Some(_) => "other",
        }
    }

    const P: &str = "demo-mixillo";
    const D: &str = "(default)";

    #[test]
    fn deterministic() {
        let a: Vec<String> = generate(120, P, D, FIXED_NOW)
            .map(|d| canon_doc(&d))
            .collect();
        let b: Vec<String> = generate(120, P, D, FIXED_NOW)
            .map(|d| canon_doc(&d))
            .collect();
        assert_eq!(a, b);
        // A larger set starts with the same users: a user's documents depend only on its
        // index (and, for the few that pick other users, on the number of users).
        let ids_a: Vec<String> = generate(10, P, D, FIXED_NOW)
            .filter(|d| d.collection_pattern() == "users")
            .map(|d| d.path)
            .collect();
        let ids_b: Vec<String> = generate(20, P, D, FIXED_NOW)
            .filter(|d| d.collection_pattern() == "users")
            .take(10)
            .map(|d| d.path)
            .collect();
        assert_eq!(ids_a, ids_b);
    }

    #[test]
    fn expected_counts_match() {
        for users in [0, 1, 2, 3, 7, 10, 21, 100, 333] {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            let mut total = 0;
            for d in generate(users, P, D, FIXED_NOW) {
                *counts.entry(d.collection_pattern()).or_default() += 1;
                total += 1;
            }
            assert_eq!(total, expected_count(users), "users={users}");
            let expected: BTreeMap<String, usize> = expected_counts(users)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(counts, expected, "users={users}");
        }
    }

    #[test]
    fn about_sixty_docs_per_user() {
        let fixed = expected_count(0);
        for users in [1_000, 2_500] {
            let per_user = (expected_count(users) - fixed) as f64 / users as f64;
            assert!(
                (55.0..=65.0).contains(&per_user),
                "{per_user} docs per user"
            );
        }
        assert!(expected_count(2_500) >= 140_000);
    }

    #[test]
    fn every_value_type_occurs() {
        let mut kinds = BTreeSet::new();
        for d in generate(50, P, D, FIXED_NOW) {
            for v in d.fields.values() {
                walk(v, 1, &mut |v, _| {
                    kinds.insert(kind(v));
                });
            }
        }
        let all = [
            "null",
            "boolean",
            "integer",
            "double",
            "timestamp",
            "string",
            "bytes",
            "reference",
            "geopoint",
            "array",
            "map",
            "vector",
        ];
        for k in all {
            assert!(kinds.contains(k), "no {k} value");
        }
        assert!(
            !kinds.contains("none") && !kinds.contains("other"),
            "{kinds:?}"
        );

        // Every kind also occurs outside edge_cases, in the app-shaped collections.
        let mut app_kinds = BTreeSet::new();
        for d in generate(50, P, D, FIXED_NOW).filter(|d| !d.path.starts_with("edge_cases/")) {
            for v in d.fields.values() {
                walk(v, 1, &mut |v, _| {
                    app_kinds.insert(kind(v));
                });
            }
        }
        for k in all {
            assert!(app_kinds.contains(k), "no {k} value outside edge_cases");
        }
    }

    #[test]
    fn edge_values_present() {
        let docs: HashMap<String, DemoDoc> = generate(0, P, D, FIXED_NOW)
            .map(|d| (d.path.clone(), d))
            .collect();
        let get = |path: &str, field: &str| -> ValueType {
            docs[path].fields[field].value_type.clone().unwrap()
        };
        assert!(
            matches!(get("edge_cases/doubles", "nan"), ValueType::DoubleValue(d) if d.is_nan())
        );
        assert!(
            matches!(get("edge_cases/doubles", "negativeZero"), ValueType::DoubleValue(d) if d == 0.0 && d.is_sign_negative())
        );
        assert_eq!(
            get("edge_cases/integers", "min"),
            ValueType::IntegerValue(i64::MIN)
        );
        let timestamp = |field: &str| match get("edge_cases/timestamps", field) {
            ValueType::TimestampValue(t) => {
                chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(timestamp("minimum"), "0001-01-01T00:00:00.000000Z");
        assert_eq!(timestamp("maximum"), "9999-12-31T23:59:59.999999Z");
        assert_eq!(timestamp("moonLanding"), "1969-07-20T20:17:40.123456Z");
        assert_eq!(timestamp("microBeforeEpoch"), "1969-12-31T23:59:59.999999Z");
        assert_eq!(timestamp("base"), "2026-01-01T00:00:00.000000Z");
        assert!(docs["edge_cases/empty"].fields.is_empty());
        assert!(docs.contains_key("edge_cases/unicode ключ 🔥"));
        assert!(!docs.contains_key("edge_cases/ghost-parent"));
        assert!(docs.contains_key("edge_cases/ghost-parent/children/orphan"));
        let names = &docs["edge_cases/field_names"].fields;
        for name in ["a.b", "$dollar", "with space", "naïve ключ 🔥"] {
            assert!(names.contains_key(name), "{name}");
        }
        // Exactly 20 levels of nesting.
        let mut max_depth = 0;
        walk(&docs["edge_cases/deep"].fields["nested"], 1, &mut |_, d| {
            max_depth = max_depth.max(d)
        });
        assert_eq!(max_depth, 21, "20 containers, then the leaf");
    }

    #[test]
    fn ids_unique_and_auto_id_shaped() {
        let mut paths = HashSet::new();
        for d in generate(400, P, D, FIXED_NOW) {
            assert!(paths.insert(d.path.clone()), "duplicate {}", d.path);
            if !d.path.starts_with("edge_cases/") {
                for (n, segment) in d.path.split('/').enumerate() {
                    if n % 2 == 1 {
                        assert_eq!(segment.len(), 20, "{}", d.path);
                        assert!(
                            segment.bytes().all(|b| b.is_ascii_alphanumeric()),
                            "{}",
                            d.path
                        );
                    }
                }
            }
        }
        // Ids spread over the base62 key space (ranges get split on it).
        let firsts: HashSet<u8> = generate(400, P, D, FIXED_NOW)
            .filter(|d| d.collection_pattern() == "users")
            .map(|d| d.id().as_bytes()[0])
            .collect();
        assert!(
            firsts.len() > 50,
            "{} distinct first characters",
            firsts.len()
        );
    }

    #[test]
    fn references_resolve_except_dangling() {
        let users = 60;
        let prefix = documents_prefix(P, D);
        let paths: HashSet<String> = generate(users, P, D, FIXED_NOW).map(|d| d.path).collect();
        let mut refs = 0;
        for d in generate(users, P, D, FIXED_NOW) {
            for v in d.fields.values() {
                walk(v, 1, &mut |v, _| {
                    if let Some(ValueType::ReferenceValue(r)) = &v.value_type {
                        refs += 1;
                        let rel = r.strip_prefix(&prefix).expect("full reference name");
                        if rel != format!("users/{DANGLING_USER}") {
                            assert!(paths.contains(rel), "{} references missing {rel}", d.path);
                        }
                    }
                });
            }
        }
        assert!(refs > 500, "{refs} references");
        // Foreign-key strings point to users that exist.
        for d in generate(users, P, D, FIXED_NOW) {
            for field in [
                "authorId",
                "userId",
                "followerId",
                "followingId",
                "hostId",
                "senderId",
            ] {
                if let Some(Some(ValueType::StringValue(id))) =
                    d.fields.get(field).map(|v| &v.value_type)
                {
                    assert!(paths.contains(&format!("users/{id}")), "{}.{field}", d.path);
                }
            }
        }
    }

    #[test]
    fn missing_parents_exist() {
        let paths: HashSet<String> = generate(100, P, D, FIXED_NOW).map(|d| d.path).collect();
        let orphans: Vec<&String> = paths
            .iter()
            .filter(|p| p.starts_with("archives/"))
            .collect();
        assert!(orphans.len() >= 5, "{orphans:?}");
        for p in orphans {
            let parent = p.rsplitn(3, '/').nth(2).unwrap();
            assert!(!paths.contains(parent), "{parent} exists");
        }
    }

    #[test]
    fn timestamps_microsecond_and_names_valid() {
        for d in generate(80, P, D, FIXED_NOW) {
            for (name, v) in &d.fields {
                assert!(!name.is_empty());
                assert!(!(name.starts_with("__") && name.ends_with("__")), "{name}");
                let mut max_depth = 0;
                walk(v, 1, &mut |v, depth| {
                    max_depth = max_depth.max(depth);
                    if let Some(ValueType::TimestampValue(t)) = &v.value_type {
                        assert_eq!(t.nanos % 1_000, 0, "{}", d.path);
                        assert!((0..1_000_000_000).contains(&t.nanos));
                    }
                    if let Some(ValueType::MapValue(m)) = &v.value_type {
                        for k in m.fields.keys() {
                            assert!(!k.is_empty());
                            if k.starts_with("__") && k.ends_with("__") {
                                assert!(is_vector(v), "{} has reserved key {k}", d.path);
                            }
                        }
                    }
                });
                assert!(max_depth <= 21, "{} nests {max_depth} levels", d.path);
            }
        }
    }

    #[test]
    fn collection_patterns() {
        assert_eq!(collection_pattern("users/abc"), "users");
        assert_eq!(
            collection_pattern("content/a/comments/b/replies/c"),
            "content/*/comments/*/replies"
        );
    }
}
