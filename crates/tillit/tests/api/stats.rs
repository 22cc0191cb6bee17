//! Anonymous statistics: `GET /admin/stats` (tenant admins for their tenant, operators for
//! the platform) and `tillit stats`, with no number from 1 to k-1 and nothing person-level.

use crate::fhir::Fhir;
use crate::helpers::*;
use serde_json::Value;
use std::process::Command;

async fn get(app: &TestApp, user: &str, query: &str) -> (u16, Value) {
    let token = app.user(user)["api_token"].as_str().unwrap();
    let r = app
        .client
        .get(app.url(&format!("/admin/stats{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every count shown is at least k (or absent); returns the numbers shown.
fn numbers(v: &Value, k: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for g in v["groups"].as_array().unwrap() {
        for n in std::iter::once(&g["total"])
            .chain(g["cells"].as_array().unwrap().iter().map(|c| &c["count"]))
        {
            if let Some(n) = n.as_u64() {
                assert!(n >= k, "{n} shown with k = {k}: {g}");
                out.push(n);
            } else {
                assert!(n.is_null(), "{n}");
            }
        }
    }
    out
}

/// Ids of people (persons and users) of the data dir: none may appear in statistics.
fn people(app: &TestApp) -> Vec<String> {
    let c = rusqlite::Connection::open_with_flags(
        app.dir.join("tillit.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut ids: Vec<String> = c
        .prepare("SELECT id FROM persons UNION SELECT id FROM users")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ids.retain(|i| i.len() > 8);
    ids
}

#[tokio::test]
async fn statistics_show_no_small_count_and_no_person() {
    let app = spawn_demo();
    // Some accesses to count.
    for user in [
        "lege.lund",
        "sykepleier.dahl",
        "sykepleier.haugen",
        "lege.sorby",
    ] {
        let f = Fhir::new(&app, user);
        for _ in 0..3 {
            assert_eq!(f.get("/Observation").await.0, 200);
        }
    }
    let nordby = app.user("admin.nilsen")["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();

    let (s, v) = get(&app, "admin.nilsen", "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tenant"]["id"], nordby);
    assert_eq!(v["k"], 5);
    let shown = numbers(&v, 5);
    assert!(!shown.is_empty(), "something is shown: {v}");
    let measures: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["measure"].as_str().unwrap())
        .collect();
    assert!(measures.contains(&"records.created"));
    assert!(measures.contains(&"accesses"));
    // The records created add up to the tenant's records (the totals are large).
    let c = rusqlite::Connection::open_with_flags(
        app.dir.join("tillit.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let created: u64 = c
        .query_row(
            "SELECT COUNT(*) FROM resource_versions WHERE tenant_id = ?1 AND version = 1",
            [&nordby],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64;
    let totals: u64 = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["measure"] == "records.created")
        .map(|g| g["total"].as_u64().unwrap())
        .sum();
    assert_eq!(totals, created);
    let text = v.to_string();
    for id in people(&app) {
        assert!(!text.contains(&id), "person {id} in the statistics");
    }
    // A larger k suppresses at least as much.
    let (s, v10) = get(&app, "admin.nilsen", "?k=10").await;
    assert_eq!(s, 200);
    assert!(numbers(&v10, 10).len() <= shown.len());

    // Bad input is refused; other roles get nothing.
    assert_eq!(get(&app, "admin.nilsen", "?k=3").await.0, 400);
    assert_eq!(get(&app, "admin.nilsen", "?from=yesterday").await.0, 400);
    assert_eq!(get(&app, "lege.lund", "").await.0, 403);
    assert_eq!(get(&app, "astrid.haugland", "").await.0, 403);

    // The operator sees every customer tenant's totals, no units or categories.
    let (s, p) = get(&app, "drift.olsen", "").await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["scope"], "platform");
    numbers(&p, 5);
    let text = p.to_string();
    assert!(text.contains(&nordby));
    assert!(!text.contains("\"unit\"") && !text.contains("\"category\""));
    for id in people(&app) {
        assert!(
            !text.contains(&id),
            "person {id} in the platform statistics"
        );
    }

    // The CLI gives the same, as JSON or CSV.
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("stats")
            .args(["--data-dir", app.dir.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let json: Value = serde_json::from_str(&stdout(&run(&["--tenant", "Nordby kommune"]))).unwrap();
    let created_cli: Vec<&Value> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["measure"] == "records.created")
        .collect();
    let created_api: Vec<&Value> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["measure"] == "records.created")
        .collect();
    assert_eq!(created_cli, created_api);
    let csv = stdout(&run(&[
        "--tenant",
        "Nordby kommune",
        "--format",
        "csv",
        "--k",
        "8",
    ]));
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("measure,week,unit,category,count"));
    for row in rows {
        let count = row.rsplit(',').next().unwrap();
        assert!(
            count == "suppressed" || count.parse::<u64>().unwrap() >= 8,
            "{row}"
        );
    }
    let o = run(&["--tenant", "Nordby kommune", "--k", "2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--k must be"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);
}
