//! The patient's rights in storage: restricted records (and the access generation they
//! bump), the tenant's retained categories, a patient's versions, the database part of an
//! erasure in one transaction, and the keyring vault's erasure ledger as the tombstone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use tillit_core::*;
use tillit_crypto::{KeyError, KeyVault};
use tillit_store::*;
use tillit_store_sqlite::{SqliteKeyVault, SqliteStore};
use time::macros::datetime;

fn now() -> time::OffsetDateTime {
    datetime!(2026-11-22 10:00 UTC)
}

fn meta(rt: &str, id: &str, version: i64, patient: &str, category: &str) -> ResourceMeta {
    ResourceMeta {
        resource_type: rt.into(),
        id: id.into(),
        version,
        patient: Some(patient.into()),
        category: category.into(),
        last_updated: now(),
        deleted: false,
    }
}

fn write(m: ResourceMeta, body: &[u8]) -> ResourceWrite {
    let expected = (m.version > 1).then(|| m.version - 1);
    let patient = m.patient.clone().unwrap_or_default();
    ResourceWrite {
        meta: m,
        expected,
        key_scope: KeyScope::Patient,
        body: Some(body.to_vec()),
        index: vec![IndexRow::Reference {
            param: "patient".into(),
            target_type: "Patient".into(),
            target_id: patient,
        }],
        derived: None,
    }
}

fn by_patient(rt: &str, patient: &str) -> Query {
    Query {
        resource_type: rt.into(),
        all_of: vec![vec![Criterion::Reference {
            param: "patient".into(),
            target_type: "Patient".into(),
            target_id: patient.into(),
        }]],
        limit: 100,
        ..Query::default()
    }
}

#[tokio::test]
async fn restriction_retention_and_erasure_in_storage() {
    let dir = std::env::temp_dir().join(format!("tillit-rights-test-{}", PersonId::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let vault = Arc::new(SqliteKeyVault::open(&dir.join("keys.db")).unwrap());
    let keyring = Arc::new(tillit_crypto::Keyring::new(
        tillit_crypto::Kek::from_bytes([5; 32]),
        vault.clone(),
    ));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(
            &dir.join("tillit.db"),
            Arc::new(KeyringCipher(keyring.clone())),
        )
        .unwrap(),
    );
    let t = store.create_tenant("Nordby", now()).await.unwrap().id;
    let p = PersonId::random();
    store
        .create_person(
            &NewPerson {
                id: p.clone(),
                tenant: t.clone(),
                kind: PersonKind::Patient,
                display_name: None,
                professional_id: None,
                sealed_profile: Some(b"sealed".to_vec()),
                national_id_index: Some(vec![7; 32]),
            },
            now(),
        )
        .await
        .unwrap();
    let ps = p.as_str();
    store
        .write_resources(
            &t,
            vec![
                write(meta("Observation", "o1", 1, ps, "measurements"), b"pulse-1"),
                write(meta("Condition", "c1", 1, ps, "clinical-notes"), b"note-1"),
            ],
        )
        .await
        .unwrap();
    store
        .write_resources(
            &t,
            vec![
                write(meta("Observation", "o1", 2, ps, "measurements"), b"pulse-2"),
                write(meta("Condition", "c1", 2, ps, "clinical-notes"), b"note-2"),
            ],
        )
        .await
        .unwrap();

    // Restriction: stored with a sealed reason, bumps the access generation, lifted once.
    let g0 = store.access_generation(&t).await.unwrap();
    let r = Restriction {
        resource_type: "Observation".into(),
        id: "o1".into(),
        patient: p.clone(),
        reason: "I dispute the value".into(),
        by: p.clone(),
        at: now(),
    };
    store
        .set_restricted(&t, "Observation", "o1", Some(&r))
        .await
        .unwrap();
    assert_eq!(store.restricted_records(&t).await.unwrap(), vec![r]);
    assert!(store.access_generation(&t).await.unwrap() > g0);
    let db = rusqlite::Connection::open(dir.join("tillit.db")).unwrap();
    let raw: Vec<u8> = db
        .query_row("SELECT reason FROM restricted_records", [], |r| r.get(0))
        .unwrap();
    assert!(
        !raw.windows(7).any(|w| w == b"dispute"),
        "the reason is sealed"
    );

    // Retention: the defaults until set; a code with a space is refused.
    assert_eq!(store.retained_categories(&t).await.unwrap(), None);
    store
        .set_retained_categories(&t, &["clinical-notes".into()], now())
        .await
        .unwrap();
    assert_eq!(
        store.retained_categories(&t).await.unwrap(),
        Some(vec!["clinical-notes".to_string()])
    );
    assert!(
        store
            .set_retained_categories(&t, &["a b".into()], now())
            .await
            .is_err()
    );

    // Every version of the compartment.
    let versions = store.patient_versions(&t, &p).await.unwrap();
    assert_eq!(versions.len(), 4);

    // The erasure: the measurement goes with every version, index row and mark; the note's
    // versions are sealed again (under the tenant key); the profile is cleared.
    let done = store
        .erase_patient_data(
            &t,
            &PatientErasure {
                patient: p.clone(),
                remove: vec![("Observation".into(), "o1".into())],
                reseal: vec![
                    ResealedVersion {
                        resource_type: "Condition".into(),
                        id: "c1".into(),
                        version: 1,
                        body: b"tenant-1".to_vec(),
                    },
                    ResealedVersion {
                        resource_type: "Condition".into(),
                        id: "c1".into(),
                        version: 2,
                        body: b"tenant-2".to_vec(),
                    },
                ],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        done,
        ErasureDone {
            resources_removed: 1,
            versions_removed: 2,
            versions_resealed: 2
        }
    );
    assert!(
        store
            .current_resource(&t, "Observation", "o1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .search_resources(&t, &by_patient("Observation", ps))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .search_resources(&t, &by_patient("Condition", ps))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.restricted_records(&t).await.unwrap().is_empty());
    let kept = store
        .current_resource(&t, "Condition", "c1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.key_scope, KeyScope::Tenant);
    assert_eq!(kept.body.as_deref(), Some(&b"tenant-2"[..]));
    let person = store.person(&t, &p).await.unwrap().unwrap();
    assert!(person.sealed_profile.is_none() && person.national_id_index.is_none());
    let left: i64 = db
        .query_row(
            "SELECT count(*) FROM search_refs WHERE id = 'o1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "no index row outlives its resource");

    // The ledger in the keyring vault, through the trait: the tombstone.
    let k = t.as_str();
    let _ = keyring.seal_for_patient(k, ps, "x", b"d").unwrap();
    assert!(!vault.is_erased(k, ps).unwrap());
    assert!(keyring.erase_patient(k, ps, 1_790_000_000).unwrap());
    assert!(vault.is_erased(k, ps).unwrap());
    assert!(matches!(
        keyring.seal_for_patient(k, ps, "x", b"d"),
        Err(KeyError::Erased(_))
    ));
    let ledger = KeyVault::erasures(vault.as_ref()).unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].patient.as_str(), ledger[0].at),
        (ps, 1_790_000_000)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
