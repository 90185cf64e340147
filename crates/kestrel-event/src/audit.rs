//! Kubernetes audit events (`audit.k8s.io/v1` `Event`) and the flat `audit` table row.
//!
//! [`AuditEvent`] mirrors the API server's schema field by field, so nothing a cluster sends is
//! lost; it also reads `audit.k8s.io/v1beta1` events and events without `apiVersion`, as older
//! clusters and captures emit them. [`AuditRecord`] is the typed row stored in the `audit` table.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{now_nanos, to_nanos};

/// `apiVersion` of current audit events.
pub const AUDIT_API_VERSION_V1: &str = "audit.k8s.io/v1";
/// `apiVersion` of audit events from Kubernetes before 1.12 and of some captures.
pub const AUDIT_API_VERSION_V1BETA1: &str = "audit.k8s.io/v1beta1";

/// One audit event, as in `k8s.io/apiserver/pkg/apis/audit/v1.Event`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `Event` (absent in some captures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `audit.k8s.io/v1`, `audit.k8s.io/v1beta1`, or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `None`, `Metadata`, `Request` or `RequestResponse`.
    #[serde(default)]
    pub level: String,
    /// Unique per request; shared by the stages of one request.
    #[serde(rename = "auditID", default)]
    pub audit_id: String,
    /// `RequestReceived`, `ResponseStarted`, `ResponseComplete` or `Panic`.
    #[serde(default)]
    pub stage: String,
    /// The request URI as sent by the client.
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...) or the
    /// lowercased HTTP method for non-resource requests.
    #[serde(default)]
    pub verb: String,
    /// The authenticated user.
    #[serde(default)]
    pub user: UserInfo,
    /// The user being impersonated, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    /// Source IPs, client first, then the proxies it went through.
    #[serde(rename = "sourceIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// The client's `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The object the request is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    /// The response status; for successful non-`Status` responses only `code` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// The request body, at level `Request` and above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    /// The response body, at level `RequestResponse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// When the request reached the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_received_timestamp: Option<DateTime<Utc>>,
    /// When the request reached this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_timestamp: Option<DateTime<Utc>>,
    /// Annotations set by admission and authorization (`authorization.k8s.io/decision`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// v1beta1 only: the event's own timestamp (v1 uses `stageTimestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `authentication.k8s.io/v1.UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's name, e.g. `system:serviceaccount:kube-system:replicaset-controller`.
    #[serde(default)]
    pub username: String,
    /// A unique value that identifies the user across time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The groups the user belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes from the authenticator.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// `audit.k8s.io/v1.ObjectReference`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

/// The parts of `meta/v1.Status` that audit events carry in `responseStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl AuditEvent {
    /// The event's time: `stageTimestamp`, else v1beta1 `timestamp`, else
    /// `requestReceivedTimestamp`.
    pub fn event_time(&self) -> Option<DateTime<Utc>> {
        self.stage_timestamp
            .or(self.timestamp)
            .or(self.request_received_timestamp)
    }

    /// The response code, if any.
    pub fn response_code(&self) -> Option<i32> {
        self.response_status.as_ref().and_then(|s| s.code)
    }

    /// `objectRef.<field>` helper that tolerates a missing `objectRef`.
    pub fn object_ref_field(
        &self,
        f: impl Fn(&ObjectReference) -> Option<&String>,
    ) -> Option<&str> {
        self.object_ref.as_ref().and_then(f).map(String::as_str)
    }
}

/// One row of the `audit` table: the event flattened into typed columns, with the free-form parts
/// (request and response bodies, annotations, user extra) kept as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Event time (`stageTimestamp`), UTC nanoseconds.
    pub time: i64,
    /// When the API server received the request, UTC nanoseconds.
    pub request_received_time: Option<i64>,
    /// Cluster name, from the server's configuration or the sending agent.
    pub cluster: Option<String>,
    pub audit_id: String,
    pub stage: String,
    pub level: String,
    pub api_version: Option<String>,
    pub verb: String,
    pub request_uri: String,
    pub user_name: String,
    pub user_uid: Option<String>,
    pub user_groups: Vec<String>,
    /// `user.extra` as a JSON object.
    pub user_extra: Option<String>,
    pub impersonated_user_name: Option<String>,
    pub impersonated_user_groups: Vec<String>,
    /// The first of `sourceIPs`: the client.
    pub source_ip: Option<String>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub object_uid: Option<String>,
    pub api_group: Option<String>,
    pub object_api_version: Option<String>,
    pub resource_version: Option<String>,
    pub response_code: Option<i32>,
    pub response_status: Option<String>,
    pub response_reason: Option<String>,
    pub response_message: Option<String>,
    /// `authorization.k8s.io/decision` annotation (`allow`/`forbid`).
    pub authorization_decision: Option<String>,
    /// `authorization.k8s.io/reason` annotation.
    pub authorization_reason: Option<String>,
    /// Annotations as a JSON object.
    pub annotations: Option<String>,
    /// Request body as JSON, secrets redacted.
    pub request_object: Option<String>,
    /// Response body as JSON, secrets redacted.
    pub response_object: Option<String>,
}

fn json_text<T: Serialize>(v: &T) -> Option<String> {
    serde_json::to_string(v).ok()
}

impl AuditRecord {
    /// Flattens an (already redacted) event into a row. Events without any timestamp get the
    /// current time, so they stay findable.
    pub fn from_event(e: &AuditEvent, cluster: Option<&str>) -> Self {
        let obj = e.object_ref.as_ref();
        let status = e.response_status.as_ref();
        AuditRecord {
            time: e.event_time().map(to_nanos).unwrap_or_else(now_nanos),
            request_received_time: e.request_received_timestamp.map(to_nanos),
            cluster: cluster.map(str::to_owned),
            audit_id: e.audit_id.clone(),
            stage: e.stage.clone(),
            level: e.level.clone(),
            api_version: e.api_version.clone(),
            verb: e.verb.clone(),
            request_uri: e.request_uri.clone(),
            user_name: e.user.username.clone(),
            user_uid: e.user.uid.clone(),
            user_groups: e.user.groups.clone(),
            user_extra: (!e.user.extra.is_empty())
                .then(|| json_text(&e.user.extra))
                .flatten(),
            impersonated_user_name: e.impersonated_user.as_ref().map(|u| u.username.clone()),
            impersonated_user_groups: e
                .impersonated_user
                .as_ref()
                .map(|u| u.groups.clone())
                .unwrap_or_default(),
            source_ip: e.source_ips.first().cloned(),
            source_ips: e.source_ips.clone(),
            user_agent: e.user_agent.clone(),
            resource: obj.and_then(|o| o.resource.clone()),
            subresource: obj.and_then(|o| o.subresource.clone()),
            namespace: obj.and_then(|o| o.namespace.clone()),
            name: obj.and_then(|o| o.name.clone()),
            object_uid: obj.and_then(|o| o.uid.clone()),
            api_group: obj.and_then(|o| o.api_group.clone()),
            object_api_version: obj.and_then(|o| o.api_version.clone()),
            resource_version: obj.and_then(|o| o.resource_version.clone()),
            response_code: status.and_then(|s| s.code),
            response_status: status.and_then(|s| s.status.clone()),
            response_reason: status.and_then(|s| s.reason.clone()),
            response_message: status.and_then(|s| s.message.clone()),
            authorization_decision: e.annotations.get("authorization.k8s.io/decision").cloned(),
            authorization_reason: e.annotations.get("authorization.k8s.io/reason").cloned(),
            annotations: (!e.annotations.is_empty())
                .then(|| json_text(&e.annotations))
                .flatten(),
            request_object: e.request_object.as_ref().and_then(json_text),
            response_object: e.response_object.as_ref().and_then(json_text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"6b0c6f4c-1a2b-4c3d-9e8f-0a1b2c3d4e5f","stage":"ResponseStarted","requestURI":"/api/v1/namespaces/shop/pods/web-0/exec?command=sh&container=web&stdin=true&tty=true","verb":"create","user":{"username":"alice@example.com","groups":["devs","system:authenticated"],"extra":{"scopes":["openid"]}},"sourceIPs":["203.0.113.9","10.0.0.1"],"userAgent":"kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc","objectRef":{"resource":"pods","namespace":"shop","name":"web-0","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"code":101},"requestReceivedTimestamp":"2026-11-20T09:00:01.123456Z","stageTimestamp":"2026-11-20T09:00:01.223456Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"devs\""}}"#;

    #[test]
    fn v1_event_reads_every_field_and_flattens() {
        let e: AuditEvent = serde_json::from_str(EXEC).unwrap();
        assert_eq!(e.user.extra["scopes"], vec!["openid".to_string()]);
        let r = AuditRecord::from_event(&e, Some("prod"));
        assert_eq!(r.verb, "create");
        assert_eq!(r.subresource.as_deref(), Some("exec"));
        assert_eq!(r.response_code, Some(101));
        assert_eq!(r.source_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(r.authorization_decision.as_deref(), Some("allow"));
        assert_eq!(r.time, 1_795_165_201_223_456_000);
        assert_eq!(r.cluster.as_deref(), Some("prod"));
    }

    #[test]
    fn v1beta1_and_versionless_events_are_accepted() {
        let beta = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","metadata":{"creationTimestamp":"2018-10-19T16:05:19Z"},"level":"Request","timestamp":"2018-10-19T16:05:19Z","auditID":"a","stage":"ResponseComplete","requestURI":"/api","verb":"get","user":{"username":"u"},"sourceIPs":["1.2.3.4"]}"#;
        let e: AuditEvent = serde_json::from_str(beta).unwrap();
        assert_eq!(
            e.event_time().unwrap().to_rfc3339(),
            "2018-10-19T16:05:19+00:00"
        );
        let bare = r#"{"level":"Metadata","auditID":"b","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","user":{"username":"system:anonymous"}}"#;
        let e: AuditEvent = serde_json::from_str(bare).unwrap();
        assert!(e.api_version.is_none());
    }

    #[test]
    fn round_trips_through_json() {
        let e: AuditEvent = serde_json::from_str(EXEC).unwrap();
        let again: AuditEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(e, again);
    }
}
