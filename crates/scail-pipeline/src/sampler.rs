//! Flow-matching samplers on shifted sigmas: UniPC (the reference default), DPM-Solver++ (2M,
//! midpoint) and Euler.
//!
//! The schedules are built exactly as the reference does (numpy `linspace` in f64, the shift in
//! f64, integer timesteps by truncation, sigmas stored as f32), and the solver coefficients are
//! computed on f32 scalars as the reference's 0-d float32 tensors are, so rollouts match the
//! `sched_*` fixtures step by step. The model predicts velocity; data prediction is
//! `x0 = x - sigma * v`.

use std::str::FromStr;

use candle_core::Tensor;

/// Training timesteps of the flow-matching schedule.
pub const NUM_TRAIN_TIMESTEPS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("unknown sampler `{0}` (unipc, dpm++ or euler)")]
    Unknown(String),
    #[error("sampling needs at least 1 step")]
    NoSteps,
    #[error("shift must be positive and finite, got {0}")]
    BadShift(f64),
    #[error("step {step} called after the last of {steps} steps")]
    Exhausted { step: usize, steps: usize },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, SamplerError>;

/// Which solver integrates the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolverKind {
    /// UniPC, order 2, bh2, data prediction, predictor-corrector, lower-order final step.
    #[default]
    UniPc,
    /// DPM-Solver++ 2M (midpoint), first-order final step.
    DpmPp,
    /// First-order flow-matching Euler on the DPM++ sigmas.
    Euler,
}

impl SolverKind {
    pub fn name(self) -> &'static str {
        match self {
            SolverKind::UniPc => "unipc",
            SolverKind::DpmPp => "dpm++",
            SolverKind::Euler => "euler",
        }
    }
}

impl From<scail_core::Sampler> for SolverKind {
    fn from(s: scail_core::Sampler) -> Self {
        match s {
            scail_core::Sampler::UniPc => Self::UniPc,
            scail_core::Sampler::DpmPp => Self::DpmPp,
            scail_core::Sampler::Euler => Self::Euler,
        }
    }
}

impl FromStr for SolverKind {
    type Err = SamplerError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "unipc" | "uni_pc" => Ok(Self::UniPc),
            "dpm++" | "dpmpp" | "dpm-solver++" | "dpmpp_2m" => Ok(Self::DpmPp),
            "euler" => Ok(Self::Euler),
            o => Err(SamplerError::Unknown(o.to_string())),
        }
    }
}

impl std::fmt::Display for SolverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Integer timesteps handed to the model (one per step) and the f32 sigmas the updates use
/// (`steps + 1` values, the last one 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub timesteps: Vec<i64>,
    pub sigmas: Vec<f32>,
}

impl Schedule {
    pub fn steps(&self) -> usize {
        self.timesteps.len()
    }

    /// The step count, or `Exhausted` when step `i` is past the end.
    fn check_step(&self, i: usize) -> Result<usize> {
        let n = self.steps();
        if i >= n {
            return Err(SamplerError::Exhausted { step: i, steps: n });
        }
        Ok(n)
    }
}

/// `numpy.linspace(start, stop, num)` (endpoint included), with numpy's arithmetic:
/// `i * ((stop - start) / (num - 1)) + start`, last value set to `stop`.
pub fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return vec![];
    }
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let step = (stop - start) / div;
    let mut y: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    y[num - 1] = stop;
    y
}

fn shift_sigma(shift: f64, s: f64) -> f64 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

fn check(steps: usize, shift: f64) -> Result<()> {
    if steps == 0 {
        return Err(SamplerError::NoSteps);
    }
    if !(shift.is_finite() && shift > 0.0) {
        return Err(SamplerError::BadShift(shift));
    }
    Ok(())
}

fn finish(sigmas_f64: &[f64]) -> Schedule {
    // numpy float64 -> int64 truncates toward zero.
    let timesteps = sigmas_f64
        .iter()
        .map(|s| (s * NUM_TRAIN_TIMESTEPS as f64) as i64)
        .collect();
    let mut sigmas: Vec<f32> = sigmas_f64.iter().map(|&s| s as f32).collect();
    sigmas.push(0.0);
    Schedule { timesteps, sigmas }
}

/// The UniPC schedule of `generate()`: the scheduler's own sigma table (shift 1) starts at
/// σ_max = f32(1 - 1/1000); `linspace(σ_max, 0, steps + 1)[:steps]` is shifted in f64.
pub fn unipc_schedule(steps: usize, shift: f64) -> Result<Schedule> {
    check(steps, shift)?;
    let sigma_max = (1.0f64 - 1.0 / NUM_TRAIN_TIMESTEPS as f64) as f32 as f64;
    let s: Vec<f64> = np_linspace(sigma_max, 0.0, steps + 1)[..steps]
        .iter()
        .map(|&s| shift_sigma(shift, s))
        .collect();
    Ok(finish(&s))
}

/// `get_sampling_sigmas`: `linspace(1, 0, steps + 1)[:steps]` shifted, in f64.
pub fn sampling_sigmas(steps: usize, shift: f64) -> Result<Vec<f64>> {
    check(steps, shift)?;
    Ok(np_linspace(1.0, 0.0, steps + 1)[..steps]
        .iter()
        .map(|&s| shift_sigma(shift, s))
        .collect())
}

/// The DPM-Solver++ schedule of `generate()` (starts at σ = 1, timestep 1000).
pub fn dpmpp_schedule(steps: usize, shift: f64) -> Result<Schedule> {
    Ok(finish(&sampling_sigmas(steps, shift)?))
}

/// One scheduler step's results.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The sample at the next sigma.
    pub prev_sample: Tensor,
    /// The data prediction `x - σ v` of this step (before any corrector).
    pub x0: Tensor,
}

/// A multistep solver: call [`Sampler::step`] once per timestep with the model's velocity at
/// `timesteps()[i]` and the current sample.
pub trait Sampler: Send {
    fn schedule(&self) -> &Schedule;
    fn step(&mut self, velocity: &Tensor, sample: &Tensor) -> Result<StepOutput>;
    fn timesteps(&self) -> &[i64] {
        &self.schedule().timesteps
    }
}

/// A fresh sampler of the given kind (one per segment, as the reference builds one per segment).
pub fn build(kind: SolverKind, steps: usize, shift: f64) -> Result<Box<dyn Sampler>> {
    Ok(match kind {
        SolverKind::UniPc => Box::new(UniPc::new(unipc_schedule(steps, shift)?)),
        SolverKind::DpmPp => Box::new(DpmPp::new(dpmpp_schedule(steps, shift)?)),
        SolverKind::Euler => Box::new(Euler::new(dpmpp_schedule(steps, shift)?)),
    })
}

/// `log(alpha) - log(sigma)` with alpha = 1 - sigma, on f32 as the reference computes it.
fn lambda(sigma: f32) -> f32 {
    (1.0 - sigma).ln() - sigma.ln()
}

/// `c * x` with an f32 coefficient.
fn scale(x: &Tensor, c: f32) -> Result<Tensor> {
    Ok(x.affine(c as f64, 0.0)?)
}

/// `x - σ v`.
fn data_prediction(sample: &Tensor, velocity: &Tensor, sigma: f32) -> Result<Tensor> {
    let v = velocity.to_dtype(sample.dtype())?;
    Ok((sample - scale(&v, sigma)?)?)
}

/// UniPC (`FlowUniPCMultistepScheduler` with its defaults).
pub struct UniPc {
    sched: Schedule,
    step_index: usize,
    /// Data predictions of the last two steps (`[older, newer]`).
    model_outputs: [Option<Tensor>; 2],
    lower_order_nums: usize,
    last_sample: Option<Tensor>,
    this_order: usize,
}

const UNIPC_ORDER: usize = 2;

impl UniPc {
    pub fn new(sched: Schedule) -> Self {
        Self {
            sched,
            step_index: 0,
            model_outputs: [None, None],
            lower_order_nums: 0,
            last_sample: None,
            this_order: 1,
        }
    }

    /// `1 / rk` style ratio: (λ_si − λ_s0) / h.
    fn rk(&self, si: usize, l0: f32, h: f32) -> f32 {
        (lambda(self.sched.sigmas[si]) - l0) / h
    }

    fn predictor(&self, x: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.step_index;
        let m0 = self.model_outputs[1]
            .as_ref()
            .expect("current output stored");
        let (sigma_t, sigma_s0) = (self.sched.sigmas[i + 1], self.sched.sigmas[i]);
        let alpha_t = 1.0 - sigma_t;
        let l0 = lambda(sigma_s0);
        let h = lambda(sigma_t) - l0;
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let b_h = hh.exp_m1();
        let x_t_ = (scale(x, sigma_t / sigma_s0)? - scale(m0, alpha_t * h_phi_1)?)?;
        if order < 2 {
            return Ok(x_t_);
        }
        let rk = self.rk(i - 1, l0, h);
        let m1 = self.model_outputs[0]
            .as_ref()
            .expect("previous output stored");
        let d1 = ((m1 - m0)? / rk as f64)?;
        // Order 2 uses the fixed rho_p = 0.5.
        let pred_res = scale(&d1, 0.5)?;
        Ok((x_t_ - scale(&pred_res, alpha_t * b_h)?)?)
    }

    fn corrector(&self, model_t: &Tensor, last: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.step_index;
        let m0 = self.model_outputs[1]
            .as_ref()
            .expect("previous output stored");
        let (sigma_t, sigma_s0) = (self.sched.sigmas[i], self.sched.sigmas[i - 1]);
        let alpha_t = 1.0 - sigma_t;
        let l0 = lambda(sigma_s0);
        let h = lambda(sigma_t) - l0;
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let b_h = hh.exp_m1();
        let mut factorial = 1.0f32;
        let mut b = Vec::with_capacity(order);
        for k in 1..=order {
            b.push(h_phi_k * factorial / b_h);
            factorial *= (k + 1) as f32;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }
        let x_t_ = (scale(last, sigma_t / sigma_s0)? - scale(m0, alpha_t * h_phi_1)?)?;
        let d1_t = (model_t - m0)?;
        let corr = if order == 1 {
            scale(&d1_t, 0.5)?
        } else {
            let rk = self.rk(i - 2, l0, h);
            let m1 = self.model_outputs[0].as_ref().expect("older output stored");
            let d1 = ((m1 - m0)? / rk as f64)?;
            // Solve [[1, 1], [rk, 1]] rho = b.
            let (rk64, b0, b1) = (rk as f64, b[0] as f64, b[1] as f64);
            let det = 1.0 - rk64;
            let rho0 = ((b0 - b1) / det) as f32;
            let rho1 = ((b1 - rk64 * b0) / det) as f32;
            (scale(&d1, rho0)? + scale(&d1_t, rho1)?)?
        };
        Ok((x_t_ - scale(&corr, alpha_t * b_h)?)?)
    }
}

impl Sampler for UniPc {
    fn schedule(&self) -> &Schedule {
        &self.sched
    }

    fn step(&mut self, velocity: &Tensor, sample: &Tensor) -> Result<StepOutput> {
        let i = self.step_index;
        let n = self.sched.check_step(i)?;
        let x0 = data_prediction(sample, velocity, self.sched.sigmas[i])?;
        let mut sample = sample.clone();
        if i > 0 {
            if let Some(last) = &self.last_sample {
                sample = self.corrector(&x0, last, self.this_order)?;
            }
        }
        self.model_outputs[0] = self.model_outputs[1].take();
        self.model_outputs[1] = Some(x0.clone());
        // Lower-order final step, and warm-up for the multistep history.
        let this_order = UNIPC_ORDER.min(n - i).min(self.lower_order_nums + 1);
        self.this_order = this_order;
        let prev = self.predictor(&sample, this_order)?;
        self.last_sample = Some(sample);
        if self.lower_order_nums < UNIPC_ORDER {
            self.lower_order_nums += 1;
        }
        self.step_index += 1;
        Ok(StepOutput {
            prev_sample: prev,
            x0,
        })
    }
}

/// DPM-Solver++ 2M with the midpoint second-order update (`FlowDPMSolverMultistepScheduler`).
pub struct DpmPp {
    sched: Schedule,
    step_index: usize,
    model_outputs: [Option<Tensor>; 2],
    lower_order_nums: usize,
}

impl DpmPp {
    pub fn new(sched: Schedule) -> Self {
        Self {
            sched,
            step_index: 0,
            model_outputs: [None, None],
            lower_order_nums: 0,
        }
    }
}

impl Sampler for DpmPp {
    fn schedule(&self) -> &Schedule {
        &self.sched
    }

    fn step(&mut self, velocity: &Tensor, sample: &Tensor) -> Result<StepOutput> {
        let i = self.step_index;
        let n = self.sched.check_step(i)?;
        let s = &self.sched.sigmas;
        // The final sigma is zero, so the last step is always first order.
        let lower_order_final = i == n - 1;
        let x0 = data_prediction(sample, velocity, s[i])?;
        self.model_outputs[0] = self.model_outputs[1].take();
        self.model_outputs[1] = Some(x0.clone());
        let (sigma_t, sigma_s0) = (s[i + 1], s[i]);
        let alpha_t = 1.0 - sigma_t;
        let l0 = lambda(sigma_s0);
        let h = lambda(sigma_t) - l0;
        let phi = alpha_t * ((-h).exp() - 1.0);
        let base = (scale(sample, sigma_t / sigma_s0)? - scale(&x0, phi)?)?;
        let prev = if self.lower_order_nums < 1 || lower_order_final {
            base
        } else {
            let m1 = self.model_outputs[0]
                .as_ref()
                .expect("previous output stored");
            let h0 = l0 - lambda(s[i - 1]);
            let r0 = h0 / h;
            let d1 = scale(&(&x0 - m1)?, 1.0 / r0)?;
            (base - scale(&d1, 0.5 * phi)?)?
        };
        if self.lower_order_nums < 2 {
            self.lower_order_nums += 1;
        }
        self.step_index += 1;
        Ok(StepOutput {
            prev_sample: prev,
            x0,
        })
    }
}

/// Flow-matching Euler: `x ← x + (σ_next − σ) v`.
pub struct Euler {
    sched: Schedule,
    step_index: usize,
}

impl Euler {
    pub fn new(sched: Schedule) -> Self {
        Self {
            sched,
            step_index: 0,
        }
    }
}

impl Sampler for Euler {
    fn schedule(&self) -> &Schedule {
        &self.sched
    }

    fn step(&mut self, velocity: &Tensor, sample: &Tensor) -> Result<StepOutput> {
        let i = self.step_index;
        self.sched.check_step(i)?;
        let (s0, s1) = (self.sched.sigmas[i], self.sched.sigmas[i + 1]);
        let v = velocity.to_dtype(sample.dtype())?;
        let x0 = data_prediction(sample, &v, s0)?;
        let prev = (sample + scale(&v, s1 - s0)?)?;
        self.step_index += 1;
        Ok(StepOutput {
            prev_sample: prev,
            x0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn linspace_matches_numpy_endpoints() {
        let v = np_linspace(0.999, 0.0, 5);
        assert_eq!(v.len(), 5);
        assert_eq!(v[0], 0.999);
        assert_eq!(v[4], 0.0);
    }

    #[test]
    fn names_parse() {
        assert_eq!("UniPC".parse::<SolverKind>().unwrap(), SolverKind::UniPc);
        assert_eq!("dpm++".parse::<SolverKind>().unwrap(), SolverKind::DpmPp);
        assert_eq!("euler".parse::<SolverKind>().unwrap(), SolverKind::Euler);
        assert!("ddim".parse::<SolverKind>().is_err());
    }

    /// With an exact velocity field (straight path from noise to a fixed x0), every solver must
    /// land on that x0.
    #[test]
    fn exact_flow_reaches_target() {
        let dev = Device::Cpu;
        let target = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
        let noise = Tensor::new(&[1.0f32, 0.3, -0.7], &dev).unwrap();
        for kind in [SolverKind::UniPc, SolverKind::DpmPp, SolverKind::Euler] {
            let mut s = build(kind, 6, 3.0).unwrap();
            let sig0 = s.schedule().sigmas[0] as f64;
            // x_σ = (1-σ) x0 + σ n; v = n - x0.
            let mut x = ((&target * (1.0 - sig0)).unwrap() + (&noise * sig0).unwrap()).unwrap();
            let v = (&noise - &target).unwrap();
            for _ in 0..6 {
                x = s.step(&v, &x).unwrap().prev_sample;
            }
            let d = (x - &target)
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "{kind}: off by {d}");
            assert!(s.step(&v, &target).is_err(), "{kind}: a 7th step must fail");
        }
    }
}
