//! Secret redaction: Secret values and tokens in audit bodies never reach an answer, a WAL
//! segment, a Parquet file, the state database or the log, while their keys stay.

use std::path::Path;

use serde_json::{json, Value};

use crate::crash::parquet_files;
use crate::events::{audit_event, base64, event_list, ALICE};
use crate::harness::TestServer;

/// Secret values unique to this run, and their base64 form as Secret `data` holds them.
struct Secrets {
    /// Plain values (`stringData`, last-applied configuration, tokens).
    plain: Vec<String>,
}

impl Secrets {
    fn new() -> Secrets {
        let seed = format!(
            "{}{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let plain = ["get", "create", "list", "token", "cut"]
            .iter()
            .map(|what| format!("hunter2-{what}-{seed}"))
            .collect();
        Secrets { plain }
    }

    fn get(&self, i: usize) -> &str {
        &self.plain[i]
    }

    /// Everything that must not be found: each value and its base64.
    fn needles(&self) -> Vec<String> {
        self.plain
            .iter()
            .flat_map(|p| [p.clone(), base64(p.as_bytes())])
            .collect()
    }

    /// Panics if `haystack` (from `place`) holds any secret value.
    fn assert_absent(&self, place: &str, haystack: &[u8]) {
        for n in self.needles() {
            assert!(
                !haystack.windows(n.len()).any(|w| w == n.as_bytes()),
                "secret value {n:?} found in {place}"
            );
        }
    }
}

fn secret_object(name: &str, value: &str) -> Value {
    json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "shop", "uid": "5b7c1d0e-3f3a-4e55-8c2a-0b1e9f7d6a21", "resourceVersion": "81234"},
        "type": "Opaque",
        "data": {"password": base64(value.as_bytes()), "username": base64(b"shop")},
    })
}

/// The events: a `get` of a Secret applied with kubectl (its value also inside the
/// last-applied-configuration annotation), a `create` with `stringData`, a `list`, and a
/// TokenRequest whose response carries a service account token.
fn secret_events(s: &Secrets) -> Vec<Value> {
    let mut get = audit_event(
        "redact-get",
        "ResponseComplete",
        "get",
        ALICE,
        "secrets",
        "shop",
        "db-credentials",
    );
    get["level"] = json!("RequestResponse");
    let mut secret = secret_object("db-credentials", s.get(0));
    let last_applied = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"annotations": {}, "name": "db-credentials", "namespace": "shop"},
        "stringData": {"password": s.get(0)},
        "type": "Opaque",
    });
    secret["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n"),
    });
    get["responseObject"] = secret;

    let mut create = audit_event(
        "redact-create",
        "ResponseComplete",
        "create",
        ALICE,
        "secrets",
        "shop",
        "api-key",
    );
    create["level"] = json!("RequestResponse");
    create["requestObject"] = json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": "api-key", "namespace": "shop"},
        "stringData": {"password": s.get(1)},
        "type": "Opaque",
    });
    create["responseObject"] = secret_object("api-key", s.get(1));

    let mut list = audit_event(
        "redact-list",
        "ResponseComplete",
        "list",
        ALICE,
        "secrets",
        "shop",
        "",
    );
    list["level"] = json!("RequestResponse");
    list["responseObject"] = json!({
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "81240"},
        "items": [secret_object("smtp", s.get(2))],
    });

    let mut token = audit_event(
        "redact-token",
        "ResponseComplete",
        "create",
        "system:serviceaccount:shop:deployer",
        "serviceaccounts",
        "shop",
        "payments",
    );
    token["requestURI"] = json!("/api/v1/namespaces/shop/serviceaccounts/payments/token");
    token["objectRef"]["subresource"] = json!("token");
    token["level"] = json!("RequestResponse");
    let spec = json!({"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600});
    token["requestObject"] = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {"token": "", "expirationTimestamp": null},
    });
    token["responseObject"] = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": "payments", "namespace": "shop"},
        "spec": spec,
        "status": {"token": format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", s.get(3)), "expirationTimestamp": "2026-11-20T10:00:01Z"},
    });
    vec![get, create, list, token]
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// Decodes every cell of a Parquet file (they are zstd-compressed, so raw bytes prove little).
fn parquet_text(path: &Path) -> String {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut text = String::new();
    for batch in reader {
        let batch = batch.unwrap();
        for col in batch.columns() {
            let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).unwrap();
            for i in 0..batch.num_rows() {
                text.push_str(&fmt.value(i).to_string());
                text.push('\n');
            }
        }
    }
    text
}

/// No secret in any answer of SQL over both tables, in any file of the data directory, or in
/// the server's log; returns `SELECT * FROM audit` as text.
async fn assert_no_secret_anywhere(server: &TestServer, s: &Secrets) -> String {
    let api = server.api();
    let audit = api.query(&server.admin, "SELECT * FROM audit").await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    s.assert_absent("SELECT * FROM audit", audit.text.as_bytes());
    let dead = api.query(&server.admin, "SELECT * FROM dead_letter").await;
    assert_eq!(dead.status, 200, "{}", dead.text);
    s.assert_absent("SELECT * FROM dead_letter", dead.text.as_bytes());
    for (path, bytes) in files_under(&server.data_dir) {
        s.assert_absent(&path, &bytes);
    }
    s.assert_absent("the server log", server.log_text().as_bytes());
    audit.text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_reach_no_answer_and_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = TestServer::start(&data).await;
    let s = Secrets::new();
    let api = server.api();

    let r = api
        .post_audit(Some(&server.admin), event_list(&secret_events(&s)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.num("accepted"), r.num("dead_letters")), (4, 0));

    // A body cut inside a Secret: nothing can be parsed, the dead letter is redacted lexically.
    let cut = format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"redact-cut","stage":"ResponseComplete","verb":"create","requestObject":{{"kind":"Secret","apiVersion":"v1","metadata":{{"name":"cut"}},"data":{{"password":"{}"}},"stringData":{{"password":"{}"}}"#,
        base64(s.get(4).as_bytes()),
        s.get(4)
    );
    let r = api.post_audit(Some(&server.admin), cut).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let dead = server
        .query("SELECT kind, payload FROM dead_letter WHERE payload LIKE '%redact-cut%'")
        .await;
    assert_eq!(dead.len(), 1, "the cut body is not dead-lettered: {dead:?}");
    assert_eq!(dead[0][0], "invalid_json");
    assert!(dead[0][1].as_str().unwrap().contains("\"password\""));

    let audit = assert_no_secret_anywhere(&server, &s).await;
    // The keys are still there, the values replaced.
    let rows = server
        .query("SELECT audit_id, request_object, response_object FROM audit ORDER BY audit_id")
        .await;
    let object = |row: usize, col: usize| -> Value {
        serde_json::from_str(rows[row][col].as_str().expect("object stored")).unwrap()
    };
    assert_eq!(rows[0][0], "redact-create");
    assert_eq!(object(0, 1)["stringData"]["password"], "<redacted>");
    assert_eq!(object(0, 2)["data"]["password"], "<redacted>");
    assert_eq!(rows[1][0], "redact-get");
    let got = object(1, 2);
    assert_eq!(got["data"]["password"], "<redacted>");
    assert_eq!(got["data"]["username"], "<redacted>");
    assert_eq!(got["metadata"]["name"], "db-credentials");
    let last_applied = got["metadata"]["annotations"]
        ["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("last-applied-configuration kept");
    assert!(
        last_applied.contains("stringData") && last_applied.contains("<redacted>"),
        "{last_applied}"
    );
    assert_eq!(rows[2][0], "redact-list");
    assert_eq!(object(2, 2)["items"][0]["data"]["password"], "<redacted>");
    assert_eq!(rows[3][0], "redact-token");
    assert_eq!(object(3, 2)["status"]["token"], "<redacted>");
    assert!(audit.contains("db-credentials"));

    // After a graceful stop the rows are in Parquet: decode every cell of every file.
    let exit = server.terminate().await;
    assert!(exit.success(), "{exit}");
    let mut parquet = 0;
    for table in ["audit", "dead_letter"] {
        for file in parquet_files(&data.join(table)) {
            let text = parquet_text(&file);
            if table == "audit" {
                // The decoding works: the redacted objects are there, in clear.
                assert!(
                    text.contains("db-credentials") && text.contains("<redacted>"),
                    "{text}"
                );
            }
            s.assert_absent(&file.display().to_string(), text.as_bytes());
            parquet += 1;
        }
    }
    assert!(parquet >= 2, "expected parquet files for both tables");
    for (path, bytes) in files_under(&data) {
        s.assert_absent(&path, &bytes);
    }

    server.restart().await;
    let audit = assert_no_secret_anywhere(&server, &s).await;
    assert!(audit.contains("<redacted>") && audit.contains("redact-token"));
}
