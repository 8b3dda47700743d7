//! Inputs per second of `consensus::script::TxScriptCheck::verify_input` (Bitcoin Core 26's
//! interpreter through libbitcoinconsensus) on one thread, by script type:
//! `cargo run --release --example script_check_rate -- [SECONDS_PER_RUN] [RUNS]` (default 2 s, 5 runs).
//! Prints each type's median over the runs, per second of wall time and per second of this thread's
//! CPU time (`CLOCK_THREAD_CPUTIME_ID`): on a shared machine the second is the one-core cost.
//!
//! The spends are real signatures with known spent outputs: a mainnet P2PKH spend, a mainnet
//! P2SH-P2WPKH spend and a mainnet P2WSH 2-of-3 multisig spend (the `bitcoinconsensus` crate's test
//! vectors), and a native P2WPKH spend from Bitcoin Core's tx_valid.json. Each is checked under all
//! consensus flags, as a block after taproot would.
use std::time::{Duration, Instant};

use powkit::consensus::script::{TxScriptCheck, SCRIPT_VERIFY_ALL_CONSENSUS};
use powkit::primitives::TxOut;

struct Case {
    name: &'static str,
    tx: &'static str,
    spent: &'static [(&'static str, i64)],
    input: usize,
}

const CASES: [Case; 4] = [
    Case {
        name: "P2PKH (mainnet)",
        tx: "02000000013f7cebd65c27431a90bba7f796914fe8cc2ddfc3f2cbd6f7e5f2fc854534da95000000006b483045022100de1ac3bcdfb0332207c4a91f3832bd2c2915840165f876ab47c5f8996b971c3602201c6c053d750fadde599e6f5c4e1963df0f01fc0d97815e8157e3d59fe09ca30d012103699b464d1d8bc9e47d4fb1cdaa89a1c5783d68363c4dbc4b524ed3d857148617feffffff02836d3c01000000001976a914fc25d6d5c94003bf5b0c7b640a248e2c637fcfb088ac7ada8202000000001976a914fbed3d9b11183209a57999d54d59f67c019e756c88ac6acb0700",
        spent: &[("76a9144bfbaf6afb76cc5771bc6404810d1cc041a6933988ac", 0)],
        input: 0,
    },
    Case {
        name: "P2WPKH (Core tx_valid.json)",
        tx: "0100000000010100010000000000000000000000000000000000000000000000000000000000000000000000ffffffff01e8030000000000001976a9144c9c3dfac4207d5d8cb89df5722cb3d712385e3f88ac02483045022100cfb07164b36ba64c1b1e8c7720a56ad64d96f6ef332d3d37f9cb3c96477dc44502200a464cd7a9cf94cd70f66ce4f4f0625ef650052c7afcfe29d7d7e01830ff91ed012103596d3451025c19dbbdeb932d6bf8bfb4ad499b95b6f88db8899efac102e5fc7100000000",
        spent: &[("00144c9c3dfac4207d5d8cb89df5722cb3d712385e3f", 1000)],
        input: 0,
    },
    Case {
        name: "P2SH-P2WPKH (mainnet)",
        tx: "01000000000101d9fd94d0ff0026d307c994d0003180a5f248146efb6371d040c5973f5f66d9df0400000017160014b31b31a6cb654cfab3c50567bcf124f48a0beaecffffffff012cbd1c000000000017a914233b74bf0823fa58bbbd26dfc3bb4ae715547167870247304402206f60569cac136c114a58aedd80f6fa1c51b49093e7af883e605c212bdafcd8d202200e91a55f408a021ad2631bc29a67bd6915b2d7e9ef0265627eabd7f7234455f6012103e7e802f50344303c76d12c089c8724c1b230e3b745693bbe16aad536293d15e300000000",
        spent: &[("a91434c06f8c87e355e123bdc6dda4ffabc64b6989ef87", 1_900_000)],
        input: 0,
    },
    Case {
        name: "P2WSH 2-of-3 (mainnet, 2 signatures)",
        tx: "010000000001011f97548fbbe7a0db7588a66e18d803d0089315aa7d4cc28360b6ec50ef36718a0100000000ffffffff02df1776000000000017a9146c002a686959067f4866b8fb493ad7970290ab728757d29f0000000000220020701a8d401c84fb13e6baf169d59684e17abd9fa216c8cc5b9fc63d622ff8c58d04004730440220565d170eed95ff95027a69b313758450ba84a01224e1f7f130dda46e94d13f8602207bdd20e307f062594022f12ed5017bbf4a055a06aea91c10110a0e3bb23117fc014730440220647d2dc5b15f60bc37dc42618a370b2a1490293f9e5c8464f53ec4fe1dfe067302203598773895b4b16d37485cbe21b337f4e4b650739880098c592553add7dd4355016952210375e00eb72e29da82b89367947f29ef34afb75e8654f6ea368e0acdfd92976b7c2103a1b26313f430c4b15bb1fdce663207659d8cac749a0e53d70eff01874496feff2103c96d495bfdd5ba4145e3e046fee45e84a8a48ad05bd8dbb395c011a32cf9f88053ae00000000",
        spent: &[("0020701a8d401c84fb13e6baf169d59684e17abd9fa216c8cc5b9fc63d622ff8c58d", 18_393_430)],
        input: 0,
    },
];

/// This thread's CPU time, seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    for case in &CASES {
        let spent =
            case.spent.iter().map(|(s, v)| TxOut { value: *v, script_pubkey: hex::decode(s).expect("hex") }).collect();
        let check = TxScriptCheck::from_bytes(hex::decode(case.tx).expect("hex"), spent, SCRIPT_VERIFY_ALL_CONSENSUS)
            .expect("flags");
        check.verify_input(case.input).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..runs)
            .map(|_| {
                let start = Instant::now();
                let cpu0 = thread_cpu_seconds();
                let mut n = 0u64;
                while start.elapsed() < Duration::from_secs_f64(secs) {
                    for _ in 0..100 {
                        check.verify_input(case.input).expect("valid");
                    }
                    n += 100;
                }
                (n as f64 / start.elapsed().as_secs_f64(), n as f64 / (thread_cpu_seconds() - cpu0))
            })
            .unzip();
        wall.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        let (w, c) = (wall[wall.len() / 2], cpu[cpu.len() / 2]);
        println!(
            "{:<38} median {:>7.0} inputs/s wall, {:>7.0} inputs per CPU-second ({:.1} us CPU/input); {runs} runs of {secs} s, CPU-rate min {:.0} max {:.0}",
            case.name,
            w,
            c,
            1e6 / c,
            cpu[0],
            cpu[cpu.len() - 1]
        );
    }
}
