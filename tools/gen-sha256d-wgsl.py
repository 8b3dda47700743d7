#!/usr/bin/env python3
"""Generates shaders/sha256d_search.wgsl: the GPU nonce search, fully unrolled.

Why generated: the kernel is 122 rounds of straight-line SHA-256 with every constant folded in
(round constants plus constant message words, the zero padding words, sigma functions of constant
words, the all-constant first round of the second hash). Writing that by hand invites mistakes;
loops with private arrays would leave the folding and unrolling to each driver's compiler, which on
some GPUs spills the message schedule to local memory. The generator does the folding once, here,
exactly like the CPU backends' generic code (src/sha256/lanes.rs), and the output is committed.
The Rust tests check the shader against the scalar reference, so a generator bug cannot pass.

    python3 tools/gen-sha256d-wgsl.py > shaders/sha256d_search.wgsl
"""

K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]
IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
M = 0xFFFFFFFF


def rotr(x, n):
    return ((x >> n) | (x << (32 - n))) & M


FUNCS = {
    "bsig0": lambda x: rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22),
    "bsig1": lambda x: rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25),
    "ssig0": lambda x: rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3),
    "ssig1": lambda x: rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10),
    "ch": lambda e, f, g: (e & f) ^ (~e & g & M),
    "maj": lambda a, b, c: (a & b) ^ (a & c) ^ (b & c),
}

out = []


def lit(v):
    return v if isinstance(v, str) else f"0x{v:08x}u"


def call(fn, *args):
    """A function of constants folds to a constant; otherwise it is a WGSL call."""
    if all(isinstance(a, int) for a in args):
        return FUNCS[fn](*args) & M
    return f"{fn}({', '.join(lit(a) for a in args)})"


def add(*terms):
    """A sum with every constant term folded into one literal (dropped when zero)."""
    c = sum(t for t in terms if isinstance(t, int)) & M
    syms = [t for t in terms if isinstance(t, str)]
    if not syms:
        return c
    if c:
        syms.append(lit(c))
    return " + ".join(syms)


def let(name, expr):
    """Binds a symbolic expression to a name; constants stay constants."""
    if isinstance(expr, int):
        return expr
    if expr.replace("_", "").isalnum():
        return expr
    out.append(f"        let {name} = {expr};")
    return name


def schedule(w, i, tag):
    w[i] = let(f"{tag}w{i}", add(call("ssig1", w[i - 2]), w[i - 7], call("ssig0", w[i - 15]), w[i - 16]))


def rounds(state, w, first, last, tag, e_only_from=99):
    """Runs rounds first..last on state (a..h); returns the new state. Rounds from e_only_from on
    compute only the new e (their a is never read again)."""
    a, b, c, d, e, f, g, h = state
    for i in range(first, last + 1):
        if i >= 16 and w[i] is None:
            schedule(w, i, tag)
        t1 = let(f"{tag}t{i}", add(h, call("bsig1", e), call("ch", e, f, g), K[i], w[i]))
        ne = let(f"{tag}e{i + 1}", add(d, t1))
        if i >= e_only_from:
            na = None
        else:
            na = let(f"{tag}a{i + 1}", add(t1, call("bsig0", a), call("maj", a, b, c)))
        a, b, c, d, e, f, g, h = na, a, b, c, ne, e, f, g
    return [a, b, c, d, e, f, g, h]


# ---- First hash, second block. Rounds 0..3 and W16..W19's constant parts come from the host. ----
w = [None] * 64
w[3] = "nonce_be"
w[4] = 0x80000000
for i in range(5, 15):
    w[i] = 0
w[15] = 640
w[16] = "p.sched.x"
w[17] = "p.sched.y"
w[18] = let("w18", add("p.sched.z", call("ssig0", "nonce_be")))
w[19] = let("w19", add("p.sched.w", "nonce_be"))
# State after round 3: a and e are constants plus W3; the rest is the state after round 2 shifted.
state = [
    let("a4", add("p.r3.x", "nonce_be")), "p.after2.x", "p.after2.y", "p.after2.z",
    let("e4", add("p.r3.y", "nonce_be")), "p.after2.w", "p.r3.z", "p.r3.w",
]
body_first = len(out)
state = rounds(state, w, 4, 63, "f")
h1 = [let(f"h1_{j}", add(state[j], f"p.mid{j // 4}.{'xyzw'[j % 4]}")) for j in range(8)]

# ---- Second hash: the 32-byte digest, padding, length 256. Stop at e after round 60. ----
v = [None] * 64
v[:8] = h1
v[8] = 0x80000000
for i in range(9, 15):
    v[i] = 0
v[15] = 256
state = rounds(list(IV), v, 0, 60, "s", e_only_from=57)
h7 = add(state[4], IV[7])
body = "\n".join(out)

print(f"""// GENERATED by tools/gen-sha256d-wgsl.py; edit the generator, not this file.
//
// Double-SHA-256 nonce search with midstate and early exit (see src/sha256/mod.rs for the maths).
// Each invocation hashes NONCES_PER_THREAD consecutive nonces. For each, it computes only the hash's
// top word H7 (rounds 4..63 of the first hash's second block, 61 rounds of the second hash) and, when
// byte-swapped it is <= the target's top word, appends the nonce to `results` through an atomic
// counter. The host re-checks every candidate against the full 256-bit target, and re-runs a range
// whose candidates overflowed the buffer (`count` keeps counting past `capacity`).
//
// Bindings (group 0):
//   0: uniform Params: the job's precomputed values and this dispatch's range.
//   1: storage Results (read_write): candidate count, then candidate nonces.

struct Params {{
    mid0: vec4<u32>,   // midstate H0..H3
    mid1: vec4<u32>,   // midstate H4..H7
    after2: vec4<u32>, // a, b, c, e after round 2 of the second block (Job::state3)
    r3: vec4<u32>,     // round 3: a and e after it, less W3; f and g after round 2
    sched: vec4<u32>,  // W16, W17, W18 - ssig0(W3), W19 - W3
    range: vec4<u32>,  // base nonce, nonce count, result capacity, target top word
}}

struct Results {{
    count: atomic<u32>,
    nonces: array<u32>,
}}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> results: Results;

const NONCES_PER_THREAD: u32 = 8u;
const WORKGROUP_SIZE: u32 = 256u;

fn rotr(x: u32, n: u32) -> u32 {{ return (x >> n) | (x << (32u - n)); }}
fn bsig0(x: u32) -> u32 {{ return rotr(x, 2u) ^ rotr(x, 13u) ^ rotr(x, 22u); }}
fn bsig1(x: u32) -> u32 {{ return rotr(x, 6u) ^ rotr(x, 11u) ^ rotr(x, 25u); }}
fn ssig0(x: u32) -> u32 {{ return rotr(x, 7u) ^ rotr(x, 18u) ^ (x >> 3u); }}
fn ssig1(x: u32) -> u32 {{ return rotr(x, 17u) ^ rotr(x, 19u) ^ (x >> 10u); }}
fn ch(e: u32, f: u32, g: u32) -> u32 {{ return g ^ (e & (f ^ g)); }}
fn maj(a: u32, b: u32, c: u32) -> u32 {{ return (a & b) | (c & (a | b)); }}
fn bswap(x: u32) -> u32 {{
    return (x << 24u) | ((x << 8u) & 0x00ff0000u) | ((x >> 8u) & 0x0000ff00u) | (x >> 24u);
}}

@compute @workgroup_size(256)
fn search(@builtin(global_invocation_id) gid: vec3<u32>) {{
    let first = gid.x * NONCES_PER_THREAD;
    for (var k = 0u; k < NONCES_PER_THREAD; k = k + 1u) {{
        let idx = first + k;
        if (idx >= p.range.y) {{
            return;
        }}
        let nonce = p.range.x + idx;
        let nonce_be = bswap(nonce);
{body}
        let h7 = {lit(h7)};
        if (bswap(h7) <= p.range.w) {{
            let slot = atomicAdd(&results.count, 1u);
            if (slot < p.range.z) {{
                results.nonces[slot] = nonce;
            }}
        }}
    }}
}}""")
