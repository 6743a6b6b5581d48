//! The scheduler: a pure function from a cluster view and a pod to a node or a reason. No I/O.
