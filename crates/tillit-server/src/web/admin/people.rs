//! `/manage/people`: the tenant's staff (roles, units, accounts), patients (by id only) and
//! relatives, with each account's status; creating a staff member with an account; unlocking
//! a locked account.

use super::{Directory, FieldError, admin};
use crate::session::security_event;
use crate::web::{Layout, PageError, Web, form, render, render_status};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_core::{OrgUnitId, PersonId, PersonKind, Role, Username};
use tillit_crypto::{PasswordError, PasswordHasher, SecretString};
use tillit_store::{AccountStatus, NewRoleAssignment, SecurityEventKind, UserId};

/// An account as the page shows it (never a secret; a patient's username is not shown, as
/// it often is their name).
struct AccountView {
    id: String,
    username: Option<String>,
    totp: bool,
    /// Staff must have TOTP; for others it is optional.
    totp_required: bool,
    locked_until: Option<String>,
    failed_logins: u32,
    disabled: bool,
}

struct StaffRow {
    id: String,
    name: String,
    hpr: String,
    /// Active roles, each "Role (Unit)".
    roles: Vec<String>,
    accounts: Vec<AccountView>,
}

struct PatientRow {
    id: String,
    accounts: Vec<AccountView>,
}

struct RelativeRow {
    name: String,
    patients: Vec<String>,
    accounts: Vec<AccountView>,
}

/// What the creation form keeps after a refusal (never the password).
#[derive(Default)]
struct CreateForm {
    name: String,
    hpr: String,
    username: String,
    role: String,
    unit: String,
}

/// A staff member just created: the username, and the password when it was generated (shown
/// once; only its hash is stored).
struct Created {
    name: String,
    username: String,
    password: Option<String>,
}

#[derive(Template)]
#[template(path = "web/admin/people.html")]
struct PeoplePage {
    l: Layout,
    staff: Vec<StaffRow>,
    patients: Vec<PatientRow>,
    relatives: Vec<RelativeRow>,
    form: CreateForm,
    error: Option<FieldError>,
    created: Option<Created>,
    unlocked: bool,
    role_options: Vec<(&'static str, &'static str)>,
    unit_options: Vec<(String, String)>,
    min_len: usize,
}

impl PeoplePage {
    /// The field the error is about, for `aria-invalid` (empty without an error).
    fn err_field(&self) -> &'static str {
        self.error.as_ref().map_or("", |e| e.field)
    }
}

/// The roles an admin can give (operators exist only in the platform's operator tenant).
pub(super) fn role_options(tr: crate::web::i18n::Tr) -> Vec<(&'static str, &'static str)> {
    Role::ALL
        .into_iter()
        .filter(|r| *r != Role::Operator)
        .map(|r| (r.code(), tr.role(r)))
        .collect()
}

fn account_view(a: &AccountStatus, kind: PersonKind, web: &Web) -> AccountView {
    let now = web.now();
    AccountView {
        id: a.id.0.clone(),
        username: (kind != PersonKind::Patient).then(|| a.username.to_string()),
        totp: a.totp_enrolled,
        totp_required: kind.requires_totp(),
        locked_until: a
            .locked_until
            .filter(|t| *t > now)
            .map(|t| web.tr.datetime(t)),
        failed_logins: a.failed_logins,
        disabled: a.disabled,
    }
}

async fn people_page(
    web: &Web,
    form: CreateForm,
    error: Option<FieldError>,
    created: Option<Created>,
    unlocked: bool,
) -> Result<Response, PageError> {
    admin(web)?;
    let tenant = &web.principal.tenant.id;
    let store = &web.state.store;
    let now = web.now();
    let dir = Directory::load(web).await?;
    let mut accounts: HashMap<PersonId, Vec<AccountStatus>> = HashMap::new();
    for a in store.account_statuses(tenant).await? {
        accounts.entry(a.person.clone()).or_default().push(a);
    }
    let mut roles: HashMap<PersonId, Vec<String>> = HashMap::new();
    for (a, _) in store.tenant_role_assignments(tenant).await? {
        if a.period.contains(now) {
            roles.entry(a.person.clone()).or_default().push(format!(
                "{} ({})",
                web.tr.role(a.role),
                dir.unit_name(&a.org_unit)
            ));
        }
    }
    let views = |id: &PersonId, kind: PersonKind| -> Vec<AccountView> {
        accounts
            .get(id)
            .map(|v| v.iter().map(|a| account_view(a, kind, web)).collect())
            .unwrap_or_default()
    };
    let mut persons: Vec<_> = dir.persons.values().collect();
    persons.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut staff = Vec::new();
    let mut patients = Vec::new();
    let mut relatives = Vec::new();
    for p in persons {
        match p.kind {
            PersonKind::Staff => staff.push(StaffRow {
                id: p.id.to_string(),
                name: dir.name(&p.id),
                hpr: p.professional_id.clone().unwrap_or_default(),
                roles: roles.remove(&p.id).unwrap_or_default(),
                accounts: views(&p.id, p.kind),
            }),
            PersonKind::Patient => patients.push(PatientRow {
                id: p.id.to_string(),
                accounts: views(&p.id, p.kind),
            }),
            PersonKind::Relative => relatives.push(RelativeRow {
                name: dir.name(&p.id),
                patients: store
                    .patients_of_relative(tenant, &p.id)
                    .await?
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                accounts: views(&p.id, p.kind),
            }),
        }
    }
    staff.sort_by_key(|s| s.name.to_lowercase());
    let page = PeoplePage {
        l: web.layout(web.tr.t("admin.people.title")),
        staff,
        patients,
        relatives,
        form,
        role_options: role_options(web.tr),
        unit_options: dir.unit_options(),
        min_len: tillit_crypto::PASSWORD_MIN_LEN,
        created,
        unlocked,
        error,
    };
    if page.error.is_some() {
        render_status(StatusCode::BAD_REQUEST, &page)
    } else {
        render(&page)
    }
}

/// `GET /manage/people`
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let r = people_page(
        &web,
        CreateForm::default(),
        None,
        None,
        q.contains_key("unlocked"),
    )
    .await;
    web.finish(r)
}

/// `POST /manage/people`: a staff member with a login account, and optionally a first role.
/// A password left empty is generated and shown once; staff set up TOTP at their first login.
pub async fn create(web: Web, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let field = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
        let input = CreateForm {
            name: field("name"),
            hpr: field("hpr"),
            username: field("username").to_lowercase(),
            role: field("role"),
            unit: field("unit"),
        };
        let password = f.get("password").cloned().unwrap_or_default();
        let tr = web.tr;
        let w = &web;
        let refuse = |input, field, key: &str| {
            let e = FieldError::new(field, tr.t(key));
            async move { people_page(w, input, Some(e), None, false).await }
        };
        if input.name.is_empty() || input.name.chars().count() > 200 {
            return refuse(input, "name", "admin.people.error.name").await;
        }
        let hpr_ok = input.hpr.len() <= 9 && input.hpr.chars().all(|c| c.is_ascii_digit());
        if !hpr_ok {
            return refuse(input, "hpr", "admin.people.error.hpr").await;
        }
        let Ok(username) = Username::parse(&input.username) else {
            return refuse(input, "username", "admin.people.error.username").await;
        };
        let (password, generated) = if password.is_empty() {
            let p: String = tillit_crypto::random_token("")
                .expose()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect();
            (SecretString::new(p), true)
        } else {
            (SecretString::new(password), false)
        };
        if let Err(e) = PasswordHasher::check_policy(&password) {
            let message = match e {
                PasswordError::TooLong(n) => tr.t1("admin.people.error.password_long", n),
                _ => tr.t1(
                    "admin.people.error.password_short",
                    tillit_crypto::PASSWORD_MIN_LEN,
                ),
            };
            let e = FieldError::new("password", message);
            return people_page(&web, input, Some(e), None, false).await;
        }
        let role = match input.role.as_str() {
            "" => None,
            code => match Role::parse(code) {
                Ok(r) if r != Role::Operator => Some(r),
                _ => return refuse(input, "role", "admin.roles.error.role").await,
            },
        };
        let tenant = web.principal.tenant.id.clone();
        let units = web.state.store.list_org_units(&tenant).await?;
        let unit = match (role, OrgUnitId::parse(input.unit.as_str()).ok()) {
            (None, _) => None,
            (Some(_), Some(u)) if units.iter().any(|x| x.id == u) => Some(u),
            (Some(_), _) => return refuse(input, "unit", "admin.roles.error.unit").await,
        };
        if web.state.store.user_by_username(&username).await?.is_some() {
            return refuse(input, "username", "admin.people.error.username_taken").await;
        }
        let now = web.now();
        let store = &*web.state.store;
        let person = PersonId::random();
        let hpr = (!input.hpr.is_empty()).then_some(input.hpr.as_str());
        crate::admin::create_staff(store, &tenant, &person, &input.name, hpr, now).await?;
        let shown = generated.then(|| password.expose().to_string());
        let Some(user) = crate::admin::create_account(
            store,
            web.state.hasher.clone(),
            crate::admin::NewAccount {
                tenant: &tenant,
                person: &person,
                username: username.clone(),
                password,
                totp_secret: None,
            },
            now,
        )
        .await?
        else {
            return refuse(input, "username", "admin.people.error.username_taken").await;
        };
        let mut detail = format!(
            "staff Practitioner/{person} created with account {}",
            user.id.0
        );
        if let (Some(role), Some(unit)) = (role, unit) {
            let a = store
                .assign_role(
                    &NewRoleAssignment {
                        tenant: tenant.clone(),
                        person: person.clone(),
                        role,
                        org_unit: unit.clone(),
                        period: tillit_core::Period::new(now, None)
                            .map_err(|e| PageError::bad_request(e.to_string()))?,
                    },
                    now,
                )
                .await?;
            detail.push_str(&format!(
                "; role {} assignment {} in unit {unit}",
                role.code(),
                a.id
            ));
        }
        security_event(
            &web.state,
            SecurityEventKind::AccessChanged,
            true,
            &detail,
            Some(&web.principal.user),
            None,
            &web.client,
        )
        .await?;
        let created = Created {
            name: input.name.clone(),
            username: username.to_string(),
            password: shown,
        };
        people_page(&web, CreateForm::default(), None, Some(created), false).await
    }
    .await;
    web.finish(r)
}

/// `POST /manage/accounts/{id}/unlock`: clears a lockout after failed logins.
pub async fn unlock(web: Web, Path(id): Path<String>, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let user = web
            .state
            .store
            .user(&UserId(id))
            .await?
            .filter(|u| u.tenant == web.principal.tenant.id)
            .ok_or_else(PageError::not_found)?;
        web.state.store.reset_login_failures(&user.id).await?;
        security_event(
            &web.state,
            SecurityEventKind::AccessChanged,
            true,
            &format!("account {} unlocked by an admin", user.id.0),
            Some(&web.principal.user),
            None,
            &web.client,
        )
        .await?;
        Ok(Redirect::to("/manage/people?unlocked=1").into_response())
    }
    .await;
    web.finish(r)
}
