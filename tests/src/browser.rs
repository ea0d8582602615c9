//! A real browser for the page tests: Debian's headless `chromium`, driven over
//! WebDriver by its own `chromedriver` (on a free loopback port, killed with its browser
//! when the [`Browser`] is dropped) through the `fantoccini` client.
//!
//! A test opens pages, waits for what a user would see (polling with a deadline, never
//! sleeping blindly), saves a screenshot of each step under `target/screenshots/`, and
//! checks that the page logged no errors in the browser's console:
//!
//! ```no_run
//! # async fn demo(world: &autotest_tests::World) {
//! use autotest_tests::browser::Browser;
//! let browser = Browser::start("signin_page").await;
//! browser.open(&format!("{}/signin", world.server())).await;
//! browser.wait_for_css("#token").await;
//! browser.screenshot("form").await;
//! browser.assert_no_console_errors().await;
//! browser.close().await;
//! # }
//! ```
//!
//! `AUTOTEST_TEST_CHROMIUM` and `AUTOTEST_TEST_CHROMEDRIVER` name the programs (default
//! `/usr/bin/chromium` and `chromedriver` on `PATH`; `deploy/test.sh` installs both).

use crate::world::users::Answer;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a wait for something on a page lasts before the test fails.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(15);

/// How long chromedriver may take to answer at all.
const DRIVER_DEADLINE: Duration = Duration::from_secs(30);

const POLL: Duration = Duration::from_millis(50);

/// A headless chromium and its chromedriver, for one test.
pub struct Browser {
    client: Client,
    driver: tokio::process::Child,
    /// The browser's profile (`--user-data-dir`), fresh for each browser.
    _profile: tempfile::TempDir,
    /// Screenshots go to `target/screenshots/<test>-<step>.png`.
    test: String,
}

/// chromedriver's log endpoint: what the page wrote to the console since last asked.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn program(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_string())
}

/// Where screenshots are saved: `target/screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    crate::repo_root().join("target/screenshots")
}

impl Browser {
    /// Starts chromedriver and a headless chromium with a fresh profile. `test` names
    /// the test in screenshot file names.
    pub async fn start(test: &str) -> Browser {
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let port = free_port();
        let driver_program = program("AUTOTEST_TEST_CHROMEDRIVER", "chromedriver");
        let driver = tokio::process::Command::new(&driver_program)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {driver_program} ({e}): deploy/test.sh installs chromium-driver"
                )
            });
        let capabilities = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": program("AUTOTEST_TEST_CHROMIUM", "/usr/bin/chromium"),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DRIVER_DEADLINE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(error) if Instant::now() > deadline => {
                    panic!(
                        "chromedriver on {url} gave no browser within {DRIVER_DEADLINE:?}: {error}"
                    )
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
            test: test.to_string(),
        }
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The path (and query) of the page the browser shows.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until an element matches `css`; it then.
    pub async fn wait_for_css(&self, css: &str) -> Element {
        let deadline = Instant::now() + PAGE_DEADLINE;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("timeout").await;
                panic!(
                    "no element {css:?} on {} within {PAGE_DEADLINE:?} (screenshot {})",
                    self.path().await,
                    shot.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matching `css` shows `text` (the page may still be
    /// changing: an element gone meanwhile is looked up again); its whole text.
    pub async fn wait_for_css_text(&self, css: &str, text: &str) -> String {
        let deadline = Instant::now() + PAGE_DEADLINE;
        loop {
            let shown = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if shown.contains(text) {
                return shown;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("timeout").await;
                panic!(
                    "{css:?} on {} did not show {text:?} within {PAGE_DEADLINE:?} (screenshot {}); it shows {shown:?}",
                    self.path().await,
                    shot.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether an element matches `css` now.
    pub async fn has_css(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    /// The visible text of the page's body.
    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page shows `text` (in its visible text); panics naming what it
    /// showed instead.
    pub async fn wait_for_text(&self, text: &str) {
        self.wait_for_any_text(&[text]).await;
    }

    /// Waits until the page shows one of `texts`; which one.
    pub async fn wait_for_any_text(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + PAGE_DEADLINE;
        loop {
            let body = self.body_text().await;
            if let Some(found) = texts.iter().find(|t| body.contains(*t)) {
                return found.to_string();
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("timeout").await;
                panic!(
                    "{} did not show {texts:?} within {PAGE_DEADLINE:?} (screenshot {}); it shows:\n{body}",
                    self.path().await,
                    shot.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Types `text` into the field matching `css`, in place of what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for_css(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for_css(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Saves what the browser shows as `target/screenshots/<test>-<step>.png`; its path.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{}-{step}.png", self.test));
        match self.client.screenshot().await {
            Ok(png) => std::fs::write(&path, png).expect("screenshot written"),
            Err(error) => eprintln!("no screenshot {}: {error}", path.display()),
        }
        path
    }

    /// The errors (level SEVERE) the pages logged to the browser's console since the
    /// last call: failed loads, script errors, content security policy refusals.
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser's console log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Fails the test if a page logged an error to the console since the last check.
    pub async fn assert_no_console_errors(&self) {
        let errors = self.console_errors().await;
        assert!(
            errors.is_empty(),
            "the browser's console shows errors: {errors:#?}"
        );
    }

    /// The value of cookie `name` as the browser holds it, with its attributes.
    pub async fn cookie(&self, name: &str) -> Option<fantoccini::cookies::Cookie<'static>> {
        self.client.get_named_cookie(name).await.ok()
    }

    /// Ends the browser session (the browser quits), then chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        if let Err(error) = client.close().await {
            eprintln!("closing the browser: {error}");
        }
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    /// chromedriver and the browser it started share a process group: a test that
    /// panicked leaves neither running.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let group = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A session as a browser holds it, made by posting a token to `/signin` without a
/// browser: for requests a test forges on a signed-in user's behalf.
#[derive(Debug, Clone)]
pub struct RawSession {
    /// The `Set-Cookie` header the sign-in answered with.
    pub set_cookie: String,
    /// `autotest_session=...`, for a `Cookie` header.
    pub cookie: String,
    /// The session's anti-forgery token, as the pages embed it.
    pub csrf: String,
}

/// Signs in with `token` at `server` as a form post would; panics unless it worked.
pub async fn raw_sign_in(server: &str, token: &str) -> RawSession {
    let answer = post_form(server, "/signin", &[], &[("token", token)]).await;
    assert_eq!(answer.status, 303, "sign-in: {answer:?}");
    let set_cookie = answer
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let page = get_page(server, "/jobs/new", &[("cookie", &cookie)]).await;
    assert_eq!(page.status, 200, "{page:?}");
    let csrf = hidden_csrf(&page.body).expect("the page embeds the session's csrf");
    RawSession {
        set_cookie,
        cookie,
        csrf,
    }
}

/// The value of the first `csrf` hidden field in a page.
pub fn hidden_csrf(html: &str) -> Option<String> {
    let start = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

/// GETs `path` with `headers`, following no redirect.
pub async fn get_page(server: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    send_raw(server, "GET", path, headers, None).await
}

/// POSTs `fields` form-encoded to `path` with `headers`, following no redirect.
pub async fn post_form(
    server: &str,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> Answer {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    send_raw(server, "POST", path, headers, Some(body)).await
}

async fn send_raw(
    server: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<String>,
) -> Answer {
    let url = format!("{server}{path}");
    let method = method.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build(),
        );
        let mut request = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        if form.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let request = request.body(form.unwrap_or_default()).expect("a request");
        let mut response = agent.run(request).expect("an answer");
        Answer {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    })
    .await
    .expect("request")
}
