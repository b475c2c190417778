//! `blas::sgemm` (OpenBLAS with the `openblas` feature, the gemm crate otherwise) against a
//! plain f64 triple loop: every transpose combination, row strides wider than the rows, both
//! thread modes, alpha/beta accumulation, and a single-threaded section run from rayon tasks.

use rayon::prelude::*;
use scail_model::blas::{self, Mat, Threads};

/// Deterministic values in [-1, 1).
fn fill(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Element (r, c) of op(stored) for a row-major stored matrix with row stride ld.
fn at(m: &Mat, r: usize, c: usize) -> f64 {
    let i = if m.trans { c * m.ld + r } else { r * m.ld + c };
    m.data[i] as f64
}

#[allow(clippy::too_many_arguments)]
fn check(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    alpha: f32,
    beta: f32,
    threads: Threads,
) {
    let pad = 3;
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let (lda, ldb, ldc) = (ac + pad, bc + pad, n + pad);
    let a = fill(ar * lda, 1);
    let b = fill(br * ldb, 2);
    let c0 = fill(m * ldc, 3);
    let am = Mat {
        data: &a,
        ld: lda,
        trans: ta,
    };
    let bm = Mat {
        data: &b,
        ld: ldb,
        trans: tb,
    };
    let mut c = c0.clone();
    blas::sgemm((m, n, k), alpha, am, bm, beta, &mut c, ldc, threads);
    for i in 0..m {
        for j in 0..ldc {
            let got = c[i * ldc + j] as f64;
            if j >= n {
                assert_eq!(got, c0[i * ldc + j] as f64, "padding column {j} written");
                continue;
            }
            let dot: f64 = (0..k).map(|p| at(&am, i, p) * at(&bm, p, j)).sum();
            let want = alpha as f64 * dot + beta as f64 * c0[i * ldc + j] as f64;
            let tol = 1e-5 * (k as f64).sqrt() * 4.0;
            assert!(
                (got - want).abs() <= tol,
                "{m}x{n}x{k} ta {ta} tb {tb} ({i},{j}): {got} vs {want} ({})",
                blas::backend()
            );
        }
    }
}

#[test]
fn sgemm_matches_a_plain_triple_loop() {
    for (m, n, k) in [(1, 1, 1), (7, 5, 3), (33, 65, 17), (130, 70, 257)] {
        for ta in [false, true] {
            for tb in [false, true] {
                check(m, n, k, ta, tb, 1.0, 0.0, Threads::Many);
                check(m, n, k, ta, tb, 0.125, 1.0, Threads::One);
                check(m, n, k, ta, tb, -2.0, 0.5, Threads::Many);
            }
        }
    }
}

fn mat(data: &[f32], ld: usize, trans: bool) -> Mat<'_> {
    Mat { data, ld, trans }
}

#[test]
fn single_threaded_products_from_rayon_tasks_agree_with_threaded_ones() {
    let (m, n, k) = (96, 80, 64);
    let a = fill(m * k, 4);
    let b = fill(n * k, 5);
    let mut want = vec![0f32; m * n];
    blas::sgemm(
        (m, n, k),
        1.0,
        mat(&a, k, false),
        mat(&b, k, true),
        0.0,
        &mut want,
        n,
        Threads::Many,
    );
    let outs: Vec<Vec<f32>> = blas::single_threaded(|| {
        (0..8)
            .into_par_iter()
            .map(|_| {
                let mut c = vec![0f32; m * n];
                blas::sgemm(
                    (m, n, k),
                    1.0,
                    mat(&a, k, false),
                    mat(&b, k, true),
                    0.0,
                    &mut c,
                    n,
                    Threads::One,
                );
                c
            })
            .collect()
    });
    for c in outs {
        let d = c
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            d <= 1e-4,
            "{} single-threaded product off by {d}",
            blas::backend()
        );
    }
}

#[test]
#[should_panic(expected = "c too short")]
fn sgemm_rejects_a_short_output() {
    let a = fill(4, 1);
    let mut c = vec![0f32; 3];
    let am = Mat {
        data: &a,
        ld: 2,
        trans: false,
    };
    blas::sgemm((2, 2, 2), 1.0, am, am, 0.0, &mut c, 2, Threads::One);
}

/// A build without the `openblas` feature opens the machine's OpenBLAS at run time: where
/// Debian's library is installed, that is what the products run on.
#[test]
fn the_default_build_runs_on_the_machines_openblas() {
    let installed = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .any(|d| std::path::Path::new(d).join("libopenblas.so.0").exists());
    if std::env::var_os("SCAIL_OPENBLAS").is_some() {
        eprintln!(
            "SCAIL_OPENBLAS set: backend chosen by hand ({})",
            blas::backend()
        );
        return;
    }
    if installed {
        assert!(blas::has_fast(), "backend {}", blas::backend());
        assert!(
            blas::backend().starts_with("openblas"),
            "{}",
            blas::backend()
        );
    } else {
        eprintln!("no libopenblas.so.0 here: backend {}", blas::backend());
    }
}

/// The attention's block products follow the documented pick: OpenBLAS where it is loaded and
/// the CPU has AVX-512, the gemm crate elsewhere, `SCAIL_ATTENTION_GEMM` over both; and the
/// block product computes what the layer product does.
#[test]
fn block_products_pick_their_library_by_cpu_and_agree_with_sgemm() {
    #[cfg(target_arch = "x86_64")]
    let avx512 = is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    let expected = match std::env::var("SCAIL_ATTENTION_GEMM").as_deref() {
        Ok("gemm") => blas::BlockBackend::GemmCrate,
        Ok("openblas") if blas::has_fast() => blas::BlockBackend::OpenBlas,
        _ if blas::has_fast() && avx512 => blas::BlockBackend::OpenBlas,
        _ => blas::BlockBackend::GemmCrate,
    };
    assert_eq!(blas::block_backend(), expected, "avx512 {avx512}");

    let (m, n, k) = (37, 29, 64);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
        .collect();
    let b: Vec<f32> = (0..n * k)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let mut want = vec![1f32; m * n];
    let mut got = want.clone();
    blas::sgemm(
        (m, n, k),
        0.5,
        mat(&a, k, false),
        mat(&b, k, true),
        1.0,
        &mut want,
        n,
        Threads::One,
    );
    blas::sgemm_block(
        (m, n, k),
        0.5,
        mat(&a, k, false),
        mat(&b, k, true),
        1.0,
        &mut got,
        n,
    );
    let diff = want
        .iter()
        .zip(&got)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "block product differs by {diff}");
}
