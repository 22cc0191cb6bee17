//! `/manage/roles`: every role assignment of the tenant with its period; assigning a role
//! (person, role, unit, from, to) and ending an assignment.

use super::people::role_options;
use super::{Directory, FieldError, ShownPeriod, admin, form_period, source_label};
use crate::session::security_event;
use crate::web::{Layout, PageError, Web, form, render, render_status};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_core::{OrgUnitId, PersonId, PersonKind, Role};
use tillit_store::{NewRoleAssignment, SecurityEventKind};

struct RoleRow {
    id: String,
    person: String,
    role: &'static str,
    unit: String,
    period: ShownPeriod,
    /// Made here (and so ended here), rather than derived from a FHIR PractitionerRole.
    by_admin: bool,
    source: String,
    /// The caller's own admin role, which they cannot end themselves.
    own_admin: bool,
}

#[derive(Default)]
struct AssignForm {
    person: String,
    role: String,
    unit: String,
    from: String,
    to: String,
}

#[derive(Template)]
#[template(path = "web/admin/roles.html")]
struct RolesPage {
    l: Layout,
    rows: Vec<RoleRow>,
    show_all: bool,
    hidden: usize,
    form: AssignForm,
    error: Option<FieldError>,
    saved: Option<&'static str>,
    staff_options: Vec<(String, String)>,
    role_options: Vec<(&'static str, &'static str)>,
    unit_options: Vec<(String, String)>,
}

impl RolesPage {
    /// The field the error is about, for `aria-invalid` (empty without an error).
    fn err_field(&self) -> &'static str {
        self.error.as_ref().map_or("", |e| e.field)
    }
}

async fn roles_page(
    web: &Web,
    show_all: bool,
    form: AssignForm,
    error: Option<FieldError>,
    saved: Option<&'static str>,
) -> Result<Response, PageError> {
    admin(web)?;
    let tenant = &web.principal.tenant.id;
    let now = web.now();
    let dir = Directory::load(web).await?;
    let mut rows = Vec::new();
    let mut hidden = 0;
    for (a, source) in web.state.store.tenant_role_assignments(tenant).await? {
        let period = ShownPeriod::new(&a.period, now, web.tr);
        if !show_all && period.state == super::PeriodState::Ended {
            hidden += 1;
            continue;
        }
        rows.push(RoleRow {
            id: a.id.clone(),
            person: dir.name(&a.person),
            role: web.tr.role(a.role),
            unit: dir.unit_name(&a.org_unit),
            by_admin: source == "admin",
            own_admin: a.person == web.principal.user.person && a.role == Role::TenantAdmin,
            source: source_label(&source, web.tr),
            period,
        });
    }
    rows.sort_by_key(|r| r.person.to_lowercase());
    let page = RolesPage {
        l: web.layout(web.tr.t("admin.roles.title")),
        rows,
        show_all,
        hidden,
        form,
        saved,
        staff_options: dir.staff_options(),
        role_options: role_options(web.tr),
        unit_options: dir.unit_options(),
        error,
    };
    if page.error.is_some() {
        render_status(StatusCode::BAD_REQUEST, &page)
    } else {
        render(&page)
    }
}

/// `GET /manage/roles[?all=1]`: current and coming assignments; `all` adds the ended ones.
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let saved = if q.contains_key("assigned") {
        Some("admin.roles.assigned")
    } else if q.contains_key("ended") {
        Some("admin.roles.ended_ok")
    } else {
        None
    };
    let r = roles_page(
        &web,
        q.contains_key("all"),
        AssignForm::default(),
        None,
        saved,
    )
    .await;
    web.finish(r)
}

/// `POST /manage/roles`: assigns a role to a staff member in a unit for a period.
pub async fn assign(web: Web, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let field = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
        let input = AssignForm {
            person: field("person"),
            role: field("role"),
            unit: field("unit"),
            from: field("from"),
            to: field("to"),
        };
        let tr = web.tr;
        let w = &web;
        let refuse = |input, field, message: String| async move {
            roles_page(w, false, input, Some(FieldError::new(field, message)), None).await
        };
        let tenant = web.principal.tenant.id.clone();
        let store = &*web.state.store;
        let person = match PersonId::parse(input.person.as_str()) {
            Ok(p) => match store.person(&tenant, &p).await? {
                Some(x) if x.kind == PersonKind::Staff => p,
                _ => return refuse(input, "person", tr.t("admin.roles.error.person").into()).await,
            },
            Err(_) => {
                return refuse(input, "person", tr.t("admin.roles.error.person").into()).await;
            }
        };
        let role = match Role::parse(&input.role) {
            Ok(r) if r != Role::Operator => r,
            _ => return refuse(input, "role", tr.t("admin.roles.error.role").into()).await,
        };
        let units = store.list_org_units(&tenant).await?;
        let unit = match OrgUnitId::parse(input.unit.as_str()) {
            Ok(u) if units.iter().any(|x| x.id == u) => u,
            _ => return refuse(input, "unit", tr.t("admin.roles.error.unit").into()).await,
        };
        let now = web.now();
        let period = match form_period(&f, now) {
            Ok(p) => p,
            Err((field, key)) => return refuse(input, field, tr.t(key).into()).await,
        };
        let a = store
            .assign_role(
                &NewRoleAssignment {
                    tenant: tenant.clone(),
                    person: person.clone(),
                    role,
                    org_unit: unit.clone(),
                    period,
                },
                now,
            )
            .await?;
        security_event(
            &web.state,
            SecurityEventKind::AccessChanged,
            true,
            &format!(
                "role {} assignment {} for Practitioner/{person} in unit {unit}",
                role.code(),
                a.id
            ),
            Some(&web.principal.user),
            None,
            &web.client,
        )
        .await?;
        Ok(Redirect::to("/manage/roles?assigned=1").into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /manage/roles/{id}/end`: ends an assignment now (it stays on record). An admin
/// cannot end their own admin role (another admin can).
pub async fn end(web: Web, Path(id): Path<String>, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let tenant = &web.principal.tenant.id;
        let store = &*web.state.store;
        let (a, _) = store
            .tenant_role_assignments(tenant)
            .await?
            .into_iter()
            .find(|(a, _)| a.id == id)
            .ok_or_else(PageError::not_found)?;
        if a.person == web.principal.user.person && a.role == Role::TenantAdmin {
            return Err(PageError::bad_request(
                web.tr.t("admin.roles.error.own_admin"),
            ));
        }
        store
            .end_role_assignment(tenant, &id, web.now())
            .await
            .map_err(|e| match e {
                tillit_store::StoreError::Invalid(m) => PageError::bad_request(m),
                other => PageError::from(other),
            })?;
        security_event(
            &web.state,
            SecurityEventKind::AccessChanged,
            true,
            &format!(
                "role {} assignment {id} of Practitioner/{} ended",
                a.role.code(),
                a.person
            ),
            Some(&web.principal.user),
            None,
            &web.client,
        )
        .await?;
        Ok(Redirect::to("/manage/roles?ended=1").into_response())
    }
    .await;
    web.finish(r)
}
