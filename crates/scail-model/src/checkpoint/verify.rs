//! `scail weights verify`: every component of a folder against its key contract.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::layout::{canonical_name, find_tokenizer, locate, Contract, ModelSize, DIT_SAT, DIT_ST};
use super::{Checkpoint, Result, Source};

/// One row of [`VerifyReport`].
#[derive(Debug, Clone)]
pub struct ComponentReport {
    pub component: &'static str,
    pub file: Option<PathBuf>,
    pub expected_tensors: usize,
    pub found_tensors: usize,
    pub expected_params: u64,
    pub found_params: u64,
    /// Stored dtypes with tensor counts.
    pub dtypes: BTreeMap<String, usize>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    /// (name, expected shape, stored shape).
    pub wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
    pub error: Option<String>,
}

impl ComponentReport {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_shape.is_empty()
    }
}

/// `scail weights verify`: every component's key contract.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub size: ModelSize,
    pub components: Vec<ComponentReport>,
    pub tokenizer: Option<PathBuf>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.tokenizer.is_some() && self.components.iter().all(|c| c.ok())
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "contract: {:?}", self.size)?;
        writeln!(
            f,
            "{:<6} {:>9} {:>9} {:>16} {:>16}  {:<22} {:<6} file",
            "part", "tensors", "expected", "params", "expected", "dtypes", "status"
        )?;
        for c in &self.components {
            let dt = c
                .dtypes
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(",");
            writeln!(
                f,
                "{:<6} {:>9} {:>9} {:>16} {:>16}  {:<22} {:<6} {}",
                c.component,
                c.found_tensors,
                c.expected_tensors,
                c.found_params,
                c.expected_params,
                dt,
                if c.ok() { "ok" } else { "FAIL" },
                c.file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "-".into())
            )?;
            if let Some(e) = &c.error {
                writeln!(f, "    error: {e}")?;
            }
            for m in c.missing.iter().take(5) {
                writeln!(f, "    missing: {m}")?;
            }
            for m in c.unexpected.iter().take(5) {
                writeln!(f, "    unexpected: {m}")?;
            }
            for (n, e, g) in c.wrong_shape.iter().take(5) {
                writeln!(f, "    shape: {n} expected {e:?} stored {g:?}")?;
            }
        }
        writeln!(
            f,
            "tokenizer: {}",
            self.tokenizer
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "MISSING".into())
        )?;
        write!(f, "overall: {}", if self.ok() { "ok" } else { "FAIL" })
    }
}

/// Checks every component of `dir` (official or canonical layout) against the contract of the
/// size its DiT has (tiny or 14B), without reading tensor data.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    // Pick the contract from the DiT's width.
    let mut size = ModelSize::FourteenB;
    if let Some(p) = locate(dir, DIT_SAT, DIT_ST) {
        if let Ok(ck) = Checkpoint::open(&p) {
            let tiny = Contract::new(ModelSize::Tiny);
            if ck
                .metas()
                .any(|(n, m)| n == "patch_embedding.bias" && m.shape == vec![tiny.dit.dim])
            {
                size = ModelSize::Tiny;
            }
        }
    }
    verify_with(dir, &Contract::new(size))
}

/// [`verify`] against a given contract.
pub fn verify_with(dir: &Path, contract: &Contract) -> Result<VerifyReport> {
    let components = contract
        .components()
        .into_iter()
        .map(|(component, official, _, expected)| {
            let mut rep = ComponentReport::new(component, &expected);
            let canonical = canonical_name(component);
            match locate(dir, official, canonical) {
                None => rep.error = Some(format!("not found ({official} or {canonical})")),
                Some(p) => {
                    match Checkpoint::open(&p) {
                        Err(e) => rep.error = Some(e.to_string()),
                        Ok(ck) => rep.compare(&ck, &expected),
                    }
                    rep.file = Some(p);
                }
            }
            rep
        })
        .collect();
    Ok(VerifyReport {
        size: contract.size,
        components,
        tokenizer: find_tokenizer(dir),
    })
}

impl ComponentReport {
    /// A report with nothing found yet.
    fn new(component: &'static str, expected: &[(String, Vec<usize>)]) -> Self {
        Self {
            component,
            file: None,
            expected_tensors: expected.len(),
            found_tensors: 0,
            expected_params: expected
                .iter()
                .map(|(_, s)| s.iter().product::<usize>() as u64)
                .sum(),
            found_params: 0,
            dtypes: BTreeMap::new(),
            missing: vec![],
            unexpected: vec![],
            wrong_shape: vec![],
            error: None,
        }
    }

    /// Counts what `ck` stores and sorts every difference from `expected` into the report.
    fn compare(&mut self, ck: &Checkpoint, expected: &[(String, Vec<usize>)]) {
        let want: BTreeMap<&str, &Vec<usize>> =
            expected.iter().map(|(n, s)| (n.as_str(), s)).collect();
        for (name, meta) in ck.metas() {
            self.found_tensors += 1;
            self.found_params += meta.shape.iter().product::<usize>() as u64;
            let stored = match ck.source(name) {
                Some(Source::Fp8Scaled { .. }) => "f8e4m3+scale".to_string(),
                _ => format!("{:?}", meta.dtype).to_lowercase(),
            };
            *self.dtypes.entry(stored).or_default() += 1;
            match want.get(name.as_str()) {
                None => self.unexpected.push(name.clone()),
                Some(s) if **s != meta.shape => {
                    self.wrong_shape
                        .push((name.clone(), (*s).clone(), meta.shape.clone()))
                }
                _ => {}
            }
        }
        for (n, _) in expected {
            if !ck.contains(n) {
                self.missing.push(n.clone());
            }
        }
    }
}
