//! The rest of the seed app's models: catalogues (fixed size) and the per-user documents
//! of the collections that came after the first demo set (saves, views, payments,
//! moderation, analytics, recommendations, …).
//!
//! Every document here draws its values from its own seeded stream (never from the
//! streams of the original collections), so adding these collections left the documents
//! of the original ones unchanged. Every string foreign key points at a document that the
//! set contains: which documents exist is a pure function of the user index (see
//! [`super::Plan`]), and the pickers below only choose among those.

use super::*;

// Tags of the new id and value streams (the original ones stop at 103).
const T_CATEGORY: u64 = 200;
const T_LEVEL: u64 = 201;
const T_LANGUAGE: u64 = 202;
const T_TRANSLATION: u64 = 203;
const T_THEME: u64 = 204;
const T_COIN_PACKAGE: u64 = 205;
const T_TIER: u64 = 206;
const T_TRENDING_CONFIG: u64 = 207;
const T_PROVIDER: u64 = 208;
const T_FILTER: u64 = 209;
const T_EXPLORER: u64 = 210;
const T_TAG: u64 = 211;
const T_BANNER: u64 = 212;
const T_SETTING: u64 = 213;
const T_REC_META: u64 = 214;
const T_SOUND: u64 = 215;
const T_SAVE: u64 = 220;
const T_SHARE: u64 = 221;
const T_VIEW: u64 = 222;
const T_PK: u64 = 223;
const T_MULTI_HOST: u64 = 224;
const T_LIVE_SHOP: u64 = 225;
const T_COUPON: u64 = 226;
const T_PAYMENT: u64 = 227;
const T_SHIPPING: u64 = 228;
const T_GIFT_TX: u64 = 229;
const T_SUBSCRIPTION: u64 = 230;
const T_EARNINGS: u64 = 231;
const T_REPORT: u64 = 232;
const T_AUDIT: u64 = 233;
const T_ANALYTICS: u64 = 234;
const T_METRICS: u64 = 235;
const T_ACTIVITY: u64 = 236;
const T_TRENDING: u64 = 237;
const T_AI_MODERATION: u64 = 238;
const T_QUEUE: u64 = 239;
const T_STRIKE: u64 = 240;
const T_SCHEDULED: u64 = 241;
const T_TRANSCODE: u64 = 242;
const T_UPLOAD: u64 = 243;
const T_QUALITY: u64 = 244;
const T_RIGHTS: u64 = 245;
const T_SELLER: u64 = 246;
const T_SEARCH: u64 = 247;
const T_RECOMMENDATION: u64 = 248;
const T_BADGE: u64 = 249;
const T_TICKET: u64 = 250;
const T_AD: u64 = 251;
const T_CREDIT: u64 = 252;
const T_MODEL_VALUES: u64 = 300;
const T_CATALOGUE_VALUES: u64 = 301;

pub(super) const SAVES: &str = "users/*/saves";
pub(super) const SHARES: &str = "shares";
pub(super) const VIEWS: &str = "views";
pub(super) const PK_BATTLES: &str = "pk_battles";
pub(super) const STREAM_PROVIDERS: &str = "stream_providers";
pub(super) const MULTI_HOST_SESSIONS: &str = "multi_host_sessions";
pub(super) const STREAM_FILTERS: &str = "stream_filters";
pub(super) const CATEGORIES: &str = "categories";
pub(super) const COUPONS: &str = "stores/*/coupons";
pub(super) const PAYMENTS: &str = "payments";
pub(super) const SHIPPING: &str = "orders/*/shipping";
pub(super) const GIFT_TRANSACTIONS: &str = "gift_transactions";
pub(super) const SUBSCRIPTIONS: &str = "subscriptions";
pub(super) const SUBSCRIPTION_TIERS: &str = "subscription_tiers";
pub(super) const CREATOR_EARNINGS: &str = "users/*/earnings";
pub(super) const COIN_PACKAGES: &str = "coin_packages";
pub(super) const LIVE_SHOPPING: &str = "live_shopping_sessions";
pub(super) const REPORTS: &str = "reports";
pub(super) const SETTINGS: &str = "settings";
pub(super) const BANNERS: &str = "banners";
pub(super) const AUDIT_LOGS: &str = "audit_logs";
pub(super) const ANALYTICS: &str = "users/*/analytics";
pub(super) const CONTENT_METRICS: &str = "content/*/metrics";
pub(super) const USER_ACTIVITY: &str = "user_activity";
pub(super) const TRENDING_RECORDS: &str = "trending_records";
pub(super) const AI_MODERATION: &str = "ai_moderation";
pub(super) const MODERATION_QUEUE: &str = "moderation_queue";
pub(super) const STRIKES: &str = "strikes";
pub(super) const SOUNDS: &str = "sounds";
pub(super) const SCHEDULED_CONTENT: &str = "scheduled_content";
pub(super) const TRANSCODE_JOBS: &str = "transcode_jobs";
pub(super) const UPLOAD_SESSIONS: &str = "upload_sessions";
pub(super) const VIDEO_QUALITIES: &str = "content/*/qualities";
pub(super) const CONTENT_RIGHTS: &str = "content_rights";
pub(super) const SELLER_APPLICATIONS: &str = "seller_applications";
pub(super) const SEARCH_QUERIES: &str = "search_queries";
pub(super) const RECOMMENDATIONS: &str = "content_recommendations";
pub(super) const RECOMMENDATION_METADATA: &str = "recommendation_metadata";
pub(super) const TRENDING_CONFIG: &str = "trending_config";
pub(super) const EXPLORER_SECTIONS: &str = "explorer_sections";
pub(super) const SUPPORTER_BADGES: &str = "supporter_badges";
pub(super) const LEVELS: &str = "levels";
pub(super) const TAGS: &str = "tags";
pub(super) const THEMES: &str = "themes";
pub(super) const CUSTOMER_SERVICE: &str = "customer_service";
pub(super) const AD_CAMPAIGNS: &str = "ad_campaigns";
pub(super) const LANGUAGES: &str = "languages";
pub(super) const TRANSLATIONS: &str = "languages/*/translations";
pub(super) const CREDITS: &str = "credits";

// ---------------------------------------------------------------------------------------
// Catalogues
// ---------------------------------------------------------------------------------------

/// (name, parent index or none, kind)
const CATEGORY_DEFS: &[(&str, Option<u64>, &str)] = &[
    ("Entertainment", None, "content"),
    ("Comedy", Some(0), "content"),
    ("Dance", Some(0), "content"),
    ("Music", Some(0), "content"),
    ("Education", None, "content"),
    ("Cooking", Some(4), "content"),
    ("Fashion", None, "product"),
    ("Shoes", Some(6), "product"),
    ("Beauty", None, "product"),
    ("Skincare", Some(8), "product"),
    ("Electronics", None, "product"),
    ("Phone Accessories", Some(10), "product"),
];
const LEVEL_NAMES: &[&str] = &[
    "Newbie",
    "Rookie",
    "Regular",
    "Rising",
    "Popular",
    "Star",
    "Superstar",
    "Icon",
    "Legend",
    "Mythic",
];
/// (code, English name, native name, right to left)
const LANGUAGE_DEFS: &[(&str, &str, &str, bool)] = &[
    ("en", "English", "English", false),
    ("pt-BR", "Portuguese (Brazil)", "Português (Brasil)", false),
    ("ja", "Japanese", "日本語", false),
    ("de", "German", "Deutsch", false),
    ("fr", "French", "Français", false),
    ("ar", "Arabic", "العربية", true),
    ("tr", "Turkish", "Türkçe", false),
    ("hi", "Hindi", "हिन्दी", false),
];
const TRANSLATION_KEYS: &[&str] = &[
    "feed.for_you",
    "feed.following",
    "profile.followers",
    "live.send_gift",
    "shop.add_to_cart",
];
/// (slug, name, premium)
const THEME_DEFS: &[(&str, &str, bool)] = &[
    ("dark", "Dark", false),
    ("light", "Light", false),
    ("system", "System default", false),
    ("neon", "Neon Nights", true),
    ("ocean", "Ocean Breeze", true),
];
/// (coins, bonus coins, price in USD)
const COIN_PACKAGE_DEFS: &[(i64, i64, f64)] = &[
    (70, 0, 0.99),
    (350, 0, 4.99),
    (700, 35, 9.99),
    (1_400, 100, 19.99),
    (3_500, 350, 49.99),
    (7_000, 1_000, 99.99),
];
/// (name, monthly price as text, perks)
const TIER_DEFS: &[(&str, &str, &[&str])] = &[
    ("Fan", "0.99", &["badge"]),
    ("Supporter", "4.99", &["badge", "emotes"]),
    ("Super Fan", "9.99", &["badge", "emotes", "exclusive_lives"]),
    (
        "VIP",
        "24.99",
        &["badge", "emotes", "exclusive_lives", "dm_priority"],
    ),
];
const REGIONS: &[&str] = &["global", "americas", "emea", "apac"];
/// (name, kind, ingest url, cost per minute in USD)
const PROVIDER_DEFS: &[(&str, &str, &str, f64)] = &[
    ("agora", "webrtc", "wss://live-agora.example.com", 0.0099),
    (
        "ivs",
        "rtmp",
        "rtmps://ingest-ivs.example.com:443/app",
        0.0125,
    ),
    ("mux", "rtmp", "rtmps://live-mux.example.com:443/app", 0.015),
    ("wowza", "rtmp", "rtmp://wowza.example.com/live", 0.02),
];
const FILTER_NAMES: &[&str] = &[
    "Smooth",
    "Glow",
    "Vintage",
    "Cat Ears",
    "Sparkles",
    "Big Eyes",
    "Anime",
    "Green Screen",
    "Time Warp",
    "Rainbow Face",
];
/// (title, kind, category index)
const EXPLORER_DEFS: &[(&str, &str, Option<u64>)] = &[
    ("Trending now", "trending", None),
    ("Dance challenges", "category", Some(2)),
    ("Learn something", "category", Some(4)),
    ("Hot hashtags", "tags", None),
    ("Shop the look", "category", Some(6)),
    ("Live now", "live", None),
];
/// Tags catalogue: the first words of [`WORDS`].
const TAG_COUNT: u64 = 24;
const BANNER_TITLES: &[&str] = &[
    "New Year Gift Rush",
    "Creator Fund is open",
    "Live Shopping Week",
    "Double coins weekend",
    "Dance challenge finals",
    "Safety center",
];
/// (key, group, value)
#[allow(clippy::type_complexity)]
const SETTING_DEFS: &[(&str, &str, fn() -> Value)] = &[
    ("app.name", "general", || string("Mixillo")),
    ("app.minVersion", "general", || string("5.2.0")),
    ("shop.commissionRate", "shop", || double(0.08)),
    ("shop.currencies", "shop", || {
        array(vec![
            string("USD"),
            string("EUR"),
            string("BRL"),
            string("JPY"),
        ])
    }),
    ("live.maxGuests", "live", || int(4)),
    ("live.pkBattleSeconds", "live", || int(300)),
    ("wallet.coinToUsd", "wallet", || double(0.0105)),
    ("moderation.autoHideScore", "moderation", || double(0.92)),
    ("uploads.maxSeconds", "uploads", || int(600)),
    ("features", "general", || {
        map([
            ("liveShopping", boolean(true)),
            ("pkBattles", boolean(true)),
            ("subscriptions", boolean(true)),
        ])
    }),
];
const MODEL_VERSIONS: &[&str] = &["two-tower-v7", "two-tower-v8", "graph-rerank-v2"];
const LICENSED_SOUNDS: u64 = 12;
const SOUND_ARTISTS: &[&str] = &[
    "DJ Pixel",
    "The Comets",
    "Luna Rays",
    "Kid Maple",
    "Orquestra Nova",
    "MC Otter",
];

pub(super) fn category_id(c: u64) -> String {
    auto_id(&[T_CATEGORY, c])
}
pub(super) fn language_id(l: u64) -> String {
    auto_id(&[T_LANGUAGE, l])
}
pub(super) fn tier_id(t: u64) -> String {
    auto_id(&[T_TIER, t])
}
pub(super) fn tag_id(t: u64) -> String {
    auto_id(&[T_TAG, t])
}
pub(super) fn rec_meta_id(m: u64) -> String {
    auto_id(&[T_REC_META, m])
}
pub(super) fn licensed_sound_id(s: u64) -> String {
    auto_id(&[T_SOUND, u64::MAX, s])
}
pub(super) fn original_sound_id(i: u64) -> String {
    auto_id(&[T_SOUND, i])
}
fn livestream_id(i: u64) -> String {
    auto_id(&[T_LIVESTREAM, i])
}
fn comment_id(i: u64, k: u64, c: u64) -> String {
    auto_id(&[T_COMMENT, i, k, c])
}
fn report_id(i: u64) -> String {
    auto_id(&[T_REPORT, i])
}
fn ai_moderation_id(i: u64) -> String {
    auto_id(&[T_AI_MODERATION, i])
}

/// Documents per fixed catalogue, by pattern (for [`super::expected_counts`]).
pub(super) fn catalogue_counts() -> Vec<(&'static str, u64)> {
    vec![
        (CATEGORIES, CATEGORY_DEFS.len() as u64),
        (LEVELS, LEVEL_NAMES.len() as u64),
        (LANGUAGES, LANGUAGE_DEFS.len() as u64),
        (
            TRANSLATIONS,
            (LANGUAGE_DEFS.len() * TRANSLATION_KEYS.len()) as u64,
        ),
        (THEMES, THEME_DEFS.len() as u64),
        (COIN_PACKAGES, COIN_PACKAGE_DEFS.len() as u64),
        (SUBSCRIPTION_TIERS, TIER_DEFS.len() as u64),
        (TRENDING_CONFIG, REGIONS.len() as u64),
        (STREAM_PROVIDERS, PROVIDER_DEFS.len() as u64),
        (STREAM_FILTERS, FILTER_NAMES.len() as u64),
        (EXPLORER_SECTIONS, EXPLORER_DEFS.len() as u64),
        (TAGS, TAG_COUNT),
        (BANNERS, BANNER_TITLES.len() as u64),
        (SETTINGS, SETTING_DEFS.len() as u64),
        (RECOMMENDATION_METADATA, MODEL_VERSIONS.len() as u64),
        (SOUNDS, LICENSED_SOUNDS),
    ]
}

/// An RFC 3339 UTC date-time string (seconds) of a microsecond timestamp.
fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("demo times are in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `2025-12-31`
fn ymd(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("demo times are in range")
        .format("%Y-%m-%d")
        .to_string()
}

/// `2025-12-31 23:59:00`
fn sql_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("demo times are in range")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `2025-12`
fn month(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("demo times are in range")
        .format("%Y-%m")
        .to_string()
}

fn money(rng: &mut Rng, lo_cents: u64, hi_cents: u64) -> f64 {
    (lo_cents + rng.below(hi_cents - lo_cents)) as f64 / 100.0
}

fn cents_text(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn strings(items: &[&str]) -> Value {
    array(items.iter().map(|s| string(*s)).collect())
}

impl Gen {
    /// The fixed catalogues, after `edge_cases` and `gifts`.
    pub(super) fn catalogue_docs(&self, docs: &mut Vec<DemoDoc>) {
        let mut rng = Rng::new(key(&[T_CATALOGUE_VALUES]));
        for (c, (name, parent, kind)) in CATEGORY_DEFS.iter().enumerate() {
            let slug = name.to_lowercase().replace(' ', "-");
            docs.push(doc(
                format!("categories/{}", category_id(c as u64)),
                [
                    ("name", string(*name)),
                    ("slug", string(slug.clone())),
                    (
                        "parentId",
                        parent.map_or_else(null, |p| string(category_id(p))),
                    ),
                    ("kind", string(*kind)),
                    ("sortOrder", int(c as i64)),
                    (
                        "iconUrl",
                        string(format!("https://cdn.example.com/categories/{slug}.svg")),
                    ),
                    ("createdAt", ts(self.launch() + rng.range(0, 10 * DAY))),
                ],
            ));
        }
        for (l, name) in LEVEL_NAMES.iter().enumerate() {
            let level = l as i64 + 1;
            docs.push(doc(
                format!("levels/{}", auto_id(&[T_LEVEL, l as u64])),
                [
                    ("level", int(level)),
                    ("name", string(*name)),
                    (
                        "minXp",
                        int(if l == 0 { 0 } else { 100 * 3i64.pow(l as u32) }),
                    ),
                    ("coinReward", int(level * level * 10)),
                    (
                        "perks",
                        strings(
                            &["badge", "entrance_effect", "chat_color", "priority_dm"][..l.min(4)],
                        ),
                    ),
                    (
                        "badgeUrl",
                        string(format!("https://cdn.example.com/levels/{level}.png")),
                    ),
                ],
            ));
        }
        for (l, (code, name, native, rtl)) in LANGUAGE_DEFS.iter().enumerate() {
            let lid = language_id(l as u64);
            docs.push(doc(
                format!("languages/{lid}"),
                [
                    ("code", string(*code)),
                    ("name", string(*name)),
                    ("nativeName", string(*native)),
                    ("rtl", boolean(*rtl)),
                    ("active", boolean(l < 7)),
                ],
            ));
            for (t, k) in TRANSLATION_KEYS.iter().enumerate() {
                docs.push(doc(
                    format!(
                        "languages/{lid}/translations/{}",
                        auto_id(&[T_TRANSLATION, l as u64, t as u64])
                    ),
                    [
                        ("key", string(*k)),
                        ("value", string(format!("[{code}] {k}"))),
                        ("reviewed", boolean(rng.chance(3, 4))),
                        (
                            "updatedAt",
                            string(rfc3339(rng.range(self.launch(), self.now))),
                        ),
                    ],
                ));
            }
        }
        for (t, (slug, name, premium)) in THEME_DEFS.iter().enumerate() {
            docs.push(doc(
                format!("themes/{}", auto_id(&[T_THEME, t as u64])),
                [
                    ("slug", string(*slug)),
                    ("name", string(*name)),
                    ("premium", boolean(*premium)),
                    ("coinCost", int(if *premium { 500 } else { 0 })),
                    (
                        "colors",
                        map([
                            ("primary", string(format!("#{:06x}", rng.below(1 << 24)))),
                            ("background", string(format!("#{:06x}", rng.below(1 << 24)))),
                            ("text", string(format!("#{:06x}", rng.below(1 << 24)))),
                        ]),
                    ),
                ],
            ));
        }
        for (p, (coins, bonus, price)) in COIN_PACKAGE_DEFS.iter().enumerate() {
            docs.push(doc(
                format!("coin_packages/{}", auto_id(&[T_COIN_PACKAGE, p as u64])),
                [
                    ("sku", string(format!("coins_{coins}"))),
                    ("coins", int(*coins)),
                    ("bonusCoins", int(*bonus)),
                    ("price", double(*price)),
                    ("currency", string("USD")),
                    ("active", boolean(true)),
                    ("sortOrder", int(p as i64)),
                ],
            ));
        }
        for (t, (name, price, perks)) in TIER_DEFS.iter().enumerate() {
            docs.push(doc(
                format!("subscription_tiers/{}", tier_id(t as u64)),
                [
                    ("name", string(*name)),
                    ("rank", int(t as i64 + 1)),
                    ("monthlyPrice", string(*price)),
                    ("currency", string("USD")),
                    ("perks", strings(perks)),
                    ("badgeColor", string(format!("#{:06x}", rng.below(1 << 24)))),
                ],
            ));
        }
        for (r, region) in REGIONS.iter().enumerate() {
            docs.push(doc(
                format!(
                    "trending_config/{}",
                    auto_id(&[T_TRENDING_CONFIG, r as u64])
                ),
                [
                    ("region", string(*region)),
                    (
                        "weights",
                        map([
                            ("views", double(round_to(0.2 + rng.unit() * 0.3, 2))),
                            ("likes", double(round_to(0.1 + rng.unit() * 0.3, 2))),
                            ("shares", double(round_to(0.1 + rng.unit() * 0.2, 2))),
                            ("recency", double(round_to(0.1 + rng.unit() * 0.2, 2))),
                        ]),
                    ),
                    ("windowHours", int(*rng.pick(&[24, 48, 72]))),
                    ("minViews", int(1_000 * (1 + rng.below(10) as i64))),
                    ("enabled", string(if r == 3 { "no" } else { "yes" })),
                    (
                        "updatedAt",
                        string(rfc3339(rng.range(self.now - 60 * DAY, self.now))),
                    ),
                ],
            ));
        }
        for (p, (name, kind, url, cost)) in PROVIDER_DEFS.iter().enumerate() {
            docs.push(doc(
                format!("stream_providers/{}", auto_id(&[T_PROVIDER, p as u64])),
                [
                    ("name", string(*name)),
                    ("kind", string(*kind)),
                    ("ingestUrl", string(*url)),
                    ("regions", strings(&REGIONS[1..1 + (p % 3) + 1])),
                    ("costPerMinute", double(*cost)),
                    ("maxBitrateKbps", int(*rng.pick(&[4_000, 6_000, 8_000]))),
                    ("active", boolean(p != 3)),
                    ("priority", int(p as i64)),
                ],
            ));
        }
        for (f, name) in FILTER_NAMES.iter().enumerate() {
            let slug = name.to_lowercase().replace(' ', "-");
            let premium = f % 3 == 2;
            docs.push(doc(
                format!("stream_filters/{}", auto_id(&[T_FILTER, f as u64])),
                [
                    ("name", string(*name)),
                    ("kind", string(if f < 3 { "beauty" } else { "ar" })),
                    (
                        "assetUrl",
                        string(format!("https://cdn.example.com/filters/{slug}.zip")),
                    ),
                    // Written as 0/1 by an old admin tool.
                    ("premium", int(premium as i64)),
                    ("coinCost", int(if premium { 99 } else { 0 })),
                    ("createdAt", ts(self.launch() + rng.range(0, 365 * DAY))),
                ],
            ));
        }
        for (e, (title, kind, category)) in EXPLORER_DEFS.iter().enumerate() {
            let tags = if *kind == "tags" {
                (0..4)
                    .map(|_| string(tag_id(rng.below(TAG_COUNT))))
                    .collect()
            } else {
                Vec::new()
            };
            let starts = self.now - rng.range(10, 60) * DAY;
            docs.push(doc(
                format!("explorer_sections/{}", auto_id(&[T_EXPLORER, e as u64])),
                [
                    ("title", string(*title)),
                    ("kind", string(*kind)),
                    ("sortOrder", int(e as i64)),
                    (
                        "categoryId",
                        category.map_or_else(null, |c| string(category_id(c))),
                    ),
                    ("tagIds", array(tags)),
                    ("active", boolean(e != 5)),
                    ("startsAt", string(rfc3339(starts))),
                    (
                        "endsAt",
                        if e % 2 == 0 {
                            null()
                        } else {
                            string(rfc3339(starts + 90 * DAY))
                        },
                    ),
                ],
            ));
        }
        for t in 0..TAG_COUNT {
            let word = WORDS[t as usize];
            docs.push(doc(
                format!("tags/{}", tag_id(t)),
                [
                    ("name", string(format!("#{word}"))),
                    ("slug", string(word)),
                    ("useCount", int(rng.below(5_000_000) as i64)),
                    ("trending", boolean(rng.chance(1, 4))),
                    ("createdAt", ts(self.launch() + rng.range(0, 700 * DAY))),
                ],
            ));
        }
        for (b, title) in BANNER_TITLES.iter().enumerate() {
            let starts = self.now - rng.range(1, 40) * DAY;
            docs.push(doc(
                format!("banners/{}", auto_id(&[T_BANNER, b as u64])),
                [
                    ("title", string(*title)),
                    (
                        "imageUrl",
                        string(format!("https://cdn.example.com/banners/{b}.jpg")),
                    ),
                    ("linkUrl", string(format!("mixillo://campaign/{}", b + 1))),
                    ("placement", string(*rng.pick(&["home", "live", "shop"]))),
                    ("priority", int(rng.below(10) as i64)),
                    ("active", boolean(b % 4 != 3)),
                    ("startsAt", string(rfc3339(starts))),
                    ("endsAt", string(rfc3339(starts + rng.range(7, 60) * DAY))),
                    (
                        "countries",
                        strings(&["BR", "US", "JP", "DE", "NG"][..1 + b % 5]),
                    ),
                ],
            ));
        }
        for (s, (k, group, value)) in SETTING_DEFS.iter().enumerate() {
            docs.push(doc(
                format!("settings/{}", auto_id(&[T_SETTING, s as u64])),
                [
                    ("key", string(*k)),
                    ("group", string(*group)),
                    ("value", value()),
                    ("description", string(format!("{group} setting {k}"))),
                    (
                        "updatedAt",
                        string(rfc3339(rng.range(self.launch(), self.now))),
                    ),
                ],
            ));
        }
        for (m, version) in MODEL_VERSIONS.iter().enumerate() {
            docs.push(doc(
                format!("recommendation_metadata/{}", rec_meta_id(m as u64)),
                [
                    ("modelVersion", string(*version)),
                    (
                        "features",
                        strings(&["watch_time", "likes", "follows", "hashtags", "locale"][..3 + m]),
                    ),
                    (
                        "trainedAt",
                        string(rfc3339(self.now - (30 - 10 * m as i64) * DAY)),
                    ),
                    (
                        "metrics",
                        map([
                            ("ndcgAt10", double(round_to(0.3 + rng.unit() * 0.2, 4))),
                            ("recallAt50", double(round_to(0.5 + rng.unit() * 0.3, 4))),
                        ]),
                    ),
                    ("active", boolean(m == 1)),
                ],
            ));
        }
        for s in 0..LICENSED_SOUNDS {
            docs.push(doc(
                format!("sounds/{}", licensed_sound_id(s)),
                [
                    (
                        "title",
                        string(format!("{} {}", rng.pick(ADJECTIVES), rng.pick(WORDS))),
                    ),
                    ("artist", string(*rng.pick(SOUND_ARTISTS))),
                    ("durationMs", int(rng.range(15_000, 180_000))),
                    (
                        "audioUrl",
                        string(format!("https://cdn.example.com/sounds/licensed/{s}.m4a")),
                    ),
                    ("uploaderId", null()),
                    ("licensed", boolean(true)),
                    ("useCount", int(rng.below(2_000_000) as i64)),
                    ("createdAt", ts(self.launch() + rng.range(0, 100 * DAY))),
                ],
            ));
        }
    }

    /// A random existing content document: (author, index). `None` when the set has none.
    fn random_content(&self, rng: &mut Rng) -> Option<(u64, u64)> {
        // Users j with j % 5 != 0 post j % 5 documents.
        let creators = self.users - self.users.div_ceil(5);
        if creators == 0 {
            return None;
        }
        let r = rng.below(creators);
        let j = (r / 4) * 5 + r % 4 + 1;
        Some((j, rng.below(j % 5)))
    }

    /// A random livestream host (every fifth user hosts one).
    fn random_host(&self, rng: &mut Rng) -> u64 {
        rng.below(self.users.div_ceil(5)) * 5
    }

    fn content_ref_id(&self, (j, k): (u64, u64)) -> String {
        content_id(j, k)
    }

    /// The documents of the later models owned by user `i`, appended to `docs`.
    pub(super) fn model_docs(&self, i: u64, plan: &Plan, docs: &mut Vec<DemoDoc>) {
        let mut rng = Rng::new(key(&[T_MODEL_VALUES, i]));
        let uid = user_id(i);
        let created = self.launch() + (i as i64 * 7 * DAY) % (self.now - self.launch() - 30 * DAY);

        // users/{uid}/saves: bookmarks
        let mut saved: Vec<(u64, u64)> = Vec::new();
        for s in 0..plan.saves() {
            // A user saves a post once (saves are unique per user and post). The set has
            // at least as many posts as a user saves (1 with 2 users, 3 from 3 users).
            let c = loop {
                let c = self
                    .random_content(&mut rng)
                    .expect("planned only with content");
                if !saved.contains(&c) {
                    break c;
                }
            };
            saved.push(c);
            docs.push(doc(
                format!("users/{uid}/saves/{}", auto_id(&[T_SAVE, i, s])),
                [
                    ("contentId", string(self.content_ref_id(c))),
                    (
                        "collection",
                        string(*rng.pick(&["favorites", "recipes", "later", "inspo"])),
                    ),
                    ("savedAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // shares
        for s in 0..plan.shares() {
            let c = self
                .random_content(&mut rng)
                .expect("planned only with content");
            docs.push(doc(
                format!("shares/{}", auto_id(&[T_SHARE, i, s])),
                [
                    ("userId", string(uid.clone())),
                    ("contentId", string(self.content_ref_id(c))),
                    (
                        "platform",
                        string(*rng.pick(&["whatsapp", "instagram", "copy_link", "sms", "dm"])),
                    ),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // views
        for v in 0..plan.views() {
            let c = self
                .random_content(&mut rng)
                .expect("planned only with content");
            let watched = rng.range(500, 180_000);
            docs.push(doc(
                format!("views/{}", auto_id(&[T_VIEW, i, v])),
                [
                    ("userId", string(uid.clone())),
                    ("contentId", string(self.content_ref_id(c))),
                    ("watchedMs", int(watched)),
                    ("completed", boolean(rng.chance(1, 3))),
                    ("device", string(*rng.pick(&["ios", "android", "web"]))),
                    ("viewedAt", ts(rng.range(self.now - 30 * DAY, self.now))),
                ],
            ));
        }

        // livestream extras: PK battles, multi-host sessions, live shopping
        if plan.has_pk_battle() {
            let rival = i - 5;
            let started = rng.range(self.now - 60 * DAY, self.now - DAY);
            let (a, b) = (rng.below(50_000) as i64, rng.below(50_000) as i64);
            docs.push(doc(
                format!("pk_battles/{}", auto_id(&[T_PK, i])),
                [
                    (
                        "hostIds",
                        array(vec![string(uid.clone()), string(user_id(rival))]),
                    ),
                    (
                        "livestreamIds",
                        array(vec![string(livestream_id(i)), string(livestream_id(rival))]),
                    ),
                    (
                        "scores",
                        array(vec![
                            map([("hostId", string(uid.clone())), ("points", int(a))]),
                            map([("hostId", string(user_id(rival))), ("points", int(b))]),
                        ]),
                    ),
                    (
                        "winnerId",
                        match a.cmp(&b) {
                            std::cmp::Ordering::Greater => string(uid.clone()),
                            std::cmp::Ordering::Less => string(user_id(rival)),
                            std::cmp::Ordering::Equal => null(),
                        },
                    ),
                    ("durationSec", int(300)),
                    ("status", string("finished")),
                    ("startedAt", ts(started)),
                ],
            ));
        }
        if plan.has_multi_host() {
            let n = (1 + rng.below(3)).min(self.users - 1);
            let guests = self
                .others(&mut rng, i, n)
                .into_iter()
                .map(|j| string(user_id(j)))
                .collect();
            let started = rng.range(self.now - 90 * DAY, self.now - DAY);
            docs.push(doc(
                format!("multi_host_sessions/{}", auto_id(&[T_MULTI_HOST, i])),
                [
                    ("livestreamId", string(livestream_id(i))),
                    ("hostId", string(uid.clone())),
                    ("guestIds", array(guests)),
                    ("layout", string(*rng.pick(&["grid", "split", "spotlight"]))),
                    ("maxGuests", int(4)),
                    ("startedAt", ts(started)),
                    (
                        "endedAt",
                        if rng.chance(1, 5) {
                            null()
                        } else {
                            ts(started + rng.range(10 * 60 * SECOND, 3 * HOUR))
                        },
                    ),
                ],
            ));
        }
        if plan.has_live_shopping() {
            let products: Vec<u64> = (0..PRODUCTS_PER_STORE)
                .filter(|_| rng.chance(2, 3))
                .collect();
            let featured = products.first().copied().unwrap_or(0);
            docs.push(doc(
                format!("live_shopping_sessions/{}", auto_id(&[T_LIVE_SHOP, i])),
                [
                    ("livestreamId", string(livestream_id(i))),
                    ("storeId", string(store_id(i))),
                    (
                        "productIds",
                        array(products.iter().map(|&p| string(product_id(i, p))).collect()),
                    ),
                    ("featuredProductId", string(product_id(i, featured))),
                    ("ordersCount", int(rng.below(300) as i64)),
                    ("revenue", double(money(&mut rng, 0, 2_500_000))),
                    ("currency", string("USD")),
                    ("startedAt", ts(rng.range(self.now - 30 * DAY, self.now))),
                ],
            ));
        }

        // stores/{sid}/coupons
        if plan.has_store() {
            let sid = store_id(i);
            for c in 0..COUPONS_PER_STORE {
                let from = rng.range(self.now - 30 * DAY, self.now);
                let percent = c == 0;
                let mut fields = vec![
                    // Unique across stores: the store owner's index and the coupon's.
                    (
                        "code",
                        string(format!("{}{i}{c}", rng.pick(NOUNS).to_uppercase())),
                    ),
                    ("kind", string(if percent { "percent" } else { "amount" })),
                    (
                        "percentOff",
                        if percent {
                            int(5 * (1 + rng.below(6)) as i64)
                        } else {
                            null()
                        },
                    ),
                    (
                        "amountOff",
                        if percent {
                            null()
                        } else {
                            double(money(&mut rng, 100, 2_000))
                        },
                    ),
                    ("minSpend", double(money(&mut rng, 1_000, 5_000))),
                    ("validFrom", string(rfc3339(from))),
                    ("validUntil", string(rfc3339(from + 60 * DAY))),
                    ("usageLimit", int(100 * (1 + rng.below(10)) as i64)),
                ];
                // Coupons created before usage tracking have no counter (default 0).
                if rng.chance(1, 2) {
                    fields.push(("usedCount", int(rng.below(100) as i64)));
                }
                docs.push(doc(
                    format!("stores/{sid}/coupons/{}", auto_id(&[T_COUPON, i, c])),
                    fields,
                ));
            }
        }

        // payments (one per order) and orders/{oid}/shipping
        for o in 0..plan.orders() {
            let oid = order_id(i, o);
            let cents = 199 + rng.below(60_000);
            let paid = rng.range(created, self.now);
            docs.push(doc(
                format!("payments/{}", auto_id(&[T_PAYMENT, i, o])),
                [
                    ("orderId", string(oid.clone())),
                    ("userId", string(uid.clone())),
                    // Amounts come from the processor's webhook as decimal text.
                    ("amount", string(cents_text(cents))),
                    ("currency", string(*rng.pick(&["USD", "EUR", "BRL"]))),
                    (
                        "method",
                        string(*rng.pick(&["card", "pix", "paypal", "coins"])),
                    ),
                    (
                        "status",
                        string(*rng.pick(&["succeeded", "succeeded", "refunded", "failed"])),
                    ),
                    (
                        "processorChargeId",
                        string(format!("ch_{}", auto_id(&[T_PAYMENT, i, o, 1]))),
                    ),
                    (
                        "processorPayload",
                        string(format!("{{\"id\":\"evt_{o}\",\"livemode\":false}}")),
                    ),
                    ("paidAt", string(rfc3339(paid))),
                ],
            ));
            for s in 0..plan.shipments(o) {
                let shipped = paid + rng.range(HOUR, 3 * DAY);
                docs.push(doc(
                    format!("orders/{oid}/shipping/{}", auto_id(&[T_SHIPPING, i, o, s])),
                    [
                        (
                            "carrier",
                            string(*rng.pick(&["DHL", "UPS", "Correios", "Yamato"])),
                        ),
                        (
                            "trackingNumber",
                            string(format!("TRK{:010}", rng.below(10_000_000_000))),
                        ),
                        (
                            "status",
                            string(*rng.pick(&["label_created", "in_transit", "delivered"])),
                        ),
                        ("shippedAt", string(rfc3339(shipped))),
                        ("estimatedDelivery", string(ymd(shipped + 5 * DAY))),
                        ("weightGrams", int(rng.range(50, 5_000))),
                    ],
                ));
            }
        }

        // gift_transactions and the supporter badge of the first receiver
        let mut first_receiver = None;
        for g in 0..plan.gift_transactions() {
            let host = self.random_host(&mut rng);
            first_receiver.get_or_insert(host);
            let gift = rng.below(GIFT_NAMES.len() as u64);
            let quantity = 1 + rng.below(5) as i64;
            docs.push(doc(
                format!("gift_transactions/{}", auto_id(&[T_GIFT_TX, i, g])),
                [
                    ("senderId", string(uid.clone())),
                    ("receiverId", string(user_id(host))),
                    ("giftId", string(gift_id(gift))),
                    ("livestreamId", string(livestream_id(host))),
                    ("quantity", int(quantity)),
                    ("coins", int(quantity * GIFT_COSTS[gift as usize])),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }
        if let Some(creator) = first_receiver.filter(|_| plan.has_supporter_badge()) {
            docs.push(doc(
                format!("supporter_badges/{}", auto_id(&[T_BADGE, i])),
                [
                    ("supporterId", string(uid.clone())),
                    ("creatorId", string(user_id(creator))),
                    ("level", int(1 + rng.below(5) as i64)),
                    ("totalCoins", int(rng.below(100_000) as i64)),
                    ("awardedAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // subscriptions
        if plan.has_subscription() {
            let creator = self.others(&mut rng, i, 1)[0];
            let tier = rng.below(TIER_DEFS.len() as u64);
            let started = rng.range(created, self.now - 30 * DAY);
            let mut fields = vec![
                ("subscriberId", string(uid.clone())),
                ("creatorId", string(user_id(creator))),
                ("tierId", string(tier_id(tier))),
                (
                    "price",
                    double(TIER_DEFS[tier as usize].1.parse().expect("tier price")),
                ),
                ("startedAt", ts(started)),
                (
                    "renewsAt",
                    string(rfc3339(self.now + rng.range(1, 30) * DAY)),
                ),
            ];
            // Older subscriptions predate the status field (default "active").
            if rng.chance(2, 3) {
                fields.push((
                    "status",
                    string(*rng.pick(&["active", "active", "cancelled", "past_due"])),
                ));
            }
            docs.push(doc(
                format!("subscriptions/{}", auto_id(&[T_SUBSCRIPTION, i])),
                fields,
            ));
        }

        // users/{uid}/earnings: monthly creator earnings
        for e in 0..plan.earnings() {
            let at = self.now - (e as i64 + 1) * 30 * DAY;
            let gifts = rng.below(200_000) as i64;
            let subs = money(&mut rng, 0, 50_000);
            let ads = money(&mut rng, 0, 20_000);
            docs.push(doc(
                format!("users/{uid}/earnings/{}", auto_id(&[T_EARNINGS, i, e])),
                [
                    ("period", string(month(at))),
                    ("giftCoins", int(gifts)),
                    ("subscriptionRevenue", double(subs)),
                    ("adRevenue", double(ads)),
                    (
                        "total",
                        double(round_to(subs + ads + gifts as f64 * 0.005, 2)),
                    ),
                    ("paidOut", boolean(e > 0)),
                    (
                        "payoutAt",
                        if e > 0 {
                            string(rfc3339(at + 35 * DAY))
                        } else {
                            null()
                        },
                    ),
                ],
            ));
        }

        // reports (of a content document, some of one of its comments)
        if plan.has_report() {
            let (j, k) = self
                .random_content(&mut rng)
                .expect("planned only with content");
            let comments = Plan::new(j, self.users).comments(k);
            let comment =
                (comments > 0 && rng.chance(1, 2)).then(|| comment_id(j, k, rng.below(comments)));
            docs.push(doc(
                format!("reports/{}", report_id(i)),
                [
                    ("reporterId", string(uid.clone())),
                    ("contentId", string(content_id(j, k))),
                    ("commentId", comment.map_or_else(null, string)),
                    ("reportedUserId", string(user_id(j))),
                    (
                        "reason",
                        string(*rng.pick(&["spam", "harassment", "nudity", "violence", "ip"])),
                    ),
                    ("details", string(sentence(&mut rng, 0, 12))),
                    (
                        "status",
                        string(*rng.pick(&["open", "reviewing", "closed"])),
                    ),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // audit_logs: admin actions (user 0 is the admin), targets as document paths
        if plan.has_audit_log() {
            let target = rng.below(self.users);
            docs.push(doc(
                format!("audit_logs/{}", auto_id(&[T_AUDIT, i])),
                [
                    ("actorId", string(user_id(0))),
                    (
                        "action",
                        string(*rng.pick(&[
                            "user.verify",
                            "user.suspend",
                            "user.restore",
                            "user.edit",
                        ])),
                    ),
                    ("target", string(format!("users/{}", user_id(target)))),
                    (
                        "ip",
                        string(format!(
                            "10.{}.{}.{}",
                            rng.below(256),
                            rng.below(256),
                            rng.below(256)
                        )),
                    ),
                    (
                        "changes",
                        map([
                            ("field", string(*rng.pick(&["isVerified", "bio", "status"]))),
                            ("before", null()),
                            ("after", boolean(true)),
                        ]),
                    ),
                    ("at", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // users/{uid}/analytics: daily profile analytics
        for a in 0..plan.analytics() {
            docs.push(doc(
                format!("users/{uid}/analytics/{}", auto_id(&[T_ANALYTICS, i, a])),
                [
                    ("date", string(ymd(self.now - (a as i64 + 1) * DAY))),
                    ("profileViews", int(rng.below(10_000) as i64)),
                    ("newFollowers", int(rng.below(500) as i64)),
                    ("videoViews", int(rng.below(200_000) as i64)),
                    ("likes", int(rng.below(20_000) as i64)),
                ],
            ));
        }

        // content/{cid}/metrics (first post only), content/{cid}/qualities (every post),
        // trending, AI moderation, moderation queue, transcode jobs, rights
        for k in 0..plan.contents() {
            let cid = content_id(i, k);
            if k == 0 {
                for m in 0..plan.content_metrics() {
                    docs.push(doc(
                        format!("content/{cid}/metrics/{}", auto_id(&[T_METRICS, i, m])),
                        [
                            ("date", string(ymd(self.now - (m as i64 + 1) * DAY))),
                            ("views", int(rng.below(100_000) as i64)),
                            ("likes", int(rng.below(10_000) as i64)),
                            ("shares", int(rng.below(1_000) as i64)),
                            ("comments", int(rng.below(1_000) as i64)),
                            ("watchTimeMs", int(rng.below(1 << 40) as i64)),
                            ("avgWatchPct", double(round_to(rng.unit() * 100.0, 1))),
                        ],
                    ));
                }
            }
            for q in 0..plan.qualities(k) {
                let (label, w, h, kbps) = [
                    ("360p", 640, 360, 800),
                    ("720p", 1280, 720, 2_500),
                    ("1080p", 1920, 1080, 5_000),
                ][q as usize];
                docs.push(doc(
                    format!("content/{cid}/qualities/{}", auto_id(&[T_QUALITY, i, k, q])),
                    [
                        ("label", string(label)),
                        ("width", int(w)),
                        ("height", int(h)),
                        ("bitrateKbps", int(kbps)),
                        ("codec", string(*rng.pick(&["h264", "h265", "av1"]))),
                        (
                            "url",
                            string(format!("https://cdn.example.com/v/{cid}/{label}.m3u8")),
                        ),
                        ("sizeBytes", int(rng.range(100_000, 90_000_000))),
                    ],
                ));
            }
        }
        if plan.has_trending() {
            docs.push(doc(
                format!("trending_records/{}", auto_id(&[T_TRENDING, i])),
                [
                    ("contentId", string(content_id(i, 0))),
                    ("tagId", string(tag_id(rng.below(TAG_COUNT)))),
                    ("region", string(*rng.pick(REGIONS))),
                    ("rank", int(1 + rng.below(100) as i64)),
                    ("score", double(round_to(rng.unit() * 1_000.0, 3))),
                    ("date", string(ymd(self.now - rng.range(1, 30) * DAY))),
                ],
            ));
        }
        if plan.has_ai_moderation() {
            let score = round_to(rng.unit(), 4);
            docs.push(doc(
                format!("ai_moderation/{}", ai_moderation_id(i)),
                [
                    ("contentId", string(content_id(i, 0))),
                    ("model", string(*rng.pick(&["safety-v3", "safety-v4"]))),
                    (
                        "labels",
                        array(
                            ["nudity", "violence", "spam"]
                                .iter()
                                .map(|l| {
                                    map([
                                        ("label", string(*l)),
                                        ("score", double(round_to(rng.unit() * score, 4))),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                    ("maxScore", double(score)),
                    (
                        "verdict",
                        string(if score > 0.9 {
                            "block"
                        } else if score > 0.6 {
                            "review"
                        } else {
                            "allow"
                        }),
                    ),
                    ("latencyMs", int(rng.range(20, 900))),
                    ("checkedAt", ts(rng.range(created, self.now))),
                ],
            ));
        }
        if plan.has_moderation_queue_item() {
            let report = (0..self.users)
                .find(|&r| Plan::new(r, self.users).has_report())
                .map(report_id);
            docs.push(doc(
                format!("moderation_queue/{}", auto_id(&[T_QUEUE, i])),
                [
                    ("contentId", string(content_id(i, 0))),
                    ("aiModerationId", string(ai_moderation_id(i))),
                    (
                        "reportId",
                        report
                            .filter(|_| rng.chance(1, 2))
                            .map_or_else(null, string),
                    ),
                    ("priority", int(rng.below(5) as i64)),
                    (
                        "status",
                        string(*rng.pick(&["pending", "pending", "in_review", "done"])),
                    ),
                    (
                        "assignedTo",
                        if rng.chance(1, 2) {
                            string(user_id(0))
                        } else {
                            null()
                        },
                    ),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }
        if plan.contents() > 0 {
            let started = rng.range(created, self.now) / SECOND;
            let done = rng.chance(5, 6);
            docs.push(doc(
                format!("transcode_jobs/{}", auto_id(&[T_TRANSCODE, i])),
                [
                    ("contentId", string(content_id(i, 0))),
                    (
                        "inputUrl",
                        string(format!(
                            "gs://mixillo-uploads/raw/{uid}/{}.mov",
                            content_id(i, 0)
                        )),
                    ),
                    (
                        "outputs",
                        strings(&["360p", "720p", "1080p"][..1 + (i % 3) as usize]),
                    ),
                    ("status", string(if done { "done" } else { "running" })),
                    (
                        "progress",
                        double(if done { 1.0 } else { round_to(rng.unit(), 2) }),
                    ),
                    ("workerId", string(format!("transcoder-{}", rng.below(16)))),
                    ("attempts", int(1 + rng.below(3) as i64)),
                    // Workers report epoch seconds.
                    ("startedAt", int(started)),
                    (
                        "finishedAt",
                        if done {
                            int(started + rng.range(5, 600))
                        } else {
                            null()
                        },
                    ),
                ],
            ));
        }
        if plan.has_content_rights() {
            docs.push(doc(
                format!("content_rights/{}", auto_id(&[T_RIGHTS, i])),
                [
                    ("contentId", string(content_id(i, 0))),
                    ("ownerId", string(uid.clone())),
                    (
                        "soundId",
                        if rng.chance(1, 2) {
                            string(licensed_sound_id(rng.below(LICENSED_SOUNDS)))
                        } else {
                            null()
                        },
                    ),
                    (
                        "license",
                        string(*rng.pick(&["original", "licensed", "creative_commons"])),
                    ),
                    (
                        "territories",
                        strings(&["BR", "US", "JP", "DE"][..1 + (i % 4) as usize]),
                    ),
                    (
                        "claimStatus",
                        string(*rng.pick(&["none", "none", "claimed", "disputed"])),
                    ),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // strikes: community-guideline strikes, expiring (logically) after 90 days
        if plan.has_strike() {
            let issued = rng.range(created, self.now);
            docs.push(doc(
                format!("strikes/{}", auto_id(&[T_STRIKE, i])),
                [
                    ("userId", string(uid.clone())),
                    (
                        "contentId",
                        string(content_id(i, rng.below(plan.contents()))),
                    ),
                    (
                        "reason",
                        string(*rng.pick(&["spam", "harassment", "dangerous_acts", "ip"])),
                    ),
                    ("severity", int(1 + rng.below(3) as i64)),
                    ("issuedBy", string(user_id(0))),
                    ("issuedAt", ts(issued)),
                    ("expiresAt", string(rfc3339(issued + 90 * DAY))),
                ],
            ));
        }

        // user_activity: client events, timestamps in epoch milliseconds
        for a in 0..plan.activities() {
            docs.push(doc(
                format!("user_activity/{}", auto_id(&[T_ACTIVITY, i, a])),
                [
                    ("userId", string(uid.clone())),
                    (
                        "action",
                        string(
                            *rng.pick(&["login", "watch", "like", "search", "purchase", "logout"]),
                        ),
                    ),
                    ("at", int(rng.range(self.now - 30 * DAY, self.now) / 1_000)),
                    ("device", string(*rng.pick(&["ios", "android", "web"]))),
                    (
                        "appVersion",
                        string(format!("5.{}.{}", rng.below(10), rng.below(20))),
                    ),
                    ("sessionId", string(auto_id(&[T_ACTIVITY, i, a, 1]))),
                ],
            ));
        }

        // sounds: original sounds of every fourth user
        if plan.has_original_sound() {
            docs.push(doc(
                format!("sounds/{}", original_sound_id(i)),
                [
                    (
                        "title",
                        string(format!("original sound - {}", sentence(&mut rng, 1, 3))),
                    ),
                    ("artist", string(uid.clone())),
                    ("durationMs", int(rng.range(5_000, 60_000))),
                    (
                        "audioUrl",
                        string(format!("https://cdn.example.com/sounds/{uid}.m4a")),
                    ),
                    ("uploaderId", string(uid.clone())),
                    ("licensed", boolean(false)),
                    ("useCount", int(rng.below(10_000) as i64)),
                    ("createdAt", ts(rng.range(created, self.now))),
                ],
            ));
        }

        // scheduled_content: posts queued for later, times as "YYYY-MM-DD hh:mm:ss" UTC
        if plan.has_scheduled_content() {
            let sound = if rng.chance(1, 2) {
                string(licensed_sound_id(rng.below(LICENSED_SOUNDS)))
            } else {
                null()
            };
            docs.push(doc(
                format!("scheduled_content/{}", auto_id(&[T_SCHEDULED, i])),
                [
                    ("creatorId", string(uid.clone())),
                    ("caption", string(sentence(&mut rng, 2, 10))),
                    ("hashtags", array(hashtags(&mut rng))),
                    (
                        "mediaUrl",
                        string(format!("https://cdn.example.com/scheduled/{uid}.mp4")),
                    ),
                    ("soundId", sound),
                    (
                        "publishAt",
                        string(sql_time(self.now + rng.range(HOUR, 14 * DAY))),
                    ),
                    ("status", string("scheduled")),
                ],
            ));
        }

        // upload_sessions: resumable uploads, expiring a day after they start
        if plan.has_upload_session() {
            let started = rng.range(self.now - 2 * DAY, self.now);
            let size = rng.range(1 << 20, 1 << 30);
            let done = rng.chance(1, 2) && plan.contents() > 0;
            docs.push(doc(
                format!("upload_sessions/{}", auto_id(&[T_UPLOAD, i])),
                [
                    ("userId", string(uid.clone())),
                    (
                        "contentId",
                        if done {
                            string(content_id(i, 0))
                        } else {
                            null()
                        },
                    ),
                    (
                        "fileName",
                        string(format!("VID_{}.mp4", rng.below(100_000))),
                    ),
                    ("sizeBytes", int(size)),
                    ("chunkSize", int(8 << 20)),
                    ("uploadedBytes", int(if done { size } else { size / 2 })),
                    (
                        "status",
                        string(if done { "complete" } else { "uploading" }),
                    ),
                    ("uploadToken", string(auto_id(&[T_UPLOAD, i, 1]))),
                    ("createdAt", ts(started)),
                    ("expiresAt", ts(started + DAY)),
                ],
            ));
        }

        // seller_applications: approved for store owners, pending or rejected otherwise
        if plan.has_seller_application() {
            let approved = plan.has_store();
            let submitted = rng.range(created, self.now - 10 * DAY);
            docs.push(doc(
                format!("seller_applications/{}", auto_id(&[T_SELLER, i])),
                [
                    ("userId", string(uid.clone())),
                    (
                        "storeName",
                        string(format!("{} {} Shop", rng.pick(ADJECTIVES), rng.pick(NOUNS))),
                    ),
                    (
                        "status",
                        string(if approved {
                            "approved"
                        } else {
                            *rng.pick(&["pending", "rejected"])
                        }),
                    ),
                    (
                        "documents",
                        array(
                            (0..2)
                                .map(|d| string(format!("gs://mixillo-kyc/{uid}/{d}.pdf")))
                                .collect(),
                        ),
                    ),
                    ("categoryId", string(category_id(6 + rng.below(6)))),
                    (
                        "reviewedBy",
                        if approved { string(user_id(0)) } else { null() },
                    ),
                    ("submittedAt", string(rfc3339(submitted))),
                ],
            ));
        }

        // search_queries: epoch-ms times, a location when the app had one
        for q in 0..plan.searches() {
            let words = sentence(&mut rng, 1, 3);
            let clicked = if rng.chance(1, 2) {
                self.random_content(&mut rng)
                    .map_or_else(null, |c| string(self.content_ref_id(c)))
            } else {
                null()
            };
            let mut fields = vec![
                ("userId", string(uid.clone())),
                ("query", string(words.clone())),
                ("normalized", string(words.to_lowercase())),
                ("resultsCount", int(rng.below(1_000) as i64)),
                ("clickedContentId", clicked),
                ("at", int(rng.range(self.now - 30 * DAY, self.now) / 1_000)),
            ];
            if rng.chance(1, 2) {
                fields.push(("location", random_geo(&mut rng)));
            }
            docs.push(doc(
                format!("search_queries/{}", auto_id(&[T_SEARCH, i, q])),
                fields,
            ));
        }

        // content_recommendations
        if plan.has_recommendations() {
            let items = (0..3 + rng.below(5))
                .filter_map(|_| self.random_content(&mut rng))
                .map(|c| string(self.content_ref_id(c)))
                .collect();
            docs.push(doc(
                format!(
                    "content_recommendations/{}",
                    auto_id(&[T_RECOMMENDATION, i])
                ),
                [
                    ("userId", string(uid.clone())),
                    ("contentIds", array(items)),
                    (
                        "metadataId",
                        string(rec_meta_id(rng.below(MODEL_VERSIONS.len() as u64))),
                    ),
                    (
                        "surface",
                        string(*rng.pick(&["for_you", "explore", "after_video"])),
                    ),
                    ("generatedAt", ts(rng.range(self.now - DAY, self.now))),
                ],
            ));
        }

        // customer_service tickets
        if plan.has_ticket() {
            let opened = rng.range(created, self.now - DAY);
            let order = (plan.orders() > 0).then(|| order_id(i, 0));
            let thread = (0..1 + rng.below(3))
                .map(|m| {
                    map([
                        ("from", string(if m % 2 == 0 { "user" } else { "agent" })),
                        ("text", string(sentence(&mut rng, 3, 15))),
                        ("at", ts(opened + m as i64 * HOUR)),
                    ])
                })
                .collect();
            docs.push(doc(
                format!("customer_service/{}", auto_id(&[T_TICKET, i])),
                [
                    ("userId", string(uid.clone())),
                    ("orderId", order.map_or_else(null, string)),
                    (
                        "subject",
                        string(*rng.pick(&[
                            "Refund request",
                            "Coins missing",
                            "Account locked",
                            "Shipping delay",
                        ])),
                    ),
                    (
                        "status",
                        string(*rng.pick(&["open", "pending", "resolved"])),
                    ),
                    ("priority", string(*rng.pick(&["low", "normal", "high"]))),
                    (
                        "assignedTo",
                        if rng.chance(2, 3) {
                            string(user_id(0))
                        } else {
                            null()
                        },
                    ),
                    ("messages", array(thread)),
                    ("openedAt", ts(opened)),
                ],
            ));
        }

        // ad_campaigns of store owners
        if plan.has_ad_campaign() {
            let start = rng.range(self.now - 60 * DAY, self.now);
            let budget = money(&mut rng, 5_000, 500_000);
            docs.push(doc(
                format!("ad_campaigns/{}", auto_id(&[T_AD, i])),
                [
                    ("advertiserId", string(uid.clone())),
                    ("storeId", string(store_id(i))),
                    ("name", string(format!("{} sale", rng.pick(ADJECTIVES)))),
                    ("budget", double(budget)),
                    ("spent", double(round_to(budget * rng.unit(), 2))),
                    ("currency", string("USD")),
                    ("status", string(*rng.pick(&["active", "paused", "ended"]))),
                    ("startDate", string(ymd(start))),
                    ("endDate", string(ymd(start + 30 * DAY))),
                    (
                        "targeting",
                        map([
                            ("countries", strings(&["BR", "US"])),
                            ("interests", array(vec![string(*rng.pick(INTERESTS))])),
                            ("ageMin", int(18)),
                            ("ageMax", int(18 + rng.range(5, 40))),
                        ]),
                    ),
                ],
            ));
        }

        // credits: account credit (refunds, promotions), amounts as decimal text
        if plan.has_credit() {
            let order = (plan.orders() > 0 && rng.chance(1, 2)).then(|| order_id(i, 0));
            docs.push(doc(
                format!("credits/{}", auto_id(&[T_CREDIT, i])),
                [
                    ("userId", string(uid.clone())),
                    ("amount", string(cents_text(100 + rng.below(5_000)))),
                    ("currency", string("USD")),
                    (
                        "source",
                        string(if order.is_some() { "refund" } else { "promo" }),
                    ),
                    ("orderId", order.map_or_else(null, string)),
                    (
                        "expiresAt",
                        if rng.chance(1, 3) {
                            null()
                        } else {
                            string(rfc3339(self.now + rng.range(30, 365) * DAY))
                        },
                    ),
                    ("grantedAt", ts(rng.range(created, self.now))),
                ],
            ));
        }
    }
}

/// Coupons each store issues.
pub(super) const COUPONS_PER_STORE: u64 = 2;
