//! `scail weights …`: verify, convert and create checkpoints in the published layout.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use scail_model::weights::ModelSize;

#[derive(Args, Debug)]
pub struct WeightsArgs {
    #[command(subcommand)]
    what: WeightsWhat,
}

#[derive(Subcommand, Debug)]
enum WeightsWhat {
    /// Check every component's key contract (names, shapes, dtypes, parameter counts) and print a table.
    Verify {
        /// The weights folder.
        dir: PathBuf,
    },
    /// Official layout (or fp16 / fp8_scaled safetensors) to canonical bf16 safetensors, streaming.
    Convert { src: PathBuf, dst: PathBuf },
    /// Random weights in the official layout plus a tokenizer, for tests, smoke runs and benchmarks.
    InitRandom {
        /// tiny or 14b.
        #[arg(long, default_value = "tiny")]
        config: ModelSize,
        /// Write sparse files (no disk cost; the data reads as zeros). For contract checks at 14B.
        #[arg(long)]
        sparse: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        dir: PathBuf,
    },
}

pub fn run(a: WeightsArgs) -> anyhow::Result<()> {
    match a.what {
        WeightsWhat::Verify { dir } => {
            let r = scail_model::weights::verify(&dir)?;
            print!("{r}");
            let stagea = dir.join("stagea");
            let stagea_ok = if stagea.is_dir() {
                let rt = scail_stagea::runtime::RuntimeConfig::default();
                match scail_stagea::weights::verify_dir(&stagea, &rt) {
                    Ok(files) => {
                        for f in files {
                            println!("stagea  ok     {}", f.display());
                        }
                        true
                    }
                    Err(e) => {
                        println!("stagea  FAIL   {e}");
                        false
                    }
                }
            } else {
                println!(
                    "stagea  absent {} (segmentation and pose need it unless masks are supplied)",
                    stagea.display()
                );
                true
            };
            anyhow::ensure!(
                r.ok() && stagea_ok,
                "{}: the weights do not match the contract",
                dir.display()
            );
        }
        WeightsWhat::Convert { src, dst } => {
            let r = scail_model::weights::convert(&src, &dst)?;
            for (f, n) in r.files {
                println!("{} ({n} tensors)", f.display());
            }
        }
        WeightsWhat::InitRandom {
            config,
            sparse,
            seed,
            dir,
        } => {
            let r = scail_model::weights::init_random(config, &dir, sparse, seed)?;
            for f in &r.files {
                println!("{}", f.display());
            }
            if matches!(config, ModelSize::Tiny) {
                // Tiny stand-in Stage A graphs with the real signatures, so a tiny folder runs
                // the whole job offline.
                for f in scail_stagea::standin::write_standin_files(&dir.join("stagea"))? {
                    println!("{}", f.display());
                }
            }
            println!("{} bytes (apparent)", r.bytes);
        }
    }
    Ok(())
}
