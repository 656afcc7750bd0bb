//! On Sentinel, the sentinels themselves, each a client of its own: asked
//! which primary they name, to tell the operator why a primary does not
//! answer at start, and on every heartbeat to notice a replica left on a
//! demoted primary ([`super::Gateway::primary_disputed`]).
use super::clients::{builder_for, config, Connection};
use fred::prelude::*;
use fred::types::config::ServerConfig;

/// The sentinels of a Sentinel deployment and the service they monitor;
/// none for other topologies.
pub(super) struct Sentinels {
    clients: Vec<Client>,
    service: String,
}

impl Sentinels {
    /// The sentinels `connection`'s URL names, not yet connected.
    pub(super) fn of(connection: &Connection) -> Result<Self, Error> {
        let config = config(connection)?;
        let ServerConfig::Sentinel {
            hosts,
            service_name,
            username,
            password,
        } = config.server.clone()
        else {
            return Ok(Self {
                clients: Vec::new(),
                service: String::new(),
            });
        };
        let clients = hosts
            .into_iter()
            .map(|host| {
                let sentinel = Config {
                    server: ServerConfig::Centralized { server: host },
                    username: username.clone(),
                    password: password.clone(),
                    tls: config.tls.clone(),
                    ..Config::default()
                };
                builder_for(sentinel, connection).build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            clients,
            service: service_name,
        })
    }

    /// Every sentinel's client, for the gateway's supervisors.
    pub(super) fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The primary each sentinel (the connected ones only, if
    /// `connected_only`) names, as `host:port`: `Ok(None)` if it answers
    /// but names none.
    pub(super) async fn named(&self, connected_only: bool) -> Vec<Result<Option<String>, Error>> {
        let asked = self
            .clients
            .iter()
            .filter(|sentinel| !connected_only || sentinel.is_connected())
            .map(|sentinel| async {
                let address: Option<Vec<String>> = sentinel
                    .custom(
                        fred::types::CustomCommand::new_static("SENTINEL", None::<u16>, false),
                        vec!["get-master-addr-by-name".to_owned(), self.service.clone()],
                    )
                    .await?;
                Ok(address
                    .filter(|address| address.len() == 2)
                    .map(|address| format!("{}:{}", address[0], address[1])))
            });
        futures_util::future::join_all(asked).await
    }

    /// What the sentinels say of the service, worded for the operator:
    /// none answers, none monitors it, or the primary they name. `None`
    /// when not on Sentinel.
    pub(super) async fn say(&self) -> Option<String> {
        if self.clients.is_empty() {
            return None;
        }
        let answers = self.named(false).await;
        let named = answers
            .iter()
            .find_map(|answer| answer.as_ref().ok().cloned().flatten());
        let service = &self.service;
        Some(match named {
            Some(primary) => format!(
                "the sentinels name {primary} as the primary of {service:?}, which does not \
                 answer"
            ),
            None if answers.iter().any(Result::is_ok) => format!(
                "the sentinels answer but monitor no service named {service:?}: check \
                 sentinelServiceName= in --redis-url (the NAME of `sentinel monitor NAME ...`)"
            ),
            None => {
                let hosts: Vec<String> = self
                    .clients
                    .iter()
                    .filter_map(|sentinel| match &sentinel.client_config().server {
                        ServerConfig::Centralized { server } => {
                            Some(format!("{}:{}", server.host, server.port))
                        }
                        _ => None,
                    })
                    .collect();
                format!(
                    "none of the sentinels ({}) answers: check their hosts and ports in \
                     --redis-url (a sentinel listens on 26379 by default, not on the primary's \
                     port) and sentinelPassword= if they require one",
                    hosts.join(", ")
                )
            }
        })
    }
}
