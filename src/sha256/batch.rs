//! Batched double SHA-256 of many independent 80-byte headers on the CPU: sixteen (AVX-512) or
//! eight (AVX2) headers per register, lane-wise, the batch split over threads. The GPU twin is
//! `gpu::GpuHasher::hash_headers`.

use super::CpuImpl;

/// Double SHA-256 of each header, on this thread, with the widest SIMD the CPU has.
pub fn sha256d_headers(headers: &[[u8; 80]]) -> Vec<[u8; 32]> {
    let widest = [CpuImpl::Avx512, CpuImpl::Avx2].into_iter().find(|i| i.is_available());
    sha256d_headers_with(widest.unwrap_or(CpuImpl::Shani), headers)
}

/// Double SHA-256 of each header with one implementation: `avx512` (16 lanes), `avx2` (8 lanes),
/// `scalar` (the same generic code on `u32`), or `shani` (the `sha2` crate, which uses the SHA
/// extensions when present). An implementation the CPU lacks falls back to `shani`'s path. Headers
/// left over after the last full group of lanes also take that path.
pub fn sha256d_headers_with(imp: CpuImpl, headers: &[[u8; 80]]) -> Vec<[u8; 32]> {
    sha256d_fixed_with(imp, headers)
}

/// [`sha256d_headers`] into `out` (cleared first): a caller that hashes run after run reuses one
/// buffer instead of faulting in fresh pages for each.
pub fn sha256d_headers_into(headers: &[[u8; 80]], out: &mut Vec<[u8; 32]>) {
    let widest = [CpuImpl::Avx512, CpuImpl::Avx2].into_iter().find(|i| i.is_available());
    sha256d_fixed_into(widest.unwrap_or(CpuImpl::Shani), headers, out);
}

/// Double SHA-256 of each 64-byte message (a merkle node's two children), on this thread, with
/// the widest SIMD the CPU has.
pub fn sha256d_64s(msgs: &[[u8; 64]]) -> Vec<[u8; 32]> {
    let widest = [CpuImpl::Avx512, CpuImpl::Avx2].into_iter().find(|i| i.is_available());
    sha256d_64s_with(widest.unwrap_or(CpuImpl::Shani), msgs)
}

/// [`sha256d_64s`] with one implementation, as [`sha256d_headers_with`].
pub fn sha256d_64s_with(imp: CpuImpl, msgs: &[[u8; 64]]) -> Vec<[u8; 32]> {
    sha256d_fixed_with(imp, msgs)
}

/// Double SHA-256 of each `N`-byte message with one implementation (see [`sha256d_headers_with`]).
fn sha256d_fixed_with<const N: usize>(imp: CpuImpl, msgs: &[[u8; N]]) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    sha256d_fixed_into(imp, msgs, &mut out);
    out
}

/// [`sha256d_fixed_with`] into `out` (cleared, then one hash per message).
fn sha256d_fixed_into<const N: usize>(imp: CpuImpl, msgs: &[[u8; N]], out: &mut Vec<[u8; 32]>) {
    out.clear();
    out.resize(msgs.len(), [0u8; 32]);
    let mut done = 0;
    match imp {
        #[cfg(target_arch = "x86_64")]
        CpuImpl::Avx512 if imp.is_available() => {
            done = msgs.len() / 16 * 16;
            // SAFETY: AVX-512F is available (checked in the guard).
            unsafe { super::avx512::sha256d_fixed_avx512(&msgs[..done], &mut out[..done]) };
        }
        #[cfg(target_arch = "x86_64")]
        CpuImpl::Avx2 if imp.is_available() => {
            done = msgs.len() / 8 * 8;
            // SAFETY: AVX2 is available (checked in the guard).
            unsafe { super::avx2::sha256d_fixed_avx2(&msgs[..done], &mut out[..done]) };
        }
        CpuImpl::Scalar => {
            for (m, o) in msgs.iter().zip(out.iter_mut()) {
                super::lanes::sha256d_fixed::<u32, N>(std::slice::from_ref(m), std::slice::from_mut(o));
            }
            done = msgs.len();
        }
        _ => {}
    }
    for (m, o) in msgs[done..].iter().zip(&mut out[done..]) {
        *o = crate::primitives::sha256d(m);
    }
}

/// [`sha256d_headers`] split over `threads` threads.
pub fn sha256d_headers_parallel(headers: &[[u8; 80]], threads: usize) -> Vec<[u8; 32]> {
    let threads = threads.max(1);
    if threads == 1 || headers.len() < 1024 {
        return sha256d_headers(headers);
    }
    let per = headers.len().div_ceil(threads).div_ceil(16) * 16;
    std::thread::scope(|s| {
        let parts: Vec<_> = headers.chunks(per).map(|c| s.spawn(move || sha256d_headers(c))).collect();
        parts.into_iter().flat_map(|p| p.join().expect("hashing threads do not panic")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn batched_header_hashes_equal_the_reference_for_every_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(41);
        let headers: Vec<[u8; 80]> = (0..3000)
            .map(|_| {
                let mut h = [0u8; 80];
                rng.fill(&mut h[..]);
                h
            })
            .collect();
        for n in [0usize, 1, 7, 8, 15, 16, 17, 33, 1023, 1024, 3000] {
            let want: Vec<[u8; 32]> = headers[..n].iter().map(|h| super::super::reference::sha256d(h)).collect();
            assert_eq!(sha256d_headers(&headers[..n]), want, "{n}");
            for imp in CpuImpl::available() {
                assert_eq!(sha256d_headers_with(imp, &headers[..n]), want, "{n} with {imp}");
            }
            assert_eq!(sha256d_headers_parallel(&headers[..n], 3), want, "{n} on 3 threads");
        }
    }

    #[test]
    fn batched_node_hashes_equal_the_reference_for_every_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let msgs: Vec<[u8; 64]> = (0..600)
            .map(|_| {
                let mut m = [0u8; 64];
                rng.fill(&mut m[..]);
                m
            })
            .collect();
        let mut edge = msgs.clone();
        edge.extend([[0u8; 64], [0xff; 64]]);
        for n in [0usize, 1, 7, 8, 15, 16, 17, 33, 599, 600, 602] {
            let want: Vec<[u8; 32]> = edge[..n].iter().map(|m| super::super::reference::sha256d(m)).collect();
            assert_eq!(sha256d_64s(&edge[..n]), want, "{n}");
            for imp in CpuImpl::available() {
                assert_eq!(sha256d_64s_with(imp, &edge[..n]), want, "{n} with {imp}");
            }
        }
    }
}
