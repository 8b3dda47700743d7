//! Criterion benches for bulk validation's hashing: header batches per implementation on one
//! thread, and the merkle check of mainnet block 574,200 (3,315 transactions; read from
//! `../shared/data`, skipped with a note when it is not beside the checkout).
//!
//! Rates are in SHA-256 compressions per second too, so they compare directly with
//! `openssl speed -evp sha256` (bytes per second / 64): a header is 3 compressions, a merkle node
//! 3, a txid `ceil((len + 9) / 64) + 1`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use powkit::primitives::Block;
use powkit::sha256::batch::sha256d_headers_with;
use powkit::sha256::CpuImpl;

fn header_batches(c: &mut Criterion) {
    let headers: Vec<[u8; 80]> = (0..4096u32)
        .map(|i| {
            let mut h = [0x5au8; 80];
            h[..4].copy_from_slice(&i.to_le_bytes());
            h
        })
        .collect();
    let mut g = c.benchmark_group("sha256d_headers_1_thread");
    g.throughput(Throughput::Elements(headers.len() as u64));
    for imp in CpuImpl::available() {
        g.bench_with_input(BenchmarkId::new("powkit", imp.name()), &imp, |b, &imp| {
            b.iter(|| sha256d_headers_with(imp, &headers))
        });
    }
    g.finish();
}

fn merkle_574200(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/bitcoin/single-blocks/574200.blk");
    let Ok(raw) = std::fs::read(path) else {
        eprintln!("skipping merkle_check_574200: {path} not present");
        return;
    };
    let block = Block::from_bytes(&raw[8..]).expect("block 574,200 decodes");
    let mut compressions: usize = block.txdata.iter().map(|t| (t.legacy_bytes().len() + 9).div_ceil(64) + 1).sum();
    let mut n = block.txdata.len();
    while n > 1 {
        n = n.div_ceil(2);
        compressions += 3 * n;
    }
    eprintln!(
        "block 574,200: {} transactions, {compressions} SHA-256 compressions per merkle check",
        block.txdata.len()
    );
    let mut g = c.benchmark_group("merkle_check_574200");
    g.throughput(Throughput::Elements(compressions as u64));
    g.bench_function("txids_and_tree", |b| {
        b.iter(|| powkit::consensus::rules::merkle_root_is_valid(&block).expect("valid"))
    });
    g.finish();
}

criterion_group!(benches, header_batches, merkle_574200);
criterion_main!(benches);
