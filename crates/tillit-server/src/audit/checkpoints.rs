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
