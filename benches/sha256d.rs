//! Criterion benches: nonce-search throughput per CPU implementation on one thread, beside the
//! naive baseline a user would write with the `sha2` crate.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use powkit::primitives::{BlockHeader, Target, U256};
use powkit::sha256::{CpuImpl, Job};
use sha2::{Digest, Sha256};

const BLOCK1: &str = "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299";
const NONCES: u32 = 1 << 16;

fn nonce_search(c: &mut Criterion) {
    let header = BlockHeader::from_bytes(&hex::decode(BLOCK1).unwrap()).unwrap();
    let job = Job::new(&header, Target(U256::ZERO));
    let mut g = c.benchmark_group("sha256d_nonce_search_1_thread");
    g.throughput(Throughput::Elements(NONCES as u64));
    g.bench_function("naive_sha2_double_digest", |b| {
        let mut bytes = header.to_bytes();
        b.iter(|| {
            let mut hits = 0u32;
            for n in 0..NONCES {
                bytes[76..].copy_from_slice(&n.to_le_bytes());
                let h = Sha256::digest(Sha256::digest(bytes));
                hits += (h[31] == 0 && h[30] == 0 && h[29] == 0 && h[28] == 0) as u32;
            }
            hits
        })
    });
    for imp in CpuImpl::available() {
        let sc = imp.scanner().unwrap();
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("powkit", imp.name()), &imp, |b, _| {
            b.iter(|| {
                out.clear();
                sc.scan(&job, 0, NONCES, &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = nonce_search
}
criterion_main!(benches);
