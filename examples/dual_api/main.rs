//! An HTTP API over a few resources of the seed app — users, content with comments,
//! follows, wallet transactions — that stores everything through `fireshift::dual`, so
//! its collections can move from Firestore to MongoDB one by one while it serves.
//!
//! ```text
//! POST   /api/<collection>                body {"id": "...", ...fields}  create
//! GET    /api/<collection>?eq.f=v&order_by=f&desc=true&limit=n          query
//! GET    /api/<collection>/<id>                                         get
//! PUT    /api/<collection>/<id>           body {...fields}               set (replace)
//! PATCH  /api/<collection>/<id>           body {"a.b": v, "$delete": ["c"]}  merge
//! DELETE /api/<collection>/<id>                                         delete
//! POST   /api/users/<uid>/follow/<target>   one batch: follows doc + both users' lists
//! GET    /metrics                                                       Prometheus text
//! GET    /admin/modes                     modes in force
//! POST   /admin/modes                     {"collection": "content/{}/comments", "mode": "dual_read_mongo"}
//! GET    /admin/outbox                    depth and oldest entry age
//! POST   /admin/outbox/drain              replay every entry now
//! ```
//!
//! Collections: `users`, `content`, `content/<id>/comments`, `follows`,
//! `wallets/<uid>/transactions`. Query values are parsed as JSON when they parse
//! (`eq.age=30` is a number, `eq.name="Ann"` or `eq.name=Ann` a string).
//!
//! Run (emulator and MongoDB from `scripts/services up`):
//! `FIRESTORE_EMULATOR_HOST=127.0.0.1:8085 cargo run --example dual_api -- --project demo --database demo`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use clap::Parser;
use fireshift::dual::json::{fields_from_json, value_from_json};
use fireshift::dual::{Direction, DualConfig, DualError, DualStore, Mode, Query, WriteOp};
use fireshift::path::CollectionPattern;
use gcloud_sdk::google::firestore::v1::{value::ValueType, ArrayValue, Value};
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// Firestore project.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    project: String,
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/?directConnection=true"
    )]
    mongodb_uri: String,
    /// MongoDB database.
    #[arg(long)]
    database: String,
    /// Firestore endpoint (https://; default Google's, or the emulator when
    /// FIRESTORE_EMULATOR_HOST is set). Credentials: Application Default Credentials.
    #[arg(long, env = "FIRESTORE_ENDPOINT")]
    firestore_endpoint: Option<String>,
    /// Extra CA (PEM) to trust for the Firestore endpoint.
    #[arg(long)]
    firestore_ca_file: Option<std::path::PathBuf>,
    /// Extra CA (PEM) to trust for MongoDB TLS.
    #[arg(long, env = "MONGODB_CA_FILE")]
    mongodb_ca_file: Option<std::path::PathBuf>,
    /// The mapping directory the migration uses (default mapping when absent).
    #[arg(long)]
    mappings: Option<std::path::PathBuf>,
    /// Mode of collections the settings document does not name.
    #[arg(long, default_value = "firestore_only")]
    default_mode: Mode,
    #[arg(long, default_value_t = 0.0)]
    shadow_read_fraction: f64,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// The collections this API serves.
const RESOURCES: &[&str] = &[
    "users",
    "content",
    "content/{}/comments",
    "follows",
    "wallets/{}/transactions",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS crypto provider, chosen before any client is built (fireshift::tls).
    fireshift::tls::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIRESHIFT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let transformer =
        fireshift::mapping::transform::Transformer::from_dir(args.mappings.as_deref())
            .map_err(|e| anyhow::anyhow!("invalid mappings:\n{e}"))?;
    let mut config = DualConfig::new(&args.project, &args.mongodb_uri, &args.database);
    config.transformer = transformer;
    config.firestore_endpoint = fireshift::firestore::FirestoreEndpoint {
        url: args.firestore_endpoint.clone(),
        ca_file: args.firestore_ca_file.clone(),
    };
    config.mongodb_ca_file = args.mongodb_ca_file.clone();
    config.default_mode = args.default_mode;
    config.shadow_read_fraction = args.shadow_read_fraction;
    config.settings_poll = Some(Duration::from_secs(2));
    let store = DualStore::connect(config).await?;
    let background = store.spawn_background();

    let app = Router::new()
        .route("/api/users/{uid}/follow/{target}", post(follow))
        .route("/api/{*path}", any(resource))
        .route("/metrics", get(metrics))
        .route("/admin/modes", get(modes).post(set_mode))
        .route("/admin/outbox", get(outbox))
        .route("/admin/outbox/drain", post(drain))
        .with_state(store.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // Scripts and tests wait for this line.
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    background.shutdown().await;
    store.shutdown().await;
    Ok(())
}

/// An error as a JSON response with the right status.
struct ApiError(StatusCode, String);

impl From<DualError> for ApiError {
    fn from(e: DualError) -> Self {
        let status = match &e {
            DualError::AlreadyExists { .. } => StatusCode::CONFLICT,
            DualError::NotFound { .. } => StatusCode::NOT_FOUND,
            DualError::Path { .. } | DualError::Mapping { .. } | DualError::Unsupported(_) => {
                StatusCode::BAD_REQUEST
            }
            DualError::Config(_) | DualError::Io(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Checks that a collection path is one this API serves.
fn served(collection: &str) -> Result<(), ApiError> {
    let probe = format!("{collection}/_");
    let pattern = fireshift::path::DocPath::parse(&probe)
        .map_err(|e| bad(e.to_string()))?
        .pattern();
    if RESOURCES
        .iter()
        .any(|r| CollectionPattern::parse(r).as_ref() == Some(&pattern))
    {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no resource `{pattern}`"),
        ))
    }
}

fn body_object(body: &Bytes) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err(bad("the body must be a JSON object")),
        Err(e) => Err(bad(format!("invalid JSON: {e}"))),
    }
}

fn to_json(d: mongodb::bson::Document) -> serde_json::Value {
    mongodb::bson::Bson::Document(d).into_relaxed_extjson()
}

async fn resource(
    State(store): State<DualStore>,
    method: Method,
    Path(path): Path<String>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let path = path.trim_matches('/').to_string();
    let segments = path.split('/').count();
    if segments % 2 == 1 {
        // A collection.
        served(&path)?;
        return match method {
            Method::GET => {
                let q = url_query(&params)?;
                let docs = store.query(&path, &q).await?;
                Ok(Json(docs.into_iter().map(to_json).collect::<Vec<_>>()).into_response())
            }
            Method::POST => {
                let mut o = body_object(&body)?;
                let id = match o.remove("id") {
                    Some(serde_json::Value::String(s)) if !s.is_empty() && !s.contains('/') => s,
                    Some(_) => return Err(bad("`id` must be a non-empty string without `/`")),
                    None => format!("{:016x}", rand::random::<u64>()),
                };
                let doc_path = format!("{path}/{id}");
                let r = store.create(&doc_path, fields_from_json(&o)).await?;
                Ok((
                    StatusCode::CREATED,
                    Json(json!({"path": r.path, "mode": r.mode, "secondary": format!("{:?}", r.secondary)})),
                )
                    .into_response())
            }
            _ => Err(ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "use GET or POST".into(),
            )),
        };
    }
    let (collection, _) = path.rsplit_once('/').expect("even segment count");
    served(collection)?;
    match method {
        Method::GET => match store.get(&path).await? {
            Some(d) => Ok(Json(to_json(d)).into_response()),
            None => Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no document `{path}`"),
            )),
        },
        Method::PUT => {
            let o = body_object(&body)?;
            let r = store.set_doc(&path, fields_from_json(&o)).await?;
            Ok(Json(json!({"path": r.path, "mode": r.mode})).into_response())
        }
        Method::PATCH => {
            let mut o = body_object(&body)?;
            let deletes = match o.remove("$delete") {
                None => Vec::new(),
                Some(serde_json::Value::Array(a)) => a
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        _ => Err(bad("`$delete` lists field paths (strings)")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(bad("`$delete` must be an array")),
            };
            let mut updates: Vec<(String, Option<Value>)> = o
                .iter()
                .map(|(k, v)| (k.clone(), Some(value_from_json(v))))
                .collect();
            updates.extend(deletes.into_iter().map(|f| (f, None)));
            if updates.is_empty() {
                return Err(bad("nothing to update"));
            }
            let r = store.update(&path, updates).await?;
            Ok(Json(json!({"path": r.path, "mode": r.mode})).into_response())
        }
        Method::DELETE => {
            store.delete(&path).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET, PUT, PATCH or DELETE".into(),
        )),
    }
}

/// `eq.<field>=<value>`, `order_by=<field>`, `desc=true`, `limit=<n>`.
fn url_query(params: &HashMap<String, String>) -> Result<Query, ApiError> {
    let mut q = Query::new();
    let mut keys: Vec<&String> = params.keys().collect();
    keys.sort();
    for k in keys {
        let v = &params[k];
        if let Some(field) = k.strip_prefix("eq.") {
            let value = serde_json::from_str::<serde_json::Value>(v)
                .unwrap_or_else(|_| serde_json::Value::String(v.clone()));
            q = q.eq(field, value_from_json(&value));
        }
    }
    if let Some(f) = params.get("order_by") {
        let dir = if params.get("desc").map(String::as_str) == Some("true") {
            Direction::Descending
        } else {
            Direction::Ascending
        };
        q = q.order_by(f, dir);
    }
    if let Some(n) = params.get("limit") {
        q = q.limit(n.parse().map_err(|_| bad("limit must be a number"))?);
    }
    Ok(q)
}

/// One atomic batch: the follow document and both users' denormalized lists.
async fn follow(
    State(store): State<DualStore>,
    Path((uid, target)): Path<(String, String)>,
) -> ApiResult {
    let user = |id: &str| format!("users/{id}");
    for id in [&uid, &target] {
        if store.get(&user(id)).await?.is_none() {
            return Err(ApiError(StatusCode::NOT_FOUND, format!("no user `{id}`")));
        }
    }
    let s = |v: &str| Value {
        value_type: Some(ValueType::StringValue(v.into())),
    };
    let list = |v: &str| {
        Some(Value {
            value_type: Some(ValueType::ArrayValue(ArrayValue { values: vec![s(v)] })),
        })
    };
    let ops = vec![
        WriteOp::Set {
            path: format!("follows/{uid}_{target}"),
            fields: HashMap::from([
                ("follower".to_string(), s(&uid)),
                ("followee".to_string(), s(&target)),
            ]),
        },
        WriteOp::Update {
            path: user(&uid),
            fields: vec![("lastFollowed".into(), list(&target))],
        },
        WriteOp::Update {
            path: user(&target),
            fields: vec![("lastFollower".into(), list(&uid))],
        },
    ];
    let results = store.batch(ops).await?;
    Ok(Json(json!({"written": results.len()})).into_response())
}

async fn metrics(State(store): State<DualStore>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        store.metrics().render(),
    )
        .into_response()
}

async fn modes(State(store): State<DualStore>) -> Response {
    let (default, modes) = store.modes().snapshot();
    Json(json!({
        "default": default,
        "collections": modes.into_iter().collect::<HashMap<_, _>>(),
        "shadow_read_fraction": store.shadow_read_fraction(),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
struct ModeChange {
    collection: String,
    mode: Mode,
}

async fn set_mode(State(store): State<DualStore>, Json(change): Json<ModeChange>) -> ApiResult {
    if CollectionPattern::parse(&change.collection).is_none() {
        return Err(bad(format!(
            "`{}` is not a collection pattern (e.g. `content/{{}}/comments`)",
            change.collection
        )));
    }
    store
        .publish_mode(&change.collection, change.mode, Duration::from_secs(30))
        .await?;
    Ok(Json(json!({"collection": change.collection, "mode": change.mode})).into_response())
}

async fn outbox(State(store): State<DualStore>) -> ApiResult {
    let (depth, oldest) = store.outbox_stats().await?;
    Ok(Json(json!({
        "depth": depth,
        "oldest_age_seconds": oldest.map(|d| d.as_secs_f64()),
    }))
    .into_response())
}

async fn drain(State(store): State<DualStore>) -> ApiResult {
    store.drain(Duration::from_secs(60)).await?;
    Ok(Json(json!({"drained": true})).into_response())
}
