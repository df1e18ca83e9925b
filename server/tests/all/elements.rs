//! Ory Elements (`@ory/elements-react`, from npm, unchanged) in a real
//! headless Chromium against `reclaim serve`: its `<Recovery>` and
//! `<Settings>`, bundled with esbuild into an SPA on an origin of its own
//! (the flow API answers it with CORS), take a person from the address to
//! a new password: the code is read from the mailbox and typed in.
//!
//! Needs `server/tests/elements/node_modules` (`scripts/test` runs `npm
//! install` there) and Debian's `chromium` and `chromium-driver`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::browser::browser;
use crate::common::{NEW_PASSWORD, Server, free_port};

/// The SPA: the bundle, and a page for each component naming Reclaim's URL.
struct Spa {
    dir: tempfile::TempDir,
    server: Child,
    origin: String,
}

impl Drop for Spa {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Spa {
    /// Bundles the app (esbuild, well under a second) and serves it on a
    /// free port; `sdk` is Reclaim's public URL, set once it is known.
    fn start() -> Self {
        let app = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/elements");
        assert!(
            app.join("node_modules/@ory/elements-react").exists(),
            "{}: run `npm install` there (scripts/test does)",
            app.display()
        );
        let built = Command::new("npm")
            .args(["run", "--silent", "build"])
            .current_dir(&app)
            .status()
            .expect("npm runs");
        assert!(built.success(), "the bundle builds");
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(app.join("dist"), dir.path().join("dist")).unwrap();
        let port = free_port();
        let server = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 serves the SPA");
        let origin = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the SPA's server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            dir,
            server,
            origin,
        }
    }

    fn pages(&self, sdk: &str) {
        for name in ["recovery", "settings"] {
            let page = format!(
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{name}</title>\
                 <link rel=\"stylesheet\" href=\"/dist/{name}.css\">\
                 <script>window.SDK_URL = \"{sdk}\";</script></head>\
                 <body><div id=\"root\"></div><script type=\"module\" src=\"/dist/{name}.js\"></script></body></html>"
            );
            std::fs::write(self.dir.path().join(format!("{name}.html")), page).unwrap();
        }
    }
}

/// Clicks the element `css` once it is there.
async fn click(client: &Client, css: &str) {
    wait_for(client, css).await.click().await.unwrap();
}

/// The element `css` once it is there (the SPA renders after its fetches).
async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            return element;
        }
        if Instant::now() > deadline {
            let page = client.source().await.unwrap_or_default();
            panic!("{css} never appeared; the page was:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ory_elements_recovery_and_settings_recover_an_account_in_chromium() {
    recover_with_elements(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ory_elements_follow_continue_with_to_the_settings_ui_in_chromium() {
    recover_with_elements(&[("RECLAIM_USE_CONTINUE_WITH_TRANSITIONS", "true")]).await;
}

/// A person recovers with Elements' `<Recovery>` and `<Settings>` against a
/// server started with `env` besides the SPA's URLs.
async fn recover_with_elements(env: &[(&str, &str)]) {
    let spa = Spa::start();
    let (recovery_ui, settings_ui) = (
        format!("{}/recovery.html", spa.origin),
        format!("{}/settings.html", spa.origin),
    );
    let mut env = env.to_vec();
    env.extend([
        ("RECLAIM_RECOVERY_UI_URL", recovery_ui.as_str()),
        ("RECLAIM_SETTINGS_UI_URL", settings_ui.as_str()),
        ("RECLAIM_CORS_ALLOWED_ORIGINS", spa.origin.as_str()),
    ]);
    let server = Server::start_with(&env);
    spa.pages(&server.base);
    server.identity(Some("ann@example.com"));

    let (_driver, client) = browser().await;
    // The SPA starts a browser flow, which comes back to it with `?flow=`.
    client
        .goto(&format!("{}/recovery.html", spa.origin))
        .await
        .unwrap();
    let email = wait_for(&client, "input[name='email']").await;
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .query()
            .unwrap()
            .starts_with("flow=")
    );
    email.send_keys("ann@example.com").await.unwrap();
    click(
        &client,
        "button[type='submit'][name='method'][value='code']",
    )
    .await;

    wait_for(&client, "[data-testid='ory/message/1060003']").await;
    let mail = tokio::task::block_in_place(|| server.mail(1));
    let text = mail.last().expect("the code mail");
    let code = crate::common::code_in(text).expect("a code mail with six digits");
    wait_for(&client, "input[name='code']")
        .await
        .send_keys(&code)
        .await
        .unwrap();
    click(
        &client,
        "button[type='submit'][name='method'][value='code']",
    )
    .await;

    // Either ending (Kratos' 422, or `continue_with`'s `show_settings_ui`)
    // takes Elements to the settings UI.
    let password = wait_for(&client, "input[name='password']").await;
    let at = client.current_url().await.unwrap();
    assert_eq!(at.path(), "/settings.html", "{at}");
    wait_for(&client, "[data-testid='ory/message/1060001']").await;
    password.send_keys(NEW_PASSWORD).await.unwrap();
    click(
        &client,
        "button[type='submit'][name='method'][value='password']",
    )
    .await;
    wait_for(&client, "[data-testid='ory/message/1050001']").await;

    let status = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; window.whoami().then(done);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "the session ended with the password");
    let mail = tokio::task::block_in_place(|| server.mail(2));
    assert_eq!(mail.len(), 2, "the code, then the password-changed notice");
    // Ends the session, so chromedriver takes its Chromium down with it.
    client.close().await.unwrap();
}
