//! Tests: RFC 8032 section 7.1 vectors, the ed25519-speccheck edge cases under ZIP-215 on the
//! single and batch paths, and bisection naming exactly the planted invalid signatures.

use super::*;
use ed25519_zebra::SigningKey;

fn h<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

pub(crate) type Vector = ([u8; 32], [u8; 32], Vec<u8>, [u8; 64]);

/// RFC 8032 section 7.1: (secret key, public key, message, signature) for TEST 1, 2, 3, 1024 and
/// SHA(abc).
pub(crate) fn rfc8032() -> Vec<Vector> {
    let v = |sk: &str, pk: &str, msg: &str, sig: &str| (h(sk), h(pk), hex::decode(msg).unwrap(), h(sig));
    vec![
        v(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        v(
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        v(
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
        v(
            "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
            "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
            &[
                "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98",
                "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8",
                "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d",
                "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc",
                "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe",
                "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e",
                "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef",
                "fefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec",
                "7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed",
                "185ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb",
                "2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc2",
                "4554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f27",
                "088d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbc",
                "c2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b0",
                "7e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128bab",
                "27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51ad",
                "dd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429ec",
                "96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb75",
                "1fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c4",
                "2f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8c",
                "a61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34dff",
                "7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d",
                "78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649d",
                "e6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e48",
                "8acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32",
                "ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e6",
                "aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb",
                "93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50",
                "d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef13",
                "69546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380db",
                "2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0",
                "618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d00",
            ]
            .concat(),
            "d686294b743c6760c6a78a2c4c2fc76115c2600b8f083acde59e7cee32578c0f59ea4219ab9b5896795e4e2b87a30270aa0e3099eee944e9e67a1b22df41ff07",
        ),
        v(
            "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
            "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
        ),
    ]
}

#[test]
fn rfc8032_vectors_sign_and_verify() {
    let vectors = rfc8032();
    assert_eq!(vectors[3].2.len(), 1023);
    for (sk, pk, msg, sig) in &vectors {
        let key = SigningKey::from(*sk);
        assert_eq!(<[u8; 32]>::from(VerificationKeyBytes::from(&key)), *pk);
        assert_eq!(key.sign(msg).to_bytes(), *sig);
        let s = SigRef { pubkey: pk, signature: sig, message: msg };
        assert!(verify_one(&s));
        let mut bad = *sig;
        bad[5] ^= 0x10;
        assert!(!verify_one(&SigRef { signature: &bad, ..s }));
    }
    let refs: Vec<SigRef> =
        vectors.iter().map(|(_, pk, msg, sig)| SigRef { pubkey: pk, signature: sig, message: msg }).collect();
    assert!(verify_all(&refs).is_empty());
}

/// ../shared/data/ed25519/speccheck-cases.json: ZIP-215's verdicts (as that data's README lists
/// them), the same on the single path, in one batch, and in batches of every size.
#[test]
fn speccheck_cases_get_zip215_verdicts_on_every_path() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/ed25519/speccheck-cases.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("skipping: {path} not present");
        return;
    };
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let want = [true, true, true, true, true, true, false, false, false, true, true, true];
    assert_eq!(cases.len(), want.len());
    let parsed: Vec<([u8; 32], [u8; 64], Vec<u8>)> = cases
        .iter()
        .map(|c| {
            let f = |k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
            (f("pub_key").try_into().unwrap(), f("signature").try_into().unwrap(), f("message"))
        })
        .collect();
    let refs: Vec<SigRef> =
        parsed.iter().map(|(pk, sig, msg)| SigRef { pubkey: pk, signature: sig, message: msg }).collect();
    for (i, s) in refs.iter().enumerate() {
        assert_eq!(verify_one(s), want[i], "case {i} single");
    }
    let invalid: Vec<usize> = (0..want.len()).filter(|&i| !want[i]).collect();
    for batch in [1, 2, 3, 4, 5, 8, 12, 64] {
        assert_eq!(verify_all_in(&refs, batch), invalid, "batches of {batch}");
    }
    // Each case repeated nine times in one batch gets the same verdict.
    for (i, s) in refs.iter().enumerate() {
        let many = vec![*s; 9];
        assert_eq!(verify_all_in(&many, 9).is_empty(), want[i], "case {i} x9 in one batch");
    }
}

#[test]
fn bisection_names_exactly_the_planted_invalid_signatures() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(215);
    let keys: Vec<SigningKey> = (0..50).map(|_| SigningKey::from(rng.gen::<[u8; 32]>())).collect();
    let n = 3000;
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| format!("transfer {i}").into_bytes()).collect();
    let pks: Vec<[u8; 32]> = (0..n).map(|i| VerificationKeyBytes::from(&keys[i % 50]).into()).collect();
    let mut sigs: Vec<[u8; 64]> = (0..n).map(|i| keys[i % 50].sign(&msgs[i]).to_bytes()).collect();
    let mut planted: Vec<usize> = (0..40).map(|_| rng.gen_range(0..n)).collect();
    planted.extend([0, 1, n - 1, 255, 256, 257]);
    planted.sort_unstable();
    planted.dedup();
    for (k, &i) in planted.iter().enumerate() {
        match k % 3 {
            0 => sigs[i][40] ^= 1,    // S changed
            1 => sigs[i][63] |= 0xf0, // S not canonical (at least the group order)
            _ => sigs[i][0] ^= 4,     // R changed
        }
    }
    let refs: Vec<SigRef> =
        (0..n).map(|i| SigRef { pubkey: &pks[i], signature: &sigs[i], message: &msgs[i] }).collect();
    for batch in [7, 64, BATCH, 1000] {
        assert_eq!(verify_all_in(&refs, batch), planted, "batches of {batch}");
    }
    let singles: Vec<usize> = (0..n).filter(|&i| !verify_one(&refs[i])).collect();
    assert_eq!(singles, planted);
    // Split between two verifiers (the second standing in for the GPU): the indexes of the
    // second part are offset back, whatever share each call gives it as the rates change.
    let split = SplitSigVerifier::new(Box::new(CpuSigVerifier { batch: 64 }), Box::new(CpuSigVerifier { batch: 7 }));
    for len in [n, 2000, 65, SPLIT_MIN - 1, 1] {
        let want: Vec<usize> = planted.iter().copied().filter(|&i| i < len).collect();
        assert_eq!(split.invalid(&refs[..len]), want, "split of {len}");
        assert!((0.001..=0.999).contains(&split.gpu_share()));
    }
}
