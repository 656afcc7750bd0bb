//! Single flight: concurrent misses of one key in this process share one
//! load. The first reader owns the flight and publishes its result on a
//! watch channel; later readers wait on it. An invalidation cancels the
//! flights of its keys, so no reader that starts after a write joins a load
//! that began before it.
use super::l1;
use crate::error::LoadError;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

/// What a flight ends with: `None` while it runs, then the value (or its
/// absence) or the error.
pub(super) type Outcome<V> = Option<Result<Option<Arc<V>>, LoadError>>;

pub(super) type Sender<V> = Arc<watch::Sender<Outcome<V>>>;

/// Flights in progress, by L1 key. Values are stored as `Any` because one
/// map serves every kind; a key names its kind and each kind has one value
/// type (see [`super::Of`]), so the downcast in [`Flights::join`] always
/// succeeds.
#[derive(Default)]
pub(super) struct Flights(Mutex<HashMap<l1::Key, Arc<dyn Any + Send + Sync>>>);

/// The result of [`Flights::join`].
pub(super) enum Joined<V> {
    /// Another request is loading the key: wait for its outcome.
    Wait(watch::Receiver<Outcome<V>>),
    /// This request loads it and must publish the outcome.
    Own(Sender<V>),
}

impl Flights {
    /// Joins the flight of each key, or starts one.
    pub(super) fn join<V: Send + Sync + 'static>(&self, keys: &[&l1::Key]) -> Vec<Joined<V>> {
        let mut flights = self.0.lock();
        keys.iter()
            .map(|key| {
                let running = flights
                    .get(*key)
                    .and_then(|flight| flight.clone().downcast::<watch::Sender<Outcome<V>>>().ok());
                match running {
                    Some(sender) => Joined::Wait(sender.subscribe()),
                    None => {
                        let sender = Arc::new(watch::channel(None).0);
                        flights.insert((*key).clone(), sender.clone());
                        Joined::Own(sender)
                    }
                }
            })
            .collect()
    }

    /// Forgets the flights of `keys`: later readers start their own load.
    pub(super) fn cancel(&self, keys: &[l1::Key]) {
        let mut flights = self.0.lock();
        for key in keys {
            flights.remove(key);
        }
    }

    /// Removes the flights `owned` started, unless an invalidation already
    /// replaced them. Called when their owner ends, even by cancellation.
    fn finish<V>(&self, owned: &[(l1::Key, Sender<V>)]) {
        let mut flights = self.0.lock();
        for (key, sender) in owned {
            let ours = flights.get(key).is_some_and(|flight| {
                std::ptr::eq(
                    Arc::as_ptr(flight) as *const u8,
                    Arc::as_ptr(sender) as *const u8,
                )
            });
            if ours {
                flights.remove(key);
            }
        }
    }
}

/// Ends this call's flights when dropped, so a cancelled request never
/// leaves readers waiting forever.
pub(super) struct Guard<'a, V> {
    pub(super) flights: &'a Flights,
    pub(super) owned: Vec<(l1::Key, Sender<V>)>,
}

impl<V> Drop for Guard<'_, V> {
    fn drop(&mut self) {
        self.flights.finish(&self.owned);
    }
}
