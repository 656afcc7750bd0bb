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
//! in between were lost). A subscriber that falls behind, so that messages
//! are dropped before it reads them, is a gap of the same kind: L1 (and with
//! it every kept answer) is cleared and the gap counted.
use crate::redis::clients::builder;
use crate::redis::Connection;
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
    /// The books that moved within an order, as JSON (`changes::Move`s):
    /// the groups they name are evicted by range, not whole.
    #[serde(default)]
    pub moves: Option<String>,
    /// A heartbeat: when it was sent, on its sender's clock (nanoseconds
    /// since its cache started), meaningful only to the sender.
    #[serde(default)]
    pub beat: Option<u64>,
    /// The namespace current in Redis when it was published: every
    /// invalidation, heartbeat and clear carries it (see `cache::namespace`).
    #[serde(default)]
    pub namespace: Option<u64>,
    /// When an invalidation was published, on its publisher's wall clock
    /// (microseconds since the Unix epoch, as a string): receivers measure
    /// the delivery lag against their own wall clock.
    #[serde(default)]
    pub at: Option<String>,
    /// The primary's WAL position after the write (16 hex digits), with
    /// read replicas: receivers raise their horizon to it before evicting
    /// (see `db::replicas`).
    #[serde(default)]
    pub lsn: Option<String>,
    /// The token (16 hex digits) of a write whose WAL position could not be
    /// read after it committed: receivers notice it before evicting, and
    /// keep their reads on the primary until they have read a position
    /// after it (see `db::replicas`).
    #[serde(default)]
    pub unknown: Option<String>,
}

impl Event {
    /// [`Event::lsn`] as a number.
    pub fn lsn(&self) -> Option<u64> {
        u64::from_str_radix(self.lsn.as_deref()?, 16).ok()
    }

    /// What the event says of its write's WAL position, with read replicas.
    pub fn position(&self) -> Option<crate::db::replicas::Position> {
        use crate::db::replicas::Position;
        let token = self.unknown.as_deref();
        match token.and_then(|token| u64::from_str_radix(token, 16).ok()) {
            Some(token) => Some(Position::Unknown(token)),
            None => self.lsn().map(Position::At),
        }
    }

    /// `None` for a malformed payload, which the subscriber logs and skips.
    pub fn parse(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }

    /// How long the event took to arrive, if it says when it was sent:
    /// this replica's wall clock now minus the publisher's then. Clocks of
    /// two hosts disagree, so a negative result is read as no lag at all.
    pub fn lag(&self) -> Option<Duration> {
        let sent: u64 = self.at.as_deref()?.parse().ok()?;
        Some(Duration::from_micros(
            wall_clock_micros().saturating_sub(sent),
        ))
    }

    /// A heartbeat's payload up to the namespace's value, which the
    /// heartbeat script reads in Redis and appends with the closing brace.
    pub fn heartbeat_head(origin: &str, beat: u64) -> String {
        let origin = serde_json::Value::from(origin);
        format!(r#"{{"origin":{origin},"beat":{beat},"namespace":"#)
    }
}

/// This host's wall clock, in microseconds since the Unix epoch: when
/// events are published and received.
pub fn wall_clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
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
    /// The subscriber fell behind and `dropped` messages were lost before
    /// they were read: a gap, as bad as a reconnect, though the connection
    /// never dropped.
    fn lagged(&self, dropped: u64);
}

/// How many messages the subscriber may fall behind by before some are
/// dropped (fred's default is 32). A burst of writes on a busy host can
/// outrun the task that reads them; what is dropped anyway is a gap
/// ([`Sink::lagged`]).
const BACKLOG: usize = 4096;

/// Hands every message on `rx` to `sink` until the client closes; a
/// lagging receiver (messages dropped unread) is reported as a gap.
async fn deliver(
    mut rx: tokio::sync::broadcast::Receiver<fred::types::Message>,
    sink: Arc<dyn Sink>,
) {
    loop {
        match rx.recv().await {
            Ok(message) => {
                let payload: Option<String> = message.value.convert().ok();
                match payload.as_deref().and_then(Event::parse) {
                    Some(event) => sink.event(event),
                    None => tracing::warn!("ignoring a malformed invalidation event"),
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(dropped)) => {
                tracing::warn!(
                    dropped,
                    "the invalidation subscriber fell behind and messages were dropped: \
                     clearing L1 and the kept answers"
                );
                sink.lagged(dropped);
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
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
        let client = builder(connection)?
            .with_performance_config(|perf| {
                perf.broadcast_channel_capacity = BACKLOG;
            })
            .build_subscriber_client()?;
        client.connect();
        let mut tasks = Vec::new();

        let messages = tokio::spawn(deliver(client.message_rx(), sink.clone()));
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

    /// The node the subscriber listens on, as `host:port`, while connected.
    pub fn node(&self) -> Option<String> {
        let servers = self.client.active_connections();
        let server = servers.first()?;
        Some(format!("{}:{}", server.host, server.port))
    }

    /// Reported by `health`; whether events can currently arrive at all.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what the subscriber reports.
    #[derive(Default)]
    struct Recorder {
        events: parking_lot::Mutex<Vec<Event>>,
        lagged: parking_lot::Mutex<Vec<u64>>,
    }

    impl Sink for Recorder {
        fn event(&self, event: Event) {
            self.events.lock().push(event);
        }
        fn connected(&self) {}
        fn disconnected(&self) {}
        fn lagged(&self, dropped: u64) {
            self.lagged.lock().push(dropped);
        }
    }

    fn message(payload: &str) -> fred::types::Message {
        fred::types::Message {
            channel: "test:invalidate".into(),
            value: Value::from(payload),
            kind: fred::types::MessageKind::Message,
            server: fred::types::config::Server::new("127.0.0.1", 6379),
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_reports_the_gap_then_goes_on_delivering() {
        let (tx, rx) = tokio::sync::broadcast::channel(2);
        // Five messages into a backlog of two, before the reader reads any.
        for i in 0..5 {
            tx.send(message(&format!(r#"{{"origin":"o{i}"}}"#)))
                .unwrap();
        }
        drop(tx);
        let recorder = Arc::new(Recorder::default());

        deliver(rx, recorder.clone()).await;

        assert_eq!(*recorder.lagged.lock(), vec![3], "three dropped");
        let origins: Vec<String> = recorder
            .events
            .lock()
            .iter()
            .map(|event| event.origin.clone())
            .collect();
        assert_eq!(origins, ["o3", "o4"], "what was kept is still delivered");
    }

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

    #[test]
    fn lag_is_measured_from_the_publishers_clock_and_never_negative() {
        let sent = wall_clock_micros() - 2_000;
        let event = Event::parse(&format!(r#"{{"origin":"a","at":"{sent}"}}"#)).unwrap();
        assert!(event.lag().unwrap() >= Duration::from_millis(2));
        let future = wall_clock_micros() + 60_000_000;
        let skewed = Event::parse(&format!(r#"{{"origin":"a","at":"{future}"}}"#)).unwrap();
        assert_eq!(skewed.lag(), Some(Duration::ZERO));
        assert_eq!(Event::parse(r#"{"origin":"a"}"#).unwrap().lag(), None);
    }
}
