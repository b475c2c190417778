//! clip (work in progress)
