// Batched double SHA-256 for validation: many independent messages per dispatch.
//
// Entry points (one invocation per output hash; 2D dispatch when there are more than 65,535 workgroups):
//   hash_headers: input = N 80-byte headers (20 words each, bytes in wire order), output = N hashes.
//   merkle_level: input = N 32-byte nodes, output = ceil(N / 2) parents, each sha256d(left || right);
//                 an odd last node is paired with itself (Bitcoin's rule).
// Hashes are written as bytes in internal (wire) order, so the host reads them as [u8; 32].
// CPU twins: sha256::reference::sha256d and sha256::merkle (the tests compare them).
//
// Bindings (group 0):
//   0: uniform Params: count = input items
//   1: storage, read: input words (little-endian loads of the input bytes)
//   2: storage, read_write: output words

struct Params {
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;

const WORKGROUP_SIZE: u32 = 64u;

const K = array<u32, 64>(
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u
);

fn rotr(x: u32, n: u32) -> u32 { return (x >> n) | (x << (32u - n)); }
fn bswap(x: u32) -> u32 {
    return (x << 24u) | ((x << 8u) & 0x00ff0000u) | ((x >> 8u) & 0x0000ff00u) | (x >> 24u);
}

// One compression: folds the 16 big-endian words in `block` into `state`.
fn compress(state: ptr<function, array<u32, 8>>, block: ptr<function, array<u32, 16>>) {
    var w: array<u32, 64>;
    for (var i = 0u; i < 16u; i = i + 1u) {
        w[i] = (*block)[i];
    }
    for (var i = 16u; i < 64u; i = i + 1u) {
        let x = w[i - 15u];
        let y = w[i - 2u];
        let s0 = rotr(x, 7u) ^ rotr(x, 18u) ^ (x >> 3u);
        let s1 = rotr(y, 17u) ^ rotr(y, 19u) ^ (y >> 10u);
        w[i] = w[i - 16u] + s0 + w[i - 7u] + s1;
    }
    var a = (*state)[0]; var b = (*state)[1]; var c = (*state)[2]; var d = (*state)[3];
    var e = (*state)[4]; var f = (*state)[5]; var g = (*state)[6]; var h = (*state)[7];
    for (var i = 0u; i < 64u; i = i + 1u) {
        let t1 = h + (rotr(e, 6u) ^ rotr(e, 11u) ^ rotr(e, 25u)) + (g ^ (e & (f ^ g))) + K[i] + w[i];
        let t2 = (rotr(a, 2u) ^ rotr(a, 13u) ^ rotr(a, 22u)) + ((a & b) | (c & (a | b)));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    (*state)[0] += a; (*state)[1] += b; (*state)[2] += c; (*state)[3] += d;
    (*state)[4] += e; (*state)[5] += f; (*state)[6] += g; (*state)[7] += h;
}

fn iv() -> array<u32, 8> {
    return array<u32, 8>(0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                         0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u);
}

// The second SHA-256 of a double hash (over the 32-byte first digest), written to output item `item`.
fn finish_double(first: array<u32, 8>, item: u32) {
    var block: array<u32, 16>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        block[i] = first[i];
    }
    block[8] = 0x80000000u;
    for (var i = 9u; i < 15u; i = i + 1u) {
        block[i] = 0u;
    }
    block[15] = 256u;
    var state = iv();
    compress(&state, &block);
    for (var i = 0u; i < 8u; i = i + 1u) {
        output[item * 8u + i] = bswap(state[i]);
    }
}

fn item_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WORKGROUP_SIZE + gid.x;
}

@compute @workgroup_size(64)
fn hash_headers(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let item = item_index(gid, nwg);
    if (item >= params.count) {
        return;
    }
    let base = item * 20u;
    var block: array<u32, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) {
        block[i] = bswap(input[base + i]);
    }
    var state = iv();
    compress(&state, &block);
    for (var i = 0u; i < 4u; i = i + 1u) {
        block[i] = bswap(input[base + 16u + i]);
    }
    block[4] = 0x80000000u;
    for (var i = 5u; i < 15u; i = i + 1u) {
        block[i] = 0u;
    }
    block[15] = 640u;
    compress(&state, &block);
    finish_double(state, item);
}

@compute @workgroup_size(64)
fn merkle_level(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let item = item_index(gid, nwg);
    let parents = (params.count + 1u) / 2u;
    if (item >= parents) {
        return;
    }
    let left = 2u * item;
    let right = min(left + 1u, params.count - 1u);
    var block: array<u32, 16>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        block[i] = bswap(input[left * 8u + i]);
        block[8u + i] = bswap(input[right * 8u + i]);
    }
    var state = iv();
    compress(&state, &block);
    block[0] = 0x80000000u;
    for (var i = 1u; i < 15u; i = i + 1u) {
        block[i] = 0u;
    }
    block[15] = 512u;
    compress(&state, &block);
    finish_double(state, item);
}
