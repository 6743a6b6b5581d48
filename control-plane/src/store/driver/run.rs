//! The driver as a member runs it: on its own thread, with a syncer thread doing group-commit fsyncs
//! and a checkpointer thread writing checkpoints, and supervision that takes the process down if the
//! driver dies. Everything here is I/O around the decisions in [`Driver`]'s other methods.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::super::log_store::{Checkpoint as _, Durable, LogStore};
use super::super::object_store::{Error, Result};
use super::config::DriverConfig;
use super::io::{Clock, Network};
use super::msg::Msg;
use super::node::{Driver, PersistJob};
use super::shared::Shared;

/// Group commit: one fsync covers every Ready queued while the previous fsync ran.
fn run_syncer<D: Durable>(
    rx: Receiver<PersistJob<D>>,
    transport: Arc<dyn Network>,
    driver: std::sync::mpsc::Sender<Msg>,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        if let Err(e) = jobs.last().expect("one job").wal.sync() {
            // After a failed fsync the kernel may have dropped the dirty pages and a retry can
            // report success for data that is gone, so nothing here is acknowledged, ever: the driver
            // stops and the restarted member replays only what is really on disk.
            let _ = driver.send(Msg::SyncFailed(e.to_string()));
            return;
        }
        let mut last = 0;
        for j in jobs {
            // Votes and append acks promise durability: only after the fsync.
            if !j.messages.is_empty() {
                transport.send(j.messages);
            }
            last = j.number;
        }
        if driver.send(Msg::Persisted(last)).is_err() {
            break;
        }
    }
}

/// Checkpoints are background work (the log already holds every change), so their thread runs at
/// nice 19 and takes the CPU time client writes leave idle, like a database's compaction thread.
fn lower_priority() {
    // On Linux a thread id is a valid target of setpriority(PRIO_PROCESS).
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "could not lower the checkpointer's priority");
    }
}

/// Runs a thread the member cannot live without (the Raft driver). If it panics, the process exits
/// (status 70) instead of living on as a member that answers health checks but can neither commit
/// nor vote: a supervisor restarts it and the cluster sees a member down, not a zombie.
pub(crate) fn supervise(what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let why = crate::controllers::isolation::panic_message(panic.as_ref());
        tracing::error!(
            thread = what,
            error = %why,
            "thread died; exiting so a supervisor restarts this member"
        );
        eprintln!("{what} died: {why}; exiting");
        std::process::exit(70);
    }
}

impl<S: LogStore> Driver<S> {
    /// A driver with its syncer and checkpointer threads, for [`run`](Self::run) on a thread of its
    /// own. `driver_tx` is its own inbox, where the syncer reports what it made durable.
    ///
    /// # Errors
    /// `Unavailable` when raft-rs refuses the stored state or a thread cannot be spawned.
    #[allow(clippy::too_many_arguments)] // Each is one seam the member injects.
    pub(crate) fn new(
        storage: S,
        rx: Receiver<Msg>,
        driver_tx: std::sync::mpsc::Sender<Msg>,
        shared: Arc<Shared>,
        transport: Arc<dyn Network>,
        clock: Arc<dyn Clock>,
        cfg: DriverConfig,
        seed: u64,
    ) -> Result<Self> {
        let mut d = Self::inline(storage, rx, shared, transport, clock, cfg, seed)?;
        let (syncer, syncer_rx) = std::sync::mpsc::channel();
        let syncer_transport = d.transport.clone();
        d.syncer_thread = Some(
            std::thread::Builder::new()
                .name(format!("raft-sync-{}", d.shared.id))
                .spawn(move || run_syncer(syncer_rx, syncer_transport, driver_tx))
                .map_err(|e| Error::Unavailable(format!("spawning syncer: {e}")))?,
        );
        d.syncer = Some(syncer);
        let (checkpointer, jobs) = std::sync::mpsc::channel::<S::Checkpoint>();
        let (done_tx, checkpoint_done) = std::sync::mpsc::channel();
        d.checkpointer_thread = Some(
            std::thread::Builder::new()
                .name(format!("raft-ckpt-{}", d.shared.id))
                .spawn(move || {
                    lower_priority();
                    while let Ok(job) = jobs.recv() {
                        if done_tx.send(job.write()).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| Error::Unavailable(format!("spawning checkpointer: {e}")))?,
        );
        d.checkpointer = Some(checkpointer);
        d.checkpoint_done = checkpoint_done;
        Ok(d)
    }

    /// Runs until the store is stopped or every sender is gone. Blocking: call on a dedicated thread.
    pub(crate) fn run(mut self) {
        let mut next_tick = self.clock.now() + self.cfg.tick;
        loop {
            if self.shared.stopped.load(Ordering::Acquire) {
                break;
            }
            let wait = next_tick.saturating_duration_since(self.clock.now());
            match self.rx.recv_timeout(wait) {
                Ok(m) => {
                    self.handle(m);
                    // Drain everything queued so many writes share one Ready and one fsync.
                    let mut n = 0;
                    while n < 16_384 {
                        match self.rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = self.clock.now();
            if now >= next_tick {
                self.tick();
                next_tick = now + self.cfg.tick;
            }
            self.pump();
        }
        self.fail_all(Error::Unavailable("store stopped".into()));
        // The syncer and checkpointer hold files and sled handles: wait for them so the database is
        // closed (and any checkpoint written) when `run` returns.
        drop(self.syncer.take());
        if let Some(t) = self.syncer_thread.take() {
            let _ = t.join();
        }
        drop(self.checkpointer.take());
        if let Some(t) = self.checkpointer_thread.take() {
            let _ = t.join();
        }
        tracing::info!(id = self.shared.id, "raft driver stopped");
    }

    /// Waits out a storage failure: every waiting or new write gets the reason, raft messages are
    /// dropped (peers resend), and the caller retries after the wait.
    pub(super) fn stall(&mut self, why: &str, backoff: &mut Duration) {
        self.set_storage_error(Some(why.to_string()));
        let err = Error::Unavailable(format!(
            "{why}; this member acknowledges nothing until it can persist again \
             (a write it already proposed may still commit)"
        ));
        self.fail_all(err.clone());
        let until = self.clock.now() + *backoff;
        *backoff = (*backoff * 2).min(Duration::from_secs(1));
        while let Some(wait) = until.checked_duration_since(self.clock.now()) {
            match self.rx.recv_timeout(wait) {
                Ok(Msg::Propose { tx, .. }) => {
                    let _ = tx.send(Err(err.clone()));
                }
                Ok(Msg::ConfChange { tx, .. }) => {
                    let _ = tx.send(Err(err.clone()));
                }
                Ok(Msg::ReadIndex(tx)) => {
                    let _ = tx.send(Err(err.clone()));
                }
                Ok(Msg::Status(tx)) => {
                    let _ = tx.send(self.status());
                }
                Ok(m @ (Msg::Persisted(_) | Msg::SyncFailed(_) | Msg::SnapshotSent { .. })) => {
                    self.handle(m)
                }
                Ok(Msg::Raft(_) | Msg::Unreachable(_)) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.shared.stopped.store(true, Ordering::Release);
                    return;
                }
            }
            if self.shared.stopped.load(Ordering::Acquire) {
                return;
            }
        }
    }
}
