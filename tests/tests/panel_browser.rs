//! The token panel in a real browser: headless Chromium driven over
//! WebDriver (chromedriver, fantoccini) against both reference servers.
//! A user logs in as the browser's Basic-auth dialog would, creates a token
//! through the form (submitted from the keyboard), reads the secret once,
//! sees it listed, uses it against the server, finds it gone from the page
//! after a reload, revokes it (confirming, from the keyboard) and sees it
//! gone and refused; the page reads as cards on a phone; an admin picks
//! another user.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them.
//! Without them the test says so and passes, except under `CI=true`, where
//! it fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use pat_core::TokenDigest;
use pat_integration_tests::{Server, ServerKind, Workdir, client};
use serde_json::json;

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The browser and its driver, or `None` (after saying why) when they are
/// not installed outside CI.
fn browser() -> Option<(PathBuf, Driver)> {
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "the browser test must run under CI=true, but chromium or chromedriver is \
             missing (Debian: apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "\n!!! SKIPPED: the token panel's browser test (chromium or chromedriver is not \
             installed; Debian: apt-get install chromium chromium-driver).\n"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url };
    let deadline = Instant::now() + Duration::from_secs(30);
    while client()
        .get(format!("{}/status", driver.url))
        .send()
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((chromium, driver))
}

/// A new headless browser session with its own empty profile.
async fn session(chromium: &Path, driver: &Driver, profile: &Path) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1200,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
        "unhandledPromptBehavior": "ignore",
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Waits (up to 20 s) until `check` is true.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn displayed(c: &Client, css: &str) -> bool {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

/// The status of `GET /whoami` with `token` (a blocking client, off the
/// async runtime).
async fn whoami(base: String, token: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let r = client()
            .get(format!("{base}/whoami"))
            .bearer_auth(token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    })
    .await
    .unwrap()
}

/// The status and `WWW-Authenticate` of `GET path` with `token`.
async fn get(base: String, path: &'static str, token: String) -> (u16, Option<String>) {
    tokio::task::spawn_blocking(move || {
        let r = client()
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .unwrap();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), challenge)
    })
    .await
    .unwrap()
}

/// The element at `css`.
async fn field_at(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.find(Locator::Css(css)).await.unwrap()
}

async fn panel(kind: ServerKind, chromium: &Path, driver: &Driver) {
    let work = Workdir::new();
    // A store of its own prefix, a former one kept: the panel says both.
    work.cli_ok(&["init", "--prefix", "acme"]);
    work.cli_ok(&["prefix", "set", "acme2"]);
    let server = Server::start(kind, &work.db(), &["--admin", "root"]);
    let login = work.token(&["-u", "alice", "-e", "30d", "-l", "browser login"]);
    let root = work.token(&["-u", "root", "-e", "30d"]);
    let host = server.base().trim_start_matches("http://").to_owned();
    let c = session(chromium, driver, &work.path().join("profile")).await;

    // Logged in as the Basic-auth dialog would (credentials in the URL).
    c.goto(&format!("http://alice:{login}@{host}/ui/tokens"))
        .await
        .unwrap();
    until("the list", || async {
        text(&c, "#who").await.contains("alice")
    })
    .await;
    assert!(text(&c, "#tokens").await.contains("browser login"));
    assert!(!displayed(&c, "#picker").await, "not an admin");
    assert_eq!(
        text(&c, "#prefix").await,
        "This service's tokens start with acme2_ (older ones with acme_)."
    );

    // Create through the form, submitted with Enter from the last field.
    let field = |css: &'static str| {
        let c = &c;
        async move { c.find(Locator::Css(css)).await.unwrap() }
    };
    field("#create input[name=label]")
        .await
        .send_keys("made in a browser")
        .await
        .unwrap();
    field("#create input[name=model][value=auto]")
        .await
        .click()
        .await
        .unwrap();
    field("#create input[name=duration]")
        .await
        .send_keys("1h")
        .await
        .unwrap();
    field("#create input[name=cap]")
        .await
        .send_keys("7d\u{e007}")
        .await
        .unwrap();
    until("the new secret", || displayed(&c, "#secret")).await;
    assert!(text(&c, "#secret").await.contains("shown only once"));
    let secret = field("#secret-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    TokenDigest::from_token(&secret).expect("a well-formed token");
    assert!(!c.current_url().await.unwrap().as_str().contains(&secret));
    until("the new row", || async {
        text(&c, "#tokens").await.contains("made in a browser")
    })
    .await;
    let rows = text(&c, "#tokens").await;
    assert!(rows.contains("Auto-refresh 1h, at most 7d"), "{rows}");
    assert!(!rows.contains(&secret), "the secret in the table");
    field("#copy").await.click().await.unwrap();
    until("the copy", || async {
        text(&c, "#copied").await == "Copied."
    })
    .await;
    std::fs::write(work.path().join("panel.png"), c.screenshot().await.unwrap()).unwrap();
    if let Some(dir) = std::env::var_os("PAT_PANEL_SCREENSHOTS") {
        let shot = c.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(format!("panel-{kind:?}.png")), shot).unwrap();
    }

    // The secret works against the server.
    let (status, body) = whoami(server.base().to_owned(), secret.clone()).await;
    assert_eq!((status, body.contains("alice")), (200, true), "{body}");

    // A reload forgets it: not in the page, not shown.
    c.refresh().await.unwrap();
    until("the list after reload", || async {
        text(&c, "#tokens").await.contains("made in a browser")
    })
    .await;
    assert!(!c.source().await.unwrap().contains(&secret));
    assert!(!displayed(&c, "#secret").await);

    // The new token is a child of the login token, and each row says so;
    // revoking the login warns that its child goes with it (dismissed).
    let rows = text(&c, "#tokens").await;
    assert!(
        rows.contains("made with \u{201c}browser login\u{201d}"),
        "{rows}"
    );
    assert!(rows.contains("1 token made with it"), "{rows}");
    let mut login_button = None;
    for row in c.find_all(Locator::Css("#tokens tr")).await.unwrap() {
        let t = row.text().await.unwrap();
        if t.contains("browser login") && !t.contains("made in a browser") {
            login_button = Some(row.find(Locator::Css("button.revoke")).await.unwrap());
        }
    }
    let _ = login_button
        .expect("a revoke button on the login row")
        .click()
        .await;
    until("the login's confirmation", || async {
        c.get_alert_text().await.is_ok()
    })
    .await;
    let asked = c.get_alert_text().await.unwrap();
    assert!(
        asked.contains("also revokes the token made with it"),
        "{asked}"
    );
    c.dismiss_alert().await.unwrap();
    assert!(
        text(&c, "#tokens").await.contains("browser login"),
        "not revoked"
    );

    // Revoke from the keyboard, confirming.
    let rows = c.find_all(Locator::Css("#tokens tr")).await.unwrap();
    let mut button = None;
    for row in rows {
        if row.text().await.unwrap().contains("made in a browser") {
            button = Some(row.find(Locator::Css("button.revoke")).await.unwrap());
        }
    }
    let button = button.expect("a revoke button on the new row");
    // The confirmation opens while the key is handled; the driver may say so.
    let _ = button.send_keys("\u{e007}").await;
    until("the confirmation", || async {
        c.get_alert_text().await.is_ok()
    })
    .await;
    assert!(
        c.get_alert_text()
            .await
            .unwrap()
            .contains("made in a browser")
    );
    c.accept_alert().await.unwrap();
    until("the row to go", || async {
        let t = text(&c, "#tokens").await;
        t.contains("browser login") && !t.contains("made in a browser")
    })
    .await;
    let (status, _) = whoami(server.base().to_owned(), secret).await;
    assert_eq!(status, 401, "revoked");

    // Issue 24: the catalog as checkboxes with descriptions; a token of two
    // permissions works on a route that needs one of them and is refused,
    // 403 insufficient_scope, on one that needs another.
    let offered = text(&c, "#permissions").await;
    assert!(offered.contains("demo:write"), "{offered}");
    assert!(offered.contains("Change the demo's records"), "{offered}");
    assert!(offered.contains("includes demo:read"), "{offered}");
    field("#create input[name=label]")
        .await
        .send_keys("two permissions")
        .await
        .unwrap();
    field("#create input[name=duration]")
        .await
        .send_keys("1h")
        .await
        .unwrap();
    for name in ["demo:read", "demo:export"] {
        field_at(&c, &format!("#permission-list input[value=\"{name}\"]"))
            .await
            .click()
            .await
            .unwrap();
    }
    field("#create textarea[name=meta]")
        .await
        .send_keys("team=payments")
        .await
        .unwrap();
    field("#create textarea[name=allow_from]")
        .await
        .send_keys("127.0.0.0/8\n::1")
        .await
        .unwrap();
    field("#create input[name=rate]")
        .await
        .send_keys("100/m")
        .await
        .unwrap();
    field("#create input[name=max_uses]")
        .await
        .send_keys("1000")
        .await
        .unwrap();
    field("#create-submit").await.click().await.unwrap();
    until("the second secret", || displayed(&c, "#secret")).await;
    let two = field("#secret-value")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    until("its row", || async {
        text(&c, "#tokens").await.contains("two permissions")
    })
    .await;
    assert!(
        text(&c, "#tokens").await.contains("demo:export demo:read"),
        "the table shows its permissions"
    );
    assert!(
        row_text(&c, "two permissions")
            .await
            .contains("team=payments"),
        "the table shows its metadata"
    );
    assert!(
        row_text(&c, "two permissions")
            .await
            .contains("from 127.0.0.0/8, ::1/128"),
        "the table shows its networks"
    );
    assert!(
        row_text(&c, "two permissions")
            .await
            .contains("at most 100/m"),
        "the table shows its rate limit"
    );
    assert!(
        row_text(&c, "two permissions")
            .await
            .contains("0 of 1000 uses"),
        "the table shows its use quota"
    );
    let base = server.base().to_owned();
    assert_eq!(
        get(base.clone(), "/demo/read", two.clone()).await,
        (200, None)
    );
    let (status, challenge) = get(base.clone(), "/demo/write", two.clone()).await;
    assert_eq!(status, 403);
    let challenge = challenge.expect("a challenge");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"demo:write\""),
        "{challenge}"
    );

    // Issue 26: alice disables it (confirming, told only an admin can undo
    // it): refused at once, shown disabled, and no way back for her.
    row_button(&c, "two permissions", "button.disable")
        .await
        .click()
        .await
        .unwrap();
    until("the disabling's confirmation", || async {
        c.get_alert_text().await.is_ok()
    })
    .await;
    let asked = c.get_alert_text().await.unwrap();
    assert!(
        asked.contains("Only an admin can enable it again"),
        "{asked}"
    );
    c.accept_alert().await.unwrap();
    until("the disabled row", || async {
        row_text(&c, "two permissions").await.contains("disabled")
    })
    .await;
    assert!(
        row_text(&c, "two permissions")
            .await
            .contains("last from 127.0.0.1"),
        "the table shows where it was last used from"
    );
    assert_eq!(get(base.clone(), "/demo/read", two.clone()).await.0, 401);
    assert!(
        !row_has(&c, "two permissions", "button.enable").await,
        "an owner cannot enable"
    );

    // Keyboard: Tab from the top reaches every control, in reading order.
    c.execute(
        "document.activeElement.blur(); window.scrollTo(0, 0)",
        vec![],
    )
    .await
    .unwrap();
    let mut reached = Vec::new();
    for _ in 0..24 {
        c.active_element()
            .await
            .unwrap()
            .send_keys("\u{e004}")
            .await
            .unwrap();
        let here = c
            .execute(
                "const e = document.activeElement; \
                 return e.name || e.id || e.className || e.tagName",
                vec![],
            )
            .await
            .unwrap();
        reached.push(here.as_str().unwrap_or_default().to_owned());
    }
    // The cap field shows for auto refresh only; the form is back on hard.
    let want = [
        "danger revoke",
        "label",
        "model",
        "duration",
        "permission",
        "scopes",
        "meta",
        "allow_from",
        "rate",
        "max_uses",
        "create-submit",
    ];
    let mut at = 0;
    for name in &reached {
        if at < want.len() && name == want[at] {
            at += 1;
        }
    }
    assert_eq!(at, want.len(), "tab order: {reached:?}");

    // On a phone: rows become cards, nothing scrolls sideways.
    c.set_window_size(390, 844).await.unwrap();
    let layout = c
        .execute(
            "return [getComputedStyle(document.querySelector('thead')).display, \
             document.documentElement.scrollWidth <= window.innerWidth]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(layout, json!(["none", true]));
    c.close().await.unwrap();

    // An admin picks the user.
    let c = session(chromium, driver, &work.path().join("profile-root")).await;
    c.goto(&format!("http://root:{root}@{host}/ui/tokens"))
        .await
        .unwrap();
    until("the admin's list", || async {
        text(&c, "#who").await.contains("(admin)")
    })
    .await;
    c.find(Locator::Css("#pick-user"))
        .await
        .unwrap()
        .send_keys("alice\u{e007}")
        .await
        .unwrap();
    until("alice's tokens", || async {
        text(&c, "#tokens").await.contains("browser login")
    })
    .await;
    assert!(text(&c, "#who").await.contains("Tokens of alice"));
    // The admin enables alice's disabled token: it works at once.
    row_button(&c, "two permissions", "button.enable")
        .await
        .click()
        .await
        .unwrap();
    until("the enabled row", || async {
        row_text(&c, "two permissions").await.contains("active")
    })
    .await;
    assert_eq!(
        get(server.base().to_owned(), "/demo/read", two).await.0,
        200
    );
    c.close().await.unwrap();
}

/// The text of the table row whose text contains `label` (empty while the
/// table is being drawn again, for [`until`] to ask again).
async fn row_text(c: &Client, label: &str) -> String {
    for row in c.find_all(Locator::Css("#tokens tr")).await.unwrap() {
        match row.text().await {
            Ok(t) if t.contains(label) => return t,
            Ok(_) => {}
            Err(_) => return String::new(),
        }
    }
    String::new()
}

/// Whether the row of `label` has an element `css`.
async fn row_has(c: &Client, label: &str, css: &str) -> bool {
    for row in c.find_all(Locator::Css("#tokens tr")).await.unwrap() {
        if row.text().await.unwrap().contains(label) {
            return row.find(Locator::Css(css)).await.is_ok();
        }
    }
    false
}

/// The element `css` in the row of `label`.
async fn row_button(c: &Client, label: &str, css: &str) -> fantoccini::elements::Element {
    for row in c.find_all(Locator::Css("#tokens tr")).await.unwrap() {
        if row.text().await.unwrap().contains(label) {
            return row.find(Locator::Css(css)).await.unwrap();
        }
    }
    panic!("no row of {label}")
}

#[test]
fn the_panel_works_in_a_real_browser() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for kind in ServerKind::ALL {
        rt.block_on(panel(kind, &chromium, &driver));
    }
}
