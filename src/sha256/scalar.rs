//! The portable backend: one nonce at a time in plain Rust, on any CPU.

use super::lanes::scan_lanes;
use super::{CpuImpl, Job, NonceScanner};

/// Portable scalar scanner.
pub(crate) struct Scalar;

impl NonceScanner for Scalar {
    fn kind(&self) -> CpuImpl {
        CpuImpl::Scalar
    }

    fn scan(&self, job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
        scan_lanes::<u32>(job, start, count, out)
    }
}
