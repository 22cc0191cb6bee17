//! Who is calling: server-side sessions (cookie) and API tokens (bearer), resolved into a
//! [`Principal`]. Cookie values and tokens are stored only as SHA-256 hashes.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, header, request::Parts};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tillit_core::{PersonKind, Role};
use tillit_crypto::{SecretString, ct_eq, token_hash};
use tillit_store::{NewSecurityEvent, SecurityEventKind, Session, Tenant, User, active_roles};
use time::Duration;

/// `__Host-` prefix: Secure, no Domain, Path=/ — the browser refuses it otherwise.
pub const SESSION_COOKIE: &str = "__Host-tillit_session";
/// Double-submit token protecting the login form (there is no session yet to bind it to).
pub const LOGIN_CSRF_COOKIE: &str = "__Host-tillit_login";

pub fn session_cookie(token: &str, max_age_secs: i64) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    )
}

pub fn login_csrf_cookie(token: &str) -> String {
    format!("{LOGIN_CSRF_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600")
}

pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The CSRF token of a session: derived from the session secret, so it needs no storage in
/// clear and dies with the session.
pub fn csrf_for(session_token: &str) -> String {
    hex::encode(token_hash(&format!("tillit-csrf\0{session_token}")))
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The caller's network address and user agent, for throttling and security events.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect());
        Ok(Client { ip, user_agent })
    }
}

#[derive(Debug, Clone)]
pub enum AuthVia {
    Session {
        id_hash: [u8; 32],
        csrf_hash: [u8; 32],
    },
    Token {
        id: String,
    },
}

/// An authenticated caller, fully logged in (second factor done where required).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub tenant: Tenant,
    pub roles: Vec<Role>,
    pub via: AuthVia,
}

impl Principal {
    /// Checks a CSRF token for a state-changing request made with a session cookie.
    /// Bearer-token requests carry no ambient credential, so they need none.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), AppError> {
        match &self.via {
            AuthVia::Token { .. } => Ok(()),
            AuthVia::Session { csrf_hash, .. } => match presented {
                Some(t) if ct_eq(&token_hash(t), csrf_hash) => Ok(()),
                _ => Err(AppError::Csrf),
            },
        }
    }
}

/// A valid session, possibly still owing its second factor (for the enrolment pages).
#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub session: Session,
    pub user: User,
    pub token: SecretString,
}

impl SessionCaller {
    pub fn csrf(&self) -> String {
        csrf_for(self.token.expose())
    }

    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), AppError> {
        match presented {
            Some(t) if ct_eq(&token_hash(t), &self.session.csrf_hash) => Ok(()),
            _ => Err(AppError::Csrf),
        }
    }
}

pub fn idle_limit(state: &AppState, kind: PersonKind) -> Duration {
    let s = &state.config.session;
    let minutes = if kind == PersonKind::Staff {
        s.staff_idle_minutes
    } else {
        s.idle_minutes
    };
    Duration::minutes(i64::from(minutes))
}

/// Resolves the session cookie, enforcing idle and absolute timeouts.
pub async fn session_from_headers(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
) -> Result<Option<SessionCaller>, AppError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = token_hash(token);
    let Some(session) = state.store.session_by_hash(&hash).await? else {
        return Ok(None);
    };
    let Some(user) = state.store.user(&session.user).await? else {
        state.store.delete_session(&hash).await?;
        return Ok(None);
    };
    let now = state.clock.now();
    let absolute = Duration::minutes(i64::from(state.config.session.absolute_minutes));
    if user.disabled
        || now - session.last_seen_at >= idle_limit(state, user.kind)
        || now - session.created_at >= absolute
    {
        state.store.delete_session(&hash).await?;
        security_event(
            state,
            SecurityEventKind::SessionExpired,
            true,
            "timeout",
            Some(&user),
            None,
            client,
        )
        .await?;
        return Ok(None);
    }
    // Touch at most every 15 s: idle timeouts are minutes, writes are not free.
    if now - session.last_seen_at >= Duration::seconds(15) {
        state.store.touch_session(&hash, now).await?;
    }
    Ok(Some(SessionCaller {
        session,
        user,
        token: SecretString::new(token),
    }))
}

async fn principal_from_bearer(
    state: &AppState,
    token: &str,
    client: &Client,
) -> Result<Principal, AppError> {
    let hash = token_hash(token.trim());
    let now = state.clock.now();
    let Some(t) = state.store.api_token_by_hash(&hash).await? else {
        return Err(AppError::Unauthenticated);
    };
    if t.revoked_at.is_some() || t.expires_at <= now {
        return Err(AppError::Unauthenticated);
    }
    let Some(user) = state.store.user(&t.user).await? else {
        return Err(AppError::Unauthenticated);
    };
    if user.disabled {
        return Err(AppError::Unauthenticated);
    }
    let event = NewSecurityEvent {
        at: now,
        tenant: Some(user.tenant.clone()),
        user: Some(user.id.clone()),
        username: Some(user.username.to_string()),
        kind: SecurityEventKind::TokenUse,
        outcome_ok: true,
        detail: format!("token {}", t.id),
        ip: Some(client.ip.to_string()),
        user_agent: client.user_agent.clone(),
    };
    // With the request's other events, in its one group commit before the response leaves.
    let mut batch = crate::audit::security_batch(event, Some(user.person.as_str()), None, None);
    batch.token_uses.push((t.id.clone(), now));
    if let Some(batch) = crate::audit::defer(batch) {
        state
            .audit
            .append(batch)
            .await
            .map_err(|e| AppError::Unavailable(format!("security event not recorded: {e}")))?;
    }
    finish(state, user, AuthVia::Token { id: t.id }).await
}

async fn finish(state: &AppState, user: User, via: AuthVia) -> Result<Principal, AppError> {
    let tenant = state
        .store
        .tenant(&user.tenant)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let roles = if user.kind == PersonKind::Staff {
        active_roles(
            &state
                .store
                .role_assignments(&user.tenant, &user.person)
                .await?,
            state.clock.now(),
        )
    } else {
        Vec::new()
    };
    Ok(Principal {
        user,
        tenant,
        roles,
        via,
    })
}

/// Resolves the caller from a bearer token or, failing that, a fully logged-in session.
pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
) -> Result<Option<Principal>, AppError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let value = auth.to_str().map_err(|_| AppError::Unauthenticated)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AppError::Unauthenticated)?;
        return principal_from_bearer(state, token, client).await.map(Some);
    }
    match session_from_headers(state, headers, client).await? {
        Some(s) if !s.session.pending_totp => {
            let via = AuthVia::Session {
                id_hash: s.session.id_hash,
                csrf_hash: s.session.csrf_hash,
            };
            finish(state, s.user, via).await.map(Some)
        }
        _ => Ok(None),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = Client::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|e| match e {});
        principal(state, &parts.headers, &client)
            .await?
            .ok_or(AppError::Unauthenticated)
    }
}

/// Records a security event. Failing to record one fails the request (fail closed).
pub async fn security_event(
    state: &AppState,
    kind: SecurityEventKind,
    ok: bool,
    detail: &str,
    user: Option<&User>,
    username: Option<&str>,
    client: &Client,
) -> Result<(), AppError> {
    security_event_about(state, kind, ok, detail, user, username, client, None, None).await
}

/// A security event that concerns a patient (an emergency access), with its stated reason:
/// the patient's access log shows it.
#[allow(clippy::too_many_arguments)]
pub async fn security_event_about(
    state: &AppState,
    kind: SecurityEventKind,
    ok: bool,
    detail: &str,
    user: Option<&User>,
    username: Option<&str>,
    client: &Client,
    patient: Option<&str>,
    reason: Option<&str>,
) -> Result<(), AppError> {
    let ev = NewSecurityEvent {
        at: state.clock.now(),
        tenant: user.map(|u| u.tenant.clone()),
        user: user.map(|u| u.id.clone()),
        username: user
            .map(|u| u.username.to_string())
            .or_else(|| username.map(str::to_string)),
        kind,
        outcome_ok: ok,
        detail: detail.to_string(),
        ip: Some(client.ip.to_string()),
        user_agent: client.user_agent.clone(),
    };
    let person = user.map(|u| u.person.to_string());
    state
        .audit
        .append(crate::audit::security_batch(
            ev,
            person.as_deref(),
            patient,
            reason,
        ))
        .await
        .map(|_| ())
        .map_err(|e| AppError::Unavailable(format!("security event not recorded: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cookie_finds_the_named_value_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; __Host-tillit_session=abc; b=2"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(cookie(&HeaderMap::new(), "a"), None);
    }

    proptest! {
        #[test]
        fn cookie_parsing_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = axum::http::HeaderValue::from_bytes(&raw) {
                h.insert(header::COOKIE, v);
            }
            let _ = cookie(&h, SESSION_COOKIE);
        }
    }
}
