//! Shared harness of the binary's tests: the built `scail`, the test media, and running
//! commands with their output kept for failure messages.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub fn scail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scail"))
}

pub fn media_dir() -> PathBuf {
    scail_testdata::media_dir()
}

pub fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command, returning (success, stdout, stdout+stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout, all)
}

pub fn ok(cmd: &mut Command) -> String {
    let (success, stdout, all) = run(cmd);
    assert!(success, "{cmd:?} failed:\n{all}");
    stdout
}

/// The ONNX Runtime library from `ORT_DYLIB_PATH` (or the active venv); false, printed, when
/// it is absent.
pub fn ort_or_skip(test: &str) -> bool {
    match scail_stagea::runtime::resolve_dylib(None) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            false
        }
    }
}
