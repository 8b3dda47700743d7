//! Choosing and opening the hashing engines for `mine` and `bench` from the shared flags.

use super::{Backend, CliError};
use crate::gpu::{GpuDevice, GpuError, GpuSearch};
use crate::mine::Engines;
use crate::sha256::{CpuImpl, NonceScanner};

/// The engines a command will hash with, and what the user should be told about the choice.
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

/// The CPU implementation named by `--cpu-impl` (`auto`: the fastest this CPU has).
pub fn cpu_impl(name: &str) -> Result<CpuImpl, CliError> {
    let imp = if name == "auto" { CpuImpl::detect() } else { name.parse().map_err(CliError::usage)? };
    if !imp.is_available() {
        return Err(CliError::usage(crate::sha256::UnsupportedImpl(imp).to_string()));
    }
    Ok(imp)
}

fn gpu_error(e: GpuError) -> CliError {
    CliError::usage(format!("--backend gpu: {e}"))
}

/// Opens what `backend` asks for.
///
/// - `cpu`: CPU threads. `gpu`: the GPU alone (a clear error when there is none).
/// - `all`: both on the same range. A *software* adapter (a CPU-type device such as lavapipe) runs on
///   the same cores as the CPU threads and would only take time from them, so it is left out with a
///   note unless `allow_software` is set (the tests use that to exercise the mixed path).
/// - `auto`: like `all` when a hardware GPU is present, otherwise the CPU alone.
pub fn open(
    backend: Backend,
    cpu_impl_name: &str,
    adapter: Option<usize>,
    allow_software: bool,
) -> Result<EngineSet, CliError> {
    let mut notes = Vec::new();
    let want_cpu = backend != Backend::Gpu;
    let cpu = if want_cpu {
        let imp = cpu_impl(cpu_impl_name)?;
        Some((imp, imp.scanner().map_err(|e| CliError::usage(e.to_string()))?))
    } else {
        None
    };
    let gpu = match backend {
        Backend::Cpu => None,
        Backend::Gpu => Some(GpuSearch::new(GpuDevice::open(adapter).map_err(gpu_error)?)),
        Backend::All | Backend::Auto => match GpuDevice::open(adapter) {
            Ok(dev) if dev.adapter.is_software() && !allow_software => {
                notes.push(format!(
                    "gpu: adapter '{}' is a software device running on these same CPU cores; it would lower \
                     the total, so the CPU runs alone (--gpu-allow-software to use it anyway)",
                    dev.adapter.name
                ));
                None
            }
            Ok(dev) => Some(GpuSearch::new(dev)),
            Err(e) if backend == Backend::All => return Err(CliError::usage(format!("--backend all: {e}"))),
            Err(e) => {
                notes.push(format!("gpu: not used: {e}"));
                None
            }
        },
    };
    Ok(EngineSet { cpu, gpu, notes })
}
