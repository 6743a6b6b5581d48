//! berthctl: kubectl-like verbs, Compose stacks and lab clusters.
