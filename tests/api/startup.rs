//! A broken template or configuration refuses the start, naming the file and line or the key.

use std::process::Command;

use switchboard::startup::Application;

use crate::helpers::{repo_path, test_settings};

fn broken_templates(dir: &std::path::Path) -> (std::path::PathBuf, usize) {
    let good = std::fs::read_to_string(repo_path("templates/prompts.toml")).expect("templates");
    let broken = good.replace("{caller}", "{caller_name}");
    let line = broken
        .lines()
        .position(|l| l.starts_with("display_name"))
        .expect("line")
        + 1;
    let path = dir.join("prompts.toml");
    std::fs::write(&path, broken).expect("write");
    (path, line)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn a_template_error_refuses_the_start_naming_file_and_line() {
    let dir = temp_dir("tpl");
    let (path, line) = broken_templates(&dir);
    let mut settings = test_settings();
    settings.paths.templates = path.clone();
    let err = match Application::build(settings).await {
        Ok(_) => panic!("a broken template must refuse the start"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("{}:{line}:", path.display())),
        "{err}"
    );
    assert!(err.contains("unknown placeholder `{caller_name}`"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_binary_refuses_to_start_on_a_broken_template() {
    let dir = temp_dir("bin");
    let (path, line) = broken_templates(&dir);
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\n[paths]\ntemplates = {:?}\n",
            path.display().to_string()
        ),
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run switchboard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{}:{line}:", path.display())),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_binary_refuses_to_start_on_a_bad_key_and_names_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("SWITCHBOARD__DIAL__ROUNDS", "11")
        .env("SWITCHBOARD__SERVER__PORT", "0")
        .output()
        .expect("run switchboard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("dial.rounds: must be between 1 and 10"),
        "{stderr}"
    );
}

#[test]
fn the_kubernetes_configmap_is_a_valid_configuration() {
    let path = crate::helpers::repo_path("k8s/base/switchboard.toml");
    let env = config::Environment::with_prefix("SB_UNUSED_K8S");
    let s = switchboard::config::Settings::load_with(Some(&path), env)
        .expect("k8s/base/switchboard.toml loads");
    assert_eq!(
        s.admin.overrides_file.as_deref(),
        Some(std::path::Path::new("/var/lib/switchboard/overrides.json")),
        "on the Deployment's writable volume"
    );
}
