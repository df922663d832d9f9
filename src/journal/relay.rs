//! Waking a thread's waiting requests once per commit.
//!
//! A request that waits for its record holds a oneshot receiver; the
//! journal writer completes it. Sent from the writer's thread, each
//! completion wakes its task from outside the task's runtime, and tokio
//! then writes that runtime's eventfd: one syscall per request (run K in
//! docs/PERFORMANCE.md counted 20,165 of them for about as many orders).
//! An HTTP thread therefore installs a relay: the records submitted on it
//! name the relay, the writer hands each commit's answers to it and wakes
//! it once, and the relay's task, on the HTTP thread's own runtime,
//! completes them there, where a wake is a push onto the local queue.
//! A submit from any other thread is answered by the writer directly.
//! Answers go to the relay of the thread that submitted, so a commit is
//! meant to be awaited there (tasks of a current-thread runtime stay on
//! it); once that thread's runtime is gone, its relay's pending answers
//! are dropped, and a wait elsewhere would read "the writer stopped".

use crate::journal::JournalError;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};

pub(crate) type Answer = Result<u64, JournalError>;
pub(crate) type Sender = oneshot::Sender<Answer>;

/// One thread's answers waiting for its runtime.
#[derive(Default)]
pub struct Relay {
    ready: Mutex<Vec<(Sender, Answer)>>,
    wake: Notify,
    /// Answers handed on so far (one update per wake).
    answered: AtomicU64,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Relay>>> = const { RefCell::new(None) };
}

/// Installs a relay for this thread and starts its task on the runtime
/// this is called in (a current-thread runtime, the thread's own).
/// Records submitted on this thread from now on are answered through it.
pub fn install_here() {
    let relay = Arc::new(Relay::default());
    CURRENT.with(|current| *current.borrow_mut() = Some(Arc::clone(&relay)));
    tokio::spawn(relay.run());
}

/// The relay of the calling thread, if it installed one.
pub fn current() -> Option<Arc<Relay>> {
    // None while the thread's locals are being torn down.
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

impl Relay {
    async fn run(self: Arc<Self>) {
        // Swapped with the shared list each time: no allocation per wake.
        let mut ready = Vec::new();
        loop {
            // A wake given while the answers were being sent is kept as a
            // permit: nothing handed over is left waiting.
            self.wake.notified().await;
            std::mem::swap(&mut *self.lock(), &mut ready);
            self.answered
                .fetch_add(ready.len() as u64, Ordering::Relaxed);
            for (sender, answer) in ready.drain(..) {
                let _ = sender.send(answer); // the request may have gone; fine
            }
        }
    }

    /// Answers this relay has handed on.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Sender, Answer)>> {
        self.ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Who waits for a record: the sender, and the relay of the thread that
/// submitted it, if any.
pub(crate) struct Done {
    pub sender: Sender,
    pub relay: Option<Arc<Relay>>,
}

/// Answers waiters, each relay woken once however many of its waiters it
/// gets; the rest directly.
pub(crate) fn answer_all(waiting: impl IntoIterator<Item = (Done, Answer)>) {
    let mut woken: Vec<Arc<Relay>> = Vec::new();
    for (done, answer) in waiting {
        match done.relay {
            Some(relay) => {
                relay.lock().push((done.sender, answer));
                if !woken.iter().any(|seen| Arc::ptr_eq(seen, &relay)) {
                    woken.push(relay);
                }
            }
            None => {
                let _ = done.sender.send(answer);
            }
        }
    }
    for relay in woken {
        relay.wake.notify_one();
    }
}
