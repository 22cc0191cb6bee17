//! The CapabilityStatement: exactly what this server does, generated from the same tables
//! the handlers use, so it cannot drift from them.

use serde_json::{Value, json};
use tillit_fhir::resources;
use tillit_fhir::search::{self, Kind};

fn param(name: &str, kind: &str) -> Value {
    json!({ "name": name, "type": kind })
}

pub fn statement(base: &str) -> Value {
    let mut rest_resources = Vec::new();
    for rt in resources::SERVED.iter().chain(resources::READ_ONLY) {
        let read_only = resources::READ_ONLY.contains(rt);
        let mut interactions = vec![
            "read",
            "vread",
            "search-type",
            "history-instance",
            "history-type",
        ];
        if !read_only {
            interactions.extend(["create", "update", "delete"]);
        }
        let mut params = vec![param("_id", "token"), param("_lastUpdated", "date")];
        for p in search::params(rt) {
            let kind = match p.kind {
                Kind::Token => "token",
                Kind::Date => "date",
                Kind::Reference => "reference",
            };
            params.push(param(p.name, kind));
        }
        let includes: Vec<String> = search::params(rt)
            .iter()
            .filter(|p| p.kind == Kind::Reference && matches!(p.name, "patient" | "subject"))
            .map(|p| format!("{rt}:{}", p.name))
            .collect();
        let mut operations = Vec::new();
        if *rt == "Patient" {
            operations.push(json!({"name": "emergency-access", "definition": format!("{base}/OperationDefinition/emergency-access")}));
        }
        if !read_only {
            for op in ["withhold", "release"] {
                operations.push(
                    json!({"name": op, "definition": format!("{base}/OperationDefinition/{op}")}),
                );
            }
        }
        rest_resources.push(json!({
            "type": rt,
            "operation": operations,
            "interaction": interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
            "versioning": "versioned-update",
            "readHistory": true,
            "updateCreate": !read_only,
            "conditionalCreate": !read_only,
            "conditionalRead": "not-supported",
            "conditionalUpdate": false,
            "conditionalDelete": "not-supported",
            "searchInclude": includes,
            "searchParam": params,
        }));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "Tillit",
        "kind": "instance",
        "software": { "name": "Tillit", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Tillit FHIR R4 API", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "description": "TLS only. Authorization: Bearer <API token>, or a session cookie. Every access is authorized per patient and category."
            },
            "resource": rest_resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
            "searchParam": [
                param("_count", "number"), param("_offset", "number"), param("_sort", "string"),
                param("_include", "string"), param("_summary", "string")
            ]
        }]
    })
}
