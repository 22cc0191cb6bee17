//! Relatives and their consents: who is linked to the patient as a relative, what each may
//! see (categories, read only, for a period), and granting, changing and revoking it. A
//! consent is the patient's own `Consent` (`provision.type = permit` for a `RelatedPerson`),
//! written through the FHIR service; the decision (`tenant.relative`) lets the relative read
//! and search those categories while it lasts.

use super::super::{Audience, Layout, PageError, Web, form, form_all, render_status};
use super::blocks::end_consent;
use super::{
    access_changed, categories_words, choosable, consent_of, consent_resource, consent_rules, me,
    names_person, not_ended, person_name, provision, relative_scope, until_of,
};
use crate::authz::Actor;
use crate::fhir::service::Fhir;
use askama::Template;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use tillit_core::{AccessKind, PersonId};
use tillit_fhir::category::Category;
use tillit_store::AccessParty;

/// A category to tick.
pub(super) struct Choice {
    pub code: &'static str,
    pub label: &'static str,
    pub checked: bool,
    pub sensitive: bool,
}

fn choices(tr: super::super::i18n::Tr, checked: &[String]) -> Vec<Choice> {
    choosable()
        .map(|c| Choice {
            code: c.code(),
            label: tr.category(c),
            checked: checked.iter().any(|x| x == c.code()),
            sensitive: c.is_sensitive(),
        })
        .collect()
}

struct ConsentRow {
    consent: Option<String>,
    words: String,
    since: String,
    until: Option<String>,
    until_input: String,
    /// In force now (not only later).
    current: bool,
    choices: Vec<Choice>,
    error: Option<&'static str>,
    error_field: &'static str,
}

struct RelativeRow {
    id: String,
    name: String,
    relationship: String,
    consents: Vec<ConsentRow>,
    /// The grant form's choices (when no consent is in force or coming).
    choices: Vec<Choice>,
    until: String,
    error: Option<&'static str>,
    error_field: &'static str,
}

#[derive(Template)]
#[template(path = "web/patient/relatives.html")]
struct RelativesPage {
    l: Layout,
    rows: Vec<RelativeRow>,
    saved: Option<&'static str>,
}

/// A form shown again with what went wrong (`target`: the relative of a grant, the Consent of
/// a change).
struct Failed {
    target: String,
    key: &'static str,
    field: &'static str,
    cats: Vec<String>,
    until: String,
}

async fn relatives_page(
    web: &Web,
    failed: Option<Failed>,
    saved: Option<&'static str>,
) -> Result<Response, PageError> {
    web.require(Audience::Patient)?;
    let tr = web.tr;
    let tenant = &web.principal.tenant.id;
    let person = &web.principal.user.person;
    let now = web.now();
    let links: Vec<_> = web
        .state
        .store
        .relative_links(tenant, person)
        .await?
        .into_iter()
        .filter(|l| &l.patient == person)
        .collect();
    let rules: Vec<_> = web
        .state
        .store
        .access_rules_for_patient(tenant, person)
        .await?
        .into_iter()
        .filter(|r| r.rule.kind == AccessKind::RelativeConsent && not_ended(r, now))
        .collect();
    let failed_for = |target: &str| failed.as_ref().filter(|f| f.target == target);
    let mut rows = Vec::new();
    for link in links {
        let name = person_name(web, &link.relative)
            .await
            .unwrap_or_else(|| tr.t("patient.relatives.unnamed").to_string());
        let mut consents = Vec::new();
        for r in rules
            .iter()
            .filter(|r| names_person(&r.rule.party, &link.relative))
        {
            let scope = relative_scope(r);
            let consent = consent_of(r);
            let f = consent.as_deref().and_then(failed_for);
            let until_input = match f {
                Some(f) => f.until.clone(),
                None => r
                    .rule
                    .period
                    .end()
                    .map(super::input_day)
                    .unwrap_or_default(),
            };
            consents.push(ConsentRow {
                words: categories_words(tr, &scope),
                since: tr.date(r.rule.period.start()),
                until: r.rule.period.end().map(|e| super::last_day(tr, e)),
                until_input,
                current: r.rule.period.contains(now),
                choices: choices(tr, f.map(|f| f.cats.as_slice()).unwrap_or(&scope)),
                error: f.map(|f| f.key),
                error_field: f.map(|f| f.field).unwrap_or_default(),
                consent,
            });
        }
        let id = link.relative.to_string();
        let f = failed_for(&id);
        let default_scope: Vec<String> = tillit_authz::RELATIVE_DEFAULT_SCOPE
            .iter()
            .map(|c| c.to_string())
            .collect();
        rows.push(RelativeRow {
            choices: choices(tr, f.map(|f| f.cats.as_slice()).unwrap_or(&default_scope)),
            until: f.map(|f| f.until.clone()).unwrap_or_default(),
            error: f.map(|f| f.key),
            error_field: f.map(|f| f.field).unwrap_or_default(),
            id,
            name,
            relationship: link.relationship,
            consents,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let status = if failed.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render_status(
        status,
        &RelativesPage {
            l: web.layout(tr.t("patient.relatives.title")),
            rows,
            saved,
        },
    )
}

/// `GET /me/relatives`
pub async fn page(web: Web, Query(q): Query<HashMap<String, String>>) -> Response {
    let saved = match q.get("saved").map(String::as_str) {
        Some("granted") => Some("patient.relatives.saved.granted"),
        Some("changed") => Some("patient.relatives.saved.changed"),
        Some("revoked") => Some("patient.relatives.saved.revoked"),
        _ => None,
    };
    let r = relatives_page(&web, None, saved).await;
    web.finish(r)
}

/// What a grant or change form asks for: the categories and the end, if any.
type Scope = (Vec<String>, Option<time::OffsetDateTime>);

/// The categories and end date of a grant or change form, or what is wrong with them (the
/// message's key and the field).
fn scope_of_form(
    body: &[u8],
    f: &HashMap<String, String>,
    now: time::OffsetDateTime,
) -> Result<Scope, (&'static str, &'static str)> {
    let mut cats: Vec<String> = form_all(body, "cat");
    cats.sort_by_key(|c| {
        Category::ALL
            .iter()
            .position(|x| x.code() == c)
            .unwrap_or(usize::MAX)
    });
    cats.dedup();
    if cats.is_empty() {
        return Err(("patient.relatives.error.none", "cat"));
    }
    if cats
        .iter()
        .any(|c| Category::parse(c).is_none_or(|c| c == Category::Directory))
    {
        return Err(("patient.relatives.error.category", "cat"));
    }
    let until =
        until_of(f.get("until"), now).map_err(|()| ("patient.relatives.error.until", "until"))?;
    Ok((cats, until))
}

/// `POST /me/relatives/grant`: a consent for a relative linked to the patient.
pub async fn grant(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let now = web.now();
        let relative = f
            .get("relative")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let linked = match PersonId::parse(&relative) {
            Ok(id) => web
                .state
                .store
                .relative_links(&web.principal.tenant.id, &id)
                .await?
                .into_iter()
                .any(|l| l.patient == web.principal.user.person),
            Err(_) => false,
        };
        if !linked {
            return Err(PageError::bad_request(
                "that person is not registered as your relative",
            ));
        }
        let (cats, until) = match scope_of_form(&body, &f, now) {
            Ok(x) => x,
            Err((key, field)) => {
                let failed = Failed {
                    target: relative,
                    key,
                    field,
                    cats: form_all(&body, "cat"),
                    until: f.get("until").cloned().unwrap_or_default(),
                };
                return relatives_page(&web, Some(failed), None).await;
            }
        };
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let consent = consent_resource(
            &me(&web),
            provision(
                "permit",
                Some(format!("RelatedPerson/{relative}")),
                &cats,
                now,
                until,
            ),
            now,
        );
        let (_, stored, _) = crate::fhir::create_resource(&fhir, "Consent", consent, None).await?;
        access_changed(
            &web,
            &format!("relative's consent granted (Consent/{})", stored.meta.id),
        )
        .await?;
        Ok(Redirect::to("/me/relatives?saved=granted").into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /me/relatives/scope`: changes what a consent covers and how long it lasts.
pub async fn scope(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let now = web.now();
        let id = f.get("consent").map(|s| s.trim().to_string()).unwrap_or_default();
        if PersonId::parse(&id).is_err() {
            return Err(PageError::bad_request("no such consent"));
        }
        let subject = web.subject().await?;
        let fhir = Fhir::new(&web.state, Actor::User(&subject));
        let (v, current) = fhir.read("Consent", &id).await.map_err(|e| {
            if e.status == 410 {
                PageError::not_found()
            } else {
                PageError::from(e)
            }
        })?;
        let rules = consent_rules(&current, &me(&web), AccessKind::RelativeConsent, now)?;
        let (relative, start) = match rules.as_slice() {
            [one] => match &one.party {
                AccessParty::Person(p) => (p.clone(), one.period.start()),
                _ => return Err(PageError::bad_request("this consent is not for one relative")),
            },
            _ => {
                return Err(PageError::bad_request(
                    "this consent was made in the record system and covers more than this page changes",
                ));
            }
        };
        let (cats, until) = match scope_of_form(&body, &f, now) {
            Ok(x) => x,
            Err((key, field)) => {
                let failed = Failed {
                    target: id,
                    key,
                    field,
                    cats: form_all(&body, "cat"),
                    until: f.get("until").cloned().unwrap_or_default(),
                };
                return relatives_page(&web, Some(failed), None).await;
            }
        };
        let consent = consent_resource(
            &me(&web),
            provision(
                "permit",
                Some(format!("RelatedPerson/{relative}")),
                &cats,
                start,
                until,
            ),
            now,
        );
        crate::fhir::update_resource(&fhir, "Consent", &id, consent, Some(v.meta.version)).await?;
        access_changed(&web, &format!("relative's consent changed (Consent/{id})")).await?;
        Ok(Redirect::to("/me/relatives?saved=changed").into_response())
    }
    .await;
    web.finish(r)
}

/// `POST /me/relatives/revoke`: ends a consent now.
pub async fn revoke(web: Web, body: Bytes) -> Response {
    let r = async {
        web.require(Audience::Patient)?;
        let f = form(&body);
        web.check_csrf(&f)?;
        let id = f
            .get("consent")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if PersonId::parse(&id).is_err() {
            return Err(PageError::bad_request("no such consent"));
        }
        end_consent(&web, &id, AccessKind::RelativeConsent).await?;
        access_changed(&web, &format!("relative's consent revoked (Consent/{id})")).await?;
        Ok(Redirect::to("/me/relatives?saved=revoked").into_response())
    }
    .await;
    web.finish(r)
}
