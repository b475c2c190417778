//! scail-pipeline
