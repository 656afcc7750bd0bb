//! GraphQL request metrics: the counters and the layer that feeds them
//! (`/metrics` renders them, see `scrape`).
//!
//! [`Layer`] wraps the GraphQL route: it times each request and, from the
//! [`Answered`] the endpoint attached to the response, counts it by
//! operation name, kind, HTTP status and whether the response tier
//! answered. Label sets stay bounded in number and in bytes whatever
//! clients send:
//! - an operation label is a name the executed document defines, at most
//!   [`MAX_OPERATION_LEN`] bytes ([`Answered`] sees to both); an
//!   `operationName` the document does not define is the client's
//!   invention, and counts as `(anonymous)`, like anonymous operations;
//! - the first [`MAX_OPERATIONS`] names seen get their own label, later
//!   ones share `(other)`;
//! - named operations get at most [`MAX_SERIES`] series (one per
//!   combination of name, kind, tier and status) between them; a
//!   combination beyond it is counted under `(other)` too;
//! - kinds, tiers and statuses are closed sets (statuses are the ones the
//!   endpoint answers with), so `(anonymous)` and `(other)` have a fixed
//!   number of series each.
//!
//! So the two request families hold at most `MAX_SERIES + 2 × 4 kinds × 3
//! tiers × the statuses` series, each of 22 lines (a counter, a histogram
//! of 18 buckets, `+Inf`, sum and count) of at most about 250 bytes: a few
//! megabytes in the worst case, tens of kilobytes in practice. The query
//! text is never a label. A request refused before it reached the executor
//! has no `Answered`: it counts as kind `unknown`, tier `none`.
//!
//! [`MAX_OPERATION_LEN`]: super::answered::MAX_OPERATION_LEN
//!
//! The hot path (a response-tier hit takes a few microseconds) pays a read
//! lock and a hash of the operation name to find its pre-resolved series,
//! then three relaxed atomic adds: the request counter, the duration
//! histogram (bucket and sum, see [`Histogram`]) and the last-minute window
//! of the stats snapshots. Nothing is allocated once a series exists.
use super::answered::{Answered, OperationKind};
use crate::cache::Cache;
use crate::metrics::histogram::{Histogram, REQUEST_SECONDS};
use crate::metrics::Registry;
use axum::http::Request;
use axum::response::Response;
use parking_lot::RwLock;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

/// Operation names given a label of their own; later ones share `(other)`.
pub const MAX_OPERATIONS: usize = 200;

/// Series of named operations, all names together; a combination of
/// labels beyond it is counted under `(other)`. Five per name on average:
/// a query answered by both tiers, with 200 and 304, and one error.
pub const MAX_SERIES: usize = 1000;

const ANONYMOUS: &str = "(anonymous)";
const OTHER: &str = "(other)";

/// Who answered, as the `response_tier` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tier {
    /// A kept answer (or a 304 from one): nothing executed.
    Hit,
    /// The executor ran.
    Executed,
    /// Refused before reaching either.
    None,
}

impl Tier {
    const COUNT: usize = 3;

    fn as_str(self) -> &'static str {
        match self {
            Tier::Hit => "hit",
            Tier::Executed => "executed",
            Tier::None => "none",
        }
    }
}

/// The statuses the endpoint answers with, each with a pre-resolved
/// series; any other goes through the family's map, under `(anonymous)` or
/// `(other)` only.
const STATUSES: [u16; 11] = [200, 304, 400, 404, 405, 406, 412, 413, 415, 429, 500];

/// One series' labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Labels {
    operation: Arc<str>,
    kind: OperationKind,
    tier: Tier,
    status: u16,
}

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("operation", &*self.operation).encode(encoder.encode_label())?;
        ("kind", self.kind.as_str()).encode(encoder.encode_label())?;
        ("response_tier", self.tier.as_str()).encode(encoder.encode_label())?;
        ("status", self.status).encode(encoder.encode_label())
    }
}

/// A series' counter and histogram, resolved once.
struct Series {
    requests: Counter,
    duration: Histogram,
}

impl Series {
    fn observe(&self, elapsed: std::time::Duration) {
        self.requests.inc();
        self.duration.observe(elapsed);
    }
}

/// One operation name's series, by kind, tier and status.
struct Operation {
    name: Arc<str>,
    /// Whether its series count against [`MAX_SERIES`]: a name's do,
    /// `(anonymous)`'s and `(other)`'s, a fixed number, do not.
    budgeted: bool,
    /// `None` in a slot: the combination came after the budget was spent,
    /// and is counted under `(other)` from then on.
    series: Vec<OnceLock<Option<Series>>>,
}

impl Operation {
    fn new(name: &str, budgeted: bool) -> Self {
        let n = OperationKind::ALL.len() * Tier::COUNT * STATUSES.len();
        Self {
            name: Arc::from(name),
            budgeted,
            series: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// The families and the per-operation series that feed them.
pub struct Requests {
    requests: Family<Labels, Counter>,
    durations: Family<Labels, Histogram, fn() -> Histogram>,
    operations: RwLock<HashMap<Arc<str>, Arc<Operation>, foldhash::fast::RandomState>>,
    anonymous: Arc<Operation>,
    other: Arc<Operation>,
    /// Series of named operations made so far, up to [`MAX_SERIES`].
    named_series: AtomicUsize,
    /// Fed every request's duration, for the stats snapshots.
    cache: Cache,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests").finish_non_exhaustive()
    }
}

impl Requests {
    /// Request metrics registered in `registry`; durations also go to
    /// `cache`'s last-minute window.
    pub fn new(registry: &mut Registry, cache: Cache) -> Self {
        let requests = Family::<Labels, Counter>::default();
        let durations: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_SECONDS));
        registry.inner().register(
            "biblio_graphql_requests",
            "GraphQL requests, by operation name, kind, HTTP status and whether the response tier answered",
            requests.clone(),
        );
        registry.inner().register(
            "biblio_graphql_request_duration_seconds",
            "How long GraphQL requests took in the service, from the request's head to the response's, by the same labels",
            durations.clone(),
        );
        Self {
            requests,
            durations,
            operations: RwLock::default(),
            anonymous: Arc::new(Operation::new(ANONYMOUS, false)),
            other: Arc::new(Operation::new(OTHER, false)),
            named_series: AtomicUsize::new(0),
            cache,
        }
    }

    /// Counts one request that began at `started`.
    fn record(&self, answered: Option<&Answered>, status: u16, started: Instant) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        self.cache.metrics().request(now, elapsed);
        let (name, kind, tier) = match answered {
            Some(answered) => (
                answered.operation.as_deref(),
                answered.kind,
                if answered.by_tier {
                    Tier::Hit
                } else {
                    Tier::Executed
                },
            ),
            None => (None, OperationKind::Unknown, Tier::None),
        };
        let record = |operation: &Operation| {
            if let Some(series) = self.series(operation, kind, tier, status) {
                return series.observe(elapsed);
            }
            // Past the budget, or a status without a slot: under a shared
            // name, whose series are a closed set.
            let shared = if operation.budgeted {
                &*self.other
            } else {
                operation
            };
            if let Some(series) = self.series(shared, kind, tier, status) {
                return series.observe(elapsed);
            }
            let labels = Labels {
                operation: shared.name.clone(),
                kind,
                tier,
                status,
            };
            self.requests.get_or_create(&labels).inc();
            self.durations.get_or_create(&labels).observe(elapsed);
        };
        let Some(name) = name else {
            return record(&self.anonymous);
        };
        {
            let operations = self.operations.read();
            if let Some(operation) = operations.get(name) {
                return record(operation);
            }
        }
        let operation = {
            let mut operations = self.operations.write();
            match operations.get(name) {
                Some(operation) => operation.clone(),
                None if operations.len() < MAX_OPERATIONS => {
                    let operation = Arc::new(Operation::new(name, true));
                    operations.insert(operation.name.clone(), operation.clone());
                    operation
                }
                None => self.other.clone(),
            }
        };
        record(&operation);
    }

    /// The pre-resolved series of these labels, made on first use; `None`
    /// for a status without a slot, and for a named operation's new
    /// combination once [`MAX_SERIES`] are made.
    fn series<'a>(
        &self,
        operation: &'a Operation,
        kind: OperationKind,
        tier: Tier,
        status: u16,
    ) -> Option<&'a Series> {
        let status_index = STATUSES.iter().position(|known| *known == status)?;
        let index = (kind.index() * Tier::COUNT + tier as usize) * STATUSES.len() + status_index;
        operation.series[index]
            .get_or_init(|| {
                if operation.budgeted && !self.spend_one_series() {
                    return None;
                }
                let labels = Labels {
                    operation: operation.name.clone(),
                    kind,
                    tier,
                    status,
                };
                Some(Series {
                    requests: self.requests.get_or_create_owned(&labels),
                    duration: self.durations.get_or_create_owned(&labels),
                })
            })
            .as_ref()
    }

    /// Takes one series from the named operations' budget, if any is left.
    fn spend_one_series(&self) -> bool {
        self.named_series
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |made| {
                (made < MAX_SERIES).then_some(made + 1)
            })
            .is_ok()
    }
}

/// Times and counts the requests of the service it wraps (see the module
/// docs).
#[derive(Clone)]
pub struct Layer(pub Arc<Requests>);

impl<S> tower_layer::Layer<S> for Layer {
    type Service = Service<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Service {
            inner,
            requests: self.0.clone(),
        }
    }
}

/// [`Layer`]'s service.
#[derive(Clone)]
pub struct Service<S> {
    inner: S,
    requests: Arc<Requests>,
}

impl<S, B> tower_service::Service<Request<B>> for Service<S>
where
    S: tower_service::Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Timed {
            started: Instant::now(),
            requests: self.requests.clone(),
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request in flight: counted when its response is ready.
    pub struct Timed<F> {
        started: Instant,
        requests: Arc<Requests>,
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for Timed<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            this.requests.record(
                response.extensions().get::<Answered>(),
                response.status().as_u16(),
                *this.started,
            );
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Mode, Settings};
    use crate::http::answered::MAX_OPERATION_LEN;

    /// Every kind, tier and status the endpoint can report, for many long
    /// names: the label set stays within its budget and the scrape within
    /// the module's bound, and every request is still counted once.
    #[test]
    fn any_mix_of_names_kinds_tiers_and_statuses_stays_within_the_bounds() {
        let settings = Settings {
            mode: Mode::L1,
            ..Settings::default()
        };
        let cache = Cache::new(&settings, "metrics-test", None).unwrap();
        let mut registry = crate::metrics::Registry::default();
        let requests = Requests::new(&mut registry, cache);
        let empty = registry.render(false).len();
        let statuses = STATUSES.iter().copied().chain([401, 418, 503]);
        let mut recorded = 0u64;
        for n in 0..MAX_OPERATIONS + 50 {
            let name: Arc<str> = format!("N{n:04}{}", "x".repeat(MAX_OPERATION_LEN - 5)).into();
            for kind in OperationKind::ALL {
                for by_tier in [false, true] {
                    for status in statuses.clone() {
                        let answered = Answered {
                            operation: Some(name.clone()),
                            kind,
                            by_tier,
                        };
                        requests.record(Some(&answered), status, Instant::now());
                        recorded += 1;
                    }
                }
            }
        }
        for status in statuses {
            requests.record(None, status, Instant::now());
            recorded += 1;
        }

        let text = registry.render(false);
        let samples: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("biblio_graphql_requests_total{"))
            .collect();
        let named = samples
            .iter()
            .filter(|line| line.contains("operation=\"N"))
            .count();
        assert_eq!(named, MAX_SERIES, "named series");
        // (anonymous) and (other): at most every kind, tier and status.
        let shared = 2 * OperationKind::ALL.len() * Tier::COUNT * (STATUSES.len() + 3);
        assert!(samples.len() <= MAX_SERIES + shared, "{}", samples.len());
        let counted: f64 = samples
            .iter()
            .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        assert_eq!(counted as u64, recorded, "every request counted once");
        let bound = (MAX_SERIES + shared) * 22 * 250;
        assert!(
            text.len() - empty < bound,
            "{} bytes of request metrics, bound {bound}",
            text.len() - empty
        );
    }
}
