//! f32 matrix products for the CPU forward. Row-major everywhere.
//!
//! Products go to OpenBLAS (`cblas_sgemm`), which runs the DiT's linear layers and the VAE's
//! convolutions ahead of the `gemm` crate. With the `openblas` feature it is linked at build
//! time; without it (the default build) the system library is opened at run time
//! (`SCAIL_OPENBLAS` names a file, else `libopenblas.so.0`), so one binary uses whatever
//! OpenBLAS the machine has (Debian's picks its kernels for the CPU at run time) and falls back
//! to the `gemm` crate where there is none. The attention kernel's small block products go
//! through [`sgemm_block`], which picks per CPU: OpenBLAS's AVX-512 kernels lead there (about
//! 1.8× on an AVX-512 EPYC), while on an AVX2-only CPU the gemm crate's lighter packing is
//! ahead (about 1.1× on a Zen 3 EPYC). `SCAIL_ATTENTION_GEMM=openblas|gemm` overrides the pick.
//! OpenBLAS has its own thread pool:
//! [`single_threaded`] limits it to one thread while rayon already parallelises over tasks
//! (the attention kernel), so the two never oversubscribe.

/// A row-major matrix operand: `rows × cols` logical shape, read transposed when `trans`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    /// Elements between consecutive rows of the stored (untransposed) matrix.
    pub ld: usize,
    pub trans: bool,
}

/// `c = alpha · op(a) · op(b) + beta · c` with `op(a)` `m × k`, `op(b)` `k × n`, `c` `m × n`
/// (row stride `ldc`).
///
/// # Panics
/// When a slice is too short for its shape and stride.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    threads: Threads,
) {
    let mut run = |c: &mut [f32]| imp::sgemm((m, n, k), alpha, a, b, beta, c, ldc, threads);
    checked((m, n, k), a, b, c, ldc, &mut run)
}

/// Checks every slice against its shape and stride (panicking on a short one), then runs `f`.
fn checked(
    (m, n, k): (usize, usize, usize),
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
    f: &mut dyn FnMut(&mut [f32]),
) {
    if m == 0 || n == 0 {
        return;
    }
    let need = |rows: usize, cols: usize, ld: usize| {
        if rows == 0 {
            0
        } else {
            (rows - 1) * ld + cols
        }
    };
    let (ar, ac) = if a.trans { (k, m) } else { (m, k) };
    let (br, bc) = if b.trans { (n, k) } else { (k, n) };
    assert!(
        a.ld >= ac && a.data.len() >= need(ar, ac, a.ld),
        "sgemm: a too short"
    );
    assert!(
        b.ld >= bc && b.data.len() >= need(br, bc, b.ld),
        "sgemm: b too short"
    );
    assert!(ldc >= n && c.len() >= need(m, n, ldc), "sgemm: c too short");
    f(c)
}

/// [`sgemm`] on the calling thread for the attention kernel's block products (a few hundred rows,
/// a head's width deep), on the library [`block_backend`] picks.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_block(
    mnk: (usize, usize, usize),
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    if block_backend() == BlockBackend::GemmCrate {
        // Same checks as `sgemm`, then the gemm crate directly.
        let mut run = |c: &mut [f32]| gemm_crate(mnk, alpha, a, b, beta, c, ldc, Threads::One);
        return checked(mnk, a, b, c, ldc, &mut run);
    }
    sgemm(mnk, alpha, a, b, beta, c, ldc, Threads::One)
}

/// The library of [`sgemm_block`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlockBackend {
    OpenBlas,
    GemmCrate,
}

/// `SCAIL_ATTENTION_GEMM=openblas|gemm` when set; otherwise OpenBLAS where it is loaded and the
/// CPU has AVX-512 (its AVX-512 kernels lead), the gemm crate elsewhere: with AVX2 kernels on
/// both sides, the gemm crate's lighter packing wins at these small shapes.
pub fn block_backend() -> BlockBackend {
    use std::sync::OnceLock;
    static PICK: OnceLock<BlockBackend> = OnceLock::new();
    *PICK.get_or_init(|| match std::env::var("SCAIL_ATTENTION_GEMM").as_deref() {
        Ok("gemm") => BlockBackend::GemmCrate,
        Ok("openblas") if has_fast() => BlockBackend::OpenBlas,
        _ if has_fast() && avx512() => BlockBackend::OpenBlas,
        _ => BlockBackend::GemmCrate,
    })
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether one product may use several threads (large layer matmuls) or must stay on the
/// calling thread (inside a rayon task).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Threads {
    Many,
    One,
}

/// Which backend [`sgemm`] uses, for benchmark output.
pub fn backend() -> &'static str {
    imp::name()
}

/// Whether [`sgemm`] runs on OpenBLAS (linked or loaded), which beats candle's own matmul on
/// the CPU; without it, candle's matmul is as fast as a direct call.
pub fn has_fast() -> bool {
    imp::has_fast()
}

/// OpenBLAS's entry points (cblas.h), linked or loaded, and the matrix product on them.
mod imp {
    use super::{Mat, Threads};
    use std::os::raw::c_int;
    use std::sync::Mutex;

    type Sgemm = unsafe extern "C" fn(
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        f32,
        *const f32,
        c_int,
        *const f32,
        c_int,
        f32,
        *mut f32,
        c_int,
    );
    type SetThreads = unsafe extern "C" fn(c_int);
    type GetThreads = unsafe extern "C" fn() -> c_int;

    pub(super) struct OpenBlas {
        sgemm: Sgemm,
        set_threads: SetThreads,
        get_threads: GetThreads,
        name: &'static str,
    }

    #[cfg(feature = "openblas")]
    fn openblas() -> Option<&'static OpenBlas> {
        #[link(name = "openblas")]
        extern "C" {
            fn cblas_sgemm(
                order: c_int,
                ta: c_int,
                tb: c_int,
                m: c_int,
                n: c_int,
                k: c_int,
                alpha: f32,
                a: *const f32,
                lda: c_int,
                b: *const f32,
                ldb: c_int,
                beta: f32,
                c: *mut f32,
                ldc: c_int,
            );
            fn openblas_set_num_threads(n: c_int);
            fn openblas_get_num_threads() -> c_int;
        }
        static LINKED: OpenBlas = OpenBlas {
            sgemm: cblas_sgemm,
            set_threads: openblas_set_num_threads,
            get_threads: openblas_get_num_threads,
            name: "openblas",
        };
        Some(&LINKED)
    }

    /// The machine's library, opened once; it stays loaded for the process's life.
    #[cfg(not(feature = "openblas"))]
    fn openblas() -> Option<&'static OpenBlas> {
        use std::sync::OnceLock;
        fn load(path: &str) -> Option<OpenBlas> {
            // SAFETY: OpenBLAS's initialisers have no preconditions; the symbols are read with
            // the C signatures cblas.h declares, and the library is never unloaded.
            unsafe {
                let lib = libloading::Library::new(path).ok()?;
                let found = OpenBlas {
                    sgemm: *lib.get::<Sgemm>(b"cblas_sgemm\0").ok()?,
                    set_threads: *lib.get::<SetThreads>(b"openblas_set_num_threads\0").ok()?,
                    get_threads: *lib.get::<GetThreads>(b"openblas_get_num_threads\0").ok()?,
                    name: "openblas (loaded at run time)",
                };
                std::mem::forget(lib);
                Some(found)
            }
        }
        static LIB: OnceLock<Option<OpenBlas>> = OnceLock::new();
        LIB.get_or_init(|| match std::env::var("SCAIL_OPENBLAS") {
            Ok(p) if p.is_empty() || p == "none" => None,
            // An explicit choice: a bad path is worth a word, then the fallback.
            Ok(p) => load(&p).or_else(|| {
                eprintln!("SCAIL_OPENBLAS={p}: not an OpenBLAS library; using the gemm crate");
                None
            }),
            Err(_) => load("libopenblas.so.0").or_else(|| load("libopenblas.so")),
        })
        .as_ref()
    }

    pub fn name() -> &'static str {
        openblas().map_or("gemm", |b| b.name)
    }

    pub fn has_fast() -> bool {
        openblas().is_some()
    }

    /// Open single-threaded sections and the thread count OpenBLAS had before the first.
    static SECTIONS: Mutex<(usize, c_int)> = Mutex::new((0, 0));

    pub fn enter_single() {
        let Some(b) = openblas() else { return };
        let mut s = SECTIONS.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 == 0 {
            // SAFETY: plain accessors of the library's global thread count.
            s.1 = unsafe { (b.get_threads)() };
            unsafe { (b.set_threads)(1) };
        }
        s.0 += 1;
    }

    pub fn leave_single() {
        let Some(b) = openblas() else { return };
        let mut s = SECTIONS.lock().unwrap_or_else(|e| e.into_inner());
        s.0 -= 1;
        if s.0 == 0 {
            // SAFETY: as above.
            unsafe { (b.set_threads)(s.1.max(1)) };
        }
    }

    const ROW_MAJOR: c_int = 101;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;

    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        a: Mat,
        b: Mat,
        beta: f32,
        c: &mut [f32],
        ldc: usize,
        threads: Threads,
    ) {
        let Some(lib) = openblas() else {
            return super::gemm_crate((m, n, k), alpha, a, b, beta, c, ldc, threads);
        };
        let t = |x: bool| if x { TRANS } else { NO_TRANS };
        let i = |x: usize| c_int::try_from(x).expect("sgemm dimension exceeds i32");
        // SAFETY: the caller checked every slice against its shape and stride.
        unsafe {
            (lib.sgemm)(
                ROW_MAJOR,
                t(a.trans),
                t(b.trans),
                i(m),
                i(n),
                i(k),
                alpha,
                a.data.as_ptr(),
                i(a.ld),
                b.data.as_ptr(),
                i(b.ld),
                beta,
                c.as_mut_ptr(),
                i(ldc),
            )
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_crate(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    threads: Threads,
) {
    // Row-major element (r, col) of a stored matrix sits at r·ld + col.
    let strides = |m: &Mat| {
        if m.trans {
            (1isize, m.ld as isize)
        } else {
            (m.ld as isize, 1isize)
        }
    };
    let (a_rs, a_cs) = strides(&a);
    let (b_rs, b_cs) = strides(&b);
    let par = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::Many => gemm::Parallelism::Rayon(0),
    };
    // SAFETY: the caller checked every slice against its shape and stride; gemm reads
    // dst only when beta != 0 (read_dst).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// Runs `f` with OpenBLAS limited to one thread (nothing to do without the feature): for code
/// that calls [`sgemm`] with [`Threads::One`] from several rayon tasks at once. Nested and
/// concurrent sections are counted; the previous count comes back when the last one ends.
pub fn single_threaded<R>(f: impl FnOnce() -> R) -> R {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            imp::leave_single();
        }
    }
    imp::enter_single();
    let _guard = Guard;
    f()
}
