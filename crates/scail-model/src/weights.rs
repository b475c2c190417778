//! weights (work in progress)
