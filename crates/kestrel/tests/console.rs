//! Browser tests of the web console. Each test starts the real `kestrel up` with the demo
//! scenario and its own data directory, starts chromedriver on a free port with a fresh headless
//! Chromium profile, and works the console through WebDriver (fantoccini) as a user would:
//! signs in with the admin token, reads the demo's alerts, acknowledges one, runs SQL and pages
//! through the results, and opens an entity's timeline. Each test saves screenshots (1280×800)
//! under `$CARGO_TARGET_TMPDIR/console-screenshots/` (or `KESTREL_SCREENSHOTS`).
//!
//! Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`, done
//! by `.ci/run`); `KESTREL_CHROMIUM` and `KESTREL_CHROMEDRIVER` override their paths. When they
//! are missing the tests are skipped with a message, except under CI (`CI` set), where they fail.

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use harness::{wait_for, TestServer};
use serde_json::{json, Value};

/// A chromedriver child process and a browser session through it.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Chromium and chromedriver, or `None` (skip) when they are missing outside CI.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_binary(
        "KESTREL_CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let driver = find_binary("KESTREL_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            let msg = "Chromium or chromedriver is missing (apt-get install -y chromium chromium-driver, \
                       or set KESTREL_CHROMIUM and KESTREL_CHROMEDRIVER)";
            if std::env::var_os("CI").is_some() {
                panic!("{msg}; CI must run the console's browser tests");
            }
            eprintln!("SKIPPED: the console's browser tests: {msg}");
            None
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a fresh profile.
    async fn start(chromium: &Path, driver: &Path, log_dir: &Path) -> Browser {
        let port = free_port();
        let log = std::fs::File::create(log_dir.join("chromedriver.log")).expect("driver log");
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for("chromedriver to be ready", async || {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("chromedriver exited with {status}");
            }
            let v: Value = http
                .get(format!("{url}/status"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let caps = caps.as_object().expect("object").clone();
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session with headless Chromium");
        let browser = Browser {
            client,
            driver: child,
            _profile: profile,
        };
        browser.fit_viewport(1280, 800).await;
        browser
    }

    /// Sizes the window so that the page itself gets `width`×`height` pixels.
    async fn fit_viewport(&self, width: u32, height: u32) {
        let c = &self.client;
        c.set_window_size(width, height).await.expect("resize");
        let inner = c
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .expect("viewport size");
        let dw = width as i64 - inner[0].as_i64().unwrap_or(width as i64);
        let dh = height as i64 - inner[1].as_i64().unwrap_or(height as i64);
        if dw != 0 || dh != 0 {
            c.set_window_size((width as i64 + dw) as u32, (height as i64 + dh) as u32)
                .await
                .expect("resize");
        }
    }

    /// Ends the session (which closes Chromium), then stops chromedriver.
    async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Runs `body` with a demo server and a signed-out browser on the console's page; always ends
/// the browser session, then re-raises the body's panic, if any.
async fn with_console<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Client, Console) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some((chromium, driver)) = browser_binaries() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with_demo(&dir.path().join("data")).await;
    let browser = Browser::start(&chromium, &driver, dir.path()).await;
    let console = Console {
        url: server.url.clone(),
        token: server.admin.clone(),
        screenshots: screenshot_dir(),
        test: name.to_string(),
    };
    browser
        .client
        .goto(&format!("{}/", server.url))
        .await
        .expect("open the console");
    let outcome = AssertUnwindSafe(body(browser.client.clone(), console))
        .catch_unwind()
        .await;
    browser.quit().await;
    let log = server.log_text();
    if let Err(panic) = outcome {
        eprintln!("server log:\n{log}");
        std::panic::resume_unwind(panic);
    }
    assert!(
        !log.contains(&server.admin),
        "the server logged the admin token"
    );
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("KESTREL_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// The server under test, as the browser sees it.
#[derive(Clone)]
struct Console {
    url: String,
    token: String,
    screenshots: PathBuf,
    test: String,
}

impl Console {
    fn api(&self) -> harness::Api {
        harness::Api::new(&self.url)
    }

    async fn screenshot(&self, c: &Client, name: &str) {
        let png = c.screenshot().await.expect("screenshot");
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("{}: screenshot {}", self.test, path.display());
    }

    async fn sign_in(&self, c: &Client) {
        let input = c
            .wait()
            .for_element(Locator::Css("#token"))
            .await
            .expect("the sign-in form");
        input.send_keys(&self.token).await.expect("type the token");
        c.find(Locator::Css("#login-submit"))
            .await
            .expect("sign-in button")
            .click()
            .await
            .expect("sign in");
        c.wait()
            .for_element(Locator::Css("#topbar:not([hidden])"))
            .await
            .expect("signed in");
    }
}

/// Evaluates `expr` in the page until it gives something other than null/false.
async fn wait_js(c: &Client, what: &str, expr: &str) -> Value {
    let script = format!("return ({expr}) || null;");
    wait_for(what, async || {
        let v = c.execute(&script, vec![]).await.ok()?;
        (!v.is_null()).then_some(v)
    })
    .await
}

/// The text of the first element matching a CSS selector, or "".
async fn text_of(c: &Client, css: &str) -> String {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
    c.execute(script, vec![json!(css)])
        .await
        .expect("read text")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn press(c: &Client, keys: &str) {
    let mut actions = KeyActions::new("keyboard".into());
    for k in keys.chars() {
        actions = actions
            .then(KeyAction::Down { value: k })
            .then(KeyAction::Up { value: k });
    }
    c.perform_actions(actions).await.expect("press keys");
}

const RULE: &str = "Kestrel Binding To cluster-admin";

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_see_the_demo_alerts_and_acknowledge_one() {
    with_console("alerts", async |c: Client, console: Console| {
        // A wrong token is refused on the form and nothing else is shown.
        let input = c
            .wait()
            .for_element(Locator::Css("#token"))
            .await
            .expect("sign-in form");
        input.send_keys("not-a-token").await.unwrap();
        c.find(Locator::Css("#login-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let refused = wait_js(
            &c,
            "the refusal",
            "document.querySelector('#login-error .error')?.innerText",
        )
        .await;
        assert!(
            refused.as_str().unwrap().contains("invalid or revoked token"),
            "{refused}"
        );
        input.clear().await.unwrap();
        console.sign_in(&c).await;
        wait_js(&c, "the overview", "document.querySelector('[data-page=overview][data-ready=true]')").await;

        // The token is kept for the tab, and never in the URL or the page.
        let url = c.current_url().await.unwrap();
        assert!(!url.as_str().contains(&console.token));
        let html = c.source().await.unwrap();
        assert!(!html.contains(&console.token));

        // The alerts page lists the demo's alerts.
        c.find(Locator::Css("#nav a[data-page=alerts]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_js(&c, "the alert list", "document.querySelector('#alerts-table tbody tr')").await;
        let listed = text_of(&c, "#alerts-table").await;
        let api_alerts = console
            .api()
            .get("/v1/alerts", Some(&console.token))
            .await
            .json();
        let alerts = api_alerts["alerts"].as_array().unwrap();
        assert!(alerts.len() >= 10, "the demo raises many alerts: {api_alerts}");
        for a in alerts {
            assert!(listed.contains(a["rule"].as_str().unwrap()), "{} missing", a["rule"]);
        }
        let rows = c
            .find_all(Locator::Css("#alerts-table tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), alerts.len());
        console.screenshot(&c, "alerts").await;

        // Acknowledge the cluster-admin binding alert from its row.
        let row = c
            .find(Locator::XPath(&format!(
                "//table[@id='alerts-table']//tr[.//a[text()='{RULE}']]"
            )))
            .await
            .expect("the cluster-admin alert's row");
        row.find(Locator::Css("button.ack"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_js(
            &c,
            "the row to show the alert acknowledged",
            &format!(
                "[...document.querySelectorAll('#alerts-table tbody tr')].find(r => r.innerText.includes('{RULE}') && r.innerText.includes('acknowledged'))"
            ),
        )
        .await;
        let stored = console
            .api()
            .get(
                &format!("/v1/alerts?rule={}", RULE.replace(' ', "%20")),
                Some(&console.token),
            )
            .await
            .json();
        assert_eq!(stored["alerts"][0]["status"], "acknowledged", "{stored}");
        assert_eq!(stored["alerts"][0]["status_by"], "admin");

        // The alert's page: output, labels, the event behind it, the actor's timeline.
        c.find(Locator::LinkText(RULE))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_js(&c, "the event behind the alert", "document.querySelector('#alert-event dl')").await;
        wait_js(&c, "the alert's timeline", "document.querySelector('#alert-chart[data-rendered=true]') && document.querySelector('#alert-related tr.highlight')").await;
        let output = text_of(&c, "#alert-output").await;
        assert!(output.contains("ci-runner-admin"), "{output}");
        let event = text_of(&c, "#alert-event").await;
        assert!(event.contains("clusterrolebindings"), "{event}");
        assert!(text_of(&c, "main").await.contains("acknowledged"));
        console.screenshot(&c, "alert").await;

        // Silence the alert from its page: a silence matching its labels exists afterwards.
        c.find(Locator::Css("main button.silence"))
            .await
            .expect("the silence button")
            .click()
            .await
            .unwrap();
        let silenced = wait_for("the silence to be stored", async || {
            let v = console
                .api()
                .get("/v1/silences", Some(&console.token))
                .await
                .json();
            let found = v["silences"].as_array()?.iter().any(|s| {
                s["matchers"].to_string().contains(RULE) && s["comment"].to_string().contains("console")
            });
            found.then_some(v)
        })
        .await;
        assert!(silenced["silences"].as_array().unwrap().len() == 1, "{silenced}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn overview_loads_with_charts_and_reports_its_load_time() {
    with_console("overview", async |c: Client, console: Console| {
        console.sign_in(&c).await;
        wait_js(&c, "the overview", "document.querySelector('[data-page=overview][data-ready=true]')").await;
        // A fresh load of the overview, signed in: what a user opening the console waits for.
        c.refresh().await.unwrap();
        let timing = wait_js(
            &c,
            "the overview to be complete after a reload",
            "(() => { const p = document.querySelector('[data-page=overview][data-ready=true]');
                      if (!p || document.querySelectorAll('.chart[data-rendered=true]').length < 2) return null;
                      const n = performance.getEntriesByType('navigation')[0];
                      return { dom_content_loaded_ms: Math.round(n.domContentLoadedEventEnd),
                               load_ms: Math.round(n.loadEventEnd),
                               data_ms: Number(p.dataset.renderMs),
                               complete_ms: Math.round(performance.now()),
                               transfer_bytes: performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize, n.transferSize) }; })()",
        )
        .await;
        let line = format!("overview page load on the demo data set: {timing}");
        eprintln!("{line}");
        std::fs::write(console.screenshots.join("overview-timing.json"), timing.to_string()).unwrap();

        // Every panel has content: the demo's events, alerts, rules, users and addresses.
        let stats = text_of(&c, "#stats").await;
        assert!(stats.contains("events in range") && stats.contains("alerts firing"), "{stats}");
        assert!(text_of(&c, "#top-rules").await.contains(RULE));
        assert!(text_of(&c, "#top-users").await.contains("system:serviceaccount:ci:gitlab-runner"));
        assert!(text_of(&c, "#top-ips").await.contains("203.0.113.45"));
        assert!(!text_of(&c, "#top-namespaces").await.is_empty());
        console.screenshot(&c, "overview").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_runs_sql_pages_through_results_and_shows_errors_in_place() {
    with_console("search", async |c: Client, console: Console| {
        console.sign_in(&c).await;
        let total = console
            .api()
            .query(&console.token, "SELECT count(*) FROM audit WHERE verb = 'get'")
            .await
            .json()["rows"][0][0]
            .as_u64()
            .unwrap();
        assert!(total > 100, "the demo holds enough rows for several pages");
        c.goto(&format!("{}/#/search", console.url)).await.unwrap();
        let editor = c.wait().for_element(Locator::Css("#sql")).await.unwrap();
        editor.clear().await.unwrap();
        editor
            .send_keys("SELECT time, user_name, verb, resource, namespace, name\nFROM audit\nWHERE verb = 'get' AND $range\nORDER BY time, audit_id, stage")
            .await
            .unwrap();
        c.find(Locator::Css("#run")).await.unwrap().click().await.unwrap();
        let first_page = format!("Rows 1–50 of {}", group_thousands(total));
        wait_js(&c, "the first page", &format!("document.querySelector('#page-info')?.innerText.startsWith('{first_page}')")).await;
        wait_js(&c, "the histogram", "document.querySelector('#search-histogram[data-rendered=true]')").await;
        let first_cell = text_of(&c, "#results-table tbody tr td").await;
        assert_eq!(
            c.find_all(Locator::Css("#results-table tbody tr")).await.unwrap().len(),
            50
        );
        console.screenshot(&c, "search").await;

        c.find(Locator::Css("#page-next")).await.unwrap().click().await.unwrap();
        wait_js(&c, "the second page", "document.querySelector('#page-info')?.innerText.startsWith('Rows 51–100')").await;
        let second_cell = text_of(&c, "#results-table tbody tr td").await;
        assert!(second_cell >= first_cell, "rows are in time order: {first_cell} then {second_cell}");
        let expected = console
            .api()
            .query(&console.token, "SELECT time FROM audit WHERE verb = 'get' ORDER BY time, audit_id, stage LIMIT 1 OFFSET 50")
            .await
            .json()["rows"][0][0]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(second_cell, expected, "page two starts at the 51st row");
        c.find(Locator::Css("#page-prev")).await.unwrap().click().await.unwrap();
        wait_js(&c, "the first page again", "document.querySelector('#page-info')?.innerText.startsWith('Rows 1–50')").await;

        // A syntax error is shown under the editor, pointing at where it is.
        editor.clear().await.unwrap();
        editor.send_keys("SELECT verb, count(*)\nFROM audit\nGROUP BY verb ORDER").await.unwrap();
        c.find(Locator::Css("#run")).await.unwrap().click().await.unwrap();
        let error = wait_js(&c, "the error", "document.querySelector('#sql-error .error')?.innerText").await;
        let error = error.as_str().unwrap();
        assert!(error.contains("Line: 3"), "{error}");
        assert!(error.contains("3 | GROUP BY verb ORDER"), "{error}");
        assert_eq!(editor.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
        let caret = c.execute("return document.activeElement.id + ':' + document.activeElement.selectionStart", vec![]).await.unwrap();
        assert!(caret.as_str().unwrap().starts_with("sql:"), "the editor keeps the focus: {caret}");
        console.screenshot(&c, "search-error").await;

        // Writing is refused with the server's explanation.
        editor.clear().await.unwrap();
        editor.send_keys("DROP TABLE audit").await.unwrap();
        c.find(Locator::Css("#run")).await.unwrap().click().await.unwrap();
        let refused = wait_js(&c, "the refusal", "document.querySelector('#sql-error .error')?.innerText").await;
        assert!(refused.as_str().unwrap().contains("read-only"), "{refused}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entity_timeline_of_the_attackers_address_and_keyboard_navigation() {
    with_console("entities", async |c: Client, console: Console| {
        console.sign_in(&c).await;
        wait_js(&c, "the overview", "document.querySelector('[data-page=overview][data-ready=true]')").await;
        // From the overview's top source IPs to the address's timeline.
        c.find(Locator::LinkText("203.0.113.45")).await.unwrap().click().await.unwrap();
        wait_js(&c, "the timeline", "document.querySelector('#entity-timeline li') && document.querySelector('#entity-chart[data-rendered=true]')").await;
        let timeline = text_of(&c, "#entity-timeline").await;
        for step in ["secrets", "clusterrolebindings", "pods/exec", "serviceaccounts/token"] {
            assert!(timeline.contains(step), "the attack's {step} is on the timeline");
        }
        assert!(
            !c.find_all(Locator::Css("#entity-timeline li.alert-item")).await.unwrap().is_empty(),
            "alerts that name the address are on the timeline"
        );
        console.screenshot(&c, "entity").await;

        // The same through the form: the stolen service account, with pod and node details.
        let kind = c.find(Locator::Css("#entity-kind")).await.unwrap();
        kind.select_by_value("serviceaccount").await.unwrap();
        let value = c.find(Locator::Css("#entity-value")).await.unwrap();
        value.clear().await.unwrap();
        value.send_keys("ci/gitlab-runner\n").await.unwrap();
        wait_js(&c, "the service account's timeline", "location.hash.includes('serviceaccount') && document.querySelector('#entity-timeline li')").await;
        assert!(text_of(&c, "h1").await.contains("ci/gitlab-runner"));

        // Keyboard: g r opens the rules, g a the alerts, j focuses the first alert's link.
        c.find(Locator::Css("h1")).await.unwrap().click().await.unwrap();
        press(&c, "gr").await;
        wait_js(&c, "the rules page", "document.querySelector('#rules-table')").await;
        let rules = text_of(&c, "#rules-table").await;
        assert!(rules.contains(RULE) && rules.contains("kestrel_audit_rules.yaml"), "{rules}");
        let rules_api = console.api().get("/v1/rules", Some(&console.token)).await.json();
        let hits = rules_api["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == RULE)
            .map(|r| r["matches"].as_i64().unwrap());
        assert_eq!(hits, Some(1), "the demo binds to cluster-admin once");
        console.screenshot(&c, "rules").await;

        // Test the example rule (secrets read with curl) against the stored events.
        let expected = console
            .api()
            .query(&console.token, "SELECT count(*) FROM audit WHERE stage = 'ResponseComplete' AND resource = 'secrets' AND verb IN ('get', 'list') AND user_agent LIKE 'curl/%'")
            .await
            .json()["rows"][0][0]
            .as_u64()
            .unwrap();
        assert!(expected > 0, "the demo reads secrets with curl");
        c.find(Locator::Css("#rule-test-run")).await.unwrap().click().await.unwrap();
        let summary = wait_js(&c, "the rule test", "document.querySelector('#rule-test-summary')?.innerText").await;
        let summary = summary.as_str().unwrap();
        assert!(summary.starts_with(&format!("{expected} matches in ")), "{summary}");
        assert!(summary.contains("Secrets read with curl"), "{summary}");
        assert_eq!(
            c.find_all(Locator::Css("#rule-test-result tbody tr")).await.unwrap().len() as u64,
            expected
        );
        c.execute("document.querySelector('#rule-test-result').scrollIntoView({block: 'end'})", vec![])
            .await
            .unwrap();
        console.screenshot(&c, "rule-test").await;
        press(&c, "ga").await;
        wait_js(&c, "the alerts page", "document.querySelector('#alerts-table tbody tr')").await;
        press(&c, "j").await;
        let focused = wait_js(&c, "the first row's link to take focus", "document.activeElement.classList.contains('alert-link') && document.activeElement.innerText").await;
        let first = text_of(&c, "#alerts-table tbody tr a.alert-link").await;
        assert_eq!(focused.as_str(), Some(first.as_str()));
    })
    .await;
}

/// 3007 → "3,007", as the console writes counts.
fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
