//! Secret redaction for audit events: structural on parsed JSON, and lexical (best effort) for
//! payloads that do not parse, so secret values never reach storage or dead letters.
//!
//! Structural rules ([`redact_event`], [`redact_value`]), applied to `requestObject` and
//! `responseObject`, with `objectRef` as context:
//! - `data`/`stringData` values of a `Secret` are replaced by [`REDACTED`] (keys stay); also for
//!   every object of a request on resource `secrets` (merge and strategic patches carry no
//!   `kind`), every item of a `SecretList` and of any `*List`/`items` array in that context, and
//!   every `rows[].object` of a `Table`;
//! - JSON-patch arrays on `secrets`: `value` of ops whose `path` starts with `/data` or
//!   `/stringData` (or replaces the whole object); a body on `secrets` that is a bare string is
//!   masked whole;
//! - `status.token` of a `TokenRequest` (or of any body on subresource `token`), `spec.token` of
//!   a `TokenReview` (or of any body on resource `tokenreviews`);
//! - the `kubectl.kubernetes.io/last-applied-configuration` annotation of any object is parsed,
//!   redacted by the same rules and re-serialized; when it does not parse it is replaced whole.
//!
//! Lexical rules ([`redact_lexical`]) for text that is not valid JSON (truncated or damaged
//! bodies): every string value after a key named `data`, `stringData`, `token` or
//! `kubectl.kubernetes.io/last-applied-configuration` is masked, including all strings inside an
//! object or array that follows such a key, up to its end or the end of the input; a `value`
//! after a `"path":"/data…"` in the same object is masked too. Limits: keys are compared as
//! written (a key spelled with `\u` escapes is not recognised); `data` of non-secret objects is
//! masked as well (over-redaction is the safe side); a patch op whose `value` comes before its
//! `path` is not recognised; numbers and booleans are never masked.

use serde_json::{Map, Value};

use kestrel_event::{AuditEvent, ObjectReference};

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// The annotation in which `kubectl apply` keeps the whole applied object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the request is about, from `objectRef`.
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    /// Resource `secrets`: every body may hold secret data, with or without `kind`.
    secret: bool,
    /// Subresource `token` (`serviceaccounts/token`): the body is a TokenRequest.
    token_request: bool,
    /// Resource `tokenreviews`.
    token_review: bool,
}

impl Ctx {
    fn new(resource: Option<&str>, subresource: Option<&str>) -> Self {
        Ctx {
            secret: resource == Some("secrets"),
            token_request: subresource == Some("token"),
            token_review: resource == Some("tokenreviews"),
        }
    }

    fn from_object_ref(o: Option<&ObjectReference>) -> Self {
        Ctx::new(
            o.and_then(|o| o.resource.as_deref()),
            o.and_then(|o| o.subresource.as_deref()),
        )
    }

    fn from_value(o: Option<&Value>) -> Self {
        let field = |k: &str| o.and_then(|o| o.get(k)).and_then(Value::as_str);
        Ctx::new(field("resource"), field("subresource"))
    }
}

/// Redacts the secrets in an event's request and response bodies, in place.
pub fn redact_event(e: &mut AuditEvent) {
    if e.request_object.is_none() && e.response_object.is_none() {
        return;
    }
    let ctx = Ctx::from_object_ref(e.object_ref.as_ref());
    if let Some(v) = e.request_object.as_mut() {
        redact_body(v, ctx);
    }
    if let Some(v) = e.response_object.as_mut() {
        redact_body(v, ctx);
    }
}

/// Redacts secrets in a JSON value, in place: an audit event (or an `EventList` or array of
/// them) gets the rules of [`redact_event`]; any other object is treated as a Kubernetes object
/// (a `Secret`, a `SecretList`, a `TokenRequest`, ...).
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(m) => {
            let kind = m.get("kind").and_then(Value::as_str);
            if kind == Some("EventList") {
                if let Some(Value::Array(items)) = m.get_mut("items") {
                    items.iter_mut().for_each(redact_value);
                }
            } else if kind == Some("Event")
                || m.contains_key("auditID")
                || m.contains_key("requestObject")
                || m.contains_key("responseObject")
            {
                let ctx = Ctx::from_value(m.get("objectRef"));
                for key in ["requestObject", "responseObject"] {
                    if let Some(body) = m.get_mut(key) {
                        redact_body(body, ctx);
                    }
                }
            } else {
                redact_object(m, Ctx::default());
            }
        }
        _ => {}
    }
}

/// Redacts one request or response body. Returns whether anything changed.
fn redact_body(v: &mut Value, ctx: Ctx) -> bool {
    match v {
        Value::Object(m) => redact_object(m, ctx),
        Value::Array(ops) if ctx.secret => redact_json_patch(ops),
        // A body on a secret that is kept as text (e.g. a non-JSON patch) cannot be inspected.
        Value::String(_) if ctx.secret => mask(v),
        _ => false,
    }
}

fn redact_object(m: &mut Map<String, Value>, ctx: Ctx) -> bool {
    let kind = m.get("kind").and_then(Value::as_str).unwrap_or("");
    let secret = kind == "Secret" || ctx.secret;
    let item_ctx = Ctx {
        secret: ctx.secret || kind == "SecretList",
        ..ctx
    };
    let token_request = kind == "TokenRequest" || ctx.token_request;
    let token_review = kind == "TokenReview" || ctx.token_review;
    let table = kind == "Table";

    let mut changed = false;
    if secret {
        changed |= mask_values_of(m, "data");
        changed |= mask_values_of(m, "stringData");
    }
    if token_request {
        changed |= mask_field(m, "status", "token");
    }
    if token_review {
        changed |= mask_field(m, "spec", "token");
    }
    if let Some(Value::Array(items)) = m.get_mut("items") {
        for item in items {
            changed |= redact_body(item, item_ctx);
        }
    }
    if table {
        if let Some(Value::Array(rows)) = m.get_mut("rows") {
            for row in rows {
                if let Some(obj) = row.get_mut("object") {
                    changed |= redact_body(obj, item_ctx);
                }
            }
        }
    }
    changed |= redact_last_applied(m, ctx);
    changed
}

/// Replaces every value of the object under `key` by the marker (keys stay); a non-object value
/// is replaced whole.
fn mask_values_of(m: &mut Map<String, Value>, key: &str) -> bool {
    match m.get_mut(key) {
        None | Some(Value::Null) => false,
        Some(Value::Object(d)) => {
            let mut changed = false;
            for v in d.values_mut() {
                changed |= mask(v);
            }
            changed
        }
        Some(v) => mask(v),
    }
}

/// Replaces `m[outer][inner]` by the marker, if present.
fn mask_field(m: &mut Map<String, Value>, outer: &str, inner: &str) -> bool {
    match m.get_mut(outer).and_then(|o| o.get_mut(inner)) {
        None | Some(Value::Null) => false,
        Some(v) => mask(v),
    }
}

fn mask(v: &mut Value) -> bool {
    if v.as_str() == Some(REDACTED) {
        return false;
    }
    *v = Value::String(REDACTED.to_owned());
    true
}

/// JSON patch (RFC 6902) on a secret: masks the values written under `/data` and `/stringData`.
fn redact_json_patch(ops: &mut [Value]) -> bool {
    let mut changed = false;
    for op in ops {
        let Value::Object(op) = op else { continue };
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        if path.starts_with("/data") || path.starts_with("/stringData") {
            if let Some(v) = op.get_mut("value") {
                changed |= match v {
                    Value::Object(d) => d.values_mut().fold(false, |c, v| mask(v) | c),
                    Value::Null => false,
                    v => mask(v),
                };
            }
        } else if path.is_empty() || path == "/" {
            if let Some(v) = op.get_mut("value") {
                changed |= redact_body(v, Ctx::new(Some("secrets"), None));
            }
        } else if path.starts_with("/metadata/annotations") {
            if let Some(v) = op.get_mut("value") {
                changed |= match v {
                    Value::String(_) => mask(v),
                    Value::Object(a) => a.get_mut(LAST_APPLIED).is_some_and(mask),
                    _ => false,
                };
            }
        }
    }
    changed
}

/// Redacts the `last-applied-configuration` annotation of an object.
fn redact_last_applied(m: &mut Map<String, Value>, ctx: Ctx) -> bool {
    let Some(v) = m
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(|a| a.get_mut(LAST_APPLIED))
    else {
        return false;
    };
    let Value::String(s) = v else {
        return match v {
            Value::Null => false,
            v => mask(v),
        };
    };
    if s == REDACTED {
        return false;
    }
    // Most applied objects hold nothing to redact: check that cheaply (validate without building
    // a tree) before parsing, redacting and re-serializing.
    if !might_hold_secret(s) {
        if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() {
            return false;
        }
        return mask(v);
    }
    match serde_json::from_str::<Value>(s) {
        Ok(mut inner) => {
            if redact_body(&mut inner, ctx) {
                *s = inner.to_string();
                true
            } else {
                false
            }
        }
        Err(_) => mask(v),
    }
}

/// False only when no rule could apply to the JSON text `s`: it names no `data`, `Data`,
/// `token`, `last-applied` and has no `\u` escape that could spell them.
fn might_hold_secret(s: &str) -> bool {
    let b = s.as_bytes();
    ["data", "Data", "token", "last-applied", "\\u"]
        .iter()
        .any(|n| memchr::memmem::find(b, n.as_bytes()).is_some())
}

/// Keys whose values the lexical pass masks.
fn is_sensitive_key(k: &[u8]) -> bool {
    matches!(
        k,
        b"data" | b"stringData" | b"token" | b"kubectl.kubernetes.io/last-applied-configuration"
    )
}

/// Best-effort redaction of text that may not be valid JSON (see the module doc for the rules
/// and their limits). Never panics; the output keeps everything but the masked strings.
pub fn redact_lexical(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0; // `s[..copied]` is already in `out`
    let mut i = 0;
    let mut depth = 0usize;
    // The last key seen whose value has not started yet, if it is sensitive.
    let mut pending_sensitive = false;
    // The last key seen whose value has not started yet is `path` / `value`.
    let mut pending_path = false;
    let mut pending_value = false;
    // Inside a container that follows a sensitive key: the depth outside it.
    let mut masking: Option<usize> = None;
    // Depth of an object in which `"path":"/data…"` was seen (a JSON-patch op on secret data).
    let mut patch_op: Option<usize> = None;

    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = crate::scan::string_end(b, i);
                let stop = end.unwrap_or(b.len());
                let after = crate::scan::skip_ws(b, stop);
                if end.is_some() && b.get(after) == Some(&b':') {
                    let key = &b[i + 1..stop - 1];
                    pending_sensitive = is_sensitive_key(key);
                    pending_path = key == b"path";
                    pending_value = key == b"value";
                } else {
                    let content = &b[(i + 1).min(stop)..stop];
                    let mask_it = pending_sensitive
                        || masking.is_some()
                        || (pending_value && patch_op == Some(depth));
                    if pending_path
                        && (content.starts_with(b"/data") || content.starts_with(b"/stringData"))
                    {
                        patch_op = Some(depth);
                    }
                    if mask_it {
                        out.push_str(&s[copied..i]);
                        out.push('"');
                        out.push_str(REDACTED);
                        out.push('"');
                        copied = stop;
                    }
                    pending_sensitive = false;
                    pending_path = false;
                    pending_value = false;
                }
                i = stop;
                continue;
            }
            b'{' | b'[' => {
                if masking.is_none()
                    && (pending_sensitive || (pending_value && patch_op == Some(depth)))
                {
                    masking = Some(depth);
                }
                pending_sensitive = false;
                pending_path = false;
                pending_value = false;
                depth += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if masking == Some(depth) {
                    masking = None;
                }
                if patch_op.is_some_and(|d| d > depth) {
                    patch_op = None;
                }
                pending_sensitive = false;
                pending_path = false;
                pending_value = false;
            }
            b':' | b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                pending_sensitive = false;
                pending_path = false;
                pending_value = false;
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> AuditEvent {
        serde_json::from_value(v).unwrap()
    }

    fn assert_clean(v: &impl serde::Serialize, secrets: &[&str]) {
        let s = serde_json::to_string(v).unwrap();
        for secret in secrets {
            assert!(!s.contains(secret), "{secret} leaked in {s}");
        }
    }

    #[test]
    fn secret_data_and_string_data_are_masked_keys_stay() {
        let mut e = event(json!({
            "auditID": "a", "stage": "ResponseComplete", "verb": "create",
            "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db"},
            "requestObject": {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "db"},
                "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "s3cr3t-user"}},
            "responseObject": {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "db"},
                "data": {"password": "aHVudGVyMg==", "user": "czNjcjN0LXVzZXI="}, "type": "Opaque"}
        }));
        redact_event(&mut e);
        let req = e.request_object.as_ref().unwrap();
        assert_eq!(req["data"]["password"], REDACTED);
        assert_eq!(req["stringData"]["user"], REDACTED);
        assert_eq!(e.response_object.as_ref().unwrap()["type"], "Opaque");
        assert_clean(&e, &["aHVudGVyMg==", "s3cr3t-user", "czNjcjN0LXVzZXI="]);
    }

    #[test]
    fn secret_list_and_table_rows_are_masked() {
        let mut e = event(json!({
            "auditID": "a", "stage": "ResponseComplete", "verb": "list",
            "objectRef": {"resource": "secrets", "namespace": "shop"},
            "responseObject": {"kind": "SecretList", "apiVersion": "v1", "items": [
                {"metadata": {"name": "a"}, "data": {"k": "c2VjcmV0LWE="}},
                {"metadata": {"name": "b"}, "stringData": {"k": "secret-b"}}]}
        }));
        redact_event(&mut e);
        assert_clean(&e, &["c2VjcmV0LWE=", "secret-b"]);

        // Without objectRef context, the kind alone is enough.
        let mut v = json!({"kind": "SecretList", "items": [{"data": {"k": "c2VjcmV0LWM="}}]});
        redact_value(&mut v);
        assert_clean(&v, &["c2VjcmV0LWM="]);

        let mut v = json!({"kind": "Table", "rows": [{"cells": ["a"], "object":
            {"kind": "Secret", "data": {"k": "dGFibGUtc2VjcmV0"}}}]});
        redact_value(&mut v);
        assert_clean(&v, &["dGFibGUtc2VjcmV0"]);
        assert_eq!(v["rows"][0]["cells"][0], "a");
    }

    #[test]
    fn last_applied_configuration_is_redacted_inside() {
        let applied = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"},
            "data": {"password": "bGFzdC1hcHBsaWVk"}})
        .to_string();
        let mut e = event(json!({
            "auditID": "a", "stage": "ResponseComplete", "verb": "patch",
            "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db"},
            "responseObject": {"kind": "Secret", "metadata": {"name": "db", "annotations":
                {LAST_APPLIED: applied, "team": "shop"}}, "data": {"password": "bGFzdC1hcHBsaWVk"}}
        }));
        redact_event(&mut e);
        assert_clean(&e, &["bGFzdC1hcHBsaWVk"]);
        let ann = &e.response_object.as_ref().unwrap()["metadata"]["annotations"];
        let inner: Value = serde_json::from_str(ann[LAST_APPLIED].as_str().unwrap()).unwrap();
        assert_eq!(inner["data"]["password"], REDACTED);
        assert_eq!(inner["metadata"]["name"], "db");

        // A ConfigMap's last-applied is left alone, byte for byte.
        let cm = r#"{"kind":"ConfigMap","data":{"a":"b"}}"#;
        let mut v = json!({"kind": "ConfigMap", "metadata": {"annotations": {LAST_APPLIED: cm}}});
        redact_value(&mut v);
        assert_eq!(v["metadata"]["annotations"][LAST_APPLIED], cm);

        // Unparseable: replaced whole.
        let mut v = json!({"kind": "Deployment", "metadata": {"annotations":
            {LAST_APPLIED: "{\"kind\":\"Secret\",\"data\":{\"k\":\"dHJ1bmM"}}});
        redact_value(&mut v);
        assert_eq!(v["metadata"]["annotations"][LAST_APPLIED], REDACTED);
    }

    #[test]
    fn token_request_and_token_review_tokens_are_masked() {
        let mut e = event(json!({
            "auditID": "a", "stage": "ResponseComplete", "verb": "create",
            "objectRef": {"resource": "serviceaccounts", "namespace": "ci", "name": "builder",
                "subresource": "token", "apiVersion": "v1"},
            "requestObject": {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600}},
            "responseObject": {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "spec": {"audiences": ["https://kubernetes.default.svc"]},
                "status": {"token": "eyJhbGciOiJSUzI1NiJ9.tokenrequest", "expirationTimestamp": "2026-11-20T10:00:01Z"}}
        }));
        redact_event(&mut e);
        assert_clean(&e, &["eyJhbGciOiJSUzI1NiJ9.tokenrequest"]);
        assert_eq!(
            e.response_object.as_ref().unwrap()["status"]["expirationTimestamp"],
            "2026-11-20T10:00:01Z"
        );

        let mut e = event(json!({
            "auditID": "b", "stage": "ResponseComplete", "verb": "create",
            "objectRef": {"resource": "tokenreviews", "apiGroup": "authentication.k8s.io", "apiVersion": "v1"},
            "requestObject": {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "spec": {"token": "eyJhbGciOiJSUzI1NiJ9.tokenreview"}},
            "responseObject": {"kind": "TokenReview", "spec": {"token": "eyJhbGciOiJSUzI1NiJ9.tokenreview"},
                "status": {"authenticated": true, "user": {"username": "system:serviceaccount:ci:builder"}}}
        }));
        redact_event(&mut e);
        assert_clean(&e, &["eyJhbGciOiJSUzI1NiJ9.tokenreview"]);
    }

    #[test]
    fn patches_to_secrets_are_masked() {
        let mut e = event(json!({
            "auditID": "a", "stage": "ResponseComplete", "verb": "patch",
            "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db"},
            "requestObject": {"data": {"password": "bWVyZ2UtcGF0Y2g="}, "metadata": {"labels": {"a": "b"}}}
        }));
        redact_event(&mut e);
        assert_clean(&e, &["bWVyZ2UtcGF0Y2g="]);

        let mut e = event(json!({
            "auditID": "a", "stage": "ResponseComplete", "verb": "patch",
            "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db"},
            "requestObject": [
                {"op": "add", "path": "/data/password", "value": "anNvbi1wYXRjaA=="},
                {"op": "replace", "path": "/stringData", "value": {"k": "json-patch-plain"}},
                {"op": "replace", "path": "/metadata/labels/team", "value": "shop"}]
        }));
        redact_event(&mut e);
        assert_clean(&e, &["anNvbi1wYXRjaA==", "json-patch-plain"]);
        assert_eq!(e.request_object.as_ref().unwrap()[2]["value"], "shop");

        let mut e = event(json!({
            "auditID": "a", "stage": "ResponseComplete", "verb": "patch",
            "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db"},
            "requestObject": "stringData:\n  password: yaml-apply-patch\n"
        }));
        redact_event(&mut e);
        assert_clean(&e, &["yaml-apply-patch"]);
    }

    #[test]
    fn non_secrets_are_untouched_and_redaction_is_idempotent() {
        let v0 = json!({"auditID": "a", "objectRef": {"resource": "configmaps"},
            "requestObject": {"kind": "ConfigMap", "data": {"k": "visible"}}});
        let mut v = v0.clone();
        redact_value(&mut v);
        assert_eq!(v, v0);

        let mut v = json!({"kind": "Secret", "data": {"k": "x"}, "metadata": {"annotations":
            {LAST_APPLIED: "{\"kind\":\"Secret\",\"data\":{\"k\":\"x\"}}"}}});
        redact_value(&mut v);
        let once = v.clone();
        redact_value(&mut v);
        assert_eq!(v, once);
    }

    #[test]
    fn lexical_masks_truncated_secret_bodies() {
        let cut = r#"{"auditID":"a","objectRef":{"resource":"secrets"},"requestObject":{"kind":"Secret","data":{"password":"aHVudGVyMg==","api-key":"c2VjcmV0LWtle"#;
        let r = redact_lexical(cut);
        assert!(!r.contains("aHVudGVyMg=="), "{r}");
        assert!(!r.contains("c2VjcmV0LWtle"), "{r}");
        assert!(r.contains(r#""password":"<redacted>""#), "{r}");
        assert!(r.contains(r#""auditID":"a""#), "{r}");

        let s = r#"{"status":{"token":"eyJ.tok"},"spec":{"x":"y"},"stringData":{"a":{"b":"deep"}}, "after": "kept""#;
        let r = redact_lexical(s);
        assert!(!r.contains("eyJ.tok") && !r.contains("deep"), "{r}");
        assert!(r.contains(r#""after": "kept""#), "{r}");

        let s = r#"[{"op":"add","path":"/data/k","value":"cGF0Y2g="},{"op":"add","path":"/x","value":"visible"#;
        let r = redact_lexical(s);
        assert!(!r.contains("cGF0Y2g=") && r.contains("visible"), "{r}");

        let s = r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"k\":\"bGFzdA=="#;
        assert!(!redact_lexical(s).contains("bGFzdA=="));
    }
}
