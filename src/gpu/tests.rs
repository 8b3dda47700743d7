//! GPU shaders against their CPU twins, on whatever adapter is present (lavapipe in CI).
//! Without an adapter these tests skip with a printed reason, unless POWKIT_REQUIRE_GPU=1.

use rand::{Rng, SeedableRng};

use super::{device_for_tests, GpuHasher, GpuSearch};
use crate::mine::{search, search_with, Engines, SearchOptions};
use crate::primitives::{Target, U256};
use crate::sha256::testutil::{reference_candidates, target_with_top};
use crate::sha256::{merkle, reference, CpuImpl, Job};

fn random_job(rng: &mut impl Rng, top: u32) -> Job {
    let mut h = [0u8; 80];
    rng.fill(&mut h[..]);
    Job::from_bytes(h, target_with_top(rng, top))
}

#[test]
fn search_shader_equals_reference_on_random_headers_and_targets() {
    let Some(dev) = device_for_tests() else { return };
    let mut gpu = GpuSearch::new(dev);
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    for round in 0..24 {
        let top = match round % 4 {
            0 => rng.gen::<u32>(),
            1 => 0x0800_0000,
            2 => 0,
            _ => rng.gen::<u32>() >> 4,
        };
        let job = random_job(&mut rng, top);
        let start: u32 = rng.gen();
        let count = rng.gen_range(1..6000u32);
        // Small dispatches, so several are in flight and results arrive out of submission order.
        gpu.set_chunk(rng.gen_range(1..4) * 2048);
        let mut got = Vec::new();
        gpu.scan(&job, start, count as u64, &mut got).unwrap();
        assert_eq!(got, reference_candidates(&job, start, count), "round {round}: start {start} count {count}");
    }
}

#[test]
fn search_shader_handles_nonce_wrap_and_exact_boundary() {
    let Some(dev) = device_for_tests() else { return };
    let mut gpu = GpuSearch::new(dev);
    let mut rng = rand::rngs::StdRng::seed_from_u64(32);
    let job = random_job(&mut rng, 0x8000_0000);
    let start = u32::MAX - 1000;
    let mut got = Vec::new();
    gpu.scan(&job, start, 3000, &mut got).unwrap();
    let want = reference_candidates(&job, start, 3000);
    assert!(want.iter().any(|&n| n < 2000), "the window crosses zero");
    assert_eq!(got, want);
    // The target's top word exactly equal to a hash's top word admits it; one less does not.
    let mut h = [0u8; 80];
    rng.fill(&mut h[..]);
    let nonce: u32 = rng.gen();
    let top = Job::from_bytes(h, Target::MAX).top_word(nonce);
    for (t, admitted) in [(top, true), (top.wrapping_sub(1), top == 0)] {
        let job = Job::from_bytes(h, target_with_top(&mut rng, t));
        let mut got = Vec::new();
        gpu.scan(&job, nonce.wrapping_sub(5), 11, &mut got).unwrap();
        assert_eq!(got.contains(&nonce), admitted, "top {t:08x}");
    }
}

#[test]
fn overflowing_result_buffer_is_rerun_not_dropped() {
    let Some(dev) = device_for_tests() else { return };
    let mut gpu = GpuSearch::new(dev);
    let mut rng = rand::rngs::StdRng::seed_from_u64(33);
    // Every nonce is a candidate: 20,000 per dispatch against a 4,096-slot buffer.
    let job = random_job(&mut rng, u32::MAX);
    gpu.set_chunk(20_480);
    gpu.set_job(&job);
    gpu.submit(7, 20_000).unwrap();
    let d = gpu.wait_oldest().unwrap();
    assert!(d.overflowed);
    assert_eq!(d.candidates, (7..20_007).collect::<Vec<u32>>());
}

#[test]
fn find_all_on_gpu_and_on_gpu_plus_cpu_equals_the_cpu_set() {
    let Some(dev) = device_for_tests() else { return };
    let mut gpu = GpuSearch::new(dev);
    let mut h = [0u8; 80];
    rand::rngs::StdRng::seed_from_u64(34).fill(&mut h[..]);
    // One nonce in 8 solves it: tens of thousands of solutions, so dispatches overflow too.
    let target = Target(U256::ONE.shl_bits(253).overflowing_sub(U256::ONE).0);
    let job = Job::from_bytes(h, target);
    let (start, count) = (123_456u32, 400_000u64);
    let cpu = CpuImpl::detect().scanner().unwrap();
    let opts = SearchOptions { threads: 2, find_all: true, ..Default::default() };
    let want = search(&*cpu, &job, start, count, &opts, None);
    assert!(want.solutions.len() > 40_000);
    gpu.set_chunk(1 << 16);
    let r = search_with(&mut Engines { cpu: None, gpu: Some(&mut gpu) }, &job, start, count, &opts, None).unwrap();
    assert_eq!(r.solutions, want.solutions, "gpu alone");
    assert_eq!(r.hashes, count);
    assert_eq!(r.gpu_hashes, count);
    assert!(r.gpu_overflows > 0, "the test must exercise overflow");
    let r =
        search_with(&mut Engines { cpu: Some(&*cpu), gpu: Some(&mut gpu) }, &job, start, count, &opts, None).unwrap();
    assert_eq!(r.solutions, want.solutions, "gpu and cpu together");
    assert_eq!(r.hashes, count);
    eprintln!("gpu hashed {} of {count} beside the cpu", r.gpu_hashes);
}

#[test]
fn first_solution_mode_on_the_gpu_returns_the_lowest_nonce() {
    let Some(dev) = device_for_tests() else { return };
    let mut gpu = GpuSearch::new(dev);
    let mut h = [0u8; 80];
    rand::rngs::StdRng::seed_from_u64(35).fill(&mut h[..]);
    let target = Target(U256::ONE.shl_bits(256 - 16).overflowing_sub(U256::ONE).0);
    let job = Job::from_bytes(h, target);
    let lowest = (0u32..).find(|&n| job.check(n).is_some()).unwrap();
    gpu.set_chunk(2048);
    let opts = SearchOptions { threads: 1, ..Default::default() };
    let r = search_with(&mut Engines { cpu: None, gpu: Some(&mut gpu) }, &job, 0, 1 << 22, &opts, None).unwrap();
    assert_eq!(r.solutions.len(), 1);
    assert_eq!(r.solutions[0].nonce, lowest);
}

#[test]
fn batched_header_hashes_equal_the_cpu() {
    let Some(dev) = device_for_tests() else { return };
    let hasher = GpuHasher::new(&dev);
    let mut rng = rand::rngs::StdRng::seed_from_u64(36);
    let headers: Vec<[u8; 80]> = (0..10_000)
        .map(|_| {
            let mut h = [0u8; 80];
            rng.fill(&mut h[..]);
            h
        })
        .collect();
    for n in [1usize, 2, 3, 63, 64, 65, 1023, 1024, 10_000] {
        let got = hasher.hash_headers(&dev, &headers[..n]).unwrap();
        let want: Vec<[u8; 32]> = headers[..n].iter().map(|h| reference::sha256d(h)).collect();
        assert_eq!(got, want, "{n} headers");
    }
    assert!(hasher.hash_headers(&dev, &[]).unwrap().is_empty());
}

#[test]
fn merkle_levels_and_roots_equal_the_cpu() {
    let Some(dev) = device_for_tests() else { return };
    let hasher = GpuHasher::new(&dev);
    let mut rng = rand::rngs::StdRng::seed_from_u64(37);
    let leaves: Vec<[u8; 32]> = (0..10_000).map(|_| rng.gen()).collect();
    for n in [1usize, 2, 3, 4, 5, 7, 8, 255, 256, 1023, 1024, 4097, 10_000] {
        assert_eq!(hasher.merkle_level(&dev, &leaves[..n]).unwrap(), merkle::level(&leaves[..n]), "level of {n}");
        assert_eq!(hasher.merkle_root(&dev, &leaves[..n]).unwrap(), merkle::root(&leaves[..n]), "root of {n}");
    }
    assert_eq!(hasher.merkle_root(&dev, &[]).unwrap(), None);
}
