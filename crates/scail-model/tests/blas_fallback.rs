//! `SCAIL_OPENBLAS=none` (or a machine without OpenBLAS) in a build without the `openblas`
//! feature: products fall back to the gemm crate and stay correct. One test per process, so
//! the variable is set before the backend is chosen.

use scail_model::blas::{self, Mat, Threads};

#[test]
fn without_openblas_the_gemm_crate_computes_the_same_product() {
    std::env::set_var("SCAIL_OPENBLAS", "none");
    if blas::backend() == "openblas" {
        eprintln!("built with the openblas feature: linked, nothing to fall back from");
        return;
    }
    assert_eq!(blas::backend(), "gemm");
    assert!(!blas::has_fast());
    // [2x3] x [3x2], b read transposed from a [2x3] store.
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let bt = [7.0f32, 9.0, 11.0, 8.0, 10.0, 12.0];
    let mut c = [1.0f32; 4];
    blas::sgemm(
        (2, 2, 3),
        1.0,
        Mat {
            data: &a,
            ld: 3,
            trans: false,
        },
        Mat {
            data: &bt,
            ld: 3,
            trans: true,
        },
        1.0,
        &mut c,
        2,
        Threads::Many,
    );
    assert_eq!(c, [59.0, 65.0, 140.0, 155.0]);
}
