//! attention (work in progress)
