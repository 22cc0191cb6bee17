//! The audit log as the server writes it.
//!
//! - [`AuditLog`] is the group commit: requests hand in their events and wait; one task
//!   writes whatever has queued up in one transaction (one sync) and answers them all.
//! - A request's decisions are collected in its [`Scope`] (a task-local the audit layer
//!   sets around every request). [`record`] is called by the one authorization hook for
//!   every decision, permitted or denied; a search collapses into one event per patient
//!   compartment. The layer appends the collected events after the handler has built its
//!   response and before a byte of it is sent: if the log cannot be written, the response
//!   is dropped and the caller gets 503 (fail closed). Writes flush before they commit, so a
//!   failed log also stops the write.
//! - Security events (logins, token use, admin and policy changes, emergency access) go
//!   through the same group commit, into both the tree and the older `security_events`.

pub mod alerts;
pub mod api;
pub mod checkpoints;
pub mod fhir;
pub mod review;

use crate::authz::{Action, Actor, Denial, Permit, Subject, Target};
use crate::session::{AuthVia, Client};
use crate::state::AppState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tillit_store::{
    AuditActor, AuditBatch, AuditClient, AuditOutcome, NewAuditEvent, NewSecurityEvent, Store,
};
use tokio::sync::{mpsc, oneshot};

/// The mark in an event's `policies` of an access to a record whose processing its patient
/// has restricted (GDPR art. 18): the patient's log shows it, and staff accesses raise an
/// alert for the security officer.
pub const RESTRICTED_FLAG: &str = "platform.restricted";

/// Most events one commit takes; more wait for the next.
const MAX_BATCH: usize = 2_000;

/// The log could not be written: the request must fail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot be written: {0}")]
pub struct AuditUnavailable(pub String);

struct Submission {
    batch: AuditBatch,
    reply: oneshot::Sender<Result<Vec<u64>, AuditUnavailable>>,
}

/// The group commit.
pub struct AuditLog {
    tx: mpsc::Sender<Submission>,
    rx: Mutex<Option<mpsc::Receiver<Submission>>>,
    store: Arc<dyn Store>,
    stats: Arc<Stats>,
}

/// Commits and events written so far (for metrics and benchmarks).
#[derive(Debug, Default)]
pub struct Stats {
    pub commits: AtomicU64,
    pub events: AtomicU64,
    pub failures: AtomicU64,
}

impl AuditLog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(16_384);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            store,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Appends `batch` and returns once it is durable, with the events' sequence numbers.
    pub async fn append(&self, batch: AuditBatch) -> Result<Vec<u64>, AuditUnavailable> {
        if batch.events.is_empty() && batch.security.is_empty() && batch.token_uses.is_empty() {
            return Ok(Vec::new());
        }
        self.start();
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Submission { batch, reply })
            .await
            .map_err(|_| AuditUnavailable("the audit writer has stopped".into()))?;
        wait.await
            .map_err(|_| AuditUnavailable("the audit writer has stopped".into()))?
    }

    /// The writer task starts on first use, on the runtime that serves requests.
    fn start(&self) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(run(self.store.clone(), rx, self.stats.clone()));
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Submission>, stats: Arc<Stats>) {
    while let Some(first) = rx.recv().await {
        let mut events = first.batch.events.len();
        let mut subs = vec![first];
        // Everything that queued while the last commit ran goes into this one.
        while events < MAX_BATCH {
            match rx.try_recv() {
                Ok(s) => {
                    events += s.batch.events.len();
                    subs.push(s);
                }
                Err(_) => break,
            }
        }
        let mut merged = AuditBatch::default();
        let mut counts = Vec::with_capacity(subs.len());
        let mut replies = Vec::with_capacity(subs.len());
        for s in subs {
            counts.push(s.batch.events.len());
            merged.events.extend(s.batch.events);
            merged.security.extend(s.batch.security);
            merged.token_uses.extend(s.batch.token_uses);
            replies.push(s.reply);
        }
        match store.append_audit(merged).await {
            Ok(seqs) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.events.fetch_add(seqs.len() as u64, Ordering::Relaxed);
                let mut rest = seqs.as_slice();
                for (reply, n) in replies.into_iter().zip(counts) {
                    let (mine, tail) = rest.split_at(n.min(rest.len()));
                    rest = tail;
                    let _ = reply.send(Ok(mine.to_vec()));
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "audit log append failed; failing the requests");
                let err = AuditUnavailable(e.to_string());
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

/// The audit events of one request, collected as decisions are made.
pub struct Scope {
    client: AuditClient,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    events: Vec<NewAuditEvent>,
    /// Security events and token uses of the request, appended with its other events.
    deferred: AuditBatch,
    /// Where an event that later decisions fold into sits in `events`.
    index: HashMap<Key, usize>,
}

/// What events of one request fold into.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    action: &'static str,
    outcome: AuditOutcome,
    patient: Option<String>,
    resource_type: String,
    /// None for searches and history: one event per compartment.
    resource_id: Option<String>,
}

impl Key {
    /// The event of permitted matches of a search or history in one compartment.
    pub(crate) fn search(action: Action, target: &Target<'_>) -> Self {
        Key {
            action: action.code(),
            outcome: AuditOutcome::Success,
            patient: target.patient.map(str::to_string),
            resource_type: target.resource_type.to_string(),
            resource_id: None,
        }
    }
}

/// A permitted search match is being returned: its compartment's event counts it.
pub fn opened(permit: &Permit) {
    let Some(key) = &permit.counted else { return };
    let _ = SCOPE.try_with(|scope| {
        let mut p = scope.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&i) = p.index.get(key)
            && let Some(e) = p.events.get_mut(i)
        {
            e.count = e.count.saturating_add(1);
        }
    });
}

impl Scope {
    pub fn new(client: &Client) -> Arc<Self> {
        Arc::new(Self {
            client: AuditClient {
                ip: Some(client.ip.to_string()),
                user_agent: client.user_agent.clone(),
                session: None,
            },
            pending: Mutex::default(),
        })
    }

    /// Runs `f` with this scope as the request's.
    pub async fn run<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        SCOPE.scope(self.clone(), f).await
    }

    /// Appends what was collected; nothing when nothing was.
    pub async fn flush(&self, state: &AppState) -> Result<(), AuditUnavailable> {
        let (mut events, mut batch) = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.index.clear();
            (
                std::mem::take(&mut p.events),
                std::mem::take(&mut p.deferred),
            )
        };
        if events.is_empty() && batch.security.is_empty() && batch.token_uses.is_empty() {
            return Ok(());
        }
        emergency_reasons(state, &mut events).await?;
        batch.events.extend(events);
        state.audit.append(batch).await.map(|_| ())
    }
}

/// Hands a request's security events (a token use) to its scope, to be appended with the
/// request's other events in the same commit: before any response leaves, like them.
/// Returns the batch back when there is no scope, for the caller to append itself.
pub fn defer(batch: AuditBatch) -> Option<AuditBatch> {
    let mut batch = Some(batch);
    let _ = SCOPE.try_with(|scope| {
        if let Some(b) = batch.take() {
            let mut p = scope.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.deferred.events.extend(b.events);
            p.deferred.security.extend(b.security);
            p.deferred.token_uses.extend(b.token_uses);
        }
    });
    batch
}

/// Flushes the current request's events now (before a write commits).
pub async fn flush(state: &AppState) -> Result<(), AuditUnavailable> {
    match SCOPE.try_with(Arc::clone) {
        Ok(scope) => scope.flush(state).await,
        Err(_) => Ok(()),
    }
}

/// Accesses under emergency access carry the reason stated when it was opened, so the
/// patient's log can show it.
async fn emergency_reasons(
    state: &AppState,
    events: &mut [NewAuditEvent],
) -> Result<(), AuditUnavailable> {
    let Some(first) = events
        .iter()
        .find(|e| e.basis.as_deref() == Some("emergency") && e.reason.is_none())
    else {
        return Ok(());
    };
    let tenant =
        tillit_core::TenantId::parse(&first.tenant).map_err(|e| AuditUnavailable(e.to_string()))?;
    let windows = state
        .store
        .emergency_accesses(&tenant, 500)
        .await
        .map_err(|e| AuditUnavailable(e.to_string()))?;
    for e in events
        .iter_mut()
        .filter(|e| e.basis.as_deref() == Some("emergency") && e.reason.is_none())
    {
        e.reason = windows
            .iter()
            .filter(|w| {
                Some(w.staff.as_str())
                    == e.actor
                        .on_behalf_of
                        .as_deref()
                        .or(e.actor.person.as_deref())
                    && Some(w.patient.as_str()) == e.patient.as_deref()
                    && w.opened_at <= e.at
                    && e.at < w.expires_at
            })
            .map(|w| w.reason.clone())
            .next();
    }
    Ok(())
}

/// Why an access was allowed, from the policy that allowed it.
pub fn basis(policy: &str) -> &'static str {
    match policy {
        "tenant.physician" | "tenant.nurse" | "tenant.care-assistant" | "tenant.secretary" => {
            "care-relationship"
        }
        "tenant.own-record" | "tenant.own-consent" => "own-record",
        "tenant.relative" => "relative",
        "tenant.emergency" => "emergency",
        "tenant.grant" => "grant",
        "tenant.integration" => "integration",
        "tenant.support" => "support",
        "tenant.directory" | "tenant.care-relationships-decided" => "role",
        "platform.system" => "system",
        _ => "policy",
    }
}

/// The actor of a subject's events.
pub fn actor_of(subject: &Subject) -> AuditActor {
    let user = &subject.principal.user;
    let mut units: Vec<String> = subject.knowledge.units().iter().cloned().collect();
    units.sort();
    AuditActor {
        user: Some(user.id.0.clone()),
        person: Some(user.person.to_string()),
        kind: Some(
            if subject.support.is_some() {
                "operator"
            } else if subject.roles.contains(&tillit_core::Role::Integration) {
                "integration"
            } else {
                user.kind.code()
            }
            .to_string(),
        ),
        roles: subject.roles.iter().map(|r| r.code().to_string()).collect(),
        org_units: units,
        on_behalf_of: subject
            .on_behalf_of
            .as_ref()
            .map(|d| d.on_behalf_of.to_string()),
        support: subject.support.is_some(),
    }
}

fn session_ref(subject: &Subject) -> Option<String> {
    match &subject.principal.via {
        AuthVia::Token { id } => Some(format!("token/{id}")),
        AuthVia::Session { id_hash, .. } => Some(format!("session/{}", hex_prefix(&id_hash[..6]))),
    }
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Records one decision in the request's scope. Returns false when a user's decision
/// cannot be recorded (no scope): the caller must then refuse.
pub fn record(
    actor: Actor<'_>,
    action: Action,
    target: &Target<'_>,
    decision: &Result<Permit, Denial>,
) -> bool {
    let Actor::User(subject) = actor else {
        // Tillit itself on an operator's command (import, seeding) is not an access.
        return true;
    };
    SCOPE
        .try_with(|scope| scope.add(subject, action, target, decision))
        .is_ok()
}

impl Scope {
    fn add(
        &self,
        subject: &Subject,
        action: Action,
        target: &Target<'_>,
        decision: &Result<Permit, Denial>,
    ) {
        let outcome = if decision.is_ok() {
            AuditOutcome::Success
        } else {
            AuditOutcome::Denied
        };
        let per_compartment = matches!(action, Action::Search | Action::History);
        let key = Key {
            action: action.code(),
            outcome,
            patient: target.patient.map(str::to_string),
            resource_type: target.resource_type.to_string(),
            resource_id: (!per_compartment).then(|| target.id.to_string()),
        };
        let category = target.category.code().to_string();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // Permitted matches are counted as they are returned (see [`opened`]); refused ones
        // as they are decided.
        let counts_now = per_compartment && outcome == AuditOutcome::Denied;
        let restricted = decision.as_ref().is_ok_and(Permit::restricted);
        if let Some(&i) = p.index.get(&key)
            && let Some(e) = p.events.get_mut(i)
        {
            if counts_now {
                e.count = e.count.saturating_add(1);
            }
            if restricted && !e.policies.iter().any(|x| x == RESTRICTED_FLAG) {
                e.policies.push(RESTRICTED_FLAG.to_string());
            }
            if !e.categories.contains(&category) {
                e.categories.push(category);
            }
            return;
        }
        let (policy, detail) = match decision {
            Ok(permit) => (permit.policy().to_string(), None),
            Err(d) => (d.policy.clone(), Some(d.reason.clone())),
        };
        let mut policies = vec![policy];
        if restricted {
            policies.push(RESTRICTED_FLAG.to_string());
        }
        let mut client = self.client.clone();
        client.session = session_ref(subject);
        let event = NewAuditEvent {
            at: subject.at,
            tenant: target.tenant.to_string(),
            action: action.code().to_string(),
            outcome,
            actor: actor_of(subject),
            patient: key.patient.clone(),
            resource_type: Some(key.resource_type.clone()),
            resource_id: key.resource_id.clone(),
            categories: vec![category],
            count: u32::from(!per_compartment || counts_now),
            basis: decision
                .as_ref()
                .ok()
                .map(|p| basis(p.policy()).to_string()),
            reason: None,
            policies,
            detail,
            client,
        };
        let i = p.events.len();
        p.events.push(event);
        p.index.insert(key, i);
    }
}

/// A security event as it is appended: to `security_events` always, and to the tenant's
/// tree when it has a tenant.
pub fn security_batch(
    ev: NewSecurityEvent,
    person: Option<&str>,
    patient: Option<&str>,
    reason: Option<&str>,
) -> AuditBatch {
    let mut batch = AuditBatch::default();
    if let Some(tenant) = &ev.tenant {
        batch.events.push(NewAuditEvent {
            at: ev.at,
            tenant: tenant.to_string(),
            action: ev.kind.code().to_string(),
            outcome: if ev.outcome_ok {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            },
            actor: AuditActor {
                user: ev.user.as_ref().map(|u| u.0.clone()),
                person: person.map(str::to_string),
                ..AuditActor::default()
            },
            patient: patient.map(str::to_string),
            resource_type: None,
            resource_id: None,
            categories: Vec::new(),
            count: 0,
            basis: None,
            reason: reason.map(str::to_string),
            policies: Vec::new(),
            detail: Some(ev.detail.clone()),
            client: AuditClient {
                ip: ev.ip.clone(),
                user_agent: ev.user_agent.clone(),
                session: None,
            },
        });
    }
    batch.security.push(ev);
    batch
}
