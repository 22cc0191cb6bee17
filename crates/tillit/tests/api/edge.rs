//! The HTTP edge: security headers on every response, health and metrics, bad input.

use crate::helpers::*;
use serde_json::json;

const REQUIRED: &[(&str, &str)] = &[
    ("strict-transport-security", "max-age="),
    ("content-security-policy", "frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

fn check_headers(r: &reqwest::Response, what: &str) {
    for (name, want) in REQUIRED {
        let v = r
            .headers()
            .get(*name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap();
        assert!(v.contains(want), "{what}: {name} = {v}");
    }
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_demo();
    let c = &app.client;
    let cases = [
        ("GET /healthz", c.get(app.url("/healthz"))),
        ("GET /login", c.get(app.url("/login"))),
        ("GET /", c.get(app.url("/"))),
        ("GET /nope", c.get(app.url("/nope"))),
        ("GET /api/me", c.get(app.url("/api/me"))),
        (
            "POST /auth/login bad",
            c.post(app.url("/auth/login")).json(&json!({"x": 1})),
        ),
        ("DELETE /healthz", c.delete(app.url("/healthz"))),
        (
            "GET /static/tillit.css",
            c.get(app.url("/static/tillit.css")),
        ),
    ];
    for (what, rb) in cases {
        let r = rb.send().await.unwrap();
        check_headers(&r, what);
    }
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_demo();
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "ready\n".to_string())
    );
    app.login(json!({"username": "nobody.here", "password": "wrong-password"}))
        .await;
    let m = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("tillit_http_requests_total{"), "{m}");
    assert!(
        m.contains("tillit_logins_total{outcome=\"failure\"} 1"),
        "{m}"
    );
    assert!(m.contains("tillit_build_info"), "{m}");
    assert!(m.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_never_a_panic() {
    let app = spawn_demo();
    let c = &app.client;
    let login = app.url("/auth/login");
    let big = vec![b'a'; 6 * 1024 * 1024];
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "malformed json",
            c.post(&login)
                .header("content-type", "application/json")
                .body("{\"username\":"),
            400,
        ),
        (
            "invalid utf-8",
            c.post(&login)
                .header("content-type", "application/json")
                .body(vec![0xff, 0xfe, b'{']),
            400,
        ),
        (
            "wrong type",
            c.post(&login)
                .header("content-type", "text/plain")
                .body("hello"),
            415,
        ),
        ("no type", c.post(&login).body("hello"), 415),
        (
            "missing fields",
            c.post(&login).json(&json!({"username": "a"})),
            400,
        ),
        (
            "wrong field type",
            c.post(&login).json(&json!({"username": 5, "password": []})),
            400,
        ),
        (
            "oversized",
            c.post(&login)
                .header("content-type", "application/json")
                .body(big),
            413,
        ),
        (
            "huge username",
            c.post(&login)
                .json(&json!({"username": "x".repeat(100_000), "password": "y"})),
            401,
        ),
        (
            "control chars",
            c.post(&login)
                .json(&json!({"username": "a\u{0}b\n", "password": "\u{0}"})),
            401,
        ),
        ("bad method", c.put(app.url("/api/me")), 405),
        (
            "bad bearer",
            c.get(app.url("/api/me"))
                .header("authorization", "Basic Zm9vOmJhcg=="),
            401,
        ),
        (
            "bad cookie",
            c.get(app.url("/api/me"))
                .header("cookie", "__Host-tillit_session=%%%; x"),
            401,
        ),
    ];
    for (what, rb, status) in cases {
        let r = rb.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let body: serde_json::Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    // Still alive and well.
    assert_eq!(
        c.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let log = std::fs::read_to_string(app.dir.with_extension("log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn the_plain_listener_only_redirects_to_https() {
    // Make TLS material with a demo run, then `serve` with a config file.
    let mut app = spawn_demo();
    app.keep_dir();
    let dir = app.dir.clone();
    drop(app);
    let port = free_port();
    let rport = free_port();
    let cfg = dir.join("tillit.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{port}\"\nredirect_listen = \"127.0.0.1:{rport}\"\n[tls]\ncert = \"tls/server.pem\"\nkey = \"tls/server.key\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut resp = None;
    for _ in 0..200 {
        if let Ok(r) = plain
            .get(format!("http://127.0.0.1:{rport}/api/me?x=1"))
            .send()
            .await
        {
            resp = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = resp.expect("redirect listener did not start");
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://localhost:{port}/api/me?x=1")
    );
    let body = r.text().await.unwrap();
    assert!(body.is_empty());
    // A Host header does not steer the redirect elsewhere.
    let r = plain
        .get(format!("http://127.0.0.1:{rport}/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&format!("https://localhost:{port}/"))
    );
    let https = client_for(&dir.join("tls/ca.pem"));
    assert_eq!(
        https
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_names_the_key_and_the_reason() {
    let dir = tempdir("cfg");
    let run = |body: &str, env: &[(&str, &str)]| {
        let cfg = dir.join("tillit.toml");
        std::fs::write(&cfg, body).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&cfg)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        err
    };
    let e = run("[server]\nlisten = \"nowhere\"\n", &[]);
    assert!(e.contains("server.listen"), "{e}");
    let e = run("[sesion]\nidle_minutes = 5\n", &[]);
    assert!(e.contains("sesion"), "{e}");
    let e = run("", &[("TILLIT_SESSION__STAFF_IDLE_MINUTES", "zero")]);
    assert!(
        e.to_lowercase().contains("session.staff_idle_minutes"),
        "{e}"
    );
    let e = run(&format!("data_dir = \"{}\"\n", dir.display()), &[]);
    assert!(e.contains("TLS certificate"), "{e}");
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
