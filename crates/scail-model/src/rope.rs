//! rope (work in progress)
