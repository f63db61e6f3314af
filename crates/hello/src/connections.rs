//! The live connections: how many there are, which is oldest, and a way to ask them to close.
//!
//! [`startup`](crate::startup) registers every accepted connection here. Two things use it:
//!
//! - **the cap**: when a new connection would exceed it, the oldest one is asked to close (at a
//!   response boundary if it is serving, at once if it is idle). New connections, and with them
//!   Kubernetes' probes, are never refused, and a client holding thousands of idle sockets only
//!   pushes out its own oldest ones;
//! - **the drain**: [`Connections::close_all`] asks every connection to close, and
//!   [`Connections::all_closed`] waits until none is left.
//!
//! Not here: deciding *when* to close; that is the shutdown sequence's job.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, watch};

/// The registry; cheap to clone.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    /// Connections that have not been asked to close yet, oldest first, by registration number.
    open: Mutex<BTreeMap<u64, Arc<Notify>>>,
    next_id: AtomicU64,
    cap: usize,
    /// Set by [`Connections::close_all`]: later registrations are asked to close at once.
    closing: AtomicBool,
    /// Every [`Registration`] holds a receiver, so the sender sees when all are gone.
    alive: watch::Sender<()>,
}

impl Connections {
    /// A registry that keeps at most `cap` connections open (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                open: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
                cap: cap.max(1),
                closing: AtomicBool::new(false),
                alive: watch::Sender::new(()),
            }),
        }
    }

    /// Registers a new connection; if that makes one too many, the oldest is asked to close.
    pub fn register(&self) -> Registration {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        let evicted = {
            let mut open = self.inner.open();
            open.insert(id, close.clone());
            if open.len() > self.inner.cap {
                open.pop_first().map(|(_, close)| close)
            } else {
                None
            }
        };
        if let Some(oldest) = evicted {
            oldest.notify_one();
        }
        if self.inner.closing.load(Ordering::Acquire) {
            close.notify_one();
        }
        Registration {
            id,
            close,
            registry: self.inner.clone(),
            _alive: self.inner.alive.subscribe(),
        }
    }

    /// Connections not yet finished, including those asked to close that are still finishing.
    pub fn live(&self) -> usize {
        self.inner.alive.receiver_count()
    }

    /// Asks every connection, present and future, to close.
    pub fn close_all(&self) {
        self.inner.closing.store(true, Ordering::Release);
        let open = std::mem::take(&mut *self.inner.open());
        for close in open.into_values() {
            close.notify_one();
        }
    }

    /// Resolves once no connection is left.
    pub async fn all_closed(&self) {
        self.inner.alive.closed().await;
    }
}

impl Inner {
    fn open(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's place in the registry; dropping it (when the connection ends) removes it.
pub struct Registration {
    id: u64,
    close: Arc<Notify>,
    registry: Arc<Inner>,
    _alive: watch::Receiver<()>,
}

impl Registration {
    /// Resolves when this connection should close (the cap or the drain asked it to).
    pub async fn close_requested(&self) {
        self.close.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.open().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn asked_to_close(r: &Registration) -> bool {
        tokio::time::timeout(Duration::from_millis(50), r.close_requested())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn over_the_cap_the_oldest_open_connection_is_asked_to_close() {
        let connections = Connections::new(2);
        let first = connections.register();
        let second = connections.register();
        assert!(!asked_to_close(&first).await);
        let third = connections.register();
        assert!(asked_to_close(&first).await);
        assert!(!asked_to_close(&second).await);
        assert!(!asked_to_close(&third).await);
        // The evicted connection still counts until it has finished.
        assert_eq!(connections.live(), 3);
        drop(first);
        assert_eq!(connections.live(), 2);
        // A finished connection frees its place: no eviction for the next one.
        drop(second);
        let fourth = connections.register();
        assert!(!asked_to_close(&third).await);
        assert!(!asked_to_close(&fourth).await);
    }

    #[tokio::test]
    async fn close_all_reaches_every_connection_and_later_ones() {
        let connections = Connections::new(10);
        let a = connections.register();
        let b = connections.register();
        connections.close_all();
        assert!(asked_to_close(&a).await);
        assert!(asked_to_close(&b).await);
        let late = connections.register();
        assert!(asked_to_close(&late).await);
        let waiting = tokio::spawn({
            let connections = connections.clone();
            async move { connections.all_closed().await }
        });
        drop((a, b));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one connection is still open");
        drop(late);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
    }
}
