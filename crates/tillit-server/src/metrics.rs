//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<Labels, Counter>,
    pub logins: Family<Labels, Counter>,
    pub tls_handshake_failures: Counter,
    pub open_connections: Gauge,
    /// Scheduled backups (see `backup::BackupStatus::publish`).
    pub backup_last_success: Gauge,
    pub backup_last_verified: Gauge,
    pub backup_size_bytes: Gauge,
    pub backup_next: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tillit");
        let http_requests = Family::<Labels, Counter>::default();
        let logins = Family::<Labels, Counter>::default();
        let tls_handshake_failures = Counter::default();
        let open_connections = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by method and status class",
            http_requests.clone(),
        );
        registry.register("logins", "Login attempts by outcome", logins.clone());
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        let backup_last_success = Gauge::default();
        let backup_last_verified = Gauge::default();
        let backup_size_bytes = Gauge::default();
        let backup_next = Gauge::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When the latest scheduled backup that verified was taken (Unix time; 0: never)",
            backup_last_success.clone(),
        );
        registry.register(
            "backup_last_verified",
            "1 if the latest scheduled backup verified, 0 if it failed or none was taken",
            backup_last_verified.clone(),
        );
        registry.register(
            "backup_size_bytes",
            "Size of the latest scheduled backup that verified",
            backup_size_bytes.clone(),
        );
        registry.register(
            "backup_next_timestamp_seconds",
            "When the next scheduled backup is due (Unix time; 0: not scheduled)",
            backup_next.clone(),
        );
        let info = Family::<Labels, Gauge>::default();
        info.get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
            .set(1);
        registry.register("build_info", "Build information", info);
        Self {
            registry,
            http_requests,
            logins,
            tls_handshake_failures,
            open_connections,
            backup_last_success,
            backup_last_verified,
            backup_size_bytes,
            backup_next,
        }
    }

    pub fn count_request(&self, method: &str, status: u16) {
        let class = format!("{}xx", status / 100);
        self.http_requests
            .get_or_create(&vec![
                ("method".into(), method.into()),
                ("status".into(), class),
            ])
            .inc();
    }

    pub fn count_login(&self, outcome: &'static str) {
        self.logins
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
