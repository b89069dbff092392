//! docker-compose.yml is a valid Compose file, and every `CLIENTLOG_*` variable it gives a
//! clientlog service is one that service's command reads (so a renamed flag cannot leave the
//! deployment silently misconfigured). No Docker engine runs here; `docker-compose config`
//! (Debian's docker-compose package) checks and resolves the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

struct Service {
    image: Option<String>,
    /// The clientlog subcommand the service runs.
    command: Vec<String>,
    env: BTreeSet<String>,
}

/// Reads the services of `docker-compose config`'s resolved YAML (two-space indentation).
fn services(resolved: &str) -> BTreeMap<String, Service> {
    let mut out = BTreeMap::new();
    let mut in_services = false;
    let mut current: Option<String> = None;
    let mut section = "";
    for line in resolved.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        match indent {
            0 => {
                in_services = text == "services:";
                current = None;
            }
            2 if in_services => {
                let name = text.trim_end_matches(':').to_string();
                out.insert(
                    name.clone(),
                    Service {
                        image: None,
                        command: Vec::new(),
                        env: BTreeSet::new(),
                    },
                );
                current = Some(name);
                section = "";
            }
            4 if !text.starts_with("- ") => {
                section = text.split(':').next().unwrap_or("");
                if let (Some(name), Some(image)) = (&current, text.strip_prefix("image: ")) {
                    out.get_mut(name).unwrap().image = Some(image.to_string());
                }
            }
            _ => {
                let Some(service) = current.as_ref().and_then(|n| out.get_mut(n)) else {
                    continue;
                };
                match section {
                    "command" => {
                        if let Some(item) = text.strip_prefix("- ") {
                            service.command.push(item.to_string());
                        }
                    }
                    "environment" => {
                        if let Some((key, _)) = text.split_once(':') {
                            service.env.insert(key.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// The environment variables `clientlog ARGS… --help` documents.
fn env_vars_of(args: &[&str]) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_clientlog"))
        .args(args)
        .arg("--help")
        .output()
        .expect("clientlog runs");
    assert!(output.status.success(), "clientlog {args:?} --help failed");
    let help = String::from_utf8_lossy(&output.stdout);
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split('=').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn compose_file_is_valid_and_its_variables_drive_the_binary() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml");
    let output = match Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .arg("config")
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            assert!(
                std::env::var("CLIENTLOG_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "docker-compose is required (CLIENTLOG_REQUIRE_SERVICES=1): {e}"
            );
            eprintln!(
                "skipped: compose_file_is_valid_and_its_variables_drive_the_binary needs \
                 docker-compose (apt-get install docker-compose)"
            );
            return;
        }
    };
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let services = services(&String::from_utf8_lossy(&output.stdout));
    for name in [
        "kafka",
        "postgres",
        "projector-1",
        "projector-2",
        "api",
        "token-init",
    ] {
        assert!(services.contains_key(name), "service {name} is missing");
    }
    assert!(services["kafka"]
        .image
        .as_deref()
        .is_some_and(|i| i.starts_with("apache/kafka")));

    let mut checked = 0;
    for (name, service) in &services {
        let args: Vec<&str> = match service.command.first().map(String::as_str) {
            Some("projector") => vec!["projector"],
            Some("api") => vec!["api"],
            Some(script) if script.contains("clientlog token create") => vec!["token", "create"],
            _ => continue,
        };
        let accepted = env_vars_of(&args);
        for var in service.env.iter().filter(|v| v.starts_with("CLIENTLOG_")) {
            assert!(
                accepted.contains(var),
                "service {name} sets {var}, which `clientlog {}` does not read (it reads {accepted:?})",
                args.join(" ")
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 4, "projector-1, projector-2, api and token-init");
    for (name, var) in [
        ("projector-1", "CLIENTLOG_KAFKA"),
        ("projector-1", "CLIENTLOG_DATABASE_URL"),
        ("api", "CLIENTLOG_KAFKA"),
        ("api", "CLIENTLOG_DATABASE_URL"),
        ("api", "CLIENTLOG_TOKENS"),
        ("api", "CLIENTLOG_LISTEN"),
    ] {
        assert!(services[name].env.contains(var), "{name} lacks {var}");
    }
}
