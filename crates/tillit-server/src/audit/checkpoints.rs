//! Signed checkpoints: on a cadence for every log that has grown, and on demand.
//!
//! One Ed25519 key signs the checkpoints of every tenant's log on this deployment. Its seed
//! is a platform secret in the keyring (wrapped by the KEK, never in the database); its
//! verifier key is published at `GET /audit/key`. Each tenant's log has its own origin,
//! `<audit.log_name>/<tenant id>`, so a checkpoint of one tenant cannot pass for another's.

use crate::state::AppState;
use tillit_audit::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use tillit_core::TenantId;
use tillit_crypto::Keyring;
use tillit_store::{StoreError, StoredCheckpoint};

/// The name of the signing seed in the keyring.
const SIGNING_SECRET: &str = "audit-signing";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointFailure {
    #[error("the checkpoint signing key is unavailable: {0}")]
    Key(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The deployment's checkpoint signer.
pub fn signer(keyring: &Keyring, log_name: &str) -> Result<CheckpointSigner, CheckpointFailure> {
    let seed = keyring
        .platform_secret(SIGNING_SECRET)
        .map_err(|e| CheckpointFailure::Key(e.to_string()))?;
    CheckpointSigner::from_seed(log_name, &seed).map_err(|e| CheckpointFailure::Key(e.to_string()))
}

/// The verifier of this deployment's checkpoints.
pub fn verifier(
    keyring: &Keyring,
    log_name: &str,
) -> Result<CheckpointVerifier, CheckpointFailure> {
    let key = signer(keyring, log_name)?.verifier_key();
    CheckpointVerifier::parse(&key).map_err(|e| CheckpointFailure::Key(e.to_string()))
}

/// The origin line of a tenant's checkpoints.
pub fn origin(log_name: &str, tenant: &TenantId) -> String {
    format!("{log_name}/{tenant}")
}

/// Signs a checkpoint of the tenant's log as it is now, unless the latest already covers
/// it. Returns the checkpoint in force.
pub async fn checkpoint_now(
    state: &AppState,
    tenant: &TenantId,
) -> Result<Option<StoredCheckpoint>, CheckpointFailure> {
    let head = state.store.audit_head(tenant).await?;
    let latest = state.store.latest_audit_checkpoint(tenant).await?;
    if latest.as_ref().is_some_and(|c| c.size >= head.size) || head.size == 0 {
        return Ok(latest);
    }
    let log_name = &state.config.audit.log_name;
    let note = signer(&state.keyring, log_name)?.sign(&Checkpoint {
        origin: origin(log_name, tenant),
        size: head.size,
        root: head.root,
    });
    let cp = StoredCheckpoint {
        size: head.size,
        at: state.clock.now(),
        note,
    };
    state.store.add_audit_checkpoint(tenant, &cp).await?;
    Ok(Some(cp))
}

/// Signs a checkpoint of every log that has grown, every `audit.checkpoint_seconds`.
pub fn spawn_cadence(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let period =
            std::time::Duration::from_secs(u64::from(state.config.audit.checkpoint_seconds.max(1)));
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let tenants = match state.store.audit_tenants().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint cadence: tenants unreadable");
                    continue;
                }
            };
            for t in tenants {
                if let Err(e) = checkpoint_now(&state, &t).await {
                    tracing::warn!(error = %e, tenant = %t, "checkpoint not signed");
                }
            }
        }
    });
}

/// Entries read per page when verifying.
const VERIFY_PAGE: u32 = 10_000;

/// What a full verification of one tenant's log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCheck {
    /// Every entry, checkpoint and the stored tree head agree.
    Ok(tillit_audit::verify::Verified),
    /// The first problem found.
    Problem(tillit_audit::verify::Problem),
    /// Entry `seq`'s sealed payload does not open: altered or moved.
    Unopened { seq: u64 },
    /// The entries verify but the stored tree head disagrees with them.
    HeadMismatch { head: u64, entries: u64 },
}

impl LogCheck {
    pub fn is_ok(&self) -> bool {
        matches!(self, LogCheck::Ok(_))
    }
}

impl std::fmt::Display for LogCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogCheck::Ok(done) => write!(
                f,
                "{} entries ({} erased payloads), {} checkpoints, root {}: ok",
                done.entries,
                done.erased_payloads,
                done.checkpoints,
                hex::encode(done.root)
            ),
            LogCheck::Problem(p) => write!(f, "{p}"),
            LogCheck::Unopened { seq } => write!(
                f,
                "entry {seq} was changed: its sealed payload does not open (altered or moved)"
            ),
            LogCheck::HeadMismatch { head, entries } => write!(
                f,
                "the stored tree head (size {head}) does not match the entries (size {entries}): it was changed"
            ),
        }
    }
}

/// Recomputes a tenant's whole log from the stored entries (opening each sealed payload and
/// checking it against its recorded hash), checks every checkpoint's signature and that each
/// matches the tree at its size, and checks the stored tree head: what `tillit audit verify`
/// and the security officer's "verify now" run. The store is read page by page on the
/// runtime; the hashing runs on a blocking thread. `progress` is told the entries done.
pub async fn verify_tenant(
    store: &std::sync::Arc<dyn tillit_store::Store>,
    verifier: &CheckpointVerifier,
    log_name: &str,
    tenant: &TenantId,
    mut progress: impl FnMut(u64) + Send + 'static,
) -> Result<LogCheck, StoreError> {
    use std::sync::{Arc, Mutex};
    use tillit_audit::verify::{Entry, Problem, verify_log};
    let head = store.audit_head(tenant).await?;
    let notes: Vec<String> = store
        .audit_checkpoints(tenant)
        .await?
        .into_iter()
        .map(|c| c.note)
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<tillit_store::AuditEntry>>(4);
    let (reader, t) = (store.clone(), tenant.clone());
    let producer = tokio::spawn(async move {
        let mut after = 0i64;
        loop {
            let page = reader.audit_entries(&t, after, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            if tx.send(page).await.is_err() {
                break;
            }
        }
        Ok::<_, StoreError>(())
    });
    let unopened: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (t, origin, v, u) = (
        tenant.to_string(),
        origin(log_name, tenant),
        verifier.clone(),
        unopened.clone(),
    );
    let result = tokio::task::spawn_blocking(move || {
        let entries = std::iter::from_fn(move || rx.blocking_recv())
            .flatten()
            .map(|e| Entry {
                seq: e.seq,
                payload_hash: e.payload_hash,
                payload: match e.payload {
                    None => None,
                    Some(Ok(p)) => Some(p),
                    Some(Err(_)) => {
                        // A payload that will not open was altered (or moved): it cannot
                        // match its hash, and is reported as changed.
                        u.lock().unwrap_or_else(|e| e.into_inner()).push(e.seq);
                        Some(Vec::new())
                    }
                },
            });
        verify_log(&t, &origin, entries, &notes, &v, &mut progress)
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("verification stopped: {e}")))?;
    // Stops the reader if verification ended early.
    producer.abort();
    if let Ok(Err(e)) = producer.await {
        return Err(e);
    }
    Ok(match result {
        Ok(done) if done.entries != head.size || done.root != head.root => LogCheck::HeadMismatch {
            head: head.size,
            entries: done.entries,
        },
        Ok(done) => LogCheck::Ok(done),
        Err(Problem::Changed { seq })
            if unopened
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&seq) =>
        {
            LogCheck::Unopened { seq }
        }
        Err(p) => LogCheck::Problem(p),
    })
}
