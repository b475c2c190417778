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
    /// Download the official SCAIL-2 files and the Stage A models from the Hugging Face hub (or
    /// a mirror in its URL layout: HF_ENDPOINT), resuming partial files and checking every
    /// checksum. HF_TOKEN is sent for gated repositories.
    Fetch {
        /// Destination folder (the weights folder `serve --weights` and `generate` take).
        #[arg(long)]
        dest: PathBuf,
        /// Also fetch the optional LoRAs (about 1.2 GB each).
        #[arg(long)]
        with_loras: bool,
        /// Skip the Stage A models (segmentation and pose); masks must then be supplied.
        #[arg(long)]
        no_stagea: bool,
        /// Take a Stage A file whose size or checksum differs from the published one scail
        /// pins (the repository changed it, or a mirror serves another build).
        #[arg(long)]
        accept_changed_stagea: bool,
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
        WeightsWhat::Fetch {
            dest,
            with_loras,
            no_stagea,
            accept_changed_stagea,
        } => fetch(&dest, with_loras, no_stagea, accept_changed_stagea)?,
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
            let (files, bytes) = init_random(config, &dir, sparse, seed)?;
            for f in files {
                println!("{}", f.display());
            }
            println!("{bytes} bytes (apparent)");
        }
    }
    Ok(())
}

/// Random weights in the official layout; a tiny folder also gets stand-in Stage A graphs with
/// the real signatures, so it runs a whole job offline. Returns the files written and the
/// folder's apparent size.
pub(crate) fn init_random(
    config: ModelSize,
    dir: &std::path::Path,
    sparse: bool,
    seed: u64,
) -> anyhow::Result<(Vec<std::path::PathBuf>, u64)> {
    let r = scail_model::weights::init_random(config, dir, sparse, seed)?;
    let mut files = r.files;
    if matches!(config, ModelSize::Tiny) {
        files.extend(scail_stagea::standin::write_standin_files(
            &dir.join("stagea"),
        )?);
    }
    Ok((files, r.bytes))
}

fn progress_printer() -> scail_hub::ProgressFn {
    use std::io::Write;
    std::sync::Arc::new(|path: &str, done: u64, total: u64| {
        let pct = if total > 0 {
            100.0 * done as f64 / total as f64
        } else {
            100.0
        };
        eprint!(
            "\r{path}: {:.1}/{:.1} MiB ({pct:.0}%)   ",
            done as f64 / 1048576.0,
            total as f64 / 1048576.0
        );
        if done >= total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    })
}

fn fetch(
    dest: &std::path::Path,
    with_loras: bool,
    no_stagea: bool,
    accept_changed: bool,
) -> anyhow::Result<()> {
    use scail_hub::{fetch, list_files, FetchOptions};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut main = FetchOptions::from_env(scail_model::weights::OFFICIAL_REPO, dest);
    main.include = scail_model::weights::fetch_include();
    if with_loras {
        main.include.push("model/bias-aware-dpo-lora.pt".into());
        main.include.push("model/relighting-lora.pt".into());
    }
    main.progress = Some(progress_printer());
    let r = rt.block_on(fetch(&main))?;
    println!(
        "{}: {} downloaded, {} already present",
        main.repo,
        r.downloaded.len(),
        r.skipped.len()
    );
    if no_stagea {
        return Ok(());
    }
    // Stage A files come from their own repositories. Each repository is listed first and
    // every file picked from that listing (community exports name files differently), then
    // downloaded under stagea/.hub/<repo>/ and linked under the name scail looks for, so a
    // rerun resumes instead of downloading again.
    use scail_stagea::weights::{companions, resolve, STAGEA_FILES};
    let stagea = dest.join("stagea");
    let cache_of = |repo: &str| stagea.join(".hub").join(repo.replace('/', "--"));
    let mut repos: Vec<&str> = STAGEA_FILES.iter().map(|f| f.repo).collect();
    repos.dedup();
    // Per repository, in first-seen order: (path in it, Stage A name to link it as).
    type Items = Vec<(String, Option<&'static str>)>;
    let mut plan: Vec<(String, Items)> = Vec::new();
    let mut add = |repo: &str, path: String, local: Option<&'static str>| match plan
        .iter_mut()
        .find(|(r, _)| r == repo)
    {
        Some((_, items)) => items.push((path, local)),
        None => plan.push((repo.to_string(), vec![(path, local)])),
    };
    for repo in repos {
        let opts = FetchOptions::from_env(repo, cache_of(repo));
        let listing = rt.block_on(list_files(&opts))?;
        let names: Vec<&str> = listing.iter().map(|f| f.path.as_str()).collect();
        for f in STAGEA_FILES.iter().filter(|f| f.repo == repo) {
            match (resolve(&f.remote, &names), f.fallback) {
                (Some(path), _) => {
                    // The listing's size and LFS checksum against the published pin, before
                    // any byte moves; the download is then checked against the listing.
                    let listed = listing.iter().find(|l| l.path == path);
                    let why = listed.and_then(|l| f.pin_mismatch(l.size, l.sha256.as_deref()));
                    match why {
                        Some(why) if !accept_changed => anyhow::bail!(
                            "{repo}:{path} ({}) is not the published file: {why}. Pass \
                             --accept-changed-stagea to take it anyway",
                            f.local_name
                        ),
                        Some(why) => eprintln!("{repo}:{path}: {why}; taken as asked"),
                        None => {}
                    }
                    for c in companions(&path, &names) {
                        add(repo, c, None);
                    }
                    add(repo, path, Some(f.local_name));
                }
                (None, Some((other, path))) => add(other, path.to_string(), Some(f.local_name)),
                (None, None) => anyhow::bail!(
                    "{repo} has no file for stagea/{} ({}); it lists: {}. Export it yourself \
                     (crates/scail-stagea/README.md) and put it at {}",
                    f.local_name,
                    f.needed_for,
                    names.join(", "),
                    stagea.join(f.local_name).display()
                ),
            }
        }
    }
    for (repo, items) in plan {
        let cache = cache_of(&repo);
        let mut opts = FetchOptions::from_env(&repo, &cache);
        opts.include = items.iter().map(|(p, _)| p.clone()).collect();
        opts.progress = Some(progress_printer());
        let r = rt.block_on(fetch(&opts))?;
        println!(
            "{repo}: {} downloaded, {} already present",
            r.downloaded.len(),
            r.skipped.len()
        );
        for (path, local) in items {
            if let Some(local) = local {
                link_into(&stagea, local, &cache.join(&path))?;
                println!("stagea/{local} <- {repo}:{path}");
            }
        }
    }
    Ok(())
}

/// Links `stagea/<local>` to a downloaded file with a relative target, so the weights folder
/// can move. An existing link is re-pointed (the repository may have renamed the file); a
/// real file put there by hand is left alone.
fn link_into(
    stagea: &std::path::Path,
    local: &str,
    target: &std::path::Path,
) -> anyhow::Result<()> {
    let link = stagea.join(local);
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&link)?,
        Ok(_) => {
            eprintln!("{} is a file of yours; leaving it in place", link.display());
            return Ok(());
        }
        Err(_) => {}
    }
    let up = std::path::Path::new(local).components().count() - 1;
    let mut rel: std::path::PathBuf = std::iter::repeat_n("..", up).collect();
    rel.push(target.strip_prefix(stagea).unwrap_or(target));
    std::os::unix::fs::symlink(&rel, &link)?;
    Ok(())
}
