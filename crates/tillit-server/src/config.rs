//! Configuration: defaults → TOML file → `TILLIT_SECTION__KEY` environment variables.
//! Unknown keys are refused; an error names the key and the reason.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the database, keys and certificates live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub session: SessionConfig,
    pub login: LoginConfig,
    pub limits: LimitsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub backup: BackupConfig,
}

/// Scheduled backups in `serve` (`[backup]`); off unless `dir` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups are written, one folder each (`tillit-<UTC time>`), with `status.json`.
    pub dir: Option<PathBuf>,
    /// Take a backup every day at this UTC time ("HH:MM"); the default is 02:00.
    pub time_of_day: Option<String>,
    /// Or every this many seconds instead of at a time of day.
    pub interval_seconds: Option<u64>,
    /// Retention: the newest backup of each of this many days, ISO weeks and months is kept,
    /// older ones are removed. Defaults 7, 4 and 12.
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
}

impl BackupConfig {
    /// The configured time of day as (hour, minute), 02:00 by default.
    pub fn time_of_day(&self) -> Result<(u8, u8), ConfigError> {
        let Some(t) = &self.time_of_day else {
            return Ok((2, 0));
        };
        let bad = || {
            ConfigError(format!(
                "key `backup.time_of_day`: must be a UTC time as HH:MM, not {t:?}"
            ))
        };
        let (h, m) = t.split_once(':').ok_or_else(bad)?;
        let (h, m) = (
            h.parse::<u8>().map_err(|_| bad())?,
            m.parse::<u8>().map_err(|_| bad())?,
        );
        if h > 23 || m > 59 || t.len() != 5 {
            return Err(bad());
        }
        Ok((h, m))
    }

    /// (daily, weekly, monthly) backups to keep.
    pub fn retention(&self) -> (u32, u32, u32) {
        (
            self.keep_daily.unwrap_or(7),
            self.keep_weekly.unwrap_or(4),
            self.keep_monthly.unwrap_or(12),
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The name of the checkpoint signing key and the prefix of each tenant's log origin
    /// (`<log_name>/<tenant id>`).
    pub log_name: String,
    /// Seconds between signed checkpoints of a log that has grown.
    pub checkpoint_seconds: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            log_name: "tillit.localhost/audit".into(),
            checkpoint_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The HTTPS listener.
    pub listen: SocketAddr,
    /// Optional plain-HTTP listener that only redirects to HTTPS.
    pub redirect_listen: Option<SocketAddr>,
    /// The public base URL (used in redirects and printed links); derived from `listen` if unset.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; relative paths are taken from `data_dir`.
    pub cert: PathBuf,
    /// PEM private key; relative paths are taken from `data_dir`.
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Idle timeout for staff sessions, in minutes.
    pub staff_idle_minutes: u32,
    /// Idle timeout for patients and relatives, in minutes.
    pub idle_minutes: u32,
    /// Absolute lifetime of any session, in minutes.
    pub absolute_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// Failed logins on one account before it is locked.
    pub max_failures: u32,
    /// First lockout in seconds; each further lockout doubles it.
    pub lockout_seconds: u32,
    /// Longest lockout, in seconds.
    pub max_lockout_seconds: u32,
    /// Failed logins from one IP address within `ip_window_seconds` before it is throttled.
    pub ip_max_failures: u32,
    pub ip_window_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body, in bytes.
    pub body_bytes: usize,
    /// Deepest nesting of a JSON body.
    pub json_depth: usize,
    /// Most items in one JSON array.
    pub json_array_items: usize,
    /// Seconds a client has to finish the TLS handshake.
    pub handshake_timeout_seconds: u32,
    /// Seconds a request may take in all.
    pub request_timeout_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("tillit-data"),
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
                redirect_listen: None,
                public_url: None,
            },
            tls: TlsConfig {
                cert: PathBuf::from("tls/server.pem"),
                key: PathBuf::from("tls/server.key"),
            },
            session: SessionConfig {
                staff_idle_minutes: 15,
                idle_minutes: 30,
                absolute_minutes: 12 * 60,
            },
            login: LoginConfig {
                max_failures: 5,
                lockout_seconds: 60,
                max_lockout_seconds: 3600,
                ip_max_failures: 50,
                ip_window_seconds: 600,
            },
            limits: LimitsConfig {
                body_bytes: 5 * 1024 * 1024,
                json_depth: 48,
                json_array_items: 10_000,
                handshake_timeout_seconds: 10,
                request_timeout_seconds: 60,
            },
            audit: AuditConfig::default(),
            backup: BackupConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Layers defaults, the TOML file (if given; it must exist) and `TILLIT_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(file));
        }
        let fig = fig.merge(Env::prefixed("TILLIT_").split("__"));
        let cfg: Config = fig.extract().map_err(|e| {
            // Figment names the key ("for key `server.listen`"); keep every error it found.
            ConfigError(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("key `{key}`: {why}")));
        if self.session.staff_idle_minutes == 0 || self.session.idle_minutes == 0 {
            return bad("session.*_idle_minutes", "must be at least 1");
        }
        if self.session.absolute_minutes
            < self
                .session
                .staff_idle_minutes
                .max(self.session.idle_minutes)
        {
            return bad(
                "session.absolute_minutes",
                "must not be shorter than the idle timeouts",
            );
        }
        if self.login.max_failures == 0 {
            return bad("login.max_failures", "must be at least 1");
        }
        if self.login.lockout_seconds == 0
            || self.login.max_lockout_seconds < self.login.lockout_seconds
        {
            return bad(
                "login.lockout_seconds",
                "must be at least 1 and not above login.max_lockout_seconds",
            );
        }
        if self.audit.checkpoint_seconds == 0 || self.audit.checkpoint_seconds > 86_400 {
            return bad("audit.checkpoint_seconds", "must be between 1 and 86400");
        }
        if tillit_audit::CheckpointSigner::from_seed(
            &self.audit.log_name,
            &zeroize::Zeroizing::new([0; 32]),
        )
        .is_err()
        {
            return bad(
                "audit.log_name",
                "must be a key name without spaces or '+' (for example tillit.example.no/audit)",
            );
        }
        if self.limits.json_depth < 8 || self.limits.json_array_items < 100 {
            return bad(
                "limits.json_depth",
                "must be at least 8 (and limits.json_array_items at least 100)",
            );
        }
        if self.limits.body_bytes < 1024 {
            return bad("limits.body_bytes", "must be at least 1024");
        }
        if let Some(url) = &self.server.public_url
            && !url.starts_with("https://")
        {
            return bad("server.public_url", "must start with https://");
        }
        if self.backup.time_of_day.is_some() && self.backup.interval_seconds.is_some() {
            return bad(
                "backup.interval_seconds",
                "give either backup.time_of_day or backup.interval_seconds, not both",
            );
        }
        if self.backup.interval_seconds == Some(0) {
            return bad("backup.interval_seconds", "must be at least 1");
        }
        self.backup.time_of_day()?;
        if self.backup.retention() == (0, 0, 0) {
            return bad(
                "backup.keep_daily",
                "keep at least one backup (keep_daily, keep_weekly or keep_monthly above 0)",
            );
        }
        Ok(())
    }

    /// A path from the config, resolved against `data_dir` when relative.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.data_dir.join(p)
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("tillit.db")
    }

    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if bound.ip().is_loopback() => format!("https://localhost:{}", bound.port()),
            None => format!("https://{bound}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(body: &str) -> Result<Config, ConfigError> {
        let dir =
            std::env::temp_dir().join(format!("tillit-cfg-{}", tillit_core::PersonId::random()));
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError(e.to_string()))?;
        let f = dir.join("tillit.toml");
        std::fs::write(&f, body).map_err(|e| ConfigError(e.to_string()))?;
        Config::load(Some(&f))
    }

    #[test]
    fn a_good_file_overrides_defaults() {
        let c = with_file("data_dir = \"/srv/tillit\"\n[server]\nlisten = \"0.0.0.0:443\"\n")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.server.listen.port(), 443);
        assert_eq!(c.session.staff_idle_minutes, 15);
    }

    #[test]
    fn the_example_config_in_the_repository_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tillit.example.toml");
        let c = Config::load(Some(&path)).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.server.redirect_listen.map(|a| a.port()), Some(8080));
    }

    #[test]
    fn bad_config_names_the_key_and_reason() {
        let e = with_file("[server]\nlisten = \"not an address\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("server.listen"), "{e}");
        let e = with_file("[server]\nlisen = \"0.0.0.0:1\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("lisen"), "{e}");
        let e = with_file("[session]\nstaff_idle_minutes = 0\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("idle_minutes"), "{e}");
        let e = with_file("[backup]\ndir = \"/b\"\ntime_of_day = \"25:00\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("backup.time_of_day"), "{e}");
        let e = with_file("[backup]\ntime_of_day = \"01:00\"\ninterval_seconds = 60\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("backup.interval_seconds"), "{e}");
        let e = Config::load(Some(Path::new("/nonexistent/tillit.toml")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("does not exist"), "{e}");
    }
}
