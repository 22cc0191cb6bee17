//! Removing a tenant: every row of it goes (its audit log too), under a tombstone; the
//! append-only guards still hold for every other tenant; the operator tenant stays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use tillit_core::*;
use tillit_store::*;
use tillit_store_sqlite::{SqliteKeyVault, SqliteStore};
use time::macros::datetime;

fn now() -> time::OffsetDateTime {
    datetime!(2026-11-22 10:00 UTC)
}

fn event(tenant: &TenantId, patient: &str) -> NewAuditEvent {
    NewAuditEvent {
        at: now(),
        tenant: tenant.to_string(),
        action: "read".into(),
        outcome: AuditOutcome::Success,
        actor: AuditActor::default(),
        patient: Some(patient.into()),
        resource_type: Some("Observation".into()),
        resource_id: Some("o1".into()),
        categories: vec!["measurements".into()],
        count: 1,
        basis: None,
        reason: None,
        policies: Vec::new(),
        detail: None,
        client: AuditClient::default(),
    }
}

fn count(db: &std::path::Path, tenant: &TenantId) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT COUNT(*) FROM audit_events WHERE tenant_id = ?1",
        [tenant.as_str()],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn a_removed_tenant_leaves_only_its_tombstone() {
    let dir = std::env::temp_dir().join(format!("tillit-exit-test-{}", PersonId::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("tillit.db");
    let vault = SqliteKeyVault::open(&dir.join("keys.db")).unwrap();
    let keyring = Arc::new(tillit_crypto::Keyring::new(
        tillit_crypto::Kek::from_bytes([5; 32]),
        Arc::new(vault),
    ));
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&db, Arc::new(KeyringCipher(keyring))).unwrap());
    let gone = store.create_tenant("Sørby sykehus", now()).await.unwrap();
    let kept = store.create_tenant("Nordby kommune", now()).await.unwrap();
    let ops = store.create_tenant("Tillit drift", now()).await.unwrap();
    store.set_operator_tenant(&ops.id).await.unwrap();
    for t in [&gone, &kept] {
        store
            .create_org_unit(
                &NewOrgUnit {
                    id: OrgUnitId::random(),
                    tenant: t.id.clone(),
                    parent: None,
                    name: "Post 1".into(),
                },
                now(),
            )
            .await
            .unwrap();
        store
            .append_audit(AuditBatch {
                events: vec![event(&t.id, "p1"), event(&t.id, "p2")],
                security: vec![NewSecurityEvent {
                    at: now(),
                    tenant: Some(t.id.clone()),
                    user: None,
                    username: None,
                    kind: SecurityEventKind::PolicyChanged,
                    outcome_ok: true,
                    detail: "x".into(),
                    ip: None,
                    user_agent: None,
                }],
                ..AuditBatch::default()
            })
            .await
            .unwrap();
        store
            .add_audit_checkpoint(
                &t.id,
                &StoredCheckpoint {
                    size: 2,
                    at: now(),
                    note: "note".into(),
                },
            )
            .await
            .unwrap();
    }
    let removed = store
        .remove_tenant(&gone.id, "{\"draft\":true}", now())
        .await
        .unwrap();
    assert_eq!(removed.rows["audit_events"], 2);
    assert_eq!(removed.rows["audit_checkpoints"], 1);
    assert_eq!(removed.rows["org_units"], 1);
    assert_eq!(removed.rows["security_events"], 1);
    assert_eq!(removed.rows["tenants"], 1);
    assert!(store.tenant(&gone.id).await.unwrap().is_none());
    assert_eq!(store.audit_head(&gone.id).await.unwrap().size, 0);
    assert_eq!(store.audit_head(&kept.id).await.unwrap().size, 2);
    assert_eq!(store.audit_checkpoints(&kept.id).await.unwrap().len(), 1);
    let stone = store
        .deleted_tenant("Sørby sykehus")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stone.id, gone.id);
    assert_eq!(stone.draft, "{\"draft\":true}");
    assert_eq!(stone.removed, removed);
    assert!(matches!(
        store.remove_tenant(&gone.id, "{}", now()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.remove_tenant(&ops.id, "{}", now()).await,
        Err(StoreError::Invalid(_))
    ));
    // The guards still hold for the tenants that remain.
    let c = rusqlite::Connection::open(&db).unwrap();
    for sql in [
        "DELETE FROM audit_events WHERE tenant_id = ?1",
        "DELETE FROM audit_checkpoints WHERE tenant_id = ?1",
        "DELETE FROM security_events WHERE tenant_id = ?1",
    ] {
        let e = c.execute(sql, [kept.id.as_str()]).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(count(&db, &kept.id), 2);
    assert_eq!(count(&db, &gone.id), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tenant_deletion_destroys_its_keys_and_records_it_in_the_vaults_ledger() {
    let dir = std::env::temp_dir().join(format!("tillit-exit-ledger-{}", PersonId::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.db");
    let vault = Arc::new(SqliteKeyVault::open(&path).unwrap());
    let ring = tillit_crypto::Keyring::new(tillit_crypto::Kek::from_bytes([5; 32]), vault.clone());
    let sealed = ring.seal_for_patient("t1", "p1", "x", b"one").unwrap();
    let _ = ring.blind_index("t1", "f", "v").unwrap();
    let other = ring.seal_for_patient("t2", "p2", "x", b"two").unwrap();
    assert!(ring.deleted_tenants().unwrap().is_empty());

    let gone = ring.delete_tenant("t1", 1_800_000_000).unwrap();
    assert_eq!(gone, ["patient/t1/p1", "tenant-index/t1", "tenant/t1"]);
    assert!(ring.open_for_patient("t1", "p1", "x", &sealed).is_err());
    assert!(ring.open_for_patient("t2", "p2", "x", &other).is_ok());
    // Again (a resumed deletion): nothing left to destroy, the first time kept.
    assert!(ring.delete_tenant("t1", 1_900_000_000).unwrap().is_empty());
    drop(ring);
    drop(vault);
    // The ledger is in the file, beside the keys.
    let reopened = SqliteKeyVault::open(&path).unwrap();
    assert_eq!(
        reopened.deleted_tenants().unwrap(),
        [("t1".to_string(), 1_800_000_000)]
    );
    assert!(
        tillit_crypto::KeyVault::ids(&reopened)
            .unwrap()
            .iter()
            .all(|id| !id.contains("/t1"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
