//! The admin CLI: tenants, org unit trees, people, accounts, roles with periods, care
//! relationships, tokens; bad input exits non-zero with one line.

use crate::helpers::*;

#[test]
fn a_tenant_admin_builds_a_tenant_from_the_cli() {
    let dir = tempdir("admin");
    let run = |args: &[&str]| stdout(&admin(&dir, args)).trim().to_string();
    run(&["tenant", "create", "--name", "Østby kommune"]);
    let t = "Østby kommune";
    run(&["unit", "create", "--tenant", t, "--name", "Helse"]);
    run(&[
        "unit",
        "create",
        "--tenant",
        t,
        "--name",
        "Sykehjemmet",
        "--parent",
        "Helse",
    ]);
    run(&[
        "unit",
        "create",
        "--tenant",
        t,
        "--name",
        "Avdeling 2",
        "--parent",
        "Sykehjemmet",
    ]);
    let tree = run(&["unit", "list", "--tenant", t]);
    let lines: Vec<&str> = tree.lines().collect();
    assert!(
        lines[0].starts_with("Helse\t")
            && lines[1].starts_with("  Sykehjemmet\t")
            && lines[2].starts_with("    Avdeling 2\t"),
        "{tree}"
    );

    let nurse = run(&[
        "person",
        "create",
        "--tenant",
        t,
        "--kind",
        "staff",
        "--name",
        "Siri Holm",
        "--hpr",
        "1234567",
    ]);
    let patient = run(&[
        "person",
        "create",
        "--tenant",
        t,
        "--kind",
        "patient",
        "--name",
        "Olav Tveit",
        "--national-id",
        "01810700021",
    ]);
    let relative = run(&[
        "person",
        "create",
        "--tenant",
        t,
        "--kind",
        "relative",
        "--name",
        "Siv Tveit",
        "--relative-of",
        &patient,
    ]);
    assert!(!relative.is_empty());
    run(&[
        "role",
        "assign",
        "--tenant",
        t,
        "--person",
        &nurse,
        "--role",
        "nurse",
        "--unit",
        "Avdeling 2",
        "--from",
        "2026-01-01",
    ]);
    run(&[
        "role",
        "assign",
        "--tenant",
        t,
        "--person",
        &nurse,
        "--role",
        "secretary",
        "--unit",
        "Helse",
        "--from",
        "2020-01-01",
        "--to",
        "2021-01-01",
    ]);
    let roles = run(&["role", "list", "--tenant", t, "--person", &nurse]);
    assert!(
        roles
            .lines()
            .any(|l| l.contains("\tnurse\t") && l.ends_with("active")),
        "{roles}"
    );
    assert!(
        roles
            .lines()
            .any(|l| l.contains("\tsecretary\t") && l.ends_with("inactive")),
        "{roles}"
    );
    run(&[
        "care",
        "add",
        "--tenant",
        t,
        "--patient",
        &patient,
        "--unit",
        "Avdeling 2",
        "--purpose",
        "Langtidsopphold",
    ]);
    let care = run(&["care", "list", "--tenant", t, "--patient", &patient]);
    assert!(
        care.contains("Langtidsopphold") && care.contains("active"),
        "{care}"
    );

    let out = run(&[
        "user",
        "create",
        "--tenant",
        t,
        "--person",
        &nurse,
        "--username",
        "siri.holm",
        "--with-totp",
        "--qr-svg",
        dir.join("qr.svg").to_str().unwrap(),
    ]);
    assert!(
        out.contains("otpauth://totp/Tillit:siri.holm?secret="),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(dir.join("qr.svg"))
            .unwrap()
            .contains("<svg")
    );
    let token = run(&["token", "create", "--user", "siri.holm", "--ttl", "30m"]);
    assert!(token.starts_with("tlt_"));
    let events = events(&dir);
    assert!(events.is_empty() || events.iter().all(|e| e["kind"].is_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_admin_input_exits_non_zero_with_one_line_and_changes_nothing() {
    let dir = tempdir("admin-bad");
    stdout(&admin(&dir, &["tenant", "create", "--name", "A kommune"]));
    let patient = stdout(&admin(
        &dir,
        &[
            "person",
            "create",
            "--tenant",
            "A kommune",
            "--kind",
            "patient",
            "--name",
            "Per Hansen",
            "--national-id",
            "01810700021",
        ],
    ))
    .trim()
    .to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["tenant", "create", "--name", "A kommune"],
            "already exists",
        ),
        (
            &["unit", "create", "--tenant", "No such", "--name", "X"],
            "no tenant",
        ),
        (
            &[
                "unit",
                "create",
                "--tenant",
                "A kommune",
                "--name",
                "X",
                "--parent",
                "Missing",
            ],
            "no org unit",
        ),
        (
            &[
                "person",
                "create",
                "--tenant",
                "A kommune",
                "--kind",
                "doctor",
                "--name",
                "X",
            ],
            "unknown kind",
        ),
        (
            &[
                "person",
                "create",
                "--tenant",
                "A kommune",
                "--kind",
                "patient",
                "--name",
                "X Y",
                "--national-id",
                "01810700022",
            ],
            "check digits",
        ),
        (
            &[
                "person",
                "create",
                "--tenant",
                "A kommune",
                "--kind",
                "patient",
                "--name",
                "X Y",
            ],
            "--national-id",
        ),
        (
            &[
                "person",
                "create",
                "--tenant",
                "A kommune",
                "--kind",
                "patient",
                "--name",
                "Dup Licate",
                "--national-id",
                "01810700021",
            ],
            "already exist",
        ),
        (
            &[
                "role",
                "assign",
                "--tenant",
                "A kommune",
                "--person",
                &patient,
                "--role",
                "nurse",
                "--unit",
                "X",
            ],
            "not staff",
        ),
        (
            &["token", "create", "--user", "nobody", "--ttl", "8h"],
            "no user",
        ),
        (
            &["token", "create", "--user", "nobody", "--ttl", "8 weeks"],
            "ttl",
        ),
        (
            &[
                "user",
                "create",
                "--tenant",
                "A kommune",
                "--person",
                &patient,
                "--username",
                "x y",
            ],
            "username",
        ),
    ];
    for (args, want) in cases {
        let out = admin(&dir, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.to_lowercase().contains(&want.to_lowercase()),
            "{args:?}: {err}"
        );
    }
    // A data dir others can read is used, but with a warning.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = admin(&dir, &["person", "list", "--tenant", "A kommune"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 700"));
    let people = stdout(&out);
    assert_eq!(
        people.lines().count(),
        1,
        "a failed command left something behind: {people}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn policy_check_and_policy_test_work_on_files() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tillit-authz/policies");
    let run = |args: &[&str]| std::process::Command::new(BIN).args(args).output().unwrap();
    let ok = run(&[
        "policy",
        "check",
        repo.join("tenant-default.cedar").to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let cases = run(&["policy", "test", repo.join("cases.json").to_str().unwrap()]);
    let out = String::from_utf8_lossy(&cases.stdout);
    assert!(
        cases.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&cases.stderr)
    );
    assert!(out.contains("26 passed, 0 failed"), "{out}");

    let dir = tempdir("policy");
    let bad = dir.join("bad.cedar");
    std::fs::write(
        &bad,
        "@id(\"t.x\") permit(principal, action, resource) when { resource.shoe_size > 3 };",
    )
    .unwrap();
    let out = run(&["policy", "check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("do not match the schema") && err.trim().lines().count() == 1,
        "{err}"
    );
    // A tenant that forgot a rule: its own cases catch it.
    let loose = dir.join("loose.cedar");
    std::fs::write(&loose, "@id(\"t.everyone\") permit(principal in Tillit::Role::\"care_assistant\", action, resource) when { context.care_relationship };").unwrap();
    let out = run(&[
        "policy",
        "test",
        repo.join("cases.json").to_str().unwrap(),
        "--policies",
        loose.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("FAIL care assistant does not read mental-health notes")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
