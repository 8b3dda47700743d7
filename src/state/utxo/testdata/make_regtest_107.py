# Made testdata/regtest-107.hex and the figures in tests.rs
# (figures_equal_bitcoind_gettxoutsetinfo_on_a_regtest_chain) with Bitcoin Core v31.99 built by
# ../shared/tools/build-bitcoind.sh. Start a fresh regtest node first:
#   bitcoind -regtest -datadir=/tmp/utxo-kat/dd -daemon=0 -server -listen=0 -rpcport=28461 \
#            -port=28462 -rpcuser=u -rpcpassword=p
# then `bitcoin-cli ... generatetodescriptor 5 "raw(51)"` (the first 5 blocks) and run this script:
# 101 more coinbases to raw(51), then one block (generateblock) with three transactions spending
# two coinbases and each other. It prints gettxoutsetinfo at 107 and, after invalidateblock of the
# tip, at 106; the block times make every run's hashes differ, so the test pins this run's output.
import hashlib, json, subprocess, struct
B="/root/.cache/powkit-bitcoind/build/bin/bitcoin-cli"
C=[B,"-regtest","-datadir=/tmp/utxo-kat/dd","-rpcport=28461","-rpcuser=u","-rpcpassword=p"]
def cli(*a):
    out=subprocess.check_output(C+[str(x) for x in a]).decode().strip()
    try: return json.loads(out)
    except Exception: return out
def dsha(b): return hashlib.sha256(hashlib.sha256(b).digest()).digest()
def cs(n):
    assert n<0xfd; return bytes([n])
def tx(ins, outs):
    b=struct.pack("<i",2)+cs(len(ins))
    for (txid,vout) in ins: b+=bytes.fromhex(txid)[::-1]+struct.pack("<I",vout)+cs(0)+struct.pack("<I",0xffffffff)
    b+=cs(len(outs))
    for (v,s) in outs: b+=struct.pack("<q",v)+cs(len(s))+s
    b+=struct.pack("<I",0)
    return b, dsha(b)[::-1].hex()
cli("generatetodescriptor",101,"raw(51)")
cb=[cli("getblock",cli("getblockhash",h))["tx"][0] for h in (1,2)]
T=bytes([0x51])
t1,id1=tx([(cb[0],0)],[(10_0000_0000,T),(20_0000_0000,T),(0,bytes.fromhex("6a026869")),(19_9999_0000,T)])
t2,id2=tx([(id1,1)],[(5_0000_0000,bytes([0x52])),(14_9999_0000,T)])
big=bytes([0x4c,38])+bytes(range(38))   # a 40-byte push-only script (spills any small inline buffer)
t3,id3=tx([(id2,1),(cb[1],0)],[(60_0000_0000,big),(4_9998_0000,T)])
print(cli("generateblock","raw(51)",json.dumps([t1.hex(),t2.hex(),t3.hex()])))
n=cli("getblockcount"); print("count",n)
a=cli("gettxoutsetinfo"); print(json.dumps(a))
tip=cli("getbestblockhash")
with open("kat.hex","w") as f:
    for h in range(1,n+1): f.write(cli("getblock",cli("getblockhash",h),0)+"\n")
cli("invalidateblock",tip)
b=cli("gettxoutsetinfo"); print(json.dumps(b))
json.dump({"connected":a,"after_disconnect":b},open("kat.json","w"),indent=1)
