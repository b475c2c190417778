//! vae (work in progress)
