//! Writes a JSON-lines file of Ed25519 signatures for `powkit verify-sigs`:
//! `cargo run --release --example gen_sigs -- COUNT OUT [INVALID_EVERY]`.
//! Every signature has its own key and message (distinct signatures); with INVALID_EVERY = k, every
//! k-th line (index k-1, 2k-1, ...) gets one flipped bit in S.
use std::io::Write;

use ed25519_zebra::{SigningKey, VerificationKeyBytes};
use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args.get(1).and_then(|s| s.parse().ok()).expect("usage: gen_sigs COUNT OUT [INVALID_EVERY]");
    let out = args.get(2).expect("usage: gen_sigs COUNT OUT [INVALID_EVERY]");
    let every: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(25519);
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("create the output file"));
    for i in 0..count {
        let key = SigningKey::from(rng.gen::<[u8; 32]>());
        let msg: [u8; 48] = std::array::from_fn(|_| rng.gen());
        let mut sig = key.sign(&msg).to_bytes();
        if every > 0 && (i + 1) % every == 0 {
            sig[40] ^= 1;
        }
        let pk: [u8; 32] = VerificationKeyBytes::from(&key).into();
        writeln!(
            f,
            "{{\"pubkey\":\"{}\",\"signature\":\"{}\",\"message\":\"{}\"}}",
            hex::encode(pk),
            hex::encode(sig),
            hex::encode(msg)
        )
        .expect("write");
    }
}
