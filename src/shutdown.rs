//! Shutdown is a value passed down: one `watch` channel. The owner flips it
//! once; every task holding a [`Shutdown`] sees it and winds down.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown has been triggered (at once if it already was).
    pub async fn triggered(&mut self) {
        // An error means the trigger was dropped: treat that as shutdown too.
        let _ = self.receiver.wait_for(|triggered| *triggered).await;
    }
}
