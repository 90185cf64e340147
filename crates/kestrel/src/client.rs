//! Talking to a running server: where it is, which token to use, and the commands that use it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::cli::{
    AlertsAction, AlertsArgs, ConnectArgs, Format, QueryArgs, QueryFormat, SilenceAction,
};
use crate::output::print_rows;

/// A server and a token.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

fn read_trimmed(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

impl Client {
    /// Finds the server and token: flags, then `KESTREL_SERVER`/`KESTREL_TOKEN`, then the files
    /// a local `kestrel up` writes into its data directory.
    pub fn discover(args: &ConnectArgs) -> Result<Client> {
        let base = match (&args.server, std::env::var("KESTREL_SERVER").ok()) {
            (Some(s), _) => s.clone(),
            (None, Some(s)) if !s.is_empty() => s,
            _ => {
                let file = args.data_dir.join("server.url");
                if !file.exists() {
                    bail!(
                        "no server given: use --server URL, set KESTREL_SERVER, or run beside a `kestrel up` ({} not found)",
                        file.display()
                    );
                }
                read_trimmed(&file)?
            }
        };
        let token = match (&args.token_file, std::env::var("KESTREL_TOKEN").ok()) {
            (Some(f), _) => read_trimmed(f)?,
            (None, Some(t)) if !t.is_empty() => t,
            _ => {
                let file = args.data_dir.join("admin.token");
                if !file.exists() {
                    bail!(
                        "no token given: use --token-file FILE, set KESTREL_TOKEN, or run beside a `kestrel up` ({} not found)",
                        file.display()
                    );
                }
                read_trimmed(&file)?
            }
        };
        let mut http = reqwest::Client::builder();
        if let Some(ca) = &args.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} holds no PEM certificate", ca.display()))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: http.build().context("building the http client")?,
        })
    }

    /// `POST /v1/query` asking for an Arrow IPC stream: its bytes, and whether it was cut.
    async fn query_arrow(&self, body: &Value) -> Result<(Vec<u8>, bool)> {
        let resp = self
            .http
            .post(format!("{}/v1/query", self.base))
            .bearer_auth(&self.token)
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.apache.arrow.stream",
            )
            .json(body)
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the server at {}: {e}", self.base))?;
        let status = resp.status();
        let truncated = resp
            .headers()
            .get("kestrel-truncated")
            .is_some_and(|v| v == "true");
        let bytes = resp.bytes().await.context("reading the server's answer")?;
        if !status.is_success() {
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let msg = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok((bytes.to_vec(), truncated))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the server at {}: {e}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the server's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok(value)
    }
}

pub async fn query(args: QueryArgs) -> Result<()> {
    let client = Client::discover(&args.connect)?;
    let body = json!({ "sql": args.sql, "since": args.since, "until": args.until });
    let format = match args.format {
        QueryFormat::Table => Format::Table,
        QueryFormat::Json => Format::Json,
        QueryFormat::Csv => Format::Csv,
        QueryFormat::Arrow => {
            let (stream, truncated) = client.query_arrow(&body).await?;
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(&stream)
                .context("writing to stdout")?;
            if truncated {
                eprintln!("note: the result was cut at the server's row limit; add a LIMIT or narrow the query");
            }
            return Ok(());
        }
    };
    let result = client
        .call(reqwest::Method::POST, "/v1/query", Some(body))
        .await?;
    let columns: Vec<String> = serde_json::from_value(result["columns"].clone())?;
    let rows: Vec<Vec<Value>> = serde_json::from_value(result["rows"].clone())?;
    print_rows(&mut std::io::stdout().lock(), &columns, &rows, format)?;
    if result["truncated"].as_bool() == Some(true) {
        eprintln!(
            "note: the result was cut at {} rows; add a LIMIT or narrow the query",
            rows.len()
        );
    }
    Ok(())
}

/// Prints the named fields of a JSON array of objects.
fn print_objects(items: &Value, fields: &[&str], format: Format) -> Result<()> {
    let columns: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    let rows: Vec<Vec<Value>> = items
        .as_array()
        .map(|a| {
            a.iter()
                .map(|item| fields.iter().map(|c| item[*c].clone()).collect())
                .collect()
        })
        .unwrap_or_default();
    print_rows(&mut std::io::stdout().lock(), &columns, &rows, format)
}

async fn silence(client: &Client, action: SilenceAction) -> Result<()> {
    match action {
        SilenceAction::Add {
            matchers,
            duration,
            comment,
        } => {
            let v = client
                .call(
                    reqwest::Method::POST,
                    "/v1/silences",
                    Some(json!({"matchers": matchers, "duration": duration, "comment": comment})),
                )
                .await?;
            let s = &v["silence"];
            println!(
                "silence {} until {}",
                s["id"].as_str().unwrap_or(""),
                s["ends_at"].as_str().unwrap_or("")
            );
        }
        SilenceAction::List { format } => {
            let v = client
                .call(reqwest::Method::GET, "/v1/silences", None)
                .await?;
            print_objects(
                &v["silences"],
                &[
                    "id",
                    "state",
                    "matchers",
                    "starts_at",
                    "ends_at",
                    "created_by",
                    "comment",
                ],
                format,
            )?;
        }
        SilenceAction::Expire { id } => {
            client
                .call(reqwest::Method::DELETE, &format!("/v1/silences/{id}"), None)
                .await?;
            println!("silence {id} expired");
        }
    }
    Ok(())
}

pub async fn alerts(args: AlertsArgs) -> Result<()> {
    let client = Client::discover(&args.connect)?;
    let action = args.action.unwrap_or(AlertsAction::List {
        status: None,
        priority: None,
        limit: 100,
        format: Format::Table,
    });
    match action {
        AlertsAction::List {
            status,
            priority,
            limit,
            format,
        } => {
            let mut path = format!("/v1/alerts?limit={limit}");
            if let Some(s) = status {
                path.push_str(&format!("&status={s}"));
            }
            if let Some(p) = priority {
                path.push_str(&format!("&priority={p}"));
            }
            let v = client.call(reqwest::Method::GET, &path, None).await?;
            let columns: Vec<String> = [
                "id",
                "priority",
                "status",
                "rule",
                "count",
                "last_seen",
                "output",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let rows: Vec<Vec<Value>> = v["alerts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|al| columns.iter().map(|c| al[c].clone()).collect())
                        .collect()
                })
                .unwrap_or_default();
            print_rows(&mut std::io::stdout().lock(), &columns, &rows, format)?;
        }
        AlertsAction::Show { id } => {
            let v = client
                .call(reqwest::Method::GET, &format!("/v1/alerts/{id}"), None)
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        AlertsAction::Deliveries { id, limit, format } => {
            let path = match id {
                Some(id) => format!("/v1/alerts/{id}/deliveries?limit={limit}"),
                None => format!("/v1/deliveries?limit={limit}"),
            };
            let v = client.call(reqwest::Method::GET, &path, None).await?;
            print_objects(
                &v["deliveries"],
                &[
                    "id",
                    "receiver",
                    "channel",
                    "reason",
                    "status",
                    "attempts",
                    "last_error",
                    "updated_at",
                    "alert_ids",
                ],
                format,
            )?;
        }
        AlertsAction::Silence(action) => silence(&client, action).await?,
        AlertsAction::Ack { id } => {
            let v = client
                .call(reqwest::Method::POST, &format!("/v1/alerts/{id}/ack"), None)
                .await?;
            println!(
                "acknowledged {} ({})",
                id,
                v["alert"]["rule"].as_str().unwrap_or("")
            );
        }
        AlertsAction::Resolve { id } => {
            let v = client
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/alerts/{id}/resolve"),
                    None,
                )
                .await?;
            println!(
                "resolved {} ({})",
                id,
                v["alert"]["rule"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
