//! The HTTP API: routes, authentication by bearer token and role, and one error type that
//! answers clearly without leaking internals.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use kestrel_alert::{AlertError, AlertFilter, AlertStatus, Matcher};
use kestrel_store::{QueryError, QueryOptions, Table};
use serde::Deserialize;
use serde_json::json;
use tracing::{error, warn};

use crate::agent_ingest::{decode_body, parse_batch, store_agent_batch, AgentIngestError};
use crate::auth::{Principal, Role};
use crate::console;
use crate::falco_ingest::{ingest_falco, FalcoIngestError};
use crate::ingest::{ingest_event_list, IngestError};
use crate::rule_test::{self, RuleTestError, RuleTestRequest};
use crate::AppState;

/// An API failure: its status and a message for the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Seconds to send in `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure inside Kestrel: logged in full, answered as a plain 500.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        error!(error = %e, "internal error answering a request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::BadBody(b) => ApiError::new(StatusCode::BAD_REQUEST, b.to_string()),
            IngestError::Store(s @ kestrel_store::StoreError::DiskFull { .. }) => ApiError {
                retry_after: Some(DISK_FULL_RETRY_AFTER_SECS),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, s.to_string())
            },
            IngestError::Store(s) => {
                error!(error = %s, "ingest could not be made durable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage is unavailable; retry later",
                )
            }
        }
    }
}

/// `Retry-After` of a refusal for lack of disk space: long enough for retention or an
/// operator to free some, short enough that senders' buffers do not fill meanwhile.
const DISK_FULL_RETRY_AFTER_SECS: u64 = 30;

/// All routes. Health endpoints need no token; ingest needs a role that may write; everything
/// else a role that may read (and changing alerts, `admin`).
pub fn router(state: AppState) -> Router {
    let max_body = state.config.ingest.max_body_bytes;
    let ingest = Router::new()
        .route("/v1/audit/webhook", post(audit_webhook))
        .route("/v1/ingest", post(agent_ingest))
        .route("/v1/ingest/falco", post(falco_ingest))
        .route("/api/v2/alerts", post(alertmanager_alerts_v2))
        .route("/api/v1/alerts", post(alertmanager_alerts_v1))
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_ingest,
        ));
    // Falco cannot send a header: the token is the last path segment. This route checks it
    // itself, and nothing logs request paths (a token must never reach a log).
    let falco_token = Router::new()
        .route("/v1/ingest/falco/{token}", post(falco_ingest_with_token))
        .layer(DefaultBodyLimit::max(max_body));
    let read = Router::new()
        .route("/v1/query", post(query))
        .route("/v1/alerts", get(list_alerts))
        .route("/v1/alerts/{id}", get(get_alert))
        .route("/v1/alerts/{id}/deliveries", get(alert_deliveries))
        .route("/v1/deliveries", get(all_deliveries))
        .route("/v1/silences", get(list_silences))
        .route("/v1/rules", get(list_rules))
        .route("/v1/tables", get(list_tables))
        .route("/v1/rules/test", post(test_rules))
        .route("/v1/storage/quarantine", get(list_quarantine))
        .route("/v1/storage/heads", get(manifest_heads))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_read));
    let admin = Router::new()
        .route("/v1/alerts/{id}/ack", post(ack_alert))
        .route("/v1/alerts/{id}/resolve", post(resolve_alert))
        .route("/v1/silences", post(create_silence))
        .route("/v1/silences/{id}", delete(expire_silence))
        .route("/v1/config/reload", post(reload_config))
        .route("/v1/storage/verify", get(verify_storage))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/", get(console::index))
        .route("/console/{*path}", get(console::file))
        .route("/v1/openapi.json", get(console::openapi))
        .merge(ingest)
        .merge(falco_token)
        .merge(read)
        .merge(admin)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

/// The caller of a request: a bearer token, or else a client certificate that the TLS
/// handshake verified against `tls.client_ca_file` (role `ingest`).
fn authenticate(state: &AppState, req: &Request) -> Result<Principal, ApiError> {
    let unauthorized = |msg: &str| {
        state.metrics.auth_failures.inc();
        ApiError::new(StatusCode::UNAUTHORIZED, msg)
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        if let Some(p) = client_certificate(req) {
            return Ok(p);
        }
        return Err(unauthorized(
            "missing bearer token (Authorization: Bearer <token>)",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    verify_token(state, token)
}

fn verify_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    match state.tokens.verify(token) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => {
            state.metrics.auth_failures.inc();
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid or revoked token",
            ))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The principal of a verified client certificate. rustls only completes a handshake with a
/// certificate that chains to a configured client CA, so any certificate here is trusted; it
/// is named by its SHA-256 fingerprint (first 8 bytes) in logs and alert history.
fn client_certificate(req: &Request) -> Option<Principal> {
    let info = req
        .extensions()
        .get::<std::sync::Arc<axum_server::tls::TlsInfo>>()?;
    let leaf = info.peer_certificates.first()?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(leaf);
    Some(Principal {
        name: format!("client-cert:{}", hex::encode(&digest[..8])),
        role: Role::Ingest,
    })
}

async fn require(
    state: AppState,
    mut req: Request,
    next: Next,
    allowed: fn(Role) -> bool,
    what: &str,
) -> Response {
    match authenticate(&state, &req) {
        Ok(p) if allowed(p.role) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Ok(p) => {
            warn!(token = %p.name, role = p.role.as_str(), path = %req.uri().path(), "token lacks the role for this endpoint");
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a token with role {} may not {what}", p.role.as_str()),
            )
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn require_ingest(State(s): State<AppState>, req: Request, next: Next) -> Response {
    require(s, req, next, Role::may_ingest, "send data").await
}

async fn require_read(State(s): State<AppState>, req: Request, next: Next) -> Response {
    require(s, req, next, Role::may_read, "read data").await
}

async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    require(s, req, next, |r| r == Role::Admin, "change alerts").await
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.is_writable() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage refuses writes\n").into_response()
    }
}

/// A body axum could not read (too large, cut off): answered as JSON like every other error.
fn body_rejection(e: BytesRejection, max_body_bytes: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {max_body_bytes} bytes (ingest.max_body_bytes)"),
        );
    }
    ApiError::new(e.status(), e.body_text())
}

/// A query request that is not the expected JSON, answered as JSON.
fn json_rejection(e: JsonRejection) -> ApiError {
    ApiError::new(e.status(), e.body_text())
}

async fn audit_webhook(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(e, state.config.ingest.max_body_bytes))?;
    let summary = ingest_event_list(&state, body, "audit_webhook").await?;
    crate::ingest::observe_sender(&state, "audit", "webhook", None, None, None);
    Ok(Json(summary).into_response())
}

impl From<AgentIngestError> for ApiError {
    fn from(e: AgentIngestError) -> Self {
        match e {
            AgentIngestError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            e @ AgentIngestError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            AgentIngestError::Store(s) => IngestError::Store(s).into(),
        }
    }
}

/// A batch from a node agent. A malformed batch is kept aside as a dead letter (so nothing an
/// agent sent is lost) and answered 400, which tells the agent not to send it again.
async fn agent_ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let limit = state.config.ingest.max_body_bytes;
    let body = body.map_err(|e| body_rejection(e, limit))?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let decoded = tokio::task::spawn_blocking(move || {
        let json =
            decode_body(&body, encoding.as_deref(), limit).map_err(|e| (e, body.to_vec()))?;
        parse_batch(&json).map_err(|e| (e, json))
    })
    .await
    .expect("decoding does not panic");
    let batch = match decoded {
        Ok(batch) => batch,
        Err((e @ AgentIngestError::Invalid(_), payload)) => {
            reject_agent_batch(&state, &e, &payload).await?;
            return Err(e.into());
        }
        Err((e, _)) => return Err(e.into()),
    };
    let summary = store_agent_batch(&state, batch).await?;
    Ok(Json(summary).into_response())
}

/// Keeps a refused agent batch aside in the `dead_letter` table, cut to a bounded size.
async fn reject_agent_batch(
    state: &AppState,
    error: &AgentIngestError,
    payload: &[u8],
) -> Result<(), ApiError> {
    const MAX_PAYLOAD: usize = 64 * 1024;
    let cut = &payload[..payload.len().min(MAX_PAYLOAD)];
    let dead_letter = kestrel_event::DeadLetter {
        time: kestrel_event::time::now_nanos(),
        source: "agent".into(),
        kind: "invalid_batch".into(),
        reason: error.to_string(),
        location: None,
        size_bytes: payload.len() as i64,
        // Audit lines inside may hold secrets the batch never got to redact.
        payload: kestrel_parse::redact_lexical(&String::from_utf8_lossy(cut)),
    };
    crate::ingest::store_dead_letters(state, vec![dead_letter], "agent")
        .await
        .map_err(|e| ApiError::from(IngestError::Store(e)))
}

impl From<FalcoIngestError> for ApiError {
    fn from(e: FalcoIngestError) -> Self {
        match e {
            FalcoIngestError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            FalcoIngestError::Store(s) => IngestError::Store(s).into(),
        }
    }
}

/// Falco's `http_output`, authenticated by a bearer token or a client certificate.
async fn falco_ingest(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(e, state.config.ingest.max_body_bytes))?;
    Ok(Json(ingest_falco(&state, body).await?).into_response())
}

/// Falco's `http_output` with the token in the URL (Falco cannot send a header).
async fn falco_ingest_with_token(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = verify_token(&state, &token)?;
    if !principal.role.may_ingest() {
        warn!(token = %principal.name, role = principal.role.as_str(), "a token in a Falco ingest URL lacks the ingest role");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "a token with role {} may not send data",
                principal.role.as_str()
            ),
        ));
    }
    let body = body.map_err(|e| body_rejection(e, state.config.ingest.max_body_bytes))?;
    Ok(Json(ingest_falco(&state, body).await?).into_response())
}

/// Sealed files taken out of their tables because they could not be read.
async fn list_quarantine(State(state): State<AppState>) -> Response {
    let store = Arc::clone(&state.store);
    let files = tokio::task::spawn_blocking(move || store.quarantined_files())
        .await
        .unwrap_or_default();
    Json(json!({ "files": files })).into_response()
}

/// Each table's manifest head, signed when a key is configured: keep them somewhere else, and
/// `kestrel verify --heads` proves later that history before them was not rewritten.
async fn manifest_heads(State(state): State<AppState>) -> Response {
    Json(json!({ "heads": state.store.manifest_heads() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    /// One table; all when absent.
    table: Option<String>,
}

/// Verifies the manifests and re-hashes the files (reads every sealed file: admin only).
async fn verify_storage(
    State(state): State<AppState>,
    Query(q): Query<VerifyQuery>,
) -> Result<Response, ApiError> {
    let tables = match non_empty(q.table) {
        None => Vec::new(),
        Some(name) => vec![Table::from_name(&name)
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("no table {name:?}")))?],
    };
    let root = state.store.root().to_path_buf();
    let opts = kestrel_store::verify::VerifyOptions {
        exported_heads: Vec::new(),
        public_key: state
            .config
            .storage
            .manifest_signing_key_file
            .as_ref()
            .and_then(|p| kestrel_store::manifest::load_signing_key(p).ok())
            .map(|k| k.verifying_key()),
    };
    let reports =
        tokio::task::spawn_blocking(move || kestrel_store::verify::verify(&root, &tables, &opts))
            .await
            .map_err(ApiError::internal)?;
    let ok = reports.iter().all(|r| r.ok());
    Ok(Json(json!({ "ok": ok, "tables": reports })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
    #[serde(default)]
    max_rows: Option<usize>,
    /// Only rows with `time` at or after this, in every table: RFC 3339, or a duration before
    /// now like `1h`.
    #[serde(default)]
    since: Option<String>,
    /// Only rows with `time` before this (same forms).
    #[serde(default)]
    until: Option<String>,
}

/// A time bound of a query: RFC 3339 (`2026-11-23T10:00:00Z`) or a duration before now
/// (`15m`, `1h`, `7d`), in nanoseconds since the epoch.
fn time_bound(what: &str, s: &str) -> Result<i64, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt().ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{what}: {s:?} is out of range"),
            )
        });
    }
    let ago = humantime_duration(s).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what}: {s:?} is neither an RFC 3339 time nor a duration like 1h"),
        )
    })?;
    let ago = i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX);
    Ok(kestrel_event::time::now_nanos().saturating_sub(ago))
}

/// The media type of an Arrow IPC stream, for `Accept` and `Content-Type`.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Whether the client asked for an Arrow IPC stream.
fn wants_arrow(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with(ARROW_STREAM)))
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
        QueryError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        QueryError::Limit(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        e @ QueryError::Internal(_) => ApiError::internal(e),
    }
}

/// An answer as an Arrow IPC stream; `Kestrel-Truncated` says whether rows were cut, and a
/// `Kestrel-Warning` header carries each warning (like a file quarantined while answering).
fn arrow_response(answer: kestrel_store::ArrowResult) -> Result<Response, ApiError> {
    let body = answer.to_ipc_stream().map_err(ApiError::internal)?;
    let mut response = (
        [
            (header::CONTENT_TYPE, ARROW_STREAM.to_string()),
            (
                header::HeaderName::from_static("kestrel-truncated"),
                answer.truncated.to_string(),
            ),
        ],
        body,
    )
        .into_response();
    for warning in &answer.warnings {
        let text: String = warning
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            response
                .headers_mut()
                .append(header::HeaderName::from_static("kestrel-warning"), v);
        }
    }
    Ok(response)
}

async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req.map_err(json_rejection)?;
    let cfg = &state.config.query;
    let since = req
        .since
        .as_deref()
        .map(|s| time_bound("since", s))
        .transpose()?;
    let until = req
        .until
        .as_deref()
        .map(|s| time_bound("until", s))
        .transpose()?;
    let opts = QueryOptions {
        max_rows: req.max_rows.unwrap_or(cfg.max_rows).min(cfg.max_rows),
        timeout: cfg.timeout,
        memory_limit_bytes: cfg.memory_limit_bytes,
        since,
        until,
    };
    if wants_arrow(&headers) {
        let answer = state
            .store
            .query_arrow(&req.sql, &opts)
            .await
            .map_err(query_error)?;
        return arrow_response(answer);
    }
    match state.store.query(&req.sql, &opts).await {
        Ok(result) => Ok(Json(result).into_response()),
        Err(e) => Err(query_error(e)),
    }
}

#[derive(Deserialize)]
struct AlertQuery {
    status: Option<String>,
    priority: Option<String>,
    rule: Option<String>,
    namespace: Option<String>,
    /// RFC 3339: only alerts seen at or after this time.
    since: Option<String>,
    limit: Option<usize>,
}

/// An optional query parameter: absent and empty mean "any".
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

async fn list_alerts(
    State(state): State<AppState>,
    Query(q): Query<AlertQuery>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(AlertStatus::parse(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown status {s:?}: use firing, acknowledged or resolved"),
            )
        })?),
    };
    let since_ns = match non_empty(q.since) {
        None => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(&s)
                .ok()
                .and_then(|t| t.timestamp_nanos_opt())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("since {s:?} is not an RFC 3339 time like 2024-05-01T12:00:00Z"),
                    )
                })?,
        ),
    };
    let filter = AlertFilter {
        status,
        priority: non_empty(q.priority),
        rule: non_empty(q.rule),
        namespace: non_empty(q.namespace),
        since_ns,
        limit: Some(q.limit.unwrap_or(500).min(10_000)),
    };
    let alerts = state
        .alerting
        .store()
        .list(&filter)
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

async fn get_alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.alerting.store();
    let alert = store
        .get(&id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    let deliveries = store
        .deliveries(Some(&id), 100)
        .map_err(ApiError::internal)?;
    let muted = state.alerting.muted(&id);
    Ok(Json(json!({ "alert": alert, "muted": muted, "deliveries": deliveries })).into_response())
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn alert_deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, ApiError> {
    let store = state.alerting.store();
    if store.get(&id).map_err(ApiError::internal)?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no alert {id}"),
        ));
    }
    let deliveries = store
        .deliveries(Some(&id), q.limit.unwrap_or(100).min(10_000))
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "deliveries": deliveries })).into_response())
}

async fn all_deliveries(
    State(state): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, ApiError> {
    let deliveries = state
        .alerting
        .store()
        .deliveries(None, q.limit.unwrap_or(100).min(10_000))
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "deliveries": deliveries })).into_response())
}

async fn set_status(
    state: &AppState,
    id: &str,
    status: AlertStatus,
    who: &Principal,
) -> Result<Response, ApiError> {
    let alert = state
        .alerting
        .set_status(id, status, &who.name)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    Ok(Json(json!({ "alert": alert })).into_response())
}

async fn ack_alert(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_status(&state, &id, AlertStatus::Acknowledged, &who).await
}

async fn resolve_alert(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_status(&state, &id, AlertStatus::Resolved, &who).await
}

async fn list_silences(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = state.alerting.now();
    let silences: Vec<serde_json::Value> = state
        .alerting
        .silences()
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|s| {
            let mut v = json!(s);
            v["state"] = json!(s.state(now));
            v
        })
        .collect();
    Ok(Json(json!({ "silences": silences })).into_response())
}

/// A matcher as Alertmanager's API writes it, or as a string (`namespace="dev"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum MatcherInput {
    Text(String),
    Object {
        name: String,
        value: String,
        #[serde(default, rename = "isRegex")]
        is_regex: bool,
        #[serde(default = "yes", rename = "isEqual")]
        is_equal: bool,
    },
}

fn yes() -> bool {
    true
}

/// `POST /v1/silences`: Alertmanager's silence fields (camelCase) or snake_case; `duration`
/// (like `2h`) instead of `endsAt`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    matchers: Vec<MatcherInput>,
    #[serde(default, alias = "startsAt")]
    starts_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, alias = "endsAt")]
    ends_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    comment: String,
    /// Ignored in favour of the token's name (kept for Alertmanager clients).
    #[serde(default, alias = "createdBy")]
    #[allow(dead_code)]
    created_by: Option<String>,
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
}

async fn create_silence(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    req: Result<Json<SilenceRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req.map_err(json_rejection)?;
    let mut matchers = Vec::new();
    for m in req.matchers {
        let parsed = match m {
            MatcherInput::Text(t) => Matcher::parse_list(&t).map_err(bad_request)?,
            MatcherInput::Object {
                name,
                value,
                is_regex,
                is_equal,
            } => {
                let op = match (is_regex, is_equal) {
                    (false, true) => kestrel_alert::MatchOp::Equal,
                    (false, false) => kestrel_alert::MatchOp::NotEqual,
                    (true, true) => kestrel_alert::MatchOp::Regex,
                    (true, false) => kestrel_alert::MatchOp::NotRegex,
                };
                vec![Matcher::new(&name, op, &value).map_err(bad_request)?]
            }
        };
        matchers.extend(parsed);
    }
    let start = req.starts_at.unwrap_or_else(|| state.alerting.now());
    let ends_at = match (req.ends_at, req.duration) {
        (Some(e), None) => e,
        (None, Some(d)) => {
            let d = humantime_duration(&d).map_err(bad_request)?;
            start + chrono::Duration::from_std(d).map_err(bad_request)?
        }
        _ => {
            return Err(bad_request(
                "give either ends_at (RFC 3339) or duration (like 2h)",
            ))
        }
    };
    let silence = state
        .alerting
        .add_silence(matchers, req.starts_at, ends_at, &who.name, &req.comment)
        .map_err(|e| match e {
            AlertError::Invalid(m) => bad_request(m),
            e => ApiError::internal(e),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "silence": silence, "silenceID": silence.id })),
    )
        .into_response())
}

fn humantime_duration(s: &str) -> Result<std::time::Duration, String> {
    #[derive(Deserialize)]
    struct D(#[serde(deserialize_with = "kestrel_alert::duration")] std::time::Duration);
    serde_json::from_value::<D>(json!(s))
        .map(|d| d.0)
        .map_err(|e| e.to_string())
}

async fn expire_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !state
        .alerting
        .expire_silence(&id)
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no silence {id}"),
        ));
    }
    Ok(Json(json!({ "expired": id })).into_response())
}

async fn reload_config(State(state): State<AppState>) -> Result<Response, ApiError> {
    match crate::reload_alerting(&state) {
        Ok(msg) => Ok(Json(json!({ "reloaded": true, "message": msg })).into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("configuration not reloaded: {e}"),
        )),
    }
}

/// Alertmanager's `POST /api/v2/alerts`: a JSON array of alerts; 200 with an empty body.
async fn alertmanager_alerts_v2(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(e, state.config.ingest.max_body_bytes))?;
    let summary = ingest_alertmanager(&state, &body).await?;
    Ok((StatusCode::OK, Json(summary)).into_response())
}

/// The old `POST /api/v1/alerts` (same body), answered as Alertmanager v1 did.
async fn alertmanager_alerts_v1(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_rejection(e, state.config.ingest.max_body_bytes))?;
    let summary = ingest_alertmanager(&state, &body).await?;
    let mut v = summary;
    v["status"] = json!("success");
    Ok(Json(v).into_response())
}

async fn ingest_alertmanager(state: &AppState, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let now = state.alerting.now();
    let (alerts, problems) =
        kestrel_alert::parse_alertmanager_alerts(body, now).map_err(bad_request)?;
    for p in &problems {
        warn!(problem = %p, "posted alert refused");
    }
    let alerting = std::sync::Arc::clone(&state.alerting);
    let (accepted, new) = tokio::task::spawn_blocking(move || {
        let mut accepted = 0;
        let mut new = 0;
        for a in &alerts {
            match alerting.record_inbound(a) {
                Ok((_, is_new)) => {
                    accepted += 1;
                    new += usize::from(is_new);
                }
                Err(e) => warn!(error = %e, rule = %a.alert.rule, "cannot record a posted alert"),
            }
        }
        (accepted, new)
    })
    .await
    .map_err(ApiError::internal)?;
    state.metrics.alerts_notified.inc_by(new as u64);
    if accepted == 0 && !problems.is_empty() {
        return Err(bad_request(problems.join("; ")));
    }
    Ok(json!({ "accepted": accepted, "new": new, "refused": problems }))
}

/// The loaded rules, each with how often it matched (summed over its alerts, so counts survive
/// restarts).
async fn list_rules(State(state): State<AppState>) -> Result<Response, ApiError> {
    let rules = state.rules.load();
    let stats = state
        .alerting
        .store()
        .rule_stats()
        .map_err(ApiError::internal)?;
    let rules: Vec<serde_json::Value> = rules
        .rules()
        .into_iter()
        .map(|info| {
            let stat = stats.iter().find(|s| s.rule == info.name);
            let mut v = serde_json::to_value(&info).expect("rule info serializes");
            v["matches"] = json!(stat.map_or(0, |s| s.matches));
            v["alerts"] = json!(stat.map_or(0, |s| s.alerts));
            v["last_match"] = json!(stat.map(|s| s.last_seen.clone()));
            v
        })
        .collect();
    Ok(Json(json!({ "rules": rules })).into_response())
}

/// Runs rule YAML over stored events without recording anything.
async fn test_rules(
    State(state): State<AppState>,
    req: Result<Json<RuleTestRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req.map_err(json_rejection)?;
    match rule_test::run(&state, req).await {
        Ok(result) => Ok(Json(result).into_response()),
        Err(RuleTestError::BadRequest(m)) => Err(ApiError::new(StatusCode::BAD_REQUEST, m)),
        Err(RuleTestError::Query(QueryError::Limit(m))) => {
            Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m))
        }
        Err(RuleTestError::Query(e)) => Err(ApiError::internal(e)),
    }
}

/// Every table with its columns, row count and time span, so clients discover what is stored.
async fn list_tables(State(state): State<AppState>) -> Result<Response, ApiError> {
    let opts = QueryOptions {
        max_rows: 1,
        timeout: state.config.query.timeout,
        memory_limit_bytes: state.config.query.memory_limit_bytes,
        ..QueryOptions::default()
    };
    let mut tables = Vec::new();
    for table in Table::ALL {
        let name = table.name();
        let sql = format!("SELECT count(*), min(time), max(time) FROM {name}");
        let result = state
            .store
            .query(&sql, &opts)
            .await
            .map_err(ApiError::internal)?;
        let row = result.rows.first().cloned().unwrap_or_default();
        let columns: Vec<_> = kestrel_store::column_types(&table.schema())
            .into_iter()
            .map(|(name, ty)| json!({ "name": name, "type": ty }))
            .collect();
        tables.push(json!({
            "name": name,
            "columns": columns,
            "rows": row.first().cloned().unwrap_or(json!(0)),
            "min_time": row.get(1).cloned().unwrap_or_default(),
            "max_time": row.get(2).cloned().unwrap_or_default(),
        }));
    }
    Ok(Json(json!({ "tables": tables })).into_response())
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.registry.render(),
    )
        .into_response()
}
