//! scail-media
