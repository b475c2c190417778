//! t5 (work in progress)
