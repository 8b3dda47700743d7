//! UTXO set throughput: adds and spends per second with a cache large enough to hold every coin,
//! and with a small bound that forces flushes to the redb table (spends then read from disk,
//! prefetched a block at a time as the validation engine does).
//!
//! `cargo run --release --example utxo_bench -- [COINS] [SMALL_CACHE_MIB]` (defaults 1000000, 8).

use std::time::Instant;

use powkit::primitives::{Coin, OutPoint, TxOut, Txid};
use powkit::state::utxo::UtxoSet;

/// Outpoints per "block": flush_if_over and prefetch run once per this many operations.
const BLOCK: usize = 2_000;

fn outpoint(i: usize) -> OutPoint {
    // Spread txids over the key space as real ones are (a multiplicative hash of i), 2 outputs each.
    let h = ((i / 2) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut txid = [0u8; 32];
    for (k, b) in txid.iter_mut().enumerate() {
        *b = (h.rotate_left(k as u32 * 8) as u8) ^ (k as u8);
    }
    OutPoint { txid: Txid(txid), vout: (i % 2) as u32 }
}

fn run(label: &str, coins: usize, cache_bytes: usize) {
    let mut set = UtxoSet::open(None, cache_bytes).expect("open");
    // A P2WPKH output: 22-byte script.
    let mut coin = Coin {
        out: TxOut { value: 0, script_pubkey: [&[0x00, 0x14][..], &[0x42; 20]].concat() },
        height: 1,
        is_coinbase: false,
    };
    let t = Instant::now();
    let mut peak = 0usize;
    for i in 0..coins {
        coin.out.value = i as i64;
        set.add(outpoint(i), &coin, false).expect("add");
        if i % BLOCK == BLOCK - 1 {
            peak = peak.max(set.memory_usage());
            set.flush_if_over().expect("flush");
        }
    }
    let add_s = t.elapsed().as_secs_f64();
    // Small cache: write everything, so every spend reads its coin from disk. Large cache: the
    // coins stay cached and FRESH, so their spends never touch the disk.
    let t = Instant::now();
    if cache_bytes < 1 << 30 {
        set.flush().expect("flush");
    }
    let flush_s = t.elapsed().as_secs_f64();
    // Spend in a different order than added (a permutation: 7919 is prime, coprime to COINS unless
    // a multiple), a block of prefetch at a time.
    assert!(!coins.is_multiple_of(7919), "COINS must not be a multiple of 7919");
    let order: Vec<usize> = (0..coins).map(|k| k * 7919 % coins).collect();
    let t = Instant::now();
    let mut total = 0i64;
    for chunk in order.chunks(BLOCK) {
        let ops: Vec<OutPoint> = chunk.iter().map(|&i| outpoint(i)).collect();
        set.prefetch(&ops).expect("prefetch");
        for o in &ops {
            total += set.spend(o).expect("spend").map(|c| c.out.value).unwrap_or(0);
        }
        peak = peak.max(set.memory_usage());
        set.flush_if_over().expect("flush");
    }
    set.flush().expect("flush");
    let spend_s = t.elapsed().as_secs_f64();
    let c = set.counters();
    println!(
        "{label}: {coins} coins, cache bound {} MiB: add {:.2} M/s ({add_s:.2} s), final flush {flush_s:.2} s, \
         spend (prefetch per {BLOCK}) {:.2} M/s ({spend_s:.2} s); peak cache {:.1} MiB; flushes {}, \
         misses {}, hits {}, written {}, erased {}; checksum {total}",
        cache_bytes >> 20,
        coins as f64 / add_s / 1e6,
        coins as f64 / spend_s / 1e6,
        peak as f64 / (1 << 20) as f64,
        c.flushes,
        c.misses,
        c.hits,
        c.coins_written,
        c.coins_erased,
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let coins: usize = args.next().map(|a| a.parse().expect("COINS")).unwrap_or(1_000_000);
    let small_mib: usize = args.next().map(|a| a.parse().expect("SMALL_CACHE_MIB")).unwrap_or(8);
    run("large cache", coins, 4 << 30);
    run("small cache", coins, small_mib << 20);
}
