//! Payout scripts for the coinbase: `--coinbase-script HEX` as given, or `--coinbase-address ADDR`
//! decoded to its scriptPubKey for the node's network.
//!
//! Addresses are decoded by the reference crates: `bs58` (base58check, Bitcoin Core's
//! `DecodeBase58Check`, src/base58.cpp) and `bech32` (BIP173 bech32 for witness version 0, BIP350
//! bech32m for versions 1 to 16, the checksum chosen by the version). The prefixes are Bitcoin Core's
//! `CChainParams` `base58Prefixes[PUBKEY_ADDRESS]`, `[SCRIPT_ADDRESS]` and `bech32_hrp`
//! (src/kernel/chainparams.cpp). The scripts are those of Core's `GetScriptForDestination`
//! (src/addresstype.cpp).

use std::fmt;

/// A Bitcoin network, as `getblockchaininfo`'s `chain` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// `main`.
    Main,
    /// `test` (testnet3) and `testnet4`: the same address prefixes.
    Test,
    /// `signet`: testnet's prefixes.
    Signet,
    /// `regtest`: testnet's base58 prefixes, bech32 `bcrt`.
    Regtest,
}

impl Network {
    /// The network `getblockchaininfo` calls `chain` (`main`, `test`, `testnet4`, `signet`,
    /// `regtest`); `None` for another name.
    pub fn from_chain(chain: &str) -> Option<Network> {
        match chain {
            "main" => Some(Network::Main),
            "test" | "testnet4" => Some(Network::Test),
            "signet" => Some(Network::Signet),
            "regtest" => Some(Network::Regtest),
            _ => None,
        }
    }

    /// Base58 version bytes: (P2PKH, P2SH).
    fn base58_prefixes(self) -> (u8, u8) {
        match self {
            Network::Main => (0x00, 0x05),
            _ => (0x6f, 0xc4),
        }
    }

    /// The bech32 human-readable part of segwit addresses.
    fn bech32_hrp(self) -> &'static str {
        match self {
            Network::Main => "bc",
            Network::Test | Network::Signet => "tb",
            Network::Regtest => "bcrt",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Main => "mainnet",
            Network::Test => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        })
    }
}

/// Why an address or a payout script was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Neither a valid base58check nor a valid bech32/bech32m segwit address.
    #[error("'{addr}' is not a valid address: base58check: {base58}; bech32: {bech32}")]
    Invalid {
        /// The address as given.
        addr: String,
        /// Why base58check decoding failed.
        base58: String,
        /// Why segwit decoding failed.
        bech32: String,
    },
    /// A valid address of another network.
    #[error("'{addr}' is a {found} address but the node runs {want}")]
    WrongNetwork {
        /// The address as given.
        addr: String,
        /// What its prefix says.
        found: String,
        /// The node's network.
        want: Network,
    },
    /// `--coinbase-script` is not usable.
    #[error("--coinbase-script: {0}")]
    Script(String),
}

/// P2PKH: `OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG` (Core's `GetScriptForDestination`
/// for a `PKHash`).
pub fn p2pkh_script(hash: &[u8; 20]) -> Vec<u8> {
    let mut s = vec![0x76, 0xa9, 0x14];
    s.extend_from_slice(hash);
    s.extend_from_slice(&[0x88, 0xac]);
    s
}

/// P2SH (BIP16): `OP_HASH160 <20 bytes> OP_EQUAL`.
pub fn p2sh_script(hash: &[u8; 20]) -> Vec<u8> {
    let mut s = vec![0xa9, 0x14];
    s.extend_from_slice(hash);
    s.push(0x87);
    s
}

/// A witness output (BIP141 "witness program"): the version as `OP_0` or `OP_1`..`OP_16`, then one
/// push of the 2..40-byte program (BIP173's "segwit_scriptpubkey").
pub fn witness_script(version: u8, program: &[u8]) -> Vec<u8> {
    debug_assert!(version <= 16 && (2..=40).contains(&program.len()));
    let mut s = vec![if version == 0 { 0x00 } else { 0x50 + version }, program.len() as u8];
    s.extend_from_slice(program);
    s
}

/// An error and its sources, `outer: inner: ...` (bech32's outer errors say only "decoding failed").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The scriptPubKey that `addr` pays on `network`: base58check P2PKH/P2SH or a bech32 (v0) /
/// bech32m (v1..v16) segwit address (BIP173, BIP350).
///
/// # Errors
/// [`AddressError::Invalid`] (bad characters, checksum, length, version, or the wrong checksum kind
/// for the witness version), [`AddressError::WrongNetwork`] (a valid address of another network).
pub fn script_for_address(addr: &str, network: Network) -> Result<Vec<u8>, AddressError> {
    let base58 = match bs58::decode(addr).with_check(None).into_vec() {
        Ok(payload) if payload.len() == 21 => {
            let (pkh, sh) = network.base58_prefixes();
            let hash: [u8; 20] = payload[1..].try_into().expect("21 bytes");
            return match payload[0] {
                v if v == pkh => Ok(p2pkh_script(&hash)),
                v if v == sh => Ok(p2sh_script(&hash)),
                v => Err(AddressError::WrongNetwork {
                    addr: addr.into(),
                    found: match v {
                        0x00 | 0x05 => "mainnet".into(),
                        0x6f | 0xc4 => "testnet/signet/regtest".into(),
                        v => format!("unknown (version byte {v:#04x})"),
                    },
                    want: network,
                }),
            };
        }
        Ok(payload) => format!("payload of {} bytes, not 21 (version + 20-byte hash)", payload.len()),
        Err(e) => e.to_string(),
    };
    let (hrp, version, program) = match bech32::segwit::decode(addr) {
        Ok(d) => d,
        Err(e) => return Err(AddressError::Invalid { addr: addr.into(), base58, bech32: error_chain(&e) }),
    };
    let hrp = hrp.to_lowercase();
    if hrp != network.bech32_hrp() {
        let found = match hrp.as_str() {
            "bc" => "mainnet",
            "tb" => "testnet/signet",
            "bcrt" => "regtest",
            h => {
                let bech32 = format!("human-readable part '{h}' is no Bitcoin network's (bc, tb, bcrt)");
                return Err(AddressError::Invalid { addr: addr.into(), base58, bech32 });
            }
        };
        return Err(AddressError::WrongNetwork { addr: addr.into(), found: found.into(), want: network });
    }
    Ok(witness_script(version.to_u8(), &program))
}

/// The largest payout script accepted (Bitcoin Core's `MAX_SCRIPT_SIZE`, src/script/script.h).
pub const MAX_SCRIPT_SIZE: usize = 10_000;

/// `--coinbase-script HEX`: the scriptPubKey as given (hex, 1..=10,000 bytes; not checked to be
/// spendable: that is the user's business).
///
/// # Errors
/// [`AddressError::Script`]: not hex, empty, or larger than `MAX_SCRIPT_SIZE`.
pub fn script_from_hex(s: &str) -> Result<Vec<u8>, AddressError> {
    let b = hex::decode(s.trim()).map_err(|e| AddressError::Script(format!("not hex: {e}")))?;
    if b.is_empty() {
        return Err(AddressError::Script("empty: the coinbase would pay an empty script".into()));
    }
    if b.len() > MAX_SCRIPT_SIZE {
        return Err(AddressError::Script(format!("{} bytes, more than {MAX_SCRIPT_SIZE}", b.len())));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIP173's and BIP350's valid segwit addresses with their scriptPubKeys (the mainnet and testnet
    /// ones; the BIP's signet-free list).
    const VALID: &[(&str, Network, &str)] = &[
        // BIP173
        ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", Network::Main, "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
        (
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            Network::Test,
            "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
        ),
        (
            "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
            Network::Test,
            "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
        ),
        // BIP350
        (
            "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
            Network::Main,
            "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
        ),
        ("BC1SW50QGDZ25J", Network::Main, "6002751e"),
        ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", Network::Main, "5210751e76e8199196d454941c45d1b3a323"),
        (
            "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
            Network::Test,
            "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
        ),
        (
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
            Network::Main,
            "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        ),
    ];

    /// BIP350's invalid segwit addresses (each with the reason the BIP gives).
    const INVALID: &[&str] = &[
        "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", // invalid human-readable part
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", // bech32 checksum for v1
        "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", // bech32 checksum for v2
        "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", // bech32 checksum for v16
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",                     // bech32m checksum for v0
        "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47", // bech32m checksum for v0
        "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", // invalid character in data
        "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", // invalid witness version
        "bc1pw5dgrnzv",                                                   // program of 1 byte
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav", // program of 41 bytes
        "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",                           // v0 program of 16 bytes
        "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", // mixed case
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", // zero padding of more than 4 bits
        "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", // non-zero padding in 8-to-5
        "bc1gmk9yu",                                                      // empty data section
    ];

    #[test]
    fn bip173_and_bip350_valid_addresses_decode_to_their_scripts() {
        for &(addr, net, spk) in VALID {
            let got = script_for_address(addr, net).unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(hex::encode(got), spk, "{addr}");
        }
    }

    #[test]
    fn bip350_invalid_addresses_are_refused() {
        for addr in INVALID {
            for net in [Network::Main, Network::Test] {
                let e = script_for_address(addr, net).expect_err(addr);
                assert!(matches!(e, AddressError::Invalid { .. }), "{addr}: {e}");
            }
        }
    }

    #[test]
    fn base58_addresses_decode_per_network() {
        // The genesis block's payout key's P2PKH address (mainnet), and Core's key_io_valid.json P2SH.
        let genesis = script_for_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", Network::Main).unwrap();
        assert_eq!(hex::encode(genesis), "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac");
        let p2sh = script_for_address("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", Network::Main).unwrap();
        assert_eq!(hex::encode(p2sh), "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87");
        // Testnet P2PKH (version 0x6f) is regtest's and signet's too.
        let mut payload = vec![0x6f];
        payload.extend([0x11; 20]);
        let testnet = bs58::encode(&payload).with_check().into_string();
        for net in [Network::Test, Network::Signet, Network::Regtest] {
            assert_eq!(script_for_address(&testnet, net).unwrap(), p2pkh_script(&[0x11; 20]));
        }
        assert!(matches!(script_for_address(&testnet, Network::Main), Err(AddressError::WrongNetwork { .. })));
    }

    #[test]
    fn wrong_network_and_bad_checksum_are_clear_errors() {
        let e = script_for_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", Network::Regtest).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa' is a mainnet address but the node runs regtest"
        );
        let e = script_for_address("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", Network::Regtest)
            .unwrap_err();
        assert!(matches!(e, AddressError::WrongNetwork { .. }), "{e}");
        // The last character changed: the checksum fails in both encodings.
        let e = script_for_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", Network::Main).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }

    #[test]
    fn coinbase_script_hex_is_checked() {
        assert_eq!(script_from_hex("51").unwrap(), vec![0x51]);
        assert!(script_from_hex("").is_err());
        assert!(script_from_hex("zz").unwrap_err().to_string().starts_with("--coinbase-script: not hex"));
        assert!(script_from_hex(&"00".repeat(MAX_SCRIPT_SIZE + 1)).is_err());
    }
}
