//! Logging in and out, and TOTP enrolment. One implementation serves the JSON API and the
//! web forms, so both have the same throttling, lockout, replay guard and events.

use crate::error::AppError;
use crate::session::{Client, SessionCaller, csrf_for, security_event};
use crate::state::AppState;
use tillit_core::Username;
use tillit_crypto::{SecretString, TotpSecret, random_token, token_hash};
use tillit_store::{SecurityEventKind, Session, User};
use time::Duration;

pub struct LoginRequest {
    pub username: String,
    pub password: SecretString,
    pub totp: Option<String>,
}

pub struct LoginOutcome {
    pub user: User,
    /// The new session's cookie value (a fresh one on every login: no fixation).
    pub session_token: SecretString,
    pub csrf: String,
    /// Staff without a second factor yet: the session only reaches the enrolment pages.
    pub enrolment_required: bool,
    pub max_age: i64,
}

pub async fn login(
    state: &AppState,
    client: &Client,
    req: LoginRequest,
    old_session: Option<&str>,
) -> Result<LoginOutcome, AppError> {
    let now = state.clock.now();
    let unix = now.unix_timestamp();
    if let Some(retry_after) = state.throttle.ip_blocked(client.ip, unix) {
        state.metrics.count_login("throttled");
        security_event(
            state,
            SecurityEventKind::LoginFailure,
            false,
            "ip_throttled",
            None,
            Some(&truncate(&req.username)),
            client,
        )
        .await?;
        return Err(AppError::Throttled { retry_after });
    }
    let name = Username::parse(&req.username).ok();
    let user = match &name {
        Some(n) => state.store.user_by_username(n).await?,
        None => None,
    };
    // Locked: refuse before checking anything, so a locked account is no password oracle.
    let locked_for = match &user {
        Some(u) => u
            .locked_until
            .filter(|t| *t > now)
            .map(|t| u64::try_from((t - now).whole_seconds()).unwrap_or(1).max(1)),
        None => state
            .throttle
            .name_blocked(name.as_ref().map_or("", |n| n.as_str()), unix),
    };
    if let Some(retry_after) = locked_for {
        state.metrics.count_login("locked");
        state.throttle.ip_failed(client.ip, unix);
        security_event(
            state,
            SecurityEventKind::LoginFailure,
            false,
            "locked",
            user.as_ref(),
            Some(&truncate(&req.username)),
            client,
        )
        .await?;
        return Err(AppError::Throttled { retry_after });
    }

    // Always one Argon2 verification: unknown users are checked against a decoy hash.
    let hasher = state.hasher.clone();
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let password = req.password.clone();
    let password_ok =
        tokio::task::spawn_blocking(move || hasher.verify(stored.as_deref(), &password))
            .await
            .map_err(|e| AppError::Internal(format!("password check failed: {e}")))?;

    let user = match (user, password_ok) {
        (Some(u), true) if !u.disabled => u,
        (user, _) => {
            return Err(fail(
                state,
                client,
                user.as_ref(),
                &req.username,
                name.as_ref(),
                "bad_password",
            )
            .await);
        }
    };

    let mut enrolment_required = false;
    match (&user.totp_secret, user.kind.requires_totp()) {
        (Some(secret), _) => {
            let totp = TotpSecret::from_base32(secret, &state.totp_issuer, user.username.as_str())
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let step = req.totp.as_deref().and_then(|c| totp.verify(c, unix));
            let Some(step) = step else {
                return Err(fail(
                    state,
                    client,
                    Some(&user),
                    &req.username,
                    name.as_ref(),
                    "bad_totp",
                )
                .await);
            };
            if !state.store.use_totp_step(&user.id, step).await? {
                return Err(fail(
                    state,
                    client,
                    Some(&user),
                    &req.username,
                    name.as_ref(),
                    "totp_replayed",
                )
                .await);
            }
        }
        (None, true) => enrolment_required = true,
        (None, false) => {}
    }

    state.store.reset_login_failures(&user.id).await?;
    if let Some(old) = old_session {
        state.store.delete_session(&token_hash(old)).await?;
    }
    let token = random_token("");
    let csrf = csrf_for(token.expose());
    state
        .store
        .create_session(&Session {
            id_hash: token_hash(token.expose()),
            tenant: user.tenant.clone(),
            user: user.id.clone(),
            csrf_hash: token_hash(&csrf),
            created_at: now,
            last_seen_at: now,
            pending_totp: enrolment_required,
            totp_enrolment: None,
        })
        .await?;
    let detail = match (&user.totp_secret, enrolment_required) {
        (Some(_), _) => "password+totp",
        (None, true) => "password; totp enrolment required",
        (None, false) => "password",
    };
    security_event(
        state,
        SecurityEventKind::LoginSuccess,
        true,
        detail,
        Some(&user),
        None,
        client,
    )
    .await?;
    state.metrics.count_login("success");
    Ok(LoginOutcome {
        max_age: i64::from(state.config.session.absolute_minutes) * 60,
        user,
        session_token: token,
        csrf,
        enrolment_required,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Counts a failure everywhere it counts, records it, and returns the generic error.
async fn fail(
    state: &AppState,
    client: &Client,
    user: Option<&User>,
    tried: &str,
    name: Option<&Username>,
    why: &str,
) -> AppError {
    let now = state.clock.now();
    let unix = now.unix_timestamp();
    state.throttle.ip_failed(client.ip, unix);
    state.metrics.count_login("failure");
    let max_failures = state.config.login.max_failures;
    let mut locked = false;
    match user {
        Some(u) => match state.store.record_login_failure(&u.id, None).await {
            Ok(n) => {
                if let Some(secs) = state.throttle.account_lockout(n, max_failures) {
                    locked = state
                        .store
                        .lock_user(&u.id, now + Duration::seconds(secs))
                        .await
                        .is_ok();
                }
            }
            Err(e) => return e.into(),
        },
        None => {
            let key = name.map_or("", |n| n.as_str());
            state.throttle.name_failed(key, unix, max_failures);
            locked = state.throttle.name_blocked(key, unix).is_some();
        }
    }
    if let Err(e) = security_event(
        state,
        SecurityEventKind::LoginFailure,
        false,
        why,
        user,
        Some(&truncate(tried)),
        client,
    )
    .await
    {
        return e;
    }
    if locked {
        let detail = format!("after {max_failures} failures");
        if let Err(e) = security_event(
            state,
            SecurityEventKind::Lockout,
            false,
            &detail,
            user,
            Some(&truncate(tried)),
            client,
        )
        .await
        {
            return e;
        }
    }
    AppError::BadCredentials
}

pub async fn logout(
    state: &AppState,
    client: &Client,
    session: &SessionCaller,
) -> Result<(), AppError> {
    state.store.delete_session(&session.session.id_hash).await?;
    security_event(
        state,
        SecurityEventKind::Logout,
        true,
        "logout",
        Some(&session.user),
        None,
        client,
    )
    .await
}

/// Starts (or continues) TOTP enrolment: returns the secret kept on the session for
/// confirmation, creating one on first call.
pub async fn enrolment_secret(
    state: &AppState,
    session: &SessionCaller,
) -> Result<TotpSecret, AppError> {
    let account = session.user.username.as_str();
    if let Some(b32) = &session.session.totp_enrolment {
        return TotpSecret::from_base32(b32, &state.totp_issuer, account)
            .map_err(|e| AppError::Internal(e.to_string()));
    }
    let secret = TotpSecret::generate(&state.totp_issuer, account)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    state
        .store
        .set_session_totp_enrolment(&session.session.id_hash, Some(secret.base32().expose()))
        .await?;
    Ok(secret)
}

/// Confirms enrolment with a code from the app. On success the secret is saved, every other
/// session of the user ends, and a new session replaces this one (privilege change = new id).
pub async fn confirm_enrolment(
    state: &AppState,
    client: &Client,
    session: &SessionCaller,
    code: &str,
) -> Result<LoginOutcome, AppError> {
    let Some(b32) = &session.session.totp_enrolment else {
        return Err(AppError::BadRequest(
            "no enrolment in progress; open the enrolment page again".into(),
        ));
    };
    let now = state.clock.now();
    let secret = TotpSecret::from_base32(b32, &state.totp_issuer, session.user.username.as_str())
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let Some(step) = secret.verify(code, now.unix_timestamp()) else {
        return Err(AppError::BadRequest(
            "the code does not match; check the time on your phone and try the next code".into(),
        ));
    };
    state
        .store
        .set_totp_secret(&session.user.id, Some(b32))
        .await?;
    state.store.use_totp_step(&session.user.id, step).await?;
    state
        .store
        .delete_sessions_of_user(&session.user.id)
        .await?;
    security_event(
        state,
        SecurityEventKind::TotpEnrolled,
        true,
        "totp enrolled",
        Some(&session.user),
        None,
        client,
    )
    .await?;
    let token = random_token("");
    let csrf = csrf_for(token.expose());
    state
        .store
        .create_session(&Session {
            id_hash: token_hash(token.expose()),
            tenant: session.user.tenant.clone(),
            user: session.user.id.clone(),
            csrf_hash: token_hash(&csrf),
            created_at: now,
            last_seen_at: now,
            pending_totp: false,
            totp_enrolment: None,
        })
        .await?;
    let mut user = session.user.clone();
    user.totp_secret = Some(b32.clone());
    Ok(LoginOutcome {
        max_age: i64::from(state.config.session.absolute_minutes) * 60,
        user,
        session_token: token,
        csrf,
        enrolment_required: false,
    })
}
