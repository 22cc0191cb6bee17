//! The web app in a real browser (issue 6): each journey in `tests-browser/` drives headless
//! Chromium through the pages against a fresh demo and checks every page it lands on for
//! console errors, CSP violations and serious or critical axe-core findings. Chromium,
//! playwright-core and axe-core are installed by `scripts/install-browser-tools`; screenshots
//! land in `target/browser-artifacts/<journey>/`. A new journey is one `journey("name")` test.

use crate::helpers::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one journey may take before it is killed (the harness has its own watchdog too).
const JOURNEY_TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `scripts/install-browser-tools` (quick once installed) and returns its folder.
fn browser_tools() -> PathBuf {
    let out = Command::new(repo().join("scripts/install-browser-tools"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install-browser-tools: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().unwrap().trim())
}

/// Copies the harness and the journeys into `dir`, with the tools' packages beside them.
fn stage_scripts(tools: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(repo().join("tests-browser")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "mjs") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::os::unix::fs::symlink(tools.join("node/node_modules"), dir.join("node_modules")).unwrap();
}

/// Runs `tests-browser/journey-<name>.mjs` against a fresh demo and fails with its report.
fn journey(name: &str) {
    journey_with(name, &[]);
}

/// The same, with the demo started under extra environment (configuration overrides).
fn journey_with(name: &str, env: &[(&str, &str)]) {
    let tools = browser_tools();
    let app = spawn_demo_with(None, env);
    let scripts = app.dir.join("tests-browser");
    stage_scripts(&tools, &scripts);
    let artifacts = repo().join("target/browser-artifacts").join(name);
    let log_path = app.dir.join(format!("journey-{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(scripts.join(format!("journey-{name}.mjs")))
        .current_dir(&scripts)
        .env("BASE_URL", &app.base)
        .env("CREDS", app.dir.join("demo-credentials.json"))
        .env("ARTIFACTS", &artifacts)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("node is not installed");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > JOURNEY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("{report}");
    match status {
        Some(s) => assert!(
            s.success(),
            "browser journey {name} failed ({s}):\n{report}"
        ),
        None => panic!("browser journey {name} timed out after {JOURNEY_TIMEOUT:?}:\n{report}"),
    }
}

#[test]
fn browser_journey_login() {
    journey("login");
}

#[test]
fn browser_journey_clinician() {
    journey("clinician");
}

#[test]
fn browser_journey_security() {
    journey("security");
}

#[test]
fn browser_journey_account() {
    journey("account");
}

#[test]
fn browser_journey_admin() {
    journey("admin");
}

#[test]
fn browser_journey_patient() {
    journey("patient");
}

/// The session-timeout warning, with a one-minute idle timeout so the test waits seconds.
#[test]
fn browser_journey_timeout() {
    journey_with("timeout", &[("TILLIT_SESSION__IDLE_MINUTES", "1")]);
}

/// The patient's rights: printable record, correction, restriction and erasure across the
/// patient, her physician and the tenant admin.
#[test]
fn browser_journey_rights() {
    journey("rights");
}

/// The README's tour across three audiences: refused → emergency access → the patient sees
/// it → the security officer closes the alert.
#[test]
fn browser_journey_tour() {
    journey("tour");
}
