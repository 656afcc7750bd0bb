//! How to reach Redis: the URL's topology and TLS, the clients' timeouts
//! and reconnect policy, and a supervisor that reconnects a client fred
//! gave up on.
//!
//! Only `redis://`, `redis-sentinel://` and `redis-cluster://` are
//! plaintext; their `rediss` forms are TLS through rustls, trusting the
//! system's roots or `--redis-ca-file` only.
use super::topology::{Scheme, Topology};
use fred::prelude::*;
use std::time::Duration;

/// How to reach Redis, shared by the L2 store and the bus subscriber.
pub struct Connection {
    /// The Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub url: String,
    /// The CA certificates (PEM) a `rediss://` server must chain to; `None`:
    /// the system's trusted roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// How long one call may take; see `cache::Settings`.
    pub command_timeout: Duration,
    /// How long the breaker stays open; see `cache::Settings`.
    pub breaker_interval: Duration,
}

/// A fred config for `connection` with our timeouts and an endless reconnect
/// policy.
pub fn builder(connection: &Connection) -> Result<Builder, Error> {
    Ok(builder_for(config(connection)?, connection))
}

/// A fred builder for `config` with `connection`'s timeouts. One attempt per
/// command (a command that fails is a miss, not something to wait for),
/// except on a Cluster: following an `ASK` redirection (a slot being
/// migrated) takes an attempt of its own, and fred ends the connection task
/// when it finds none left.
pub(super) fn builder_for(config: Config, connection: &Connection) -> Builder {
    let attempts = match topology_of(connection) {
        Topology::Cluster => 3,
        Topology::Single | Topology::Sentinel => 1,
    };
    let mut builder = Builder::from_config(config);
    builder
        .with_config(|config| config.fail_fast = false)
        .with_performance_config(|perf| {
            perf.default_command_timeout = connection.command_timeout;
        })
        .with_connection_config(|conn| {
            conn.connection_timeout = connection.command_timeout.max(Duration::from_millis(200));
            conn.internal_command_timeout =
                connection.command_timeout.max(Duration::from_millis(200));
            conn.max_command_attempts = attempts;
        })
        .set_policy(ReconnectPolicy::new_constant(0, 200));
    builder
}

/// Connects `client`, and connects it again whenever its connection task
/// ends other than by `QUIT`: fred ends it on errors it does not retry (a
/// failed `ASKING` during resharding, for one), after which every call
/// would fail until the process restarts. Stops once `alive` is gone.
pub(super) fn keep_connected(client: Client, alive: std::sync::Weak<()>) {
    tokio::spawn(async move {
        loop {
            let ended = client.connect().await;
            if alive.strong_count() == 0 {
                return;
            }
            match ended {
                Ok(Ok(())) => return,
                Ok(Err(err)) => tracing::warn!(
                    error = %err,
                    "redis: a connection task ended on an error; connecting again"
                ),
                Err(err) => tracing::warn!(
                    error = %err,
                    "redis: a connection task failed; connecting again"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// The server and TLS settings of `connection`'s URL, for the topology its
/// scheme names ([`Topology`]). Only `redis://`, `redis-sentinel://` and
/// `redis-cluster://` are plaintext; their `rediss` forms are TLS through
/// rustls (to the sentinels and to the primary alike, or to every cluster
/// node); anything else is refused rather than read as plaintext. Errors
/// show the URL with its passwords masked.
pub(super) fn config(connection: &Connection) -> Result<Config, Error> {
    let refuse = |message: String| Err(Error::new(ErrorKind::Config, message));
    let Scheme { topology, tls } = Scheme::of(&connection.url)?;
    let mut config = match topology {
        Topology::Single => Config::from_url_centralized(&connection.url).map_err(|err| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "--redis-url {} is malformed ({}): expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], \
                     or rediss://... for TLS",
                    crate::redact::url(&connection.url),
                    err.details()
                ),
            )
        })?,
        Topology::Sentinel => super::topology::sentinel_config(&connection.url)?,
        Topology::Cluster => super::topology::cluster_config(&connection.url)?,
    };
    match (&connection.ca_file, tls) {
        (Some(ca_file), true) => config.tls = Some(trusting(ca_file)?.into()),
        (Some(_), false) => return refuse(
            "--redis-ca-file is given but --redis-url is not TLS (rediss://, rediss-sentinel:// \
             or rediss-cluster://)"
                .into(),
        ),
        // fred verifies against the system's roots.
        (None, true) => debug_assert!(config.tls.is_some(), "TLS is compiled in"),
        (None, false) => {}
    }
    Ok(config)
}

/// The topology `connection`'s URL names; `Single` for a URL `config`
/// refuses (which start-up has refused already).
pub fn topology_of(connection: &Connection) -> Topology {
    Scheme::of(&connection.url).map_or(Topology::Single, |scheme| scheme.topology)
}

/// Refuses, without connecting, what `config` would refuse: for start-up,
/// so a malformed `--redis-url` is reported before anything is touched.
pub fn check(connection: &Connection) -> Result<(), Error> {
    config(connection).map(drop)
}

/// A rustls client that trusts the CA certificates in `ca_file` only.
fn trusting(ca_file: &std::path::Path) -> Result<fred::rustls::ClientConfig, Error> {
    use fred::rustls::pki_types::pem::PemObject;
    use fred::rustls::pki_types::CertificateDer;
    let unreadable = |err: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Config,
            format!("--redis-ca-file {}: {err}", ca_file.display()),
        )
    };
    let mut roots = fred::rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).map_err(|err| unreadable(&err))? {
        let certificate = certificate.map_err(|err| unreadable(&err))?;
        roots.add(certificate).map_err(|err| unreadable(&err))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no certificate in it"));
    }
    Ok(fred::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
