//! The deployment in `deploy/`: what can be checked without containers.
//! (`bench/cluster.sh` runs its HAProxy configuration for real.)
use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Every environment variable any of biblio's commands reads.
fn variables_biblio_reads() -> BTreeSet<String> {
    fn collect(command: &clap::Command, into: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env() {
                into.insert(name.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            collect(sub, into);
        }
    }
    let mut names = BTreeSet::new();
    collect(&biblio::cli::Cli::command(), &mut names);
    names
}

/// The words of `text` that name one of biblio's variables, or would.
fn variables_named_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| {
            word.starts_with("BIBLIO_") || *word == "DATABASE_URL" || *word == "REDIS_URL"
        })
        .map(str::to_owned)
        .collect()
}

fn deployment_files() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("deploy/compose.yaml"),
        root.join("bench/cluster.sh"),
    ];
    let kubernetes = std::fs::read_dir(root.join("deploy/kubernetes")).expect("deploy/kubernetes");
    files.extend(kubernetes.map(|entry| entry.expect("an entry").path()));
    files
}

#[test]
fn every_variable_the_deployment_sets_is_one_biblio_reads() {
    let known = variables_biblio_reads();
    assert!(known.contains("BIBLIO_BIND"), "{known:?}");
    for file in deployment_files() {
        let text = std::fs::read_to_string(&file).expect("a deployment file");
        let unknown: Vec<_> = variables_named_in(&text)
            .difference(&known)
            .cloned()
            .collect();
        assert!(
            unknown.is_empty(),
            "{} names variables no biblio command reads: {unknown:?}",
            file.display()
        );
    }
}

#[test]
fn haproxy_accepts_the_deployment_configuration() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
    let socket = std::env::temp_dir().join(format!("biblio-haproxy-{}.sock", uuid::Uuid::now_v7()));
    let output = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&config)
        .env("LB_LISTEN", "127.0.0.1:8080")
        .env("LB_STATS_LISTEN", "127.0.0.1:8404")
        .env("LB_STATS_SOCKET", &socket)
        .env("LB_REPLICA_1", "127.0.0.1:8081")
        .env("LB_REPLICA_2", "127.0.0.1:8082")
        .env("LB_REPLICA_3", "127.0.0.1:8083")
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run haproxy ({err}): install it (Debian: apt-get install haproxy)")
        });
    assert!(
        output.status.success(),
        "haproxy -c refused deploy/haproxy.cfg:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
