//! The storage story, run against the SQLite backend. Written against `dyn Store` so the
//! PostgreSQL backend can run the same story.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use tillit_core::*;
use tillit_store::*;
use tillit_store_sqlite::{SCHEMA_VERSION, SqliteKeyVault, SqliteStore};
use time::macros::datetime;

fn now() -> time::OffsetDateTime {
    datetime!(2026-11-22 10:00 UTC)
}

async fn story(store: Arc<dyn Store>) {
    assert!(store.is_empty().await.unwrap());
    let t = store.create_tenant("Nordby kommune", now()).await.unwrap();
    let other = store.create_tenant("Sørby sykehus", now()).await.unwrap();
    assert!(matches!(
        store.create_tenant("Nordby kommune", now()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(!store.is_empty().await.unwrap());

    let root = store
        .create_org_unit(
            &NewOrgUnit {
                id: OrgUnitId::random(),
                tenant: t.id.clone(),
                parent: None,
                name: "Nordby".into(),
            },
            now(),
        )
        .await
        .unwrap();
    let unit = store
        .create_org_unit(
            &NewOrgUnit {
                id: OrgUnitId::random(),
                tenant: t.id.clone(),
                parent: Some(root.id.clone()),
                name: "Hjemmetjenesten Nord".into(),
            },
            now(),
        )
        .await
        .unwrap();
    // A parent in another tenant is not visible.
    assert!(matches!(
        store
            .create_org_unit(
                &NewOrgUnit {
                    id: OrgUnitId::random(),
                    tenant: other.id.clone(),
                    parent: Some(root.id.clone()),
                    name: "X".into()
                },
                now()
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list_org_units(&t.id).await.unwrap().len(), 2);
    assert!(store.list_org_units(&other.id).await.unwrap().is_empty());

    let nurse = store
        .create_person(
            &NewPerson {
                id: PersonId::random(),
                tenant: t.id.clone(),
                kind: PersonKind::Staff,
                display_name: Some("Siri Berg".into()),
                professional_id: None,
                sealed_profile: None,
                national_id_index: None,
            },
            now(),
        )
        .await
        .unwrap();
    let patient = store
        .create_person(
            &NewPerson {
                id: PersonId::random(),
                tenant: t.id.clone(),
                kind: PersonKind::Patient,
                display_name: None,
                professional_id: None,
                sealed_profile: Some(vec![1, 2, 3]),
                national_id_index: Some(vec![9; 32]),
            },
            now(),
        )
        .await
        .unwrap();
    assert!(
        store
            .person(&other.id, &patient.id)
            .await
            .unwrap()
            .is_none(),
        "tenant isolation"
    );
    assert_eq!(
        store
            .list_persons(&t.id, Some(PersonKind::Patient))
            .await
            .unwrap()
            .len(),
        1
    );

    let user = store
        .create_user(
            &NewUser {
                id: UserId("u1".into()),
                tenant: t.id.clone(),
                person: nurse.id.clone(),
                username: Username::parse("siri.berg").unwrap(),
                password_hash: "$argon2id$x".into(),
                totp_secret: Some("SECRET".into()),
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(user.kind, PersonKind::Staff);
    let dup = NewUser {
        id: UserId("u2".into()),
        tenant: t.id.clone(),
        person: nurse.id.clone(),
        username: Username::parse("Siri.Berg").unwrap(),
        password_hash: "x".into(),
        totp_secret: None,
    };
    assert!(matches!(
        store.create_user(&dup, now()).await,
        Err(StoreError::Conflict(_))
    ));

    // TOTP replay guard: a step works once and never goes backwards.
    assert!(store.use_totp_step(&user.id, 100).await.unwrap());
    assert!(!store.use_totp_step(&user.id, 100).await.unwrap());
    assert!(!store.use_totp_step(&user.id, 99).await.unwrap());
    assert!(store.use_totp_step(&user.id, 101).await.unwrap());

    assert_eq!(store.record_login_failure(&user.id, None).await.unwrap(), 1);
    assert_eq!(
        store
            .record_login_failure(&user.id, Some(now()))
            .await
            .unwrap(),
        2
    );
    let u = store
        .user_by_username(&Username::parse("siri.berg").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (2, Some(now())));
    store.reset_login_failures(&user.id).await.unwrap();
    let u = store.user(&user.id).await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (0, None));

    let period = Period::new(now(), Some(datetime!(2027-01-01 0:00 UTC))).unwrap();
    store
        .assign_role(
            &NewRoleAssignment {
                tenant: t.id.clone(),
                person: nurse.id.clone(),
                role: Role::Nurse,
                org_unit: unit.id.clone(),
                period,
            },
            now(),
        )
        .await
        .unwrap();
    assert!(
        store
            .assign_role(
                &NewRoleAssignment {
                    tenant: t.id.clone(),
                    person: patient.id.clone(),
                    role: Role::Nurse,
                    org_unit: unit.id.clone(),
                    period
                },
                now()
            )
            .await
            .is_err()
    );
    let roles = store.role_assignments(&t.id, &nurse.id).await.unwrap();
    assert_eq!(active_roles(&roles, now()), vec![Role::Nurse]);
    assert!(active_roles(&roles, datetime!(2027-01-01 0:00 UTC)).is_empty());

    // Every change to what decisions read moves the tenant's access generation, and only
    // that tenant's.
    let before = store.access_generation(&t.id).await.unwrap();
    let other_before = store.access_generation(&other.id).await.unwrap();
    store
        .add_care_relationship(
            &NewCareRelationship {
                tenant: t.id.clone(),
                party: CareParty::OrgUnit(unit.id.clone()),
                patient: patient.id.clone(),
                purpose: "home care".into(),
                period,
                decided_by: None,
            },
            now(),
        )
        .await
        .unwrap();
    let rels = store
        .care_relationships_for_staff(&t.id, &nurse.id, std::slice::from_ref(&unit.id))
        .await
        .unwrap();
    assert_eq!(active_patients(&rels, now()), vec![patient.id.clone()]);
    let after_rel = store.access_generation(&t.id).await.unwrap();
    assert!(after_rel > before);
    store
        .set_tenant_settings(&t.id, &TenantSettings::default(), now())
        .await
        .unwrap();
    let after_settings = store.access_generation(&t.id).await.unwrap();
    assert!(after_settings > after_rel);
    store
        .end_care_relationship(&t.id, &rels[0].id, now())
        .await
        .unwrap();
    assert!(store.access_generation(&t.id).await.unwrap() > after_settings);
    assert_eq!(
        store.access_generation(&other.id).await.unwrap(),
        other_before
    );
    assert!(
        store
            .care_relationships_for_staff(&other.id, &nurse.id, std::slice::from_ref(&unit.id))
            .await
            .unwrap()
            .is_empty()
    );

    // Emergency access: open for a while, then gone; reasons are sealed.
    let window = EmergencyAccess {
        id: "e1".into(),
        tenant: t.id.clone(),
        staff: nurse.id.clone(),
        patient: patient.id.clone(),
        reason: "Akutt forverring, trenger journal".into(),
        opened_at: now(),
        expires_at: now() + time::Duration::minutes(60),
        review: "open".into(),
    };
    store.open_emergency_access(&window).await.unwrap();
    assert_eq!(
        store
            .emergency_patients(&t.id, &nurse.id, now())
            .await
            .unwrap(),
        vec![patient.id.clone()]
    );
    assert!(
        store
            .emergency_patients(&t.id, &nurse.id, now() + time::Duration::minutes(61))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .emergency_patients(&other.id, &nurse.id, now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.emergency_accesses(&t.id, 10).await.unwrap()[0].reason,
        "Akutt forverring, trenger journal"
    );
    let not_a_patient = EmergencyAccess {
        id: "e2".into(),
        patient: nurse.id.clone(),
        ..window.clone()
    };
    assert!(matches!(
        store.open_emergency_access(&not_a_patient).await,
        Err(StoreError::NotFound(_))
    ));

    let tok = store
        .create_api_token(
            &NewApiToken {
                id: "t1".into(),
                tenant: t.id.clone(),
                user: user.id.clone(),
                name: "cli".into(),
                hash: [7; 32],
                expires_at: datetime!(2026-11-23 0:00 UTC),
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.api_token_by_hash(&[7; 32]).await.unwrap().unwrap().id,
        tok.id
    );
    assert!(matches!(
        store.revoke_api_token(&other.id, "t1", now()).await,
        Err(StoreError::NotFound(_))
    ));
    store.revoke_api_token(&t.id, "t1", now()).await.unwrap();
    assert!(
        store
            .api_token_by_hash(&[7; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    let s = Session {
        id_hash: [1; 32],
        tenant: t.id.clone(),
        user: user.id.clone(),
        csrf_hash: [2; 32],
        created_at: now(),
        last_seen_at: now(),
        pending_totp: true,
        totp_enrolment: None,
    };
    store.create_session(&s).await.unwrap();
    store
        .set_session_totp_enrolment(&[1; 32], Some("ABC"))
        .await
        .unwrap();
    let back = store.session_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(
        (back.pending_totp, back.totp_enrolment.as_deref()),
        (true, Some("ABC"))
    );
    assert_eq!(
        store
            .delete_expired_sessions(now() + time::Duration::seconds(1), now())
            .await
            .unwrap(),
        1
    );
    assert!(store.session_by_hash(&[1; 32]).await.unwrap().is_none());

    let seq = store
        .append_security_event(&NewSecurityEvent {
            at: now(),
            tenant: Some(t.id.clone()),
            user: Some(user.id.clone()),
            username: Some("siri.berg".into()),
            kind: SecurityEventKind::LoginSuccess,
            outcome_ok: true,
            detail: "password+totp".into(),
            ip: Some("127.0.0.1".into()),
            user_agent: None,
        })
        .await
        .unwrap();
    let events = store.security_events(Some(&t.id), 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, seq);
    assert!(
        store
            .security_events(Some(&other.id), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sqlite_store_tells_the_whole_story() {
    let dir = tempdir();
    let store = open(&dir.join("tillit.db")).unwrap();
    story(Arc::new(store)).await;
}

#[tokio::test]
async fn reopening_keeps_data_and_schema() {
    let dir = tempdir();
    let path = dir.join("tillit.db");
    {
        let s = open(&path).unwrap();
        s.create_tenant("A", now()).await.unwrap();
    }
    let s = open(&path).unwrap();
    assert!(s.tenant_by_name("A").await.unwrap().is_some());
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

fn open(path: &std::path::Path) -> StoreResult<SqliteStore> {
    let vault = SqliteKeyVault::open(&path.with_extension("keys.db")).unwrap();
    let keyring =
        tillit_crypto::Keyring::new(tillit_crypto::Kek::from_bytes([3; 32]), Arc::new(vault));
    SqliteStore::open(path, Arc::new(KeyringCipher(Arc::new(keyring))))
}

fn file_bytes(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn a_newer_database_is_refused_and_left_untouched() {
    let dir = tempdir();
    let path = dir.join("tillit.db");
    drop(open(&path).unwrap());
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = file_bytes(&path);
    let err = open(&path).err().expect("must refuse");
    assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    assert!(err.to_string().contains("newer Tillit"));
    assert_eq!(file_bytes(&path), before, "file modified");
}

#[test]
fn a_corrupt_database_is_refused_and_left_untouched() {
    let dir = tempdir();
    let path = dir.join("tillit.db");
    {
        let s = open(&path).unwrap();
        drop(s);
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let mut bytes = file_bytes(&path);
    // Scribble over the second page onwards (table b-tree pages), keeping the header valid.
    let page = 4096;
    for b in bytes.iter_mut().skip(page).take(page * 3) {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = open(&path).err().expect("must refuse");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert_eq!(file_bytes(&path), bytes, "file modified");

    let junk = dir.join("junk.db");
    std::fs::write(&junk, b"this is not a database at all, just text").unwrap();
    let err = open(&junk).err().expect("must refuse");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempdir();
    let path = dir.join("other.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t (x); PRAGMA user_version = 3;")
            .unwrap();
    }
    let err = open(&path).err().expect("must refuse");
    assert!(err.to_string().contains("another application"), "{err}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tillit-store-test-{}", uuid_like()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uuid_like() -> String {
    PersonId::random().to_string()
}

#[tokio::test]
async fn identifying_fields_are_sealed_in_the_file() {
    let dir = tempdir();
    let path = dir.join("tillit.db");
    let s = open(&path).unwrap();
    let t = s.create_tenant("T", now()).await.unwrap();
    let p = s
        .create_person(
            &NewPerson {
                id: PersonId::random(),
                tenant: t.id.clone(),
                kind: PersonKind::Relative,
                display_name: Some("Gunnhild Uniqueperson".into()),
                professional_id: None,
                sealed_profile: None,
                national_id_index: None,
            },
            now(),
        )
        .await
        .unwrap();
    let u = NewUser {
        id: UserId("u9".into()),
        tenant: t.id.clone(),
        person: p.id.clone(),
        username: Username::parse("gunnhild.uniqueperson").unwrap(),
        password_hash: "$argon2id$x".into(),
        totp_secret: Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into()),
    };
    s.create_user(&u, now()).await.unwrap();
    let back = s.user_by_username(&u.username).await.unwrap().unwrap();
    assert_eq!(
        back.totp_secret.as_deref(),
        Some("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    );
    assert_eq!(
        s.person(&t.id, &p.id)
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Gunnhild Uniqueperson")
    );
    drop(s);
    for suffix in ["", "-wal"] {
        let bytes = std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default();
        for needle in ["Uniqueperson", "uniqueperson", "JBSWY3DPEHPK3PXP"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in clear"
            );
        }
    }
}
