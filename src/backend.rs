//! Where batched work runs: the one place that decides between CPU implementations, GPU adapters, or
//! both (as curve25519-dalek's `backend` module does for its field arithmetic). Callers say what the
//! user asked for ([`Backend`], an adapter index, a CPU implementation name); this module opens the
//! engines and says, in plain words, what it chose and why ([`EngineSet::notes`]).
//!
//! Two kinds of work use it: the nonce search ([`open_search`]: a CPU scanner and/or a GPU search
//! over one range), header hashing in bulk validation ([`open_header_hasher`]), and Ed25519 signature
//! verification ([`open_sig_verifier`]).

use std::fmt;
use std::str::FromStr;

use crate::gpu::{GpuDevice, GpuError, GpuHasher, GpuSearch, GpuSigVerifier};
use crate::mine::Engines;
use crate::sha256::{CpuImpl, NonceScanner};
use crate::sigs::{CpuSigVerifier, SigVerifier, SplitSigVerifier};

/// Where work runs, as the user asks for it (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// CPU threads (SIMD / SHA-NI).
    Cpu,
    /// The GPU (wgpu compute shaders).
    Gpu,
    /// CPU and GPU together.
    All,
    /// CPU and GPU together when a hardware GPU is present, else the CPU.
    Auto,
}

impl Backend {
    /// The lowercase name (`cpu`, `gpu`, `all`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
            Backend::All => "all",
            Backend::Auto => "auto",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;
    /// `cpu`, `gpu`, `all` or `auto`.
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            "all" => Ok(Backend::All),
            "auto" => Ok(Backend::Auto),
            other => Err(format!("backend {other:?}: expected cpu, gpu, all or auto")),
        }
    }
}

/// Why the engines asked for cannot run: one line for the user (it names the flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// The engines a search will hash with, and what the user should be told about the choice.
pub struct EngineSet {
    /// The CPU implementation and its scanner, when the CPU takes part.
    pub cpu: Option<(CpuImpl, Box<dyn NonceScanner>)>,
    /// The GPU search, when the GPU takes part.
    pub gpu: Option<GpuSearch>,
    /// Plain-language notes (a GPU skipped, and why).
    pub notes: Vec<String>,
}

impl EngineSet {
    /// Borrows them for a search.
    pub fn engines(&mut self) -> Engines<'_> {
        Engines { cpu: self.cpu.as_ref().map(|(_, s)| &**s), gpu: self.gpu.as_mut() }
    }

    /// The adapter's name, when the GPU takes part.
    pub fn adapter(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| g.device().adapter.name.clone())
    }

    /// `cpu`, `gpu` or `all`: what actually runs.
    pub fn backend(&self) -> Backend {
        match (self.cpu.is_some(), self.gpu.is_some()) {
            (true, true) => Backend::All,
            (false, true) => Backend::Gpu,
            _ => Backend::Cpu,
        }
    }
}

/// Which CPU implementations `--cpu-impl` selects: parsed once from the flag, decided by
/// [`cpu_impls`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuImpls {
    /// `auto`: the fastest this CPU has ([`CpuImpl::detect`]).
    Auto,
    /// `all`: every implementation this CPU has, fastest first ([`CpuImpl::available`]); a search
    /// that hashes with one uses the fastest, as with `auto`.
    All,
    /// One named implementation.
    One(CpuImpl),
}

impl FromStr for CpuImpls {
    type Err = String;
    /// `auto`, `all`, or an implementation name (`scalar`, `shani`, `avx2`, `avx512`); the error is
    /// [`CpuImpl`]'s own for an unknown name.
    fn from_str(s: &str) -> Result<CpuImpls, String> {
        match s {
            "auto" => Ok(CpuImpls::Auto),
            "all" => Ok(CpuImpls::All),
            other => other.parse().map(CpuImpls::One),
        }
    }
}

/// The CPU implementations `selection` stands for, fastest first (one for `auto` and a named one,
/// every available one for `all`).
///
/// # Errors
/// A named implementation this CPU lacks.
pub fn cpu_impls(selection: CpuImpls) -> Result<Vec<CpuImpl>, BackendError> {
    let imps = match selection {
        CpuImpls::Auto => vec![CpuImpl::detect()],
        CpuImpls::All => CpuImpl::available(),
        CpuImpls::One(imp) => vec![imp],
    };
    if let Some(&imp) = imps.iter().find(|i| !i.is_available()) {
        return Err(BackendError(crate::sha256::UnsupportedImpl(imp).to_string()));
    }
    Ok(imps)
}

/// The one implementation a search hashes with under `selection`: the named one, or (`auto`, `all`)
/// the fastest this CPU has.
///
/// # Errors
/// A named implementation this CPU lacks.
fn search_impl(selection: CpuImpls) -> Result<CpuImpl, BackendError> {
    let one = if selection == CpuImpls::All { CpuImpls::Auto } else { selection };
    Ok(cpu_impls(one)?[0])
}

/// The CPU implementation named by `--cpu-impl` (`auto`: the fastest this CPU has; `all` is not a
/// name here).
///
/// # Errors
/// An unknown name, or an implementation this CPU lacks.
pub fn cpu_impl(name: &str) -> Result<CpuImpl, BackendError> {
    let selection = if name == "auto" { CpuImpls::Auto } else { CpuImpls::One(name.parse().map_err(BackendError)?) };
    search_impl(selection)
}

/// The GPU device `backend` asks for, with notes on what was left out.
///
/// - `cpu`: none. `gpu`: the adapter, or an error when there is none.
/// - `all`: the adapter (an error when there is none). A *software* adapter (a CPU-type device such as
///   lavapipe) runs on the same cores as the CPU threads and would only take time from them, so it is
///   left out with a note unless `allow_software` is set.
/// - `auto`: like `all` when a hardware GPU is present, otherwise none (with a note).
///
/// # Errors
/// `gpu` or `all` and no adapter could be opened.
pub fn open_gpu(
    backend: Backend,
    adapter: Option<usize>,
    allow_software: bool,
    notes: &mut Vec<String>,
) -> Result<Option<GpuDevice>, BackendError> {
    let flag_error = |e: GpuError| BackendError(format!("--backend {backend}: {e}"));
    match backend {
        Backend::Cpu => Ok(None),
        Backend::Gpu => GpuDevice::open(adapter).map(Some).map_err(flag_error),
        Backend::All | Backend::Auto => match GpuDevice::open(adapter) {
            Ok(dev) if dev.adapter.is_software() && !allow_software => {
                notes.push(format!(
                    "gpu: adapter '{}' is a software device running on these same CPU cores; it would lower \
                     the total, so the CPU runs alone (--gpu-allow-software to use it anyway)",
                    dev.adapter.name
                ));
                Ok(None)
            }
            Ok(dev) => Ok(Some(dev)),
            Err(e) if backend == Backend::All => Err(flag_error(e)),
            Err(e) => {
                notes.push(format!("gpu: not used: {e}"));
                Ok(None)
            }
        },
    }
}

/// Opens the nonce-search engines `backend` asks for (see [`open_gpu`] for the GPU's part; the CPU
/// takes part unless `backend` is `gpu`, and only then is `cpu_impl_name` checked, by [`cpu_impl`]).
///
/// # Errors
/// An unusable CPU implementation name, or a GPU asked for and not there.
pub fn open_search(
    backend: Backend,
    cpu_impl_name: &str,
    adapter: Option<usize>,
    allow_software: bool,
) -> Result<EngineSet, BackendError> {
    let cpu = if backend != Backend::Gpu { Some(cpu_impl(cpu_impl_name)?) } else { None };
    open_engines(backend, cpu, adapter, allow_software)
}

/// [`open_search`] for a parsed `--cpu-impl`: the CPU (unless `backend` is `gpu`) hashes with the
/// selected implementation, or (`auto`, `all`) the fastest.
///
/// # Errors
/// A named implementation this CPU lacks (when the CPU takes part), or a GPU asked for and not there.
pub fn open_search_with(
    backend: Backend,
    cpu_impls: CpuImpls,
    adapter: Option<usize>,
    allow_software: bool,
) -> Result<EngineSet, BackendError> {
    let cpu = if backend != Backend::Gpu { Some(search_impl(cpu_impls)?) } else { None };
    open_engines(backend, cpu, adapter, allow_software)
}

/// Opens `cpu`'s scanner (when given) and the GPU search `backend` asks for.
fn open_engines(
    backend: Backend,
    cpu: Option<CpuImpl>,
    adapter: Option<usize>,
    allow_software: bool,
) -> Result<EngineSet, BackendError> {
    let mut notes = Vec::new();
    let cpu = match cpu {
        Some(imp) => Some((imp, imp.scanner().map_err(|e| BackendError(e.to_string()))?)),
        None => None,
    };
    let gpu = open_gpu(backend, adapter, allow_software, &mut notes)?.map(GpuSearch::new);
    Ok(EngineSet { cpu, gpu, notes })
}

/// Where bulk validation hashes block headers.
pub enum HeaderHasher {
    /// CPU threads (SIMD lanes), this many.
    Cpu(usize),
    /// A GPU batch hasher (the CPU threads still prepare and link).
    Gpu(Box<GpuDevice>, GpuHasher),
}

impl HeaderHasher {
    /// What hashes, for reports: `cpu (2 threads)` or `gpu (ADAPTER)`.
    pub fn describe(&self) -> String {
        match self {
            HeaderHasher::Cpu(t) => format!("cpu ({t} threads)"),
            HeaderHasher::Gpu(d, _) => format!("gpu ({})", d.adapter.name),
        }
    }
}

/// Opens the header hasher `backend` asks for, decided by [`open_gpu`]: `gpu` and `all` hash on the
/// named GPU (a software adapter too: the user asked for it), `auto` on a hardware GPU when there is
/// one; otherwise `threads` CPU threads hash. `notes` gets what was left out and why.
///
/// # Errors
/// `gpu` or `all` and no adapter could be opened.
pub fn open_header_hasher(
    backend: Backend,
    adapter: Option<usize>,
    threads: usize,
    notes: &mut Vec<String>,
) -> Result<HeaderHasher, BackendError> {
    let allow_software = backend != Backend::Auto;
    Ok(match open_gpu(backend, adapter, allow_software, notes)? {
        Some(dev) => {
            let h = GpuHasher::new(&dev);
            HeaderHasher::Gpu(Box::new(dev), h)
        }
        None => HeaderHasher::Cpu(threads),
    })
}

/// Opens the signature verifier `backend` asks for, the GPU decided by [`open_gpu`]: `cpu` verifies
/// on CPU threads (`batch` signatures per ed25519-zebra batch); `gpu` on the GPU alone; `all` on
/// both, split by measured speed ([`SplitSigVerifier`]); `auto` like `all` with a hardware GPU, or
/// a software one when `allow_software`, else the CPU alone. Compiling the GPU verifier takes a
/// minute or more on a software adapter. `notes` gets what was left out and why.
///
/// # Errors
/// `gpu` or `all` and no adapter could be opened.
pub fn open_sig_verifier(
    backend: Backend,
    adapter: Option<usize>,
    allow_software: bool,
    batch: usize,
    notes: &mut Vec<String>,
) -> Result<Box<dyn SigVerifier>, BackendError> {
    let cpu = CpuSigVerifier { batch: batch.max(1) };
    let allow_software = allow_software || matches!(backend, Backend::Gpu | Backend::All);
    Ok(match open_gpu(backend, adapter, allow_software, notes)? {
        None => Box::new(cpu),
        Some(dev) => {
            let gpu = GpuSigVerifier::new(dev);
            if backend == Backend::Gpu {
                Box::new(gpu)
            } else {
                Box::new(SplitSigVerifier::new(Box::new(cpu), Box::new(gpu)))
            }
        }
    })
}
