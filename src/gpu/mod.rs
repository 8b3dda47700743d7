//! The GPU engine: wgpu device, WGSL compute pipelines, and reusable buffers.
//!
//! [`GpuDevice`] owns the adapter's device and queue. [`GpuSearch`] runs the nonce-search shader
//! (`shaders/sha256d_search.wgsl`) with several dispatches in flight; [`GpuHasher`] hashes batches of
//! headers and builds merkle trees (`shaders/sha256_batch.wgsl`); [`GpuSigVerifier`] verifies
//! batches of Ed25519 signatures under ZIP-215 (`shaders/ed25519_verify.wgsl`). Every shader has a CPU twin it is
//! tested against: the scalar reference in [`crate::sha256`].
//!
//! Adapters come from wgpu's native backends (Vulkan, Metal, DX12). On Linux without a GPU, Mesa's
//! lavapipe (`mesa-vulkan-drivers`) provides a software Vulkan device; CI runs every GPU test on it.

mod batch;
pub mod ed25519;
mod search;

use std::fmt;

pub use batch::GpuHasher;
pub use ed25519::GpuSigVerifier;
pub use search::{GpuSearch, SearchDispatch};

/// Why the GPU could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No adapter at all.
    #[error(
        "no GPU adapter found (wgpu's Vulkan, Metal and DX12 backends were searched); on Linux without a GPU, \
         install mesa-vulkan-drivers for the software lavapipe device"
    )]
    NoAdapter,
    /// `--adapter N` out of range.
    #[error("adapter {index} does not exist: {count} adapter(s) found (see `powkit gpu list`)")]
    BadAdapterIndex {
        /// What was asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// The device could not be created.
    #[error("could not open adapter '{adapter}': {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// A buffer could not be read back (device lost, out of memory).
    #[error("GPU readback failed: {0}")]
    Readback(String),
    /// A request larger than the device allows.
    #[error("{0}")]
    TooLarge(String),
}

/// What `powkit gpu list` shows of an adapter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    /// Position in wgpu's enumeration (what `--adapter` takes).
    pub index: usize,
    /// Adapter name.
    pub name: String,
    /// Graphics API (`Vulkan`, `Metal`, `Dx12`).
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (a software device) or `Other`.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
}

impl AdapterSummary {
    /// True for a software device running on the CPU (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        self.device_type == "Cpu"
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {}, driver {} {})", self.name, self.backend, self.device_type, self.driver, self.driver_info)
    }
}

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let i = a.get_info();
    AdapterSummary {
        index,
        name: i.name,
        backend: format!("{:?}", i.backend),
        device_type: format!("{:?}", i.device_type),
        driver: i.driver,
        driver_info: i.driver_info,
    }
}

fn instance() -> wgpu::Instance {
    let desc = wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    };
    wgpu::Instance::new(desc)
}

fn adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(
        instance().enumerate_adapters(wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12),
    )
}

/// Every adapter wgpu finds, in enumeration order.
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().enumerate().map(|(i, a)| summary(i, a)).collect()
}

/// Preference when no adapter is named: discrete, integrated, virtual, software, other.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// An open device: the one place that owns the device and queue.
pub struct GpuDevice {
    /// The adapter this device is on.
    pub adapter: AdapterSummary,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
}

impl fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuDevice").field("adapter", &self.adapter).finish()
    }
}

impl GpuDevice {
    /// Opens adapter `index`, or the preferred one (discrete first) when `None`.
    pub fn open(index: Option<usize>) -> Result<GpuDevice, GpuError> {
        let all = adapters();
        if all.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let i = match index {
            Some(i) if i >= all.len() => return Err(GpuError::BadAdapterIndex { index: i, count: all.len() }),
            Some(i) => i,
            None => (0..all.len()).min_by_key(|&i| rank(all[i].get_info().device_type)).expect("non-empty"),
        };
        let adapter = &all[i];
        let info = summary(i, adapter);
        // Ask for what the adapter has (within reason): big storage buffers for batches.
        let have = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: have.max_storage_buffer_binding_size,
            max_buffer_size: have.max_buffer_size,
            max_compute_workgroups_per_dimension: have.max_compute_workgroups_per_dimension,
            ..wgpu::Limits::downlevel_defaults()
        };
        let desc = wgpu::DeviceDescriptor {
            label: Some("powkit"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| GpuError::RequestDevice { adapter: info.name.clone(), reason: e.to_string() })?;
        Ok(GpuDevice { adapter: info, device, queue, limits })
    }

    /// Blocks until all submitted work is done.
    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| GpuError::Readback(e.to_string()))
    }

    /// Copies `size` bytes of `src` into a fresh mappable buffer, waits, and returns them.
    pub(crate) fn read_buffer(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        map_read(self, &staging, size)
    }
}

/// Maps `buf` for reading (after its copy was submitted), waits, and returns its first `size` bytes.
pub(crate) fn map_read(dev: &GpuDevice, buf: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
    let slice = buf.slice(..size);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    dev.wait()?;
    rx.recv().map_err(|e| GpuError::Readback(e.to_string()))?.map_err(|e| GpuError::Readback(e.to_string()))?;
    let data = slice.get_mapped_range().map_err(|e| GpuError::Readback(e.to_string()))?.to_vec();
    buf.unmap();
    Ok(data)
}

/// For tests: the device, or `None` with a printed reason when there is no adapter, unless
/// `POWKIT_REQUIRE_GPU=1`, which turns the skip into a failure (CI sets it).
pub fn device_for_tests() -> Option<GpuDevice> {
    let required = std::env::var("POWKIT_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match GpuDevice::open(std::env::var("POWKIT_ADAPTER").ok().and_then(|v| v.parse().ok())) {
        Ok(d) => {
            eprintln!("GPU test on {}", d.adapter);
            Some(d)
        }
        Err(e) if required => panic!("POWKIT_REQUIRE_GPU=1 but the GPU is unavailable: {e}"),
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests;

/// Quiets a display probe: Mesa's Vulkan drivers look for a Wayland display through libwayland,
/// which prints "XDG_RUNTIME_DIR is invalid or not set" when that variable is unset (headless
/// servers, CI). powkit needs no display, so when it is unset this points it at a private empty
/// directory. Call it at the start of `main`, before any thread exists (it sets an environment
/// variable).
pub fn prepare_environment() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("powkit-runtime-{user}"));
    if std::fs::create_dir_all(&dir).is_ok() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}
