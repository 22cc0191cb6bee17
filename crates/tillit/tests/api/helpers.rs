use reqwest::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tillit");

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tillit-it-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn rand_suffix() -> String {
    tillit_crypto::random_token("")
        .expose()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
}

pub struct TestApp {
    pub dir: PathBuf,
    pub base: String,
    pub port: u16,
    pub creds: Value,
    pub client: reqwest::Client,
    child: Child,
    keep_dir: bool,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn client_for(ca_pem: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_pem).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Starts `tillit demo` on a fresh (or the given) data dir and waits until it serves.
pub fn spawn_demo_with(dir: Option<PathBuf>, env: &[(&str, &str)]) -> TestApp {
    let dir = dir.unwrap_or_else(|| tempdir("demo"));
    let creds_path = dir.join("demo-credentials.json");
    let _ = std::fs::remove_file(&creds_path);
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--data-dir"]).arg(&dir).args([
        "--listen",
        "127.0.0.1:0",
        "--exit-on-stdin-eof",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let log = std::fs::File::create(dir.with_extension("log")).unwrap();
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let creds: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&creds_path)
            && let Ok(v) = serde_json::from_str(&text)
        {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "demo did not start: {}",
            std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let base = creds["base_url"].as_str().unwrap().to_string();
    let port = base.rsplit(':').next().unwrap().parse().unwrap();
    let client = client_for(Path::new(creds["ca_cert"].as_str().unwrap()));
    TestApp {
        dir,
        base,
        port,
        creds,
        client,
        child,
        keep_dir: false,
    }
}

pub fn spawn_demo() -> TestApp {
    spawn_demo_with(None, &[])
}

impl TestApp {
    pub fn keep_dir(&mut self) {
        self.keep_dir = true;
    }

    /// Kills the server with SIGKILL (no shutdown of any kind) and returns its data dir,
    /// which is kept for a restart.
    pub fn kill_hard(mut self) -> PathBuf {
        self.keep_dir = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn user(&self, username: &str) -> &Value {
        self.creds["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == username)
            .unwrap_or_else(|| panic!("no demo user {username}"))
    }

    pub fn totp_now(&self, username: &str, offset_steps: i64) -> String {
        let secret = self.user(username)["totp_secret"].as_str().unwrap();
        let t = tillit_crypto::TotpSecret::from_base32(secret, "Tillit", username).unwrap();
        let now = tillit_core::Clock::unix(&tillit_core::SystemClock);
        t.code_at(now + offset_steps * 30)
    }

    pub async fn login(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Logs a demo user in (TOTP computed when needed) and returns the session.
    pub async fn session(&self, username: &str) -> Session {
        let u = self.user(username);
        let mut body = json!({"username": username, "password": u["password"]});
        if !u["totp_secret"].is_null() {
            body["totp"] = json!(self.totp_now(username, 0));
        }
        let resp = self.login(body).await;
        assert_eq!(resp.status(), 200, "login of {username} failed");
        Session::from_response(resp).await
    }

    /// Runs `tillit admin ...` on this app's data dir.
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        admin(&self.dir, args)
    }
}

pub fn admin(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub struct Session {
    pub cookie: String,
    pub set_cookie: String,
    pub body: Value,
}

impl Session {
    pub async fn from_response(resp: reqwest::Response) -> Self {
        let set_cookie = resp
            .headers()
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let body = resp.json().await.unwrap();
        Session {
            cookie,
            set_cookie,
            body,
        }
    }

    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&self.cookie).unwrap());
        h
    }

    pub fn csrf(&self) -> &str {
        self.body["csrf_token"].as_str().unwrap()
    }
}

/// The security events of the data dir, newest first.
pub fn events(dir: &Path) -> Vec<Value> {
    stdout(&admin(dir, &["events", "--limit", "1000"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A logged-in browser-like client of the web app (a session cookie, HTML wanted, no redirects
/// followed).
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub s: Session,
}

impl<'a> Browser<'a> {
    pub async fn login(app: &'a TestApp, user: &str) -> Self {
        Browser {
            app,
            s: app.session(user).await,
        }
    }

    /// A page: its status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .app
            .client
            .get(self.app.url(path))
            .header(COOKIE, &self.s.cookie)
            .header(reqwest::header::ACCEPT, "text/html")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.text().await.unwrap())
    }

    /// A download: status, content type, content disposition and body.
    pub async fn download(&self, path: &str) -> (u16, String, String, String) {
        let r = self
            .app
            .client
            .get(self.app.url(path))
            .header(COOKIE, &self.s.cookie)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let h = |n| {
            r.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (ct, cd) = (h("content-type"), h("content-disposition"));
        (s, ct, cd, r.text().await.unwrap())
    }

    /// Posts a form; `csrf` adds the session's token. Returns the status, the redirect target
    /// and the page.
    pub async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        csrf: bool,
    ) -> (u16, String, String) {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if csrf {
            pairs.push(("csrf", self.s.csrf()));
        }
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .header(COOKIE, &self.s.cookie)
            .header(reqwest::header::ACCEPT, "text/html")
            .form(&pairs)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (s, loc, r.text().await.unwrap())
    }
}
