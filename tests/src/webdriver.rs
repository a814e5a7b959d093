//! Debian's headless Chromium driven through `chromedriver` over loopback. The WebDriver protocol is
//! `fantoccini`'s; this module finds and starts the driver, and keeps the few steps the tests take
//! (open a page, fill inputs, click, read the URL and the page) readable.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// How long chromedriver may take to listen, an element to appear, and the URL to be reached.
const DRIVER_READY: Duration = Duration::from_secs(10);
const ELEMENT_WAIT: Duration = Duration::from_secs(5);
const URL_WAIT: Duration = Duration::from_secs(10);
/// How often each of those is checked.
const POLL: Duration = Duration::from_millis(100);

/// A `chromedriver` process and one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    client: Client,
    profile: PathBuf,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9515)
}

/// Finds a binary among the usual Debian paths.
fn find(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| (*p).to_owned())
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session. Panics with an install hint when
    /// either is missing (`.ci/run` installs both).
    pub async fn start() -> Browser {
        let chromedriver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
            .expect("this test needs chromedriver: apt-get install chromium-driver (see README)");
        let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])
            .expect("this test needs Chromium: apt-get install chromium (see README)");
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let ready = tokio::time::timeout(DRIVER_READY, async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        assert!(ready.is_ok(), "chromedriver did not become ready");
        let profile = std::env::temp_dir().join(format!("fhir-gw-webdriver-{}-{port}", std::process::id()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".to_owned(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", format!("--user-data-dir={}", profile.display())]}),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
        Browser {
            driver,
            client,
            profile,
        }
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("WebDriver goto {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .unwrap_or_else(|e| panic!("WebDriver current URL: {e}"))
            .to_string()
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.client
            .source()
            .await
            .unwrap_or_else(|e| panic!("WebDriver page source: {e}"))
    }

    /// The element a CSS selector finds, waiting up to 5 s for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(ELEMENT_WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(CmdError::WaitTimeout) => {
                let page: String = self.source().await.chars().take(1500).collect();
                panic!("no element matches {css} on {}:\n{page}", self.url().await);
            }
            Err(e) => panic!("WebDriver find {css}: {e}"),
        }
    }

    /// Types into the element `css` finds.
    pub async fn fill(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("WebDriver send keys to {css}: {e}"));
    }

    /// Clicks the element `css` finds.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("WebDriver click {css}: {e}"));
    }

    /// Ends the browser session (closing Chromium), then the driver.
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }

    /// Waits until the URL starts with `prefix`; returns it. (`fantoccini`'s `Wait::for_url`
    /// wants the whole URL, and the code and state the redirect carries are not known here.)
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let reached = tokio::time::timeout(URL_WAIT, async {
            loop {
                let url = self.url().await;
                if url.starts_with(prefix) {
                    return url;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        match reached {
            Ok(url) => url,
            Err(_) => panic!("the browser never reached {prefix} (at {})", self.url().await),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
