//! Batched double SHA-256 on the GPU for validation: headers, and merkle trees level by level.

use bytemuck::{Pod, Zeroable};

use super::{GpuDevice, GpuError};

const WORKGROUP_SIZE: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    count: u32,
    _pad: [u32; 3],
}

/// Batched hashing pipelines (`shaders/sha256_batch.wgsl`).
pub struct GpuHasher {
    headers: wgpu::ComputePipeline,
    merkle: wgpu::ComputePipeline,
}

impl std::fmt::Debug for GpuHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuHasher")
    }
}

impl GpuHasher {
    /// Compiles both entry points on `dev`.
    pub fn new(dev: &GpuDevice) -> GpuHasher {
        let module = dev.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("sha256_batch"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/sha256_batch.wgsl").into()),
        });
        let pipeline = |entry: &str| {
            dev.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        GpuHasher { headers: pipeline("hash_headers"), merkle: pipeline("merkle_level") }
    }

    fn storage(dev: &GpuDevice, size: u64, label: &str) -> wgpu::Buffer {
        dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn uniform(dev: &GpuDevice, count: u32) -> wgpu::Buffer {
        let b = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("batch params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        dev.queue.write_buffer(&b, 0, bytemuck::bytes_of(&Params { count, _pad: [0; 3] }));
        b
    }

    /// Workgroup grid for `items` invocations: 2D when one dimension is not enough.
    fn grid(dev: &GpuDevice, items: u32) -> (u32, u32) {
        let groups = items.div_ceil(WORKGROUP_SIZE).max(1);
        let max = dev.limits.max_compute_workgroups_per_dimension.min(65_535);
        if groups <= max {
            (groups, 1)
        } else {
            (max, groups.div_ceil(max))
        }
    }

    fn check_size(dev: &GpuDevice, bytes: u64) -> Result<(), GpuError> {
        let max = dev.limits.max_storage_buffer_binding_size.min(dev.limits.max_buffer_size);
        if bytes > max {
            return Err(GpuError::TooLarge(format!(
                "batch of {bytes} bytes exceeds the device's storage binding limit of {max} bytes; split it"
            )));
        }
        Ok(())
    }

    fn pass(
        dev: &GpuDevice,
        enc: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        params: &wgpu::Buffer,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        items: u32,
    ) {
        let bind = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("batch bindings"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: input.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: output.as_entire_binding() },
            ],
        });
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("batch"), timestamp_writes: None });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        let (x, y) = Self::grid(dev, items);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// One dispatch of `pipeline` over `count` input items (`input` holds them), reading back
    /// `outputs` 32-byte hashes.
    fn run_once(
        &self,
        dev: &GpuDevice,
        pipeline: &wgpu::ComputePipeline,
        input: &[u8],
        count: usize,
        outputs: impl Fn(u32) -> u32,
    ) -> Result<Vec<[u8; 32]>, GpuError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let n = u32::try_from(count).map_err(|_| GpuError::TooLarge("more than 2^32 items".into()))?;
        Self::check_size(dev, input.len() as u64)?;
        let in_buf = Self::storage(dev, input.len() as u64, "batch input");
        dev.queue.write_buffer(&in_buf, 0, input);
        let out_items = outputs(n);
        let out_buf = Self::storage(dev, 32 * out_items as u64, "batch output");
        let params = Self::uniform(dev, n);
        let mut enc = dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("batch") });
        Self::pass(dev, &mut enc, pipeline, &params, &in_buf, &out_buf, out_items);
        dev.queue.submit([enc.finish()]);
        let bytes = dev.read_buffer(&out_buf, 32 * out_items as u64)?;
        Ok(bytes.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect())
    }

    /// Double SHA-256 of each 80-byte header, in one dispatch.
    pub fn hash_headers(&self, dev: &GpuDevice, headers: &[[u8; 80]]) -> Result<Vec<[u8; 32]>, GpuError> {
        self.run_once(dev, &self.headers, headers.as_flattened(), headers.len(), |n| n)
    }

    /// One merkle level: `ceil(n / 2)` parents, the last node paired with itself when `n` is odd.
    pub fn merkle_level(&self, dev: &GpuDevice, nodes: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, GpuError> {
        self.run_once(dev, &self.merkle, nodes.as_flattened(), nodes.len(), |n| n.div_ceil(2))
    }

    /// The merkle root of `leaves`, every level computed on the GPU in one submission (two buffers
    /// used in turn), only the root read back. `None` for no leaves.
    pub fn merkle_root(&self, dev: &GpuDevice, leaves: &[[u8; 32]]) -> Result<Option<[u8; 32]>, GpuError> {
        match leaves.len() {
            0 => return Ok(None),
            1 => return Ok(Some(leaves[0])),
            _ => {}
        }
        let n = u32::try_from(leaves.len()).map_err(|_| GpuError::TooLarge("more than 2^32 leaves".into()))?;
        Self::check_size(dev, 32 * n as u64)?;
        let bufs =
            [Self::storage(dev, 32 * n as u64, "merkle a"), Self::storage(dev, 32 * n.div_ceil(2) as u64, "merkle b")];
        dev.queue.write_buffer(&bufs[0], 0, leaves.as_flattened());
        let mut enc = dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("merkle root") });
        let mut count = n;
        let mut level = 0;
        let mut params = Vec::new();
        while count > 1 {
            params.push(Self::uniform(dev, count));
            let (src, dst) = (&bufs[level % 2], &bufs[(level + 1) % 2]);
            Self::pass(dev, &mut enc, &self.merkle, params.last().expect("pushed"), src, dst, count.div_ceil(2));
            count = count.div_ceil(2);
            level += 1;
        }
        dev.queue.submit([enc.finish()]);
        let bytes = dev.read_buffer(&bufs[level % 2], 32)?;
        Ok(Some(bytes[..32].try_into().expect("32 bytes")))
    }
}
