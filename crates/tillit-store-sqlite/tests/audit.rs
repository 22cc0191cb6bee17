//! The audit log's storage: sequence numbers per tenant, the stored tree (roots and proofs
//! checked against the in-memory RFC 9162 functions across the stored-subtree boundary),
//! sealed payloads, search, and the append-only guard.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use tillit_audit::merkle;
use tillit_audit::verify::{entry_leaf, payload_hash};
use tillit_core::*;
use tillit_store::*;
use tillit_store_sqlite::{SqliteKeyVault, SqliteStore};
use time::macros::datetime;

fn open(path: &std::path::Path) -> SqliteStore {
    let vault = SqliteKeyVault::open(&path.with_extension("keys.db")).unwrap();
    let keyring =
        tillit_crypto::Keyring::new(tillit_crypto::Kek::from_bytes([3; 32]), Arc::new(vault));
    SqliteStore::open(path, Arc::new(KeyringCipher(Arc::new(keyring)))).unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tillit-audit-test-{}", PersonId::random()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn event(tenant: &TenantId, i: u64) -> NewAuditEvent {
    NewAuditEvent {
        at: datetime!(2026-11-22 10:00 UTC) + time::Duration::seconds(i as i64),
        tenant: tenant.to_string(),
        action: if i.is_multiple_of(3) {
            "search"
        } else {
            "read"
        }
        .into(),
        outcome: if i.is_multiple_of(5) {
            AuditOutcome::Denied
        } else {
            AuditOutcome::Success
        },
        actor: AuditActor {
            person: Some(format!("staff-{}", i % 4)),
            kind: Some("staff".into()),
            roles: vec!["nurse".into()],
            ..AuditActor::default()
        },
        patient: Some(format!("patient-{}", i % 7)),
        resource_type: Some("Observation".into()),
        resource_id: Some(format!("obs-{i}")),
        categories: vec!["measurements".into()],
        count: 1,
        basis: Some("care-relationship".into()),
        reason: None,
        policies: vec!["tenant.nurse".into()],
        detail: None,
        client: AuditClient::default(),
    }
}

#[tokio::test]
async fn events_get_sequence_numbers_and_a_tree_with_proofs() {
    let dir = tempdir();
    let store = open(&dir.join("tillit.db"));
    let a = store
        .create_tenant("A", datetime!(2026-11-22 9:00 UTC))
        .await
        .unwrap();
    let b = store
        .create_tenant("B", datetime!(2026-11-22 9:00 UTC))
        .await
        .unwrap();
    // 700 entries (past two stored 256-leaf subtrees) for A in batches; a few for B between.
    let n = 700u64;
    let mut i = 0;
    while i < n {
        let take = (n - i).min(97);
        let mut batch = AuditBatch::default();
        for j in i..i + take {
            batch.events.push(event(&a.id, j));
        }
        batch.events.push(event(&b.id, i));
        let seqs = store.append_audit(batch).await.unwrap();
        assert_eq!(seqs[..take as usize], (i..i + take).collect::<Vec<_>>()[..]);
        assert_eq!(*seqs.last().unwrap(), i / 97);
        i += take;
    }
    // The stored tree equals the tree of the stored leaves.
    let mut leaves = Vec::new();
    let entries = store.audit_entries(&a.id, 0, 10_000).await.unwrap();
    assert_eq!(entries.len() as u64, n);
    for e in &entries {
        let payload = e.payload.clone().unwrap().unwrap();
        assert_eq!(payload_hash(&payload), e.payload_hash);
        let ev = AuditEvent::from_payload(&payload).unwrap();
        assert_eq!(ev.seq, e.seq);
        leaves.push(entry_leaf(a.id.as_str(), e.seq, &e.payload_hash));
    }
    let head = store.audit_head(&a.id).await.unwrap();
    assert_eq!(head.size, n);
    assert_eq!(head.root, merkle::root(&leaves));
    for size in [1u64, 2, 255, 256, 257, 511, 512, 513, 699, 700] {
        let root = store.audit_root(&a.id, size).await.unwrap();
        assert_eq!(root, merkle::root(&leaves[..size as usize]), "size {size}");
        for leaf in [0, size / 2, size - 1] {
            let p = store
                .audit_inclusion_proof(&a.id, leaf, size)
                .await
                .unwrap();
            assert_eq!(
                p,
                merkle::inclusion_proof(&leaves[..size as usize], leaf).unwrap()
            );
            merkle::verify_inclusion(leaf, size, &leaves[leaf as usize], &p, &root).unwrap();
        }
        for from in [1, size / 3, size] {
            let p = store.audit_consistency_proof(&a.id, from, n).await.unwrap();
            merkle::verify_consistency(
                from,
                n,
                &merkle::root(&leaves[..from as usize]),
                &head.root,
                &p,
            )
            .unwrap();
        }
    }
    assert!(matches!(
        store.audit_inclusion_proof(&a.id, 3, n + 1).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.audit_head(&b.id).await.unwrap().size, 8);
    let mut tenants = store.audit_tenants().await.unwrap();
    tenants.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(tenants, want);

    // Search by patient, newest first, and paging backwards.
    let f = AuditFilter {
        patient: Some("patient-3".into()),
        limit: 5,
        ..AuditFilter::default()
    };
    let page = store.audit_search(&a.id, &f).await.unwrap();
    assert_eq!(page.len(), 5);
    assert!(
        page.iter()
            .all(|e| e.event.patient.as_deref() == Some("patient-3"))
    );
    assert!(page.windows(2).all(|w| w[0].seq > w[1].seq));
    let next = store
        .audit_search(
            &a.id,
            &AuditFilter {
                before: Some(page[4].seq),
                ..f.clone()
            },
        )
        .await
        .unwrap();
    assert!(next[0].seq < page[4].seq);
    let denied = store
        .audit_search(
            &a.id,
            &AuditFilter {
                actor: Some("staff-0".into()),
                outcome: Some(AuditOutcome::Denied),
                limit: 1000,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        denied.len(),
        (0..n).filter(|i| i % 5 == 0 && i % 4 == 0).count()
    );
    // Another tenant's search never sees A's events.
    let none = store
        .audit_search(
            &b.id,
            &AuditFilter {
                patient: Some("patient-3".into()),
                limit: 1000,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(none.iter().all(|e| e.event.tenant == b.id.as_str()));

    // Checkpoints keep the order of their sizes.
    for size in [100u64, 700] {
        store
            .add_audit_checkpoint(
                &a.id,
                &StoredCheckpoint {
                    size,
                    at: datetime!(2026-11-22 11:00 UTC),
                    note: format!("note {size}"),
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(store.audit_checkpoints(&a.id).await.unwrap().len(), 2);
    assert_eq!(
        store
            .latest_audit_checkpoint(&a.id)
            .await
            .unwrap()
            .unwrap()
            .size,
        700
    );

    // Payloads are sealed in the file, and rows cannot be edited or deleted through SQL.
    let conn = rusqlite::Connection::open(dir.join("tillit.db")).unwrap();
    let plain: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_events WHERE instr(payload, 'care-relationship') > 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plain, 0);
    for sql in [
        "UPDATE audit_events SET action = 'x' WHERE seq = 3",
        "UPDATE audit_events SET payload_hash = zeroblob(32) WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_checkpoints",
    ] {
        let e = conn.execute(sql, []).unwrap_err().to_string();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    // Erasing a payload is the one change allowed; search then leaves the event out.
    conn.execute(
        "UPDATE audit_events SET payload = NULL WHERE seq = 3 AND tenant_id = ?1",
        [a.id.as_str()],
    )
    .unwrap();
    let (hash, ev) = store.audit_event(&a.id, 3).await.unwrap().unwrap();
    assert_eq!(hash, entries[3].payload_hash);
    assert!(ev.is_none());
    assert_eq!(store.audit_head(&a.id).await.unwrap().root, head.root);
}
