use crate::config::Config;
use crate::metrics::Metrics;
use crate::throttle::Throttle;
use std::sync::Arc;
use tillit_core::Clock;
use tillit_crypto::PasswordHasher;
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
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<PasswordHasher>,
        config: Config,
    ) -> Self {
        let l = &config.login;
        let throttle = Throttle::new(
            l.ip_max_failures,
            l.ip_window_seconds,
            l.lockout_seconds,
            l.max_lockout_seconds,
        );
        Self {
            store,
            clock,
            hasher,
            throttle: Arc::new(throttle),
            metrics: Arc::new(Metrics::new()),
            config: Arc::new(config),
            totp_issuer: Arc::from("Tillit"),
        }
    }
}
