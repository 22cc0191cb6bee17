//! Blocks (sperring): the patient stops a staff member, an org unit, or every staff member
//! for some categories, from reading their record. A block is the patient's own `Consent`
//! (`provision.type = deny`), written through the FHIR service; see the module above.
//!
//! What a block does is the baseline policy `platform.patient-block`: it forbids staff every
//! action the block covers, beating care relationships and grants; emergency access overrides
//! it only when the tenant's setting says so (the patient is told either way, in their log);
//! the tenant's record-system integrations keep exchanging the record, and relatives are
//! bound by their consent, not by blocks. The page says exactly that.

use super::super::{Audience, Layout, PageError, Web, form, render_status};
use super::{
    access_changed, categories_words, choosable, consent_of, consent_resource, consent_rules, me,
    not_ended, person_name, provision, until_of,
};
use crate::authz::Actor;
use crate::fhir::service::Fhir;
use askama::Template;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use std::collections::HashMap;
use tillit_core::{AccessKind, OrgUnitId, PersonId, PersonKind, Role};
use tillit_fhir::category::Category;
use tillit_store::AccessParty;

/// One block in force (or starting later).
struct BlockRow {
    whom: String,
    scope: String,
    since: String,
    until: Option<String>,
    meaning: String,
    /// The Consent to lift it by (blocks made elsewhere are lifted there).
    consent: Option<String>,
}

/// A choice in a list (`id`, words, chosen).
struct Opt {
    id: String,
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "web/patient/blocks.html")]
struct BlocksPage {
    l: Layout,
    rows: Vec<BlockRow>,
    staff: Vec<Opt>,
    units: Vec<Opt>,
    categories: Vec<Opt>,
    kind: String,
    until: String,
    error: Option<&'static str>,
    error_field: &'static str,
    saved: Option<&'static str>,
    /// Whether emergency access overrides a block in this tenant.
    overrides: bool,
}

/// What the form asked for, kept when it is shown again.
#[derive(Default)]
struct Asked {
    kind: String,
    person: String,
    unit: String,
    category: String,
    until: String,
}

async fn blocks_page(
    web: &Web,
    asked: Asked,
    error: Option<(&'static str, &'static str)>,
    saved: Option<&'static str>,
) -> Result<Response, PageError> {
    web.require(Audience::Patient)?;
    let tr = web.tr;
    let tenant = &web.principal.tenant.id;
    let now = web.now();
    let settings = web.state.store.tenant_settings(tenant).await?;
    let units = web.state.store.list_org_units(tenant).await?;
    let unit_name = |id: &OrgUnitId| {
        units
            .iter()
            .find(|u| &u.id == id)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| tr.t("patient.blocks.unknown_unit").to_string())
    };
    let mut rows = Vec::new();
    for r in web
        .state
        .store
        .access_rules_for_patient(tenant, &web.principal.user.person)
        .await?
    {
        if r.rule.kind != AccessKind::Block || !not_ended(&r, now) {
            continue;
        }
        let cats = categories_words(tr, &r.rule.categories);
        let all = r.rule.categories.is_empty();
        let (whom, meaning) = match &r.rule.party {
            AccessParty::Person(p) => {
                let name = person_name(web, p)
                    .await
                    .unwrap_or_else(|| tr.t("patient.blocks.unknown_person").to_string());
                let meaning = if all {
                    tr.t1("patient.blocks.means.person_all", &name)
                } else {
                    tr.t2("patient.blocks.means.person_some", &name, &cats)
                };
                (name, meaning)
            }
            AccessParty::OrgUnit(u) => {
                let name = unit_name(u);
                let meaning = if all {
                    tr.t1("patient.blocks.means.unit_all", &name)
                } else {
                    tr.t2("patient.blocks.means.unit_some", &name, &cats)
                };
                (name, meaning)
            }
            AccessParty::Everyone => {
                let meaning = if all {
                    tr.t("patient.blocks.means.everyone_all").to_string()
                } else {
                    tr.t1("patient.blocks.means.everyone_some", &cats)
                };
                (tr.t("patient.blocks.everyone").to_string(), meaning)
            }
        };
        rows.push(BlockRow {
            whom,
            scope: if all {
                tr.t("patient.blocks.whole_record").to_string()
            } else {
                cats
            },
            since: tr.date(r.rule.period.start()),
            until: r.rule.period.end().map(|e| super::last_day(tr, e)),
            meaning,
            consent: consent_of(&r),
        });
    }
    // People who read records; the record system's integrations are no person a block stops.
    let integrations: Vec<PersonId> = {
        let assignments = web.state.store.tenant_role_assignments(tenant).await?;
        let mut by_person: HashMap<&PersonId, Vec<Role>> = HashMap::new();
        for (a, _) in &assignments {
            if a.period.contains(now) {
                by_person.entry(&a.person).or_default().push(a.role);
            }
        }
        by_person
            .into_iter()
            .filter(|(_, roles)| roles.iter().all(|r| *r == Role::Integration))
            .map(|(p, _)| p.clone())
            .collect()
    };
    let mut staff: Vec<Opt> = web
        .state
        .store
        .list_persons(tenant, Some(PersonKind::Staff))
        .await?
        .into_iter()
        .filter(|p| !integrations.contains(&p.id))
        .filter_map(|p| {
            let name = p.display_name.filter(|n| !n.is_empty())?;
            Some(Opt {
                selected: asked.person == p.id.as_str(),
                id: p.id.to_string(),
                name,
            })
        })
        .collect();
    staff.sort_by(|a, b| a.name.cmp(&b.name));
    let mut unit_opts: Vec<Opt> = units
        .iter()
        .map(|u| Opt {
            selected: asked.unit == u.id.as_str(),
            id: u.id.to_string(),
            name: u.name.clone(),
        })
        .collect();
    unit_opts.sort_by(|a, b| a.name.cmp(&b.name));
    let categories = choosable()
        .map(|c| Opt {
            selected: asked.category == c.code(),
            id: c.code().to_string(),
            name: tr.category(c).to_string(),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render_status(
        status,
        &BlocksPage {
            l: web.layout(tr.t("patient.blocks.title")),
            rows,
            staff,
            units: unit_opts,
            categories,
            kind: asked.kind,
            until: asked.until,
            error: error.map(|e| e.0),
            error_field: error.map(|e| e.1).unwrap_or_default(),
            saved,
            overrides: settings.emergency_overrides_block,
        },
    )
}

/// `GET /me/blocks`
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let saved = match q.get("saved").map(String::as_str) {
        Some("created") => Some("patient.blocks.saved.created"),
        Some("lifted") => Some("patient.blocks.saved.lifted"),
        _ => None,
    };
    let r = blocks_page(&web, Asked::default(), None, saved).await;
    web.finish(r)
}

/// `POST /me/blocks`: a new block on a person, a unit or a category.
pub async fn create(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let asked = Asked {
            kind: get("kind"),
            person: get("person"),
            unit: get("unit"),
            category: get("category"),
            until: get("until"),
        };
        let tenant = &web.principal.tenant.id;
        let now = web.now();
        let until = match until_of(Some(&asked.until), now) {
            Ok(u) => u,
            Err(()) => {
                return blocks_page(
                    &web,
                    asked,
                    Some(("patient.blocks.error.until", "until")),
                    None,
                )
                .await;
            }
        };
        let (actor, categories, party) = match asked.kind.as_str() {
            "person" => {
                let staff = match PersonId::parse(&asked.person) {
                    Ok(id) => web
                        .state
                        .store
                        .person(tenant, &id)
                        .await?
                        .filter(|p| p.kind == PersonKind::Staff),
                    Err(_) => None,
                };
                let Some(p) = staff else {
                    return blocks_page(
                        &web,
                        asked,
                        Some(("patient.blocks.error.person", "person")),
                        None,
                    )
                    .await;
                };
                (
                    Some(format!("Practitioner/{}", p.id)),
                    Vec::new(),
                    AccessParty::Person(p.id),
                )
            }
            "unit" => {
                let unit = web
                    .state
                    .store
                    .list_org_units(tenant)
                    .await?
                    .into_iter()
                    .find(|u| u.id.as_str() == asked.unit);
                let Some(u) = unit else {
                    return blocks_page(
                        &web,
                        asked,
                        Some(("patient.blocks.error.unit", "unit")),
                        None,
                    )
                    .await;
                };
                (
                    Some(format!("Organization/{}", u.id)),
                    Vec::new(),
                    AccessParty::OrgUnit(u.id),
                )
            }
            "category" => {
                let Some(c) =
                    Category::parse(&asked.category).filter(|c| *c != Category::Directory)
                else {
                    return blocks_page(
                        &web,
                        asked,
                        Some(("patient.blocks.error.category", "category")),
                        None,
                    )
                    .await;
                };
                (None, vec![c.code().to_string()], AccessParty::Everyone)
            }
            _ => {
                return blocks_page(
                    &web,
                    asked,
                    Some(("patient.blocks.error.kind", "kind")),
                    None,
                )
                .await;
            }
        };
        // The same block already in force needs no second one.
        let exists = web
            .state
            .store
            .access_rules_for_patient(tenant, &web.principal.user.person)
            .await?
            .into_iter()
            .any(|r| {
                r.rule.kind == AccessKind::Block
                    && r.rule.party == party
                    && r.rule.period.contains(now)
                    && (r.rule.categories.is_empty() || r.rule.categories == categories)
            });
        if exists {
            return blocks_page(
                &web,
                asked,
                Some(("patient.blocks.error.duplicate", "kind")),
                None,
            )
            .await;
        }
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let consent = consent_resource(
            &me(&web),
            provision("deny", actor, &categories, now, until),
            now,
        );
        let (_, stored, _) = crate::fhir::create_resource(&fhir, "Consent", consent, None).await?;
        access_changed(
            &web,
            &format!("patient block added (Consent/{})", stored.meta.id),
        )
        .await?;
        Ok(Redirect::to("/me/blocks?saved=created").into_response())
    }
    .await;
    web.finish(r)
}

/// Ends the Consent `id` (status inactive) after checking that it is the patient's own and
/// stands only for rules of `kind`.
pub(super) async fn end_consent(web: &Web, id: &str, kind: AccessKind) -> Result<(), PageError> {
    let subject = web.subject().await?;
    let fhir = Fhir::new(&web.state, Actor::User(&subject));
    let (v, mut consent) = fhir.read("Consent", id).await.map_err(|e| {
        if e.status == 410 {
            PageError::not_found()
        } else {
            PageError::from(e)
        }
    })?;
    consent_rules(&consent, &me(web), kind, web.now())?;
    if let Some(o) = consent.as_object_mut() {
        o.insert("status".into(), json!("inactive"));
        o.remove("meta");
    }
    crate::fhir::update_resource(&fhir, "Consent", id, consent, Some(v.meta.version)).await?;
    Ok(())
}

/// `POST /me/blocks/lift`: ends a block the patient made.
pub async fn lift(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let id = f
            .get("consent")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if tillit_core::PersonId::parse(&id).is_err() {
            return Err(PageError::bad_request("no such block"));
        }
        end_consent(&web, &id, AccessKind::Block).await?;
        access_changed(&web, &format!("patient block lifted (Consent/{id})")).await?;
        Ok(Redirect::to("/me/blocks?saved=lifted").into_response())
    }
    .await;
    web.finish(r)
}
