//! State the driver thread publishes to the async store handle: the applied state machine and watch
//! window, the applied index, who leads, the members, and whether storage fails.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, watch};

use super::super::members::Members;
use super::super::object_store::Event;
use super::super::state_machine::{EventWindow, StateMachine};

/// Who leads, as last seen by this member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leadership {
    /// Leader id (0 when unknown).
    pub leader_id: u64,
    /// Whether this member is the leader.
    pub is_leader: bool,
}

/// Applied state readers see: the state machine, the watch window and the event broadcast.
pub(crate) struct Applied {
    pub sm: StateMachine,
    pub window: EventWindow,
    pub events: broadcast::Sender<Arc<Vec<Event>>>,
}

/// State shared between the driver thread and the async store handle.
pub(crate) struct Shared {
    pub id: u64,
    pub applied: RwLock<Applied>,
    pub applied_index: watch::Sender<u64>,
    pub leadership: watch::Sender<Leadership>,
    pub is_leader: watch::Sender<bool>,
    pub members: RwLock<Members>,
    pub stopped: AtomicBool,
    /// Why this member cannot persist (disk full, I/O error); `None` while it can. While set, it
    /// acknowledges nothing: no writes, no votes, no appends.
    pub storage_error: Mutex<Option<String>>,
}

pub(crate) const EVENT_CHANNEL: usize = 4096;

/// Shared-state constructor used by the store handle.
pub(crate) fn new_shared(
    id: u64,
    sm: StateMachine,
    window_capacity: usize,
    members: Members,
) -> Arc<Shared> {
    let applied_index = sm.applied();
    let (events, _) = broadcast::channel(EVENT_CHANNEL);
    Arc::new(Shared {
        id,
        applied: RwLock::new(Applied {
            // Index 1 is the bootstrap point, which carries no objects: a watch from 0 misses nothing.
            window: EventWindow::new(
                window_capacity,
                if applied_index <= 1 { 0 } else { applied_index },
            ),
            sm,
            events,
        }),
        applied_index: watch::channel(applied_index).0,
        leadership: watch::channel(Leadership::default()).0,
        is_leader: watch::channel(false).0,
        members: RwLock::new(members),
        stopped: AtomicBool::new(false),
        storage_error: Mutex::new(None),
    })
}

/// The driver thread's join handle, shared so `shutdown` can wait for sled to close.
pub(crate) type DriverThread = Mutex<Option<std::thread::JoinHandle<()>>>;
