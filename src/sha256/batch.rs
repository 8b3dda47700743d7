//! Batched double SHA-256 of many independent 80-byte headers on the CPU: sixteen (AVX-512) or
//! eight (AVX2) headers per register, lane-wise, the batch split over threads. The GPU twin is
//! `gpu::GpuHasher::hash_headers`.

/// Double SHA-256 of each header, on this thread, with the widest SIMD the CPU has.
pub fn sha256d_headers(headers: &[[u8; 80]]) -> Vec<[u8; 32]> {
    let mut out = vec![[0u8; 32]; headers.len()];
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if super::avx512::is_supported() {
            let n = headers.len() / 16 * 16;
            // SAFETY: AVX-512F was detected just above.
            unsafe { super::avx512::sha256d_80_avx512(&headers[..n], &mut out[..n]) };
            done = n;
        } else if super::avx2::is_supported() {
            let n = headers.len() / 8 * 8;
            // SAFETY: AVX2 was detected just above.
            unsafe { super::avx2::sha256d_80_avx2(&headers[..n], &mut out[..n]) };
            done = n;
        }
    }
    // The rest (and CPUs without wide SIMD): the `sha2` crate, which uses the SHA extensions.
    for (h, o) in headers[done..].iter().zip(&mut out[done..]) {
        *o = crate::primitives::sha256d(h);
    }
    out
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
            assert_eq!(sha256d_headers_parallel(&headers[..n], 3), want, "{n} on 3 threads");
        }
    }
}
