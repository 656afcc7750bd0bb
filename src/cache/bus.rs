//! The bus: invalidation events and heartbeats between replicas, over Redis
//! pub/sub on `{prefix}:invalidate`.
//!
//! A write publishes one event naming the entries it removed and the groups
//! it moved (with their new generations); every other replica evicts those
//! from its L1 on receipt (the writer evicted before and after publishing,
//! and ignores its own echo). Every replica also publishes a heartbeat about
//! ten times a second and listens for its own: Redis delivers one channel's
//! messages in the order it executed them, so hearing back a heartbeat sent
//! at `t` proves every event published before `t` has been received
//! (`sync` turns that into trust). A clear (`biblio cache clear`) is an
//! event too, carrying only the new namespace; every event and heartbeat
//! carries the namespace current when it was published (see
//! `cache::namespace`).
//!
//! Pub/sub delivers at most once, and only to connected subscribers: when
//! the subscriber reconnects it resubscribes and then clears L1 (events sent
//! in between were lost).
use super::l2::{builder, Connection};
use fred::clients::SubscriberClient;
use fred::prelude::*;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// One message on the bus: a write's invalidation, as published by the
/// `INVALIDATE` script, or a heartbeat.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// The replica that published it.
    pub origin: String,
    /// The L2 keys the write removed; receivers evict the matching L1 entries.
    #[serde(default)]
    pub keys: Vec<String>,
    /// (group name, new generation)
    #[serde(default)]
    pub groups: Vec<(String, u64)>,
    /// A heartbeat: when it was sent, on its sender's clock (nanoseconds
    /// since its cache started), meaningful only to the sender.
    #[serde(default)]
    pub beat: Option<u64>,
    /// The namespace current in Redis when it was published: every
    /// invalidation, heartbeat and clear carries it (see `cache::namespace`).
    #[serde(default)]
    pub namespace: Option<u64>,
}

impl Event {
    /// `None` for a malformed payload, which the subscriber logs and skips.
    pub fn parse(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }

    /// A heartbeat's payload up to the namespace's value, which the
    /// heartbeat script reads in Redis and appends with the closing brace.
    pub fn heartbeat_head(origin: &str, beat: u64) -> String {
        let origin = serde_json::Value::from(origin);
        format!(r#"{{"origin":{origin},"beat":{beat},"namespace":"#)
    }
}

/// What the subscriber reports to.
pub trait Sink: Send + Sync + 'static {
    /// Another replica's invalidation, to evict from L1, or a heartbeat,
    /// which proves trust when it is our own.
    fn event(&self, event: Event);
    /// Subscribed (again): everything missed while disconnected is unknown.
    fn connected(&self);
    /// The connection dropped: events may be missed from now on, so L1 stops
    /// being trusted at once rather than when the heartbeats fall silent.
    fn disconnected(&self);
}

/// The live subscription to the bus. Dropping it stops its tasks and closes
/// its connection, so it is kept for as long as the cache.
pub struct Subscriber {
    client: SubscriberClient,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let client = self.client.clone();
        tokio::spawn(async move {
            let _ = client.quit().await;
        });
    }
}

impl Subscriber {
    /// Subscribes on a connection of its own and keeps doing so across
    /// reconnects, reporting to `sink`.
    pub fn start(
        connection: &Connection,
        channel: String,
        sink: Arc<dyn Sink>,
    ) -> Result<Self, Error> {
        let client = builder(connection)?.build_subscriber_client()?;
        client.connect();
        let mut tasks = Vec::new();

        let messages = {
            let sink = sink.clone();
            let mut rx = client.message_rx();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(message) => {
                            let payload: Option<String> = message.value.convert().ok();
                            match payload.as_deref().and_then(Event::parse) {
                                Some(event) => sink.event(event),
                                None => tracing::warn!("ignoring a malformed invalidation event"),
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            // Events were dropped locally: as bad as a disconnect.
                            tracing::warn!(missed, "invalidation events were dropped; clearing L1");
                            sink.connected();
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            })
        };
        tasks.push(messages);

        // (Re)subscribe whenever the connection is (re)established, then
        // report connected; report disconnected as soon as it is not. A
        // reconnect notice forces the resubscribe even if the drop was too
        // short for the poll to see.
        let watchdog = {
            let client = client.clone();
            let mut reconnects = client.reconnect_rx();
            tokio::spawn(async move {
                let mut subscribed = false;
                loop {
                    let connected = client.is_connected();
                    if connected && !subscribed {
                        match client.subscribe(channel.clone()).await {
                            Ok(()) => {
                                subscribed = true;
                                tracing::info!("invalidation subscriber connected");
                                sink.connected();
                            }
                            Err(err) => tracing::debug!(error = %err, "subscribe failed"),
                        }
                    } else if !connected && subscribed {
                        subscribed = false;
                        tracing::warn!("invalidation subscriber disconnected: L1 entries now expire after the cap");
                        sink.disconnected();
                    }
                    tokio::select! {
                        notice = reconnects.recv() => {
                            if notice.is_ok() && subscribed {
                                subscribed = false;
                                sink.disconnected();
                            }
                        }
                        () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
            })
        };
        tasks.push(watchdog);
        Ok(Self { client, tasks })
    }

    /// Reported by `health`; whether events can currently arrive at all.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_with_and_without_lists() {
        let event = Event::parse(r#"{"origin":"a","keys":["k1"],"groups":[["books",3]]}"#).unwrap();
        assert_eq!(event.keys, vec!["k1"]);
        assert_eq!(event.groups, vec![("books".to_string(), 3)]);
        let bare = Event::parse(r#"{"origin":"a"}"#).unwrap();
        assert!(bare.keys.is_empty() && bare.groups.is_empty());
        assert!(Event::parse("garbage").is_none());
    }

    #[test]
    fn heartbeats_round_trip_with_the_namespace_the_script_appends() {
        let payload = format!("{}{}}}", Event::heartbeat_head("a\"b", u64::MAX), 7);
        let beat = Event::parse(&payload).unwrap();
        assert_eq!(beat.origin, "a\"b");
        assert_eq!(beat.beat, Some(u64::MAX));
        assert_eq!(beat.namespace, Some(7));
        assert!(beat.keys.is_empty() && beat.groups.is_empty());
    }
}
