//! Login, TOTP, lockout, sessions, CSRF, logout and API tokens.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn staff_log_in_with_password_and_totp_and_the_cookie_is_locked_down() {
    let app = spawn_demo();
    let u = app.user("lege.lund").clone();
    // Without the code: refused, with the same generic answer as a wrong password.
    let r = app
        .login(json!({"username": "lege.lund", "password": u["password"]}))
        .await;
    assert_eq!(r.status(), 401);
    let s = app.session("lege.lund").await;
    for attr in [
        "__Host-tillit_session=",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(
            s.set_cookie.contains(attr),
            "cookie lacks {attr}: {}",
            s.set_cookie
        );
    }
    assert!(
        !s.set_cookie.contains("Domain"),
        "a __Host- cookie has no Domain"
    );
    let me: serde_json::Value = app
        .client
        .get(app.url("/api/me"))
        .headers(s.headers())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "lege.lund");
    assert_eq!(me["tenant"]["name"], "Nordby kommune");
    assert_eq!(me["roles"], json!(["physician"]));
    assert_eq!(me["auth"], "session");
}

#[tokio::test]
async fn a_totp_code_works_only_once() {
    let app = spawn_demo();
    let u = app.user("sykepleier.haugen").clone();
    let code = app.totp_now("sykepleier.haugen", 0);
    let body = json!({"username": "sykepleier.haugen", "password": u["password"], "totp": code});
    assert_eq!(app.login(body.clone()).await.status(), 200);
    assert_eq!(
        app.login(body).await.status(),
        401,
        "replayed code accepted"
    );
    // An older code is refused too once a newer one was used; the next one works.
    let next = json!({"username": "sykepleier.haugen", "password": u["password"], "totp": app.totp_now("sykepleier.haugen", 1)});
    assert_eq!(app.login(next).await.status(), 200);
    let prev = json!({"username": "sykepleier.haugen", "password": u["password"], "totp": app.totp_now("sykepleier.haugen", -1)});
    assert_eq!(app.login(prev).await.status(), 401);
    let events = events(&app.dir);
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "login.failure" && e["detail"] == "totp_replayed")
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let app = spawn_demo();
    let a = app
        .login(json!({"username": "finnes.ikke", "password": "whatever-password"}))
        .await;
    let b = app
        .login(json!({"username": "astrid.haugland", "password": "whatever-password"}))
        .await;
    assert_eq!(a.status(), 401);
    assert_eq!(b.status(), 401);
    let (a, b): (serde_json::Value, serde_json::Value) =
        (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a, b);
    assert_eq!(a["error"]["code"], "TIL-AUTH-002");
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_unknown_names_alike() {
    let app = spawn_demo();
    let u = app.user("berit.solberg").clone();
    for i in 0..5 {
        let r = app
            .login(json!({"username": "berit.solberg", "password": format!("wrong-password-{i}")}))
            .await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    // Locked: even the right password is refused with 429 and a Retry-After.
    let r = app
        .login(json!({"username": "berit.solberg", "password": u["password"]}))
        .await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    // Unknown usernames lock the same way, so 429 does not reveal that an account exists.
    for _ in 0..5 {
        app.login(json!({"username": "ukjent.bruker", "password": "wrong-password"}))
            .await;
    }
    assert_eq!(
        app.login(json!({"username": "ukjent.bruker", "password": "x-password"}))
            .await
            .status(),
        429
    );
    let events = events(&app.dir);
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "login.lockout" && e["username"] == "berit.solberg")
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "login.failure" && e["detail"] == "locked")
    );
    // Other accounts are unaffected.
    app.session("astrid.haugland").await;
}

#[tokio::test]
async fn every_login_gets_a_new_session_and_logout_ends_it() {
    let app = spawn_demo();
    let first = app.session("astrid.haugland").await;
    // Logging in again while presenting the old cookie replaces it (no fixation).
    let u = app.user("astrid.haugland").clone();
    let r = app
        .client
        .post(app.url("/auth/login"))
        .headers(first.headers())
        .json(&json!({"username": "astrid.haugland", "password": u["password"]}))
        .send()
        .await
        .unwrap();
    let second = Session::from_response(r).await;
    assert_ne!(first.cookie, second.cookie);
    assert_eq!(
        app.client
            .get(app.url("/api/me"))
            .headers(first.headers())
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Logout without the CSRF token is refused; with it, the session ends.
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .headers(second.headers())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .headers(second.headers())
        .header("x-csrf-token", second.csrf())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        app.client
            .get(app.url("/api/me"))
            .headers(second.headers())
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let kinds: Vec<_> = events(&app.dir)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"logout".to_string()));
    assert!(kinds.contains(&"login.success".to_string()));
}

#[tokio::test]
async fn the_web_login_form_needs_its_csrf_token() {
    let app = spawn_demo();
    let u = app.user("astrid.haugland").clone();
    let page = app.client.get(app.url("/login")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let form = |csrf: &str| {
        format!(
            "csrf={csrf}&username=astrid.haugland&password={}&totp=",
            u["password"].as_str().unwrap()
        )
    };
    let post = |body: String, cookie: Option<&str>| {
        let mut rb = app
            .client
            .post(app.url("/auth/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = cookie {
            rb = rb.header("cookie", c);
        }
        rb.send()
    };
    assert_eq!(post(form(&token), None).await.unwrap().status(), 403);
    assert_eq!(
        post(form("forged"), Some(&cookie)).await.unwrap().status(),
        403
    );
    let ok = post(form(&token), Some(&cookie)).await.unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/");
    // A cross-site post is refused whatever it carries.
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"username": "astrid.haugland", "password": u["password"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn staff_without_totp_must_enrol_and_the_page_shows_a_qr_code() {
    let app = spawn_demo();
    let tenant = "Nordby kommune";
    let person = stdout(&app.admin(&[
        "person",
        "create",
        "--tenant",
        tenant,
        "--kind",
        "staff",
        "--name",
        "Ny Ansatt",
    ]))
    .trim()
    .to_string();
    let out = app.admin(&[
        "user",
        "create",
        "--tenant",
        tenant,
        "--person",
        &person,
        "--username",
        "ny.ansatt",
    ]);
    let text = stdout(&out);
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_string();
    let r = app
        .login(json!({"username": "ny.ansatt", "password": password}))
        .await;
    assert_eq!(r.status(), 200);
    let s = Session::from_response(r).await;
    assert_eq!(s.body["status"], "totp_enrollment_required");
    // Not logged in for anything else yet.
    assert_eq!(
        app.client
            .get(app.url("/api/me"))
            .headers(s.headers())
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let page = app
        .client
        .get(app.url("/account/totp"))
        .headers(s.headers())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<svg"), "no QR code");
    let uri = html
        .split("<code class=\"uri\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(uri.starts_with("otpauth://totp/Tillit:ny.ansatt?"), "{uri}");
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let totp = tillit_crypto::TotpSecret::from_base32(secret, "Tillit", "ny.ansatt").unwrap();
    let now = tillit_core::Clock::unix(&tillit_core::SystemClock);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = app
        .client
        .post(app.url("/account/totp"))
        .headers(s.headers())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&code={}", totp.code_at(now)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let upgraded = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(upgraded, s.cookie, "a new session id after enrolment");
    let me = app
        .client
        .get(app.url("/api/me"))
        .header("cookie", &upgraded)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // From now on the code is required.
    let r = app
        .login(json!({"username": "ny.ansatt", "password": password}))
        .await;
    assert_eq!(r.status(), 401);
    let r = app
        .login(
            json!({"username": "ny.ansatt", "password": password, "totp": totp.code_at(now + 30)}),
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn api_tokens_are_shown_once_work_as_bearer_and_can_be_revoked() {
    let app = spawn_demo();
    let out = app.admin(&["token", "create", "--user", "lege.lund", "--ttl", "8h"]);
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("tlt_"));
    let bearer = format!("Bearer {token}");
    let me: serde_json::Value = app
        .client
        .get(app.url("/api/me"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["username"].as_str(), me["auth"].as_str()),
        (Some("lege.lund"), Some("token"))
    );
    // Stored only as a hash: the token string is nowhere in the database files.
    for f in ["tillit.db", "tillit.db-wal"] {
        let bytes = std::fs::read(app.dir.join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token in {f}"
        );
    }
    let list = stdout(&app.admin(&["token", "list", "--user", "lege.lund"]));
    let id = list
        .lines()
        .find(|l| l.contains("\tcli\t"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    stdout(&app.admin(&["token", "revoke", "--user", "lege.lund", "--id", &id]));
    let r = app
        .client
        .get(app.url("/api/me"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        events(&app.dir)
            .iter()
            .any(|e| e["kind"] == "token.use" && e["username"] == "lege.lund")
    );
    // A short-lived token expires.
    let short = stdout(&app.admin(&["token", "create", "--user", "lege.lund", "--ttl", "1s"]))
        .trim()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app
        .client
        .get(app.url("/api/me"))
        .header("authorization", format!("Bearer {short}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // No credentials at all.
    assert_eq!(
        app.client
            .get(app.url("/api/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.client
            .get(app.url("/api/me"))
            .header("authorization", "Bearer nonsense")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}
