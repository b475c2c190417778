//! ONNX Runtime through `ort` with the library loaded at run time.
//!
//! The shared library is the one inside the `onnxruntime` (CPU) or `onnxruntime-gpu`
//! Python wheel. Where it lives comes from configuration, else `ORT_DYLIB_PATH`, else the
//! active virtual environment (`VIRTUAL_ENV`). Input and output names and shapes are read
//! from each session, never assumed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

/// Failures of the model runtime, each naming the file or tensor involved.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (looked at: {tried}). Install the `onnxruntime` Python \
         package (`onnxruntime-gpu` on a GPU host) and point ORT_DYLIB_PATH at \
         onnxruntime/capi/libonnxruntime.so.<version>, or set it in the configuration"
    )]
    LibraryMissing { tried: String },
    #[error("could not load ONNX Runtime from {path}: {reason}")]
    LibraryLoad { path: PathBuf, reason: String },
    #[error("model file {path} is missing; run `scail weights fetch` (or `scail weights init-random --config tiny` for stand-ins)")]
    ModelMissing { path: PathBuf },
    #[error("ONNX Runtime failed on {path}: {reason}")]
    Session { path: PathBuf, reason: String },
    #[error("{model}: {detail}")]
    Signature { model: String, detail: String },
}

/// Element types Stage A exchanges with its graphs.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

/// A host tensor: shape and row-major data.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<i64>,
    pub data: TensorData,
}

impl HostTensor {
    pub fn f32(shape: Vec<i64>, data: Vec<f32>) -> Self {
        Self {
            shape,
            data: TensorData::F32(data),
        }
    }
    pub fn i64(shape: Vec<i64>, data: Vec<i64>) -> Self {
        Self {
            shape,
            data: TensorData::I64(data),
        }
    }
    pub fn bool(shape: Vec<i64>, data: Vec<bool>) -> Self {
        Self {
            shape,
            data: TensorData::Bool(data),
        }
    }
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }
}

/// Element type of a graph input or output as Stage A sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    F32,
    I64,
    Bool,
    Other,
}

/// A graph input or output as declared by the session (-1 = dynamic dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct IoSpec {
    pub name: String,
    pub elem: ElemType,
    pub shape: Vec<i64>,
}

/// How to find and run ONNX Runtime.
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    /// The library file, or a folder holding it (a wheel's `capi` folder or a venv).
    pub dylib_path: Option<PathBuf>,
    /// Intra-op threads per session; None lets ONNX Runtime decide.
    pub intra_threads: Option<usize>,
    /// Use the CUDA execution provider (only with the `cuda` cargo feature and the
    /// `onnxruntime-gpu` library); ONNX Runtime falls back to CPU when it cannot start.
    pub cuda: bool,
}

static ENV: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

/// Finds the ONNX Runtime shared library: configured path, `ORT_DYLIB_PATH`, then the
/// `onnxruntime` package of the virtual environment in `VIRTUAL_ENV`.
pub fn resolve_dylib(configured: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = configured {
        candidates.push(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        candidates.push(PathBuf::from(v));
    }
    resolve_from(&candidates)
}

/// The first candidate that is the library file or a folder holding it.
pub fn resolve_from(candidates: &[PathBuf]) -> Result<PathBuf, RuntimeError> {
    let mut tried = Vec::new();
    for c in candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
        if c.is_dir() {
            if let Some(found) = find_in_dir(c) {
                return Ok(found);
            }
        }
        tried.push(c.display().to_string());
    }
    if tried.is_empty() {
        tried.push("no configured path, ORT_DYLIB_PATH or VIRTUAL_ENV set".into());
    }
    Err(RuntimeError::LibraryMissing {
        tried: tried.join(", "),
    })
}

/// Looks for `libonnxruntime.so*` in a folder, its `capi` subfolder, or a venv's
/// `lib/python*/site-packages/onnxruntime/capi`.
fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    let mut dirs = vec![dir.to_path_buf(), dir.join("capi")];
    if let Ok(rd) = std::fs::read_dir(dir.join("lib")) {
        for e in rd.flatten() {
            dirs.push(e.path().join("site-packages/onnxruntime/capi"));
        }
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut libs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("libonnxruntime.so")
                        || n == "onnxruntime.dll"
                        || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
                })
            })
            .collect();
        libs.sort();
        if let Some(l) = libs.pop() {
            return Some(l);
        }
    }
    None
}

/// Loads ONNX Runtime once per process. Later calls return Ok without reloading.
pub fn init(cfg: &RuntimeConfig) -> Result<(), RuntimeError> {
    let mut env = ENV.lock().unwrap_or_else(|e| e.into_inner());
    if env.is_some() {
        return Ok(());
    }
    let path = resolve_dylib(cfg.dylib_path.as_deref())?;
    let builder = ort::init_from(&path).map_err(|e| RuntimeError::LibraryLoad {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let built =
        builder
            .with_name("scail-stagea")
            .build()
            .map_err(|e| RuntimeError::LibraryLoad {
                path: path.clone(),
                reason: e.to_string(),
            })?;
    *env = Some(built);
    Ok(())
}

/// One loaded graph with its declared inputs and outputs.
pub struct OnnxModel {
    session: Session,
    path: PathBuf,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
}

fn io_spec(name: &str, ty: &ValueType) -> IoSpec {
    let (elem, shape) = match ty {
        ValueType::Tensor { ty, shape, .. } => (
            match ty {
                TensorElementType::Float32 => ElemType::F32,
                TensorElementType::Int64 => ElemType::I64,
                TensorElementType::Bool => ElemType::Bool,
                _ => ElemType::Other,
            },
            shape.iter().copied().collect(),
        ),
        _ => (ElemType::Other, Vec::new()),
    };
    IoSpec {
        name: name.to_string(),
        elem,
        shape,
    }
}

impl OnnxModel {
    /// Opens a graph; [`init`] must have succeeded first.
    pub fn load(path: &Path, cfg: &RuntimeConfig) -> Result<Self, RuntimeError> {
        if !path.is_file() {
            return Err(RuntimeError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        init(cfg)?;
        let err = |e: &dyn std::fmt::Display| RuntimeError::Session {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let env = env.as_ref().expect("init succeeded");
        let mut builder = Session::builder(env).map_err(|e| err(&e))?;
        if let Some(n) = cfg.intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| err(&e))?;
        }
        #[cfg(feature = "cuda")]
        if cfg.cuda {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default().build()])
                .map_err(|e| err(&e))?;
        }
        // ONNX Runtime looks for a graph's external weights next to the path it is given;
        // `scail weights fetch` links graphs into place, so hand it the link's target.
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let session = builder.commit_from_file(&real).map_err(|e| err(&e))?;
        let inputs = session
            .inputs()
            .iter()
            .map(|o| io_spec(o.name(), o.dtype()))
            .collect();
        let outputs = session
            .outputs()
            .iter()
            .map(|o| io_spec(o.name(), o.dtype()))
            .collect();
        Ok(Self {
            session,
            path: path.to_path_buf(),
            inputs,
            outputs,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }
    pub fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }

    /// Runs the graph; returns every declared output by name (f32, i64 and bool only).
    pub fn run(
        &mut self,
        inputs: Vec<(String, HostTensor)>,
    ) -> Result<HashMap<String, HostTensor>, RuntimeError> {
        let refs: Vec<(&str, &HostTensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        self.run_refs(&refs)
    }

    /// Like [`Self::run`] but borrowing the inputs (no copy of large feature maps).
    pub fn run_refs(
        &mut self,
        inputs: &[(&str, &HostTensor)],
    ) -> Result<HashMap<String, HostTensor>, RuntimeError> {
        let path = self.path.clone();
        let err = |e: &dyn std::fmt::Display| RuntimeError::Session {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut values: Vec<(String, ort::session::SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            let v: ort::session::SessionInputValue<'_> =
                match &t.data {
                    TensorData::F32(d) => TensorRef::from_array_view((shape, d.as_slice()))
                        .map(|t| t.into_dyn().into()),
                    TensorData::I64(d) => TensorRef::from_array_view((shape, d.as_slice()))
                        .map(|t| t.into_dyn().into()),
                    TensorData::Bool(d) => TensorRef::from_array_view((shape, d.as_slice()))
                        .map(|t| t.into_dyn().into()),
                }
                .map_err(|e| err(&e))?;
            values.push((name.to_string(), v));
        }
        let outs = self.session.run(values).map_err(|e| err(&e))?;
        let mut result = HashMap::new();
        for spec in &self.outputs {
            let Some(v) = outs.get(&spec.name) else {
                continue;
            };
            let t = match spec.elem {
                ElemType::F32 => {
                    let (s, d) = v.try_extract_tensor::<f32>().map_err(|e| err(&e))?;
                    HostTensor::f32(s.iter().copied().collect(), d.to_vec())
                }
                ElemType::I64 => {
                    let (s, d) = v.try_extract_tensor::<i64>().map_err(|e| err(&e))?;
                    HostTensor::i64(s.iter().copied().collect(), d.to_vec())
                }
                ElemType::Bool => {
                    let (s, d) = v.try_extract_tensor::<bool>().map_err(|e| err(&e))?;
                    HostTensor::bool(s.iter().copied().collect(), d.to_vec())
                }
                ElemType::Other => continue,
            };
            result.insert(spec.name.clone(), t);
        }
        Ok(result)
    }

    /// The input whose name is `name`, else the only input of element type `elem`.
    pub fn input_named_or_typed(
        &self,
        name: &str,
        elem: ElemType,
    ) -> Result<&IoSpec, RuntimeError> {
        pick(&self.inputs, name, elem).ok_or_else(|| RuntimeError::Signature {
            model: self.path.display().to_string(),
            detail: format!(
                "no input named `{name}` nor a single {elem:?} input; inputs: {}",
                names(&self.inputs)
            ),
        })
    }
}

fn pick<'a>(list: &'a [IoSpec], name: &str, elem: ElemType) -> Option<&'a IoSpec> {
    list.iter().find(|s| s.name == name).or_else(|| {
        let of_type: Vec<_> = list.iter().filter(|s| s.elem == elem).collect();
        (of_type.len() == 1).then(|| of_type[0])
    })
}

/// Comma-separated `name[shape]:type` list, for error messages.
pub fn names(list: &[IoSpec]) -> String {
    list.iter()
        .map(|s| format!("{}{:?}:{:?}", s.name, s.shape, s.elem))
        .collect::<Vec<_>>()
        .join(", ")
}
