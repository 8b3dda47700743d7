//! Host side of the GPU nonce search: parameters, a ring of buffers, pipelined dispatches,
//! overflow handling and dispatch-size tuning.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};

use super::{map_read, GpuDevice, GpuError};
use crate::sha256::reference::{bsig0, bsig1, ch, maj, ssig0, ssig1, K};
use crate::sha256::Job;

/// Nonces per invocation and invocations per workgroup: must match the shader's constants.
const NONCES_PER_THREAD: u32 = 8;
const WORKGROUP_SIZE: u32 = 256;
const NONCES_PER_WORKGROUP: u32 = NONCES_PER_THREAD * WORKGROUP_SIZE;
/// Candidate slots per dispatch. At difficulty 1 a dispatch of 100 M nonces expects 0.02 candidates;
/// easy targets overflow it, and the overflowing range is re-run with a large enough buffer.
pub const RESULT_CAPACITY: u32 = 4096;
/// Dispatches kept in flight, so the GPU never waits on the host's readback.
pub const IN_FLIGHT: usize = 2;
/// Wall time one dispatch should take: far below any display watchdog, and short enough that a
/// cancelled search stops within `IN_FLIGHT` of them.
pub const DISPATCH_TARGET: Duration = Duration::from_millis(15);

/// The shader's `Params` uniform (see the header of shaders/sha256d_search.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
struct Params {
    mid: [u32; 8],
    after2: [u32; 4],
    r3: [u32; 4],
    sched: [u32; 4],
    range: [u32; 4],
}

impl Params {
    /// Everything about `job` the shader does not recompute per nonce: the midstate, the state after
    /// round 2, round 3 less its nonce word, and the nonce-independent parts of W16..W19.
    fn for_job(job: &Job) -> Params {
        let [a, b, c, d, e, f, g, h] = job.state3;
        let [w0, w1, w2] = job.tail;
        let t1 = h.wrapping_add(bsig1(e)).wrapping_add(ch(e, f, g)).wrapping_add(K[3]);
        let t2 = bsig0(a).wrapping_add(maj(a, b, c));
        let w16 = ssig0(w1).wrapping_add(w0);
        let w17 = ssig1(640).wrapping_add(ssig0(w2)).wrapping_add(w1);
        Params {
            mid: job.midstate,
            after2: [a, b, c, e],
            r3: [t1.wrapping_add(t2), d.wrapping_add(t1), f, g],
            sched: [w16, w17, ssig1(w16).wrapping_add(w2), ssig1(w17).wrapping_add(ssig0(0x8000_0000))],
            range: [0, 0, 0, job.target_top()],
        }
    }
}

struct Slot {
    params: wgpu::Buffer,
    results: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind: wgpu::BindGroup,
}

struct Pending {
    slot: usize,
    start: u32,
    count: u32,
    submitted: Instant,
    rx: std::sync::mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

/// One completed dispatch.
#[derive(Debug, Clone)]
pub struct SearchDispatch {
    /// First nonce of the range.
    pub start: u32,
    /// Nonces in the range (all of them hashed).
    pub count: u32,
    /// Early-exit candidates in the range, sorted (confirm each with [`Job::check`]).
    pub candidates: Vec<u32>,
    /// True when the candidates overflowed the dispatch's buffer and the range was re-run.
    pub overflowed: bool,
}

/// The GPU nonce search: pipeline, a ring of [`IN_FLIGHT`] buffer sets, and the tuned dispatch size.
pub struct GpuSearch {
    dev: GpuDevice,
    pipeline: wgpu::ComputePipeline,
    slots: Vec<Slot>,
    free: Vec<usize>,
    pending: VecDeque<Pending>,
    params: Params,
    chunk: u32,
    max_chunk: u32,
    last_done: Option<Instant>,
}

impl std::fmt::Debug for GpuSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSearch").field("adapter", &self.dev.adapter.name).field("chunk", &self.chunk).finish()
    }
}

fn results_size(capacity: u32) -> u64 {
    4 * (1 + capacity as u64)
}

impl GpuSearch {
    /// Compiles the search shader on `dev` and allocates the buffer ring.
    pub fn new(dev: GpuDevice) -> GpuSearch {
        let module = dev.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("sha256d_search"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/sha256d_search.wgsl").into()),
        });
        let pipeline = dev.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("sha256d_search"),
            layout: None,
            module: &module,
            entry_point: Some("search"),
            compilation_options: Default::default(),
            cache: None,
        });
        let slots = (0..IN_FLIGHT).map(|_| Self::slot(&dev, &pipeline, RESULT_CAPACITY)).collect();
        let max_groups = dev.limits.max_compute_workgroups_per_dimension.min(65_535);
        GpuSearch {
            pipeline,
            slots,
            free: (0..IN_FLIGHT).rev().collect(),
            pending: VecDeque::new(),
            params: Params::zeroed(),
            chunk: 1 << 16,
            max_chunk: max_groups.saturating_mul(NONCES_PER_WORKGROUP),
            last_done: None,
            dev,
        }
    }

    fn slot(dev: &GpuDevice, pipeline: &wgpu::ComputePipeline, capacity: u32) -> Slot {
        let params = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("search params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let results = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("search results"),
            size: results_size(capacity),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let readback = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("search readback"),
            size: results_size(capacity),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("search bindings"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: results.as_entire_binding() },
            ],
        });
        Slot { params, results, readback, bind }
    }

    /// The device this search runs on.
    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Sets the job for the following dispatches (dispatches already submitted keep theirs).
    pub fn set_job(&mut self, job: &Job) {
        self.params = Params::for_job(job);
    }

    /// Nonces the next dispatch should take, tuned so one takes about [`DISPATCH_TARGET`].
    pub fn chunk(&self) -> u32 {
        self.chunk
    }

    /// Dispatches in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Whether another dispatch can be submitted now.
    pub fn has_free_slot(&self) -> bool {
        !self.free.is_empty()
    }

    fn encode(&self, slot: &Slot, params: &Params, capacity: u32) -> wgpu::CommandBuffer {
        self.dev.queue.write_buffer(&slot.params, 0, bytemuck::bytes_of(params));
        let mut enc = self.dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("search") });
        enc.clear_buffer(&slot.results, 0, Some(4));
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("search"), timestamp_writes: None });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &slot.bind, &[]);
            pass.dispatch_workgroups(params.range[1].div_ceil(NONCES_PER_WORKGROUP), 1, 1);
        }
        enc.copy_buffer_to_buffer(&slot.results, 0, &slot.readback, 0, results_size(capacity));
        enc.finish()
    }

    /// Submits the range `start .. start + count` (wrapping past `u32::MAX`); needs a free slot.
    pub fn submit(&mut self, start: u32, count: u32) -> Result<(), GpuError> {
        if count > self.max_chunk {
            return Err(GpuError::TooLarge(format!("{count} nonces in one dispatch (max {})", self.max_chunk)));
        }
        let slot = self.free.pop().ok_or_else(|| GpuError::TooLarge("no free dispatch slot".into()))?;
        let mut p = self.params;
        p.range[0] = start;
        p.range[1] = count;
        p.range[2] = RESULT_CAPACITY;
        let cmd = self.encode(&self.slots[slot], &p, RESULT_CAPACITY);
        self.dev.queue.submit([cmd]);
        let (tx, rx) = std::sync::mpsc::channel();
        self.slots[slot].readback.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.pending.push_back(Pending { slot, start, count, submitted: Instant::now(), rx });
        Ok(())
    }

    /// Waits for the oldest dispatch and returns its candidates.
    pub fn wait_oldest(&mut self) -> Result<SearchDispatch, GpuError> {
        let p = self.pending.pop_front().ok_or_else(|| GpuError::Readback("nothing in flight".into()))?;
        let r = loop {
            match p.rx.try_recv() {
                Ok(r) => break r,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    self.dev.wait()?;
                }
                Err(e) => return Err(GpuError::Readback(e.to_string())),
            }
        };
        r.map_err(|e| GpuError::Readback(e.to_string()))?;
        let slot = &self.slots[p.slot];
        let words: Vec<u32> = {
            let data = slot.readback.slice(..).get_mapped_range().map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&data)
        };
        slot.readback.unmap();
        self.free.push(p.slot);
        let now = Instant::now();
        // Tune from this dispatch's own time: since it started, or since the previous one finished
        // when they were queued back to back.
        let began = self.last_done.map_or(p.submitted, |t| t.max(p.submitted));
        self.last_done = Some(now);
        self.retune(p.count, now.duration_since(began));

        let found = words[0];
        let (mut candidates, overflowed) = if found <= RESULT_CAPACITY {
            (words[1..1 + found as usize].to_vec(), false)
        } else {
            (self.rerun(p.start, p.count, found)?, true)
        };
        // In nonce order from the range's start (a range may wrap past u32::MAX).
        candidates.sort_unstable_by_key(|n| n.wrapping_sub(p.start));
        Ok(SearchDispatch { start: p.start, count: p.count, candidates, overflowed })
    }

    /// Re-runs a range whose candidates overflowed, with a buffer for exactly as many as it reported.
    fn rerun(&mut self, start: u32, count: u32, found: u32) -> Result<Vec<u32>, GpuError> {
        let slot = Self::slot(&self.dev, &self.pipeline, found);
        let mut p = self.params;
        p.range = [start, count, found, self.params.range[3]];
        let cmd = self.encode(&slot, &p, found);
        self.dev.queue.submit([cmd]);
        let bytes = map_read(&self.dev, &slot.readback, results_size(found))?;
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        if words[0] != found {
            return Err(GpuError::Readback(format!(
                "re-run of an overflowed range found {} candidates, first run {found}",
                words[0]
            )));
        }
        Ok(words[1..].to_vec())
    }

    fn retune(&mut self, count: u32, took: Duration) {
        let rate = count as f64 / took.as_secs_f64().max(1e-6);
        let want =
            (rate * DISPATCH_TARGET.as_secs_f64()).clamp(NONCES_PER_WORKGROUP as f64, self.max_chunk as f64) as u32;
        // Move at most 4x per step, and keep whole workgroups.
        let next = want.clamp(self.chunk / 4, self.chunk.saturating_mul(4));
        self.chunk = (next / NONCES_PER_WORKGROUP).max(1) * NONCES_PER_WORKGROUP;
    }

    /// Waits for and discards every dispatch in flight (after a cancelled search).
    pub fn drain(&mut self) -> Result<(), GpuError> {
        while !self.pending.is_empty() {
            self.wait_oldest()?;
        }
        self.last_done = None;
        Ok(())
    }

    /// Scans `start .. start + count` with dispatches pipelined, appending sorted candidates to `out`.
    /// Returns how many dispatches overflowed their result buffer (and were re-run).
    pub fn scan(&mut self, job: &Job, start: u32, count: u64, out: &mut Vec<u32>) -> Result<u32, GpuError> {
        self.set_job(job);
        let mut off = 0u64;
        let mut overflows = 0;
        let mut got = Vec::new();
        while off < count || self.in_flight() > 0 {
            while off < count && self.has_free_slot() {
                let n = (self.chunk as u64).min(count - off) as u32;
                self.submit(start.wrapping_add(off as u32), n)?;
                off += n as u64;
            }
            let d = self.wait_oldest()?;
            overflows += d.overflowed as u32;
            got.push(d);
        }
        got.sort_by_key(|d| d.start.wrapping_sub(start));
        for d in got {
            out.extend_from_slice(&d.candidates);
        }
        Ok(overflows)
    }

    /// Sets the next dispatch size (it is re-tuned after each dispatch); for tests of pipelining.
    pub fn set_chunk(&mut self, chunk: u32) {
        self.chunk = chunk.clamp(1, self.max_chunk);
    }
}
