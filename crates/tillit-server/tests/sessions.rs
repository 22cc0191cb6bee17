//! Session lifetimes, driven through the router with a clock the test moves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use std::net::SocketAddr;
use std::sync::Arc;
use tillit_core::{ManualClock, OrgUnitId, Period, PersonId, PersonKind, Role, Username};
use tillit_crypto::{Kek, Keyring, PasswordHasher, SecretString, TotpSecret};
use tillit_server::{AppState, Config};
use tillit_store::*;
use tillit_store_sqlite::{SqliteKeyVault, SqliteStore};
use time::Duration;
use time::macros::datetime;
use tower::ServiceExt;

struct Harness {
    clock: Arc<ManualClock>,
    app: axum::Router,
    totp: TotpSecret,
    state: AppState,
    tenant: tillit_core::TenantId,
    patient: PersonId,
    _dir: std::path::PathBuf,
}

async fn harness(mut config: Config) -> Harness {
    let dir = std::env::temp_dir().join(format!("tillit-sessions-{}", PersonId::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let vault = SqliteKeyVault::open(&dir.join("keys.db")).unwrap();
    let keyring = Arc::new(Keyring::new(Kek::from_bytes([1; 32]), Arc::new(vault)));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(
            &dir.join("tillit.db"),
            Arc::new(KeyringCipher(keyring.clone())),
        )
        .unwrap(),
    );
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-22 12:00 UTC)));
    let now = datetime!(2026-11-22 12:00 UTC);
    // Cheap hashing parameters: these tests are about sessions, not Argon2.
    let hasher = Arc::new(PasswordHasher::with_params(1024, 1, 1).unwrap());
    let t = store.create_tenant("T", now).await.unwrap();
    let unit = store
        .create_org_unit(
            &NewOrgUnit {
                id: OrgUnitId::random(),
                tenant: t.id.clone(),
                parent: None,
                name: "U".into(),
            },
            now,
        )
        .await
        .unwrap();
    let totp = TotpSecret::generate("Tillit", "nurse.one").unwrap();
    let mut patient = None;
    for (name, kind) in [
        ("nurse.one", PersonKind::Staff),
        ("patient.one", PersonKind::Patient),
    ] {
        let person = store
            .create_person(
                &NewPerson {
                    id: PersonId::random(),
                    tenant: t.id.clone(),
                    kind,
                    display_name: None,
                    professional_id: None,
                    sealed_profile: None,
                    national_id_index: None,
                },
                now,
            )
            .await
            .unwrap();
        if kind == PersonKind::Patient {
            patient = Some(person.id.clone());
        }
        store
            .create_user(
                &NewUser {
                    id: UserId(name.into()),
                    tenant: t.id.clone(),
                    person: person.id.clone(),
                    username: Username::parse(name).unwrap(),
                    password_hash: hasher
                        .hash(&SecretString::new("correct horse battery"))
                        .unwrap(),
                    totp_secret: (kind == PersonKind::Staff)
                        .then(|| totp.base32().expose().to_string()),
                },
                now,
            )
            .await
            .unwrap();
        if kind == PersonKind::Staff {
            store
                .assign_role(
                    &NewRoleAssignment {
                        tenant: t.id.clone(),
                        person: person.id,
                        role: Role::Nurse,
                        org_unit: unit.id.clone(),
                        period: Period::new(now, None).unwrap(),
                    },
                    now,
                )
                .await
                .unwrap();
        }
    }
    config.data_dir = dir.clone();
    let state = AppState::new(store, clock.clone(), hasher, keyring, config);
    Harness {
        clock,
        app: tillit_server::router(state.clone()),
        totp,
        state,
        tenant: t.id,
        patient: patient.unwrap(),
        _dir: dir,
    }
}

impl Harness {
    async fn call(&self, req: Request<Body>) -> axum::response::Response {
        let mut req = req;
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
        self.app.clone().oneshot(req).await.unwrap()
    }

    async fn login(&self, username: &str, code: Option<String>) -> String {
        let body = serde_json::json!({"username": username, "password": "correct horse battery", "totp": code});
        let req = Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.call(req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    async fn me(&self, cookie: &str) -> StatusCode {
        self.call(
            Request::get("/api/me")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .status()
    }

    fn code(&self) -> String {
        self.totp.code_at(self.clock.now().unix_timestamp())
    }
}

use tillit_core::Clock;

#[tokio::test]
async fn staff_sessions_end_after_15_idle_minutes_but_activity_keeps_them() {
    let h = harness(Config::default()).await;
    let cookie = h.login("nurse.one", Some(h.code())).await;
    for _ in 0..6 {
        h.clock.advance(Duration::minutes(10));
        assert_eq!(
            h.me(&cookie).await,
            StatusCode::OK,
            "active use keeps the session"
        );
    }
    h.clock.advance(Duration::minutes(15));
    assert_eq!(h.me(&cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn patients_get_the_longer_configurable_idle_timeout() {
    let mut cfg = Config::default();
    cfg.session.idle_minutes = 45;
    let h = harness(cfg).await;
    let cookie = h.login("patient.one", None).await;
    h.clock.advance(Duration::minutes(40));
    assert_eq!(h.me(&cookie).await, StatusCode::OK);
    h.clock.advance(Duration::minutes(46));
    assert_eq!(h.me(&cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_absolute_timeout_ends_even_an_active_session() {
    let mut cfg = Config::default();
    cfg.session.absolute_minutes = 60;
    let h = harness(cfg).await;
    let cookie = h.login("patient.one", None).await;
    for _ in 0..5 {
        h.clock.advance(Duration::minutes(10));
        assert_eq!(h.me(&cookie).await, StatusCode::OK);
    }
    h.clock.advance(Duration::minutes(10));
    assert_eq!(h.me(&cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_account_lockout_ends_by_itself_and_doubles_when_repeated() {
    let h = harness(Config::default()).await;
    let bad = || {
        let body = serde_json::json!({"username": "patient.one", "password": "wrong wrong wrong"});
        Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(h.call(bad()).await.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = h.call(bad()).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers()[header::RETRY_AFTER], "60");
    h.clock.advance(Duration::seconds(61));
    // Unlocked; five more failures lock it for twice as long.
    for _ in 0..5 {
        assert_eq!(h.call(bad()).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(h.call(bad()).await.headers()[header::RETRY_AFTER], "120");
    h.clock.advance(Duration::seconds(121));
    h.login("patient.one", None).await;
}

#[tokio::test]
async fn one_address_guessing_many_names_is_throttled() {
    let mut cfg = Config::default();
    cfg.login.ip_max_failures = 10;
    let h = harness(cfg).await;
    for i in 0..10 {
        let body =
            serde_json::json!({"username": format!("guess{i}"), "password": "wrong wrong wrong"});
        let req = Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        assert_eq!(h.call(req).await.status(), StatusCode::UNAUTHORIZED);
    }
    let body = serde_json::json!({"username": "patient.one", "password": "correct horse battery"});
    let req = Request::post("/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(h.call(req).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn emergency_access_opens_for_its_window_and_then_expires() {
    use tillit_server::authz::{Action, Actor};
    use tillit_server::fhir::service::Fhir;
    let h = harness(Config::default()).await;
    let pid = h.patient.to_string();
    // The patient's record, written as the record system; the nurse has no relationship.
    let fhir = Fhir::new(
        &h.state,
        Actor::System {
            tenant: &h.tenant,
            purpose: "test",
        },
    );
    let (w, _) = fhir
        .prepare(
            "Patient",
            &pid,
            1,
            None,
            serde_json::json!({"resourceType": "Patient", "active": true}),
            Action::Create,
        )
        .await
        .unwrap();
    h.state
        .store
        .write_resources(&h.tenant, vec![w])
        .await
        .unwrap();
    let token = "tlt_emergency-window-test";
    h.state
        .store
        .create_api_token(
            &NewApiToken {
                id: PersonId::random().to_string(),
                tenant: h.tenant.clone(),
                user: UserId("nurse.one".into()),
                name: "test".into(),
                hash: tillit_crypto::token_hash(token),
                expires_at: h.clock.now() + Duration::days(1),
            },
            h.clock.now(),
        )
        .await
        .unwrap();
    let read = || {
        Request::get(format!("/fhir/r4/Patient/{pid}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let open = |minutes: i64| {
        let body = serde_json::json!({"resourceType": "Parameters", "parameter": [
            {"name": "reason", "valueString": "Pasienten er akutt syk og ukontaktbar"},
            {"name": "minutes", "valueInteger": minutes}]});
        Request::post(format!("/fhir/r4/Patient/{pid}/$emergency-access"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/fhir+json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    assert_eq!(h.call(read()).await.status(), StatusCode::FORBIDDEN);
    // The tenant caps the window; asking for more is refused with the limit.
    h.state
        .store
        .set_tenant_settings(
            &h.tenant,
            &TenantSettings {
                emergency_minutes: 20,
                emergency_overrides_block: true,
            },
            h.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(h.call(open(30)).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(h.call(open(15)).await.status(), StatusCode::OK);
    assert_eq!(h.call(read()).await.status(), StatusCode::OK);
    h.clock.advance(Duration::minutes(14));
    assert_eq!(h.call(read()).await.status(), StatusCode::OK);
    h.clock.advance(Duration::minutes(1));
    assert_eq!(h.call(read()).await.status(), StatusCode::FORBIDDEN);
}
