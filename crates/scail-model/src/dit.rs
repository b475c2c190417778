//! dit (work in progress)
