//! scail-core
