//! `/manage/care`: the tenant's teams (org units) and their members, and its care
//! relationships (patient, staff member or team, basis, period); adding one and ending one.
//! A relationship gives its staff a need to know the patient: access follows it from the
//! next request after a change.

use super::{Directory, FieldError, ShownPeriod, admin, form_period, source_label};
use crate::session::security_event;
use crate::web::{Layout, PageError, Web, form, render, render_status};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_core::{AccessKind, OrgUnitId, PersonId, PersonKind};
use tillit_store::{AccessParty, CareParty, NewCareRelationship, SecurityEventKind};

struct TeamRow {
    depth: usize,
    name: String,
    /// Staff with an active role in the unit, "Name (Role)".
    members: Vec<String>,
    /// Active care relationships of the unit as a whole.
    patients: usize,
}

struct CareRow {
    id: String,
    patient: String,
    /// The team's or the staff member's name.
    party: String,
    team: bool,
    purpose: String,
    /// The categories it is limited to; empty: all.
    categories: Vec<&'static str>,
    period: ShownPeriod,
    by_admin: bool,
    source: String,
}

#[derive(Default)]
struct AddForm {
    patient: String,
    party: String,
    unit: String,
    staff: String,
    purpose: String,
    from: String,
    to: String,
}

#[derive(Template)]
#[template(path = "web/admin/care.html")]
struct CarePage {
    l: Layout,
    teams: Vec<TeamRow>,
    rows: Vec<CareRow>,
    show_all: bool,
    hidden: usize,
    form: AddForm,
    error: Option<FieldError>,
    saved: Option<&'static str>,
    patient_options: Vec<String>,
    staff_options: Vec<(String, String)>,
    unit_options: Vec<(String, String)>,
}

impl CarePage {
    /// The field the error is about, for `aria-invalid` (empty without an error).
    fn err_field(&self) -> &'static str {
        self.error.as_ref().map_or("", |e| e.field)
    }
}

async fn care_page(
    web: &Web,
    show_all: bool,
    form: AddForm,
    error: Option<FieldError>,
    saved: Option<&'static str>,
) -> Result<Response, PageError> {
    admin(web)?;
    let tenant = &web.principal.tenant.id;
    let store = &web.state.store;
    let now = web.now();
    let tr = web.tr;
    let dir = Directory::load(web).await?;
    let rules = store.access_rules_of_kind(tenant, AccessKind::Care).await?;
    let mut members: HashMap<OrgUnitId, Vec<String>> = HashMap::new();
    for (a, _) in store.tenant_role_assignments(tenant).await? {
        if a.period.contains(now) {
            members.entry(a.org_unit.clone()).or_default().push(format!(
                "{} ({})",
                dir.name(&a.person),
                tr.role(a.role)
            ));
        }
    }
    let teams = dir
        .unit_tree()
        .into_iter()
        .map(|(depth, u)| {
            let mut m = members.remove(&u.id).unwrap_or_default();
            m.sort_by_key(|x| x.to_lowercase());
            TeamRow {
                depth,
                name: u.name.clone(),
                members: m,
                patients: rules
                    .iter()
                    .filter(|r| r.rule.party == AccessParty::OrgUnit(u.id.clone()))
                    .filter(|r| r.rule.period.contains(now))
                    .count(),
            }
        })
        .collect();
    let mut rows = Vec::new();
    let mut hidden = 0;
    for r in &rules {
        let period = ShownPeriod::new(&r.rule.period, now, tr);
        if !show_all && period.ended() {
            hidden += 1;
            continue;
        }
        let (party, team) = match &r.rule.party {
            AccessParty::OrgUnit(u) => (dir.unit_name(u), true),
            AccessParty::Person(p) => (dir.name(p), false),
            AccessParty::Everyone => (String::new(), false),
        };
        rows.push(CareRow {
            id: r.id.clone(),
            patient: r.rule.patient.to_string(),
            party,
            team,
            purpose: r.rule.purpose.clone(),
            categories: r
                .rule
                .categories
                .iter()
                .map(|c| tr.category_code(c))
                .collect(),
            period,
            by_admin: r.rule.source == "admin",
            source: source_label(&r.rule.source, tr),
        });
    }
    rows.sort_by(|a, b| (&a.patient, &a.party).cmp(&(&b.patient, &b.party)));
    let page = CarePage {
        l: web.layout(tr.t("admin.care.title")),
        teams,
        rows,
        show_all,
        hidden,
        form,
        saved,
        patient_options: dir.patient_ids(),
        staff_options: dir.staff_options(),
        unit_options: dir.unit_options(),
        error,
    };
    if page.error.is_some() {
        render_status(StatusCode::BAD_REQUEST, &page)
    } else {
        render(&page)
    }
}

/// `GET /manage/care[?all=1]`: current and coming relationships; `all` adds the ended ones.
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let saved = if q.contains_key("added") {
        Some("admin.care.added")
    } else if q.contains_key("ended") {
        Some("admin.care.ended_ok")
    } else {
        None
    };
    let r = care_page(&web, q.contains_key("all"), AddForm::default(), None, saved).await;
    web.finish(r)
}

/// `POST /manage/care`: a care relationship between a patient and a team or a staff member.
pub async fn add(web: Web, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let field = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
        let input = AddForm {
            patient: field("patient"),
            party: field("party"),
            unit: field("unit"),
            staff: field("staff"),
            purpose: field("purpose"),
            from: field("from"),
            to: field("to"),
        };
        let tr = web.tr;
        let w = &web;
        let refuse = |input, field, key: &'static str| async move {
            care_page(
                w,
                false,
                input,
                Some(FieldError::new(field, tr.t(key))),
                None,
            )
            .await
        };
        let tenant = web.principal.tenant.id.clone();
        let store = &*web.state.store;
        let kind_of = |id: &str| {
            let id = PersonId::parse(id).ok();
            let tenant = tenant.clone();
            async move {
                match id {
                    Some(p) => {
                        Ok::<_, PageError>(store.person(&tenant, &p).await?.map(|x| (p, x.kind)))
                    }
                    None => Ok(None),
                }
            }
        };
        let patient = match kind_of(&input.patient).await? {
            Some((p, PersonKind::Patient)) => p,
            _ => return refuse(input, "patient", "admin.care.error.patient").await,
        };
        let party = match input.party.as_str() {
            "unit" => {
                let units = store.list_org_units(&tenant).await?;
                match OrgUnitId::parse(input.unit.as_str()) {
                    Ok(u) if units.iter().any(|x| x.id == u) => CareParty::OrgUnit(u),
                    _ => return refuse(input, "unit", "admin.care.error.unit").await,
                }
            }
            "staff" => match kind_of(&input.staff).await? {
                Some((p, PersonKind::Staff)) => CareParty::Staff(p),
                _ => return refuse(input, "staff", "admin.care.error.staff").await,
            },
            _ => return refuse(input, "party-unit", "admin.care.error.party").await,
        };
        if input.purpose.is_empty() || input.purpose.chars().count() > 200 {
            return refuse(input, "purpose", "admin.care.error.purpose").await;
        }
        let now = web.now();
        let period = match form_period(&f, now) {
            Ok(p) => p,
            Err((field, key)) => return refuse(input, field, key).await,
        };
        let rel = store
            .add_care_relationship(
                &NewCareRelationship {
                    tenant: tenant.clone(),
                    party: party.clone(),
                    patient: patient.clone(),
                    purpose: input.purpose.clone(),
                    period,
                    decided_by: Some(web.principal.user.person.clone()),
                },
                now,
            )
            .await?;
        let who = match &party {
            CareParty::Staff(p) => format!("Practitioner/{p}"),
            CareParty::OrgUnit(u) => format!("unit {u}"),
        };
        security_event(
            &web.state,
            SecurityEventKind::AccessChanged,
            true,
            &format!("care relationship {} of {who} to Patient/{patient}", rel.id),
            Some(&web.principal.user),
            None,
            &web.client,
        )
        .await?;
        Ok(Redirect::to("/manage/care?added=1").into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /manage/care/{id}/end`: ends a relationship made here now; access based on it stops
/// with the next request. One from the EPJ (a CareTeam, an EpisodeOfCare) ends there.
pub async fn end(web: Web, Path(id): Path<String>, body: Bytes) -> Response {
    let r = async {
        admin(&web)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let tenant = &web.principal.tenant.id;
        let store = &*web.state.store;
        // Only a care relationship of this tenant ends here, not another kind of rule.
        let rule = store
            .access_rules_of_kind(tenant, AccessKind::Care)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(PageError::not_found)?;
        store
            .end_care_relationship(tenant, &id, web.now())
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
                "care relationship {id} to Patient/{} ended",
                rule.rule.patient
            ),
            Some(&web.principal.user),
            None,
            &web.client,
        )
        .await?;
        Ok(Redirect::to("/manage/care?ended=1").into_response())
    }
    .await;
    web.finish(r)
}
