//! Which Redis deployment `--redis-url` names: the one place that decides
//! between a single server, a Sentinel-managed primary and a Cluster. The
//! rest of the service asks [`Topology`] (or [`super::Gateway::topology`]),
//! never the URL.
//!
//! - `redis://` and `rediss://` (TLS): one server.
//! - `redis-sentinel://` and `rediss-sentinel://` (TLS to the sentinels and
//!   to the primary): the sentinels are asked for the primary of the named
//!   service, and asked again after every disconnect, so every connection
//!   follows a failover. A failover can lose writes the old primary had
//!   acknowledged (replication is asynchronous), so on Sentinel the cache
//!   also guards against a rolled-back dataset (see `sync`, and
//!   `docs/redis-topologies.md`).
//!
//! - `redis-cluster://` and `rediss-cluster://` (TLS): a Redis Cluster,
//!   found from the seed nodes the URL names (`HOST:PORT`, more as
//!   `?node=HOST:PORT`). Keys then carry hash tags so that every script's
//!   keys share a slot (see [`super::keyspace`] and `docs/redis-topologies.md`).
//!
//! Any other scheme is refused rather than guessed at.
use fred::prelude::{Error, ErrorKind};

/// The kind of Redis deployment a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One server.
    Single,
    /// A primary with replicas whose address the sentinels give; it moves on
    /// failover.
    Sentinel,
    /// Primaries sharing the hash slots, each with replicas that take over
    /// its slots on failover.
    Cluster,
}

impl Topology {
    /// As `/readyz` and the dashboard name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Sentinel => "sentinel",
            Self::Cluster => "cluster",
        }
    }
}

/// What the scheme of a Redis URL says: the topology and whether it is TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheme {
    /// One server, a primary found through Sentinel, or a Cluster.
    pub topology: Topology,
    /// Whether every connection (to the sentinels too) is TLS.
    pub tls: bool,
}

/// The schemes accepted, for error messages.
pub const SCHEMES: &str = "redis:// (plaintext), rediss:// (TLS), \
     redis-sentinel:// or rediss-sentinel:// (Sentinel), \
     redis-cluster:// or rediss-cluster:// (Cluster)";

/// The form of a Cluster URL, for error messages.
const CLUSTER_FORM: &str =
    "redis-cluster://[[USER]:PASSWORD@]HOST:PORT[?node=HOST:PORT&node=HOST:PORT...]";

/// The form of a Sentinel URL, for error messages.
const SENTINEL_FORM: &str = "redis-sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...][/DB]\
     ?sentinelServiceName=NAME[&sentinelUsername=USER&sentinelPassword=PASSWORD]";

fn refuse<T>(message: String) -> Result<T, Error> {
    Err(Error::new(ErrorKind::Config, message))
}

impl Scheme {
    /// The scheme of `url`, or an error naming `--redis-url` and the
    /// schemes accepted.
    pub fn of(url: &str) -> Result<Self, Error> {
        let (topology, tls) = match url.split_once("://") {
            Some(("redis", _)) => (Topology::Single, false),
            Some(("rediss", _)) => (Topology::Single, true),
            Some(("redis-sentinel", _)) => (Topology::Sentinel, false),
            Some(("rediss-sentinel", _)) => (Topology::Sentinel, true),
            Some(("redis-cluster", _)) => (Topology::Cluster, false),
            Some(("rediss-cluster", _)) => (Topology::Cluster, true),
            Some((scheme, _)) => {
                return refuse(format!(
                    "--redis-url: the scheme {scheme:?} is not supported; use {SCHEMES}"
                ))
            }
            None => return refuse(format!("--redis-url must start with {SCHEMES}")),
        };
        Ok(Self { topology, tls })
    }
}

/// The fred config of a Sentinel URL. Sentinels may be listed in the host
/// part, separated by commas (`h1:26379,h2:26379`), or as `node=` query
/// parameters (fred's own form), or both; a sentinel without a port is on
/// 26379. The service name is required.
pub fn sentinel_config(url: &str) -> Result<fred::types::config::Config, Error> {
    let normalized = sentinel_nodes_as_parameters(url);
    let named = query(&normalized)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .any(|(name, value)| name == "sentinelServiceName" && !value.is_empty());
    if !named {
        return refuse(format!(
            "--redis-url {} names no Sentinel service: add ?sentinelServiceName=NAME (the name \
             the sentinels monitor, as in `sentinel monitor NAME ...`); expected {SENTINEL_FORM}",
            crate::redact::url(url)
        ));
    }
    fred::types::config::Config::from_url_sentinel(&normalized).map_err(|err| {
        Error::new(
            ErrorKind::Config,
            format!(
                "--redis-url {} is malformed ({}): expected {SENTINEL_FORM}",
                crate::redact::url(url),
                err.details()
            ),
        )
    })
}

/// The fred config of a Cluster URL: the seed nodes are the host part and
/// every `node=` parameter, each with its port (a cluster has no default
/// port to guess); fred asks them for the slots and finds the rest. A
/// database other than 0 is refused: a Cluster has only database 0.
pub fn cluster_config(url: &str) -> Result<fred::types::config::Config, Error> {
    let redacted = || crate::redact::url(url);
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    let has_port = |node: &str| {
        node.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        })
    };
    if !has_port(host) {
        return refuse(format!(
            "--redis-url {} names no Cluster node: give one as HOST:PORT (any node of the \
             cluster; more as ?node=HOST:PORT); expected {CLUSTER_FORM}",
            redacted()
        ));
    }
    let mut nodes = query(url)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| *name == "node");
    if let Some((_, node)) = nodes.find(|(_, node)| !has_port(node)) {
        return refuse(format!(
            "--redis-url {}: the Cluster node {node:?} needs a port (HOST:PORT); expected \
             {CLUSTER_FORM}",
            redacted()
        ));
    }
    let database = rest[authority_end..]
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    if !database.is_empty() && database != "0" {
        return refuse(format!(
            "--redis-url {}: a Cluster has only database 0, not {database:?}; expected \
             {CLUSTER_FORM}",
            redacted()
        ));
    }
    fred::types::config::Config::from_url_clustered(url).map_err(|err| {
        Error::new(
            ErrorKind::Config,
            format!(
                "--redis-url {} is malformed ({}): expected {CLUSTER_FORM}",
                redacted(),
                err.details()
            ),
        )
    })
}

/// The query string of `url` (without `?` and any fragment), or "".
fn query(url: &str) -> &str {
    url.split_once('?')
        .map_or("", |(_, rest)| rest.split('#').next().unwrap_or(""))
}

/// `url` with every sentinel after the first in the host part moved to a
/// `node=` parameter, which is how fred reads more than one.
fn sentinel_nodes_as_parameters(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The userinfo ends at the last `@`: a password may contain one.
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let mut hosts = hosts.split(',');
    let first = hosts.next().unwrap_or("");
    let others: Vec<String> = hosts
        .filter(|host| !host.is_empty())
        .map(|host| {
            if host.rsplit_once(':').is_some_and(|(_, port)| {
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            }) {
                format!("node={host}")
            } else {
                format!("node={host}:26379")
            }
        })
        .collect();
    if others.is_empty() {
        return url.to_owned();
    }
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    let separator = if before_fragment.contains('?') {
        if before_fragment.ends_with('?') || before_fragment.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    let mut normalized = format!(
        "{scheme}://{userinfo}{first}{before_fragment}{separator}{}",
        others.join("&")
    );
    if let Some(fragment) = fragment {
        normalized.push('#');
        normalized.push_str(fragment);
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::types::config::ServerConfig;

    fn sentinels(url: &str) -> (Vec<String>, String) {
        match sentinel_config(url).expect("a valid Sentinel URL").server {
            ServerConfig::Sentinel {
                hosts,
                service_name,
                ..
            } => {
                let mut hosts: Vec<String> = hosts
                    .iter()
                    .map(|server| format!("{}:{}", server.host, server.port))
                    .collect();
                hosts.sort();
                (hosts, service_name)
            }
            other => panic!("not a Sentinel config: {other:?}"),
        }
    }

    #[test]
    fn every_scheme_names_its_topology_and_whether_it_is_tls() {
        for (url, topology, tls) in [
            ("redis://h", Topology::Single, false),
            ("rediss://h", Topology::Single, true),
            ("redis-sentinel://h", Topology::Sentinel, false),
            ("rediss-sentinel://h", Topology::Sentinel, true),
            ("redis-cluster://h:7000", Topology::Cluster, false),
            ("rediss-cluster://h:7000", Topology::Cluster, true),
        ] {
            assert_eq!(Scheme::of(url).unwrap(), Scheme { topology, tls }, "{url}");
        }
    }

    #[test]
    fn other_schemes_are_refused_naming_the_flag_and_every_scheme() {
        for url in ["redis-clusters://h:7000", "http://h", "h:6379"] {
            let err = Scheme::of(url).unwrap_err();
            assert!(err.details().contains("--redis-url"), "{url}: {err}");
            assert!(err.details().contains("redis-sentinel://"), "{url}: {err}");
            assert!(err.details().contains("rediss-sentinel://"), "{url}: {err}");
            assert!(err.details().contains("redis-cluster://"), "{url}: {err}");
        }
    }

    #[test]
    fn cluster_seed_nodes_are_the_host_and_every_node_parameter() {
        let config = cluster_config("rediss-cluster://app:secret@a:7000?node=b:7001&node=c:7002")
            .expect("a valid Cluster URL");
        assert_eq!(config.username.as_deref(), Some("app"));
        assert_eq!(config.password.as_deref(), Some("secret"));
        assert!(config.tls.is_some(), "rediss-cluster is TLS");
        match config.server {
            ServerConfig::Clustered { hosts, .. } => {
                let mut hosts: Vec<String> = hosts
                    .iter()
                    .map(|server| format!("{}:{}", server.host, server.port))
                    .collect();
                hosts.sort();
                assert_eq!(hosts, ["a:7000", "b:7001", "c:7002"]);
            }
            other => panic!("not a Cluster config: {other:?}"),
        }
    }

    #[test]
    fn a_cluster_url_without_a_node_or_port_or_with_a_database_is_refused_saying_what_to_fix() {
        for (url, says) in [
            ("redis-cluster://", "names no Cluster node"),
            ("redis-cluster://:pw@", "names no Cluster node"),
            ("redis-cluster://a", "names no Cluster node"),
            ("redis-cluster://a:7000?node=b", "needs a port"),
            ("redis-cluster://:pw@a:7000/2", "only database 0"),
        ] {
            let err = cluster_config(url).unwrap_err();
            assert!(err.details().contains("--redis-url"), "{url}: {err}");
            assert!(err.details().contains(says), "{url}: {err}");
            assert!(err.details().contains(CLUSTER_FORM), "{url}: {err}");
            assert!(!err.details().contains(":pw@"), "{url}: {err}");
        }
    }

    #[test]
    fn sentinels_listed_with_commas_or_as_nodes_are_all_known() {
        let expected = vec![
            "a:26379".to_owned(),
            "b:26380".to_owned(),
            "c:26379".to_owned(),
        ];
        for url in [
            "redis-sentinel://a:26379,b:26380,c/0?sentinelServiceName=mymaster",
            "redis-sentinel://a,b:26380/0?sentinelServiceName=mymaster&node=c:26379",
            "redis-sentinel://a:26379?sentinelServiceName=mymaster&node=b:26380&node=c:26379",
            "redis-sentinel://:pw@a,b:26380,c?sentinelServiceName=mymaster",
        ] {
            assert_eq!(
                sentinels(url),
                (expected.clone(), "mymaster".into()),
                "{url}"
            );
        }
    }

    #[test]
    fn credentials_and_database_are_read_for_the_primary_and_the_sentinels() {
        let config = sentinel_config(
            "rediss-sentinel://app:secret@a:26379,b:26379/2?sentinelServiceName=m\
             &sentinelUsername=watcher&sentinelPassword=other",
        )
        .unwrap();
        assert_eq!(config.username.as_deref(), Some("app"));
        assert_eq!(config.password.as_deref(), Some("secret"));
        assert_eq!(config.database, Some(2));
        assert!(config.tls.is_some(), "rediss-sentinel is TLS");
        match config.server {
            ServerConfig::Sentinel {
                username, password, ..
            } => {
                assert_eq!(username.as_deref(), Some("watcher"));
                assert_eq!(password.as_deref(), Some("other"));
            }
            other => panic!("not a Sentinel config: {other:?}"),
        }
    }

    #[test]
    fn a_sentinel_url_without_a_service_name_is_refused_saying_how_to_name_it() {
        for url in [
            "redis-sentinel://a:26379,b:26379",
            "redis-sentinel://:pw@a:26379/0?sentinelServiceName=",
            "redis-sentinel://a:26379?node=b:26379",
        ] {
            let err = sentinel_config(url).unwrap_err();
            assert!(err.details().contains("--redis-url"), "{url}: {err}");
            assert!(
                err.details().contains("sentinelServiceName=NAME"),
                "{url}: {err}"
            );
            assert!(!err.details().contains(":pw@"), "{url}: {err}");
        }
    }
}
