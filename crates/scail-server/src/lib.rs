//! scail-server
