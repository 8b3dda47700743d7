//! Mining one header at an easy target on one CPU scanner: how test chains, genesis blocks and
//! regtest's `generate` get their proof of work.

use crate::primitives::BlockHeader;
use crate::sha256::Job;

/// Mines `header` (its nonce is searched from 0) at its own bits; the chain's target must be easy
/// enough that a solution exists in the nonce space (it is, on regtest: one hash in two).
pub fn mine_header(mut header: BlockHeader, scanner: &dyn crate::sha256::NonceScanner) -> Option<BlockHeader> {
    let target = header.bits.to_target().ok()?;
    let job = Job::new(&header, target);
    let mut candidates = Vec::new();
    // Small steps first (an easy target is met within a few nonces), then bigger ones.
    let mut start = 0u64;
    let mut step = 16u64;
    while start < super::NONCE_SPACE {
        let count = step.min(super::NONCE_SPACE - start);
        candidates.clear();
        scanner.scan(&job, start as u32, count as u32, &mut candidates);
        // The lowest solution (scanners may report a chunk's candidates in lane order).
        if let Some(&nonce) = candidates.iter().filter(|&&n| job.check(n).is_some()).min() {
            header.nonce = nonce;
            return Some(header);
        }
        start += count;
        step = (step * 4).min(1 << 20);
    }
    None
}
