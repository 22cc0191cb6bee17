use crate::config::Config;
use crate::metrics::Metrics;
use crate::throttle::Throttle;
use std::sync::Arc;
use tillit_core::Clock;
use tillit_crypto::{Keyring, PasswordHasher};
use tillit_fhir::category::Rule;
use tillit_fhir::json::Limits;
use tillit_store::Store;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub hasher: Arc<PasswordHasher>,
    pub config: Arc<Config>,
    pub throttle: Arc<Throttle>,
    pub metrics: Arc<Metrics>,
    /// Issuer shown in authenticator apps.
    pub totp_issuer: Arc<str>,
    /// Seals resources and computes blind indexes.
    pub keyring: Arc<Keyring>,
    /// How resources get their category (tenant rules go in front of the defaults).
    pub category_rules: Arc<Vec<Rule>>,
    pub json_limits: Limits,
    /// Callers' access facts, reused while their tenant's access generation is unchanged.
    pub access_cache: Arc<crate::authz::AccessCache>,
    /// The audit log's group commit.
    pub audit: Arc<crate::audit::AuditLog>,
    /// The log-review rules' state per tenant.
    pub review: Arc<crate::audit::review::Review>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<PasswordHasher>,
        keyring: Arc<Keyring>,
        config: Config,
    ) -> Self {
        let l = &config.login;
        let throttle = Throttle::new(
            l.ip_max_failures,
            l.ip_window_seconds,
            l.lockout_seconds,
            l.max_lockout_seconds,
        );
        let json_limits = Limits {
            max_bytes: config.limits.body_bytes,
            max_depth: config.limits.json_depth,
            max_array: config.limits.json_array_items,
        };
        Self {
            audit: Arc::new(crate::audit::AuditLog::new(store.clone())),
            review: Arc::default(),
            store,
            clock,
            hasher,
            throttle: Arc::new(throttle),
            metrics: Arc::new(Metrics::new()),
            config: Arc::new(config),
            totp_issuer: Arc::from("Tillit"),
            keyring,
            category_rules: Arc::new(tillit_fhir::category::default_rules()),
            json_limits,
            access_cache: Arc::default(),
        }
    }
}
