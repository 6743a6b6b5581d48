//! Controllers: each a pure `reconcile(desired, observed) -> actions` plus a thin runner on the leader.
