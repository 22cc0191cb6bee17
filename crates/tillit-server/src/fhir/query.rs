//! Search parameters from a query string (or a `_search` form body) to a store [`Query`].

use super::service::{Fhir, FhirError, FhirResult};
use tillit_fhir::dates;
use tillit_fhir::outcome::{Issue, IssueType};
use tillit_fhir::search::{self, Kind};
use tillit_store::{Criterion, DatePrefix, Query, SortKey};

pub const DEFAULT_COUNT: u32 = 20;
pub const MAX_COUNT: u32 = 1000;
/// Most matches considered per search before authorization and paging.
pub const MAX_MATCHES: u32 = 10_000;

#[derive(Debug)]
pub struct SearchRequest {
    pub query: Query,
    pub count: u32,
    pub offset: u32,
    /// `_include` of the patient/subject reference.
    pub include: Option<String>,
    pub summary_count: bool,
    pub warnings: Vec<Issue>,
    /// The parameters understood, for the self link.
    pub echo: Vec<(String, String)>,
}

fn prefix(value: &str) -> (DatePrefix, &str) {
    let p = value.get(..2).unwrap_or("");
    let rest = value.get(2..).unwrap_or("");
    match p {
        "eq" => (DatePrefix::Eq, rest),
        "ne" => (DatePrefix::Ne, rest),
        "lt" => (DatePrefix::Lt, rest),
        "gt" => (DatePrefix::Gt, rest),
        "le" => (DatePrefix::Le, rest),
        "ge" => (DatePrefix::Ge, rest),
        _ => (DatePrefix::Eq, value),
    }
}

fn bad(msg: String) -> FhirError {
    FhirError::new(400, IssueType::Invalid, msg)
}

fn date_value(name: &str, raw: &str) -> FhirResult<(DatePrefix, i64, i64)> {
    let (p, v) = prefix(raw);
    let r = dates::parse_range(v).ok_or_else(|| bad(format!("{name}: '{raw}' is not a date (use YYYY, YYYY-MM, YYYY-MM-DD or a dateTime, with an optional prefix eq, ne, lt, gt, le, ge)")))?;
    Ok((p, r.low, r.high))
}

/// Parses search parameters for `rt`. Unknown parameters become warnings, or an error when
/// `strict` (`Prefer: handling=strict`).
pub fn parse(
    fhir: &Fhir<'_>,
    rt: &str,
    params: &[(String, String)],
    strict: bool,
) -> FhirResult<SearchRequest> {
    let mut query = Query {
        resource_type: rt.to_string(),
        limit: MAX_MATCHES,
        ..Query::default()
    };
    let mut req = SearchRequest {
        query: Query::default(),
        count: DEFAULT_COUNT,
        offset: 0,
        include: None,
        summary_count: false,
        warnings: Vec::new(),
        echo: Vec::new(),
    };
    let mut unknown = Vec::new();
    for (name, value) in params {
        let (base, modifier) = match name.split_once(':') {
            Some((b, m)) => (b, Some(m)),
            None => (name.as_str(), None),
        };
        let mut understood = true;
        match base {
            "_count" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| bad(format!("_count: '{value}' is not a number")))?;
                req.count = n.min(MAX_COUNT);
            }
            "_offset" => {
                req.offset = value
                    .parse()
                    .map_err(|_| bad(format!("_offset: '{value}' is not a number")))?
            }
            "_summary" if value == "count" => req.summary_count = true,
            "_summary" if value == "false" => {}
            "_format"
                if matches!(
                    value.as_str(),
                    "json" | "application/json" | "application/fhir+json"
                ) => {}
            "_total" => {}
            "_sort" => {
                let (desc, key) = match value.strip_prefix('-') {
                    Some(k) => (true, k),
                    None => (false, value.as_str()),
                };
                match key {
                    "_lastUpdated" => query.sort = Some((SortKey::LastUpdated, desc)),
                    k if search::param(rt, k).is_some_and(|p| p.kind == Kind::Date) => {
                        query.sort = Some((SortKey::DateParam, desc));
                        query.sort_param = Some(k.to_string());
                    }
                    _ => {
                        return Err(bad(format!(
                            "_sort: cannot sort {rt} by '{key}'; use _lastUpdated or a date parameter"
                        )));
                    }
                }
            }
            "_include" => {
                let target = value.split(':').nth(1).unwrap_or("");
                let ok = value.starts_with(&format!("{rt}:"))
                    && matches!(target, "patient" | "subject")
                    && search::param(rt, target).is_some();
                if !ok {
                    return Err(bad(format!(
                        "_include: only {rt}:patient or {rt}:subject is supported, not '{value}'"
                    )));
                }
                req.include = Some(target.to_string());
            }
            "_id" if modifier.is_none() => {
                query.all_of.push(
                    value
                        .split(',')
                        .map(|v| Criterion::Id(v.to_string()))
                        .collect(),
                );
            }
            "_lastUpdated" if modifier.is_none() => {
                let (prefix, low, high) = date_value(name, value)?;
                query
                    .all_of
                    .push(vec![Criterion::LastUpdated { prefix, low, high }]);
            }
            _ => match (search::param(rt, base), modifier) {
                (Some(def), None) => {
                    let mut any = Vec::new();
                    for v in value.split(',') {
                        any.push(match def.kind {
                            Kind::Token => match v.split_once('|') {
                                Some((system, code)) => Criterion::TokenFull {
                                    param: def.name.into(),
                                    hash: fhir.token_full(system, code)?,
                                },
                                None => Criterion::TokenCode {
                                    param: def.name.into(),
                                    hash: fhir.token_code(v)?,
                                },
                            },
                            Kind::Date => {
                                let (prefix, low, high) = date_value(name, v)?;
                                Criterion::Date {
                                    param: def.name.into(),
                                    prefix,
                                    low,
                                    high,
                                }
                            }
                            Kind::Reference => {
                                // Accept "Patient/1", "1" and absolute URLs ending in Type/id.
                                let tail: Vec<&str> = v.rsplit('/').take(2).collect();
                                let (target_type, id) = match tail.as_slice() {
                                    [id, t]
                                        if t.chars()
                                            .next()
                                            .is_some_and(|c| c.is_ascii_uppercase()) =>
                                    {
                                        (t.to_string(), id.to_string())
                                    }
                                    [id] | [id, _] => ("Patient".to_string(), id.to_string()),
                                    _ => {
                                        return Err(bad(format!(
                                            "{name}: '{v}' is not a reference"
                                        )));
                                    }
                                };
                                Criterion::Reference {
                                    param: def.name.into(),
                                    target_type,
                                    target_id: id,
                                }
                            }
                        });
                    }
                    query.all_of.push(any);
                }
                _ => {
                    understood = false;
                    unknown.push(name.clone());
                }
            },
        }
        if understood {
            req.echo.push((name.clone(), value.clone()));
        }
    }
    if !unknown.is_empty() {
        let msg = format!(
            "unknown or unsupported search parameter(s) for {rt} ignored: {}",
            unknown.join(", ")
        );
        if strict {
            return Err(FhirError::new(
                400,
                IssueType::NotSupported,
                msg.replace(" ignored", ""),
            ));
        }
        req.warnings
            .push(Issue::warning(IssueType::NotSupported, msg));
    }
    req.query = query;
    Ok(req)
}
