#!/usr/bin/env node
// Test-only driver: one stratum-pool-sha256 (v2.1.3, npm) pool, a third-party Stratum v1 pool no
// one here wrote, on 127.0.0.1:PORT against a bitcoind's getblocktemplate. It judges the shares of
// `powkit mine --pool` (tests/thirdparty_pool.rs). Fixed share difficulty (no vardiff).
//
//   node pool.js --port P --rpc-port R (--rpc-cookie FILE | --rpc-user U --rpc-password W)
//                --address ADDR [--difficulty D] [--poll-ms MS] [--keep-block-path]
//
// stdout carries only JSON lines: {"event":"started",...}, one {"event":"job",...} per job sent,
// one {"event":"share","accepted":BOOL,...} per share verdict as the pool's own share check
// reached it, and {"event":"crash",...} on an uncaught exception. The package's own logging (it
// prints debug text with console.log) goes to stderr.
//
// Shares only: the package's block path is broken. A share whose hash meets the network target
// takes jobManager.js's block branch, which reads an undeclared `extraNoncePlaceholder` (line 396;
// the placeholder is `_this.extraNoncePlaceholder`): a ReferenceError thrown inside the socket's
// data handler, uncaught, ends the process. On regtest (bits 207fffff, target ~2^255) every valid
// share meets the network target, so the first one kills the pool. Unless --keep-block-path is
// given (to reproduce that), each job's network target is set to zero after the package builds it,
// so no share is a block candidate and every share goes through the package's share check
// (coinbase, merkle root, header, sha256d, difficulty) unchanged; the pool never submits a block.
'use strict';

const path = require('path');
const fs = require('fs');

function usage(msg) {
  process.stderr.write(`pool.js: ${msg}\n`);
  process.exit(2);
}

const args = { difficulty: '0.001', 'poll-ms': '200' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (!a.startsWith('--')) usage(`unexpected argument ${a}`);
  const key = a.slice(2);
  if (key === 'keep-block-path') {
    args[key] = true;
    continue;
  }
  if (i + 1 >= argv.length) usage(`${a} needs a value`);
  args[key] = argv[++i];
}
for (const k of Object.keys(args)) {
  if (!['port', 'rpc-port', 'rpc-cookie', 'rpc-user', 'rpc-password', 'address', 'difficulty', 'poll-ms', 'keep-block-path', 'node-modules'].includes(k)) usage(`unknown option --${k}`);
}
const port = Number(args.port);
const rpcPort = Number(args['rpc-port']);
const difficulty = Number(args.difficulty);
const pollMs = Number(args['poll-ms']);
if (!Number.isInteger(port) || port <= 0 || port > 65535) usage('--port: expected a TCP port');
if (!Number.isInteger(rpcPort) || rpcPort <= 0 || rpcPort > 65535) usage('--rpc-port: expected a TCP port');
if (!(difficulty > 0) || !Number.isFinite(difficulty)) usage('--difficulty: expected a number above zero');
if (!(pollMs > 0)) usage('--poll-ms: expected milliseconds above zero');
if (!args.address) usage('--address is required');
let user = args['rpc-user'];
let password = args['rpc-password'];
if (args['rpc-cookie']) {
  let cookie;
  try {
    cookie = fs.readFileSync(args['rpc-cookie'], 'utf8').trim();
  } catch (e) {
    usage(`--rpc-cookie: ${e.message}`);
  }
  const at = cookie.indexOf(':');
  if (at < 0) usage('--rpc-cookie: expected USER:PASSWORD');
  user = cookie.slice(0, at);
  password = cookie.slice(at + 1);
}
if (user === undefined || password === undefined) usage('give --rpc-cookie or --rpc-user and --rpc-password');

// node_modules may live outside the source tree (a cache): --node-modules DIR or NODE_PATH.
const modules = args['node-modules'] || process.env.POWKIT_THIRDPARTY_POOL_MODULES;
const resolveFrom = modules ? [path.resolve(modules)] : undefined;
const req = (name) => require(require.resolve(name, resolveFrom ? { paths: resolveFrom } : undefined));

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
// The package logs debug text with console.log; keep stdout for the verdicts.
console.log = (...a) => console.error(...a);
process.on('uncaughtException', (e) => {
  emit({ event: 'crash', message: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});

const pkgJson = require.resolve('stratum-pool-sha256/package.json', resolveFrom ? { paths: resolveFrom } : undefined);
const pkgVersion = JSON.parse(fs.readFileSync(pkgJson, 'utf8')).version;
const lib = path.join(path.dirname(pkgJson), 'lib');
if (!args['keep-block-path']) {
  // Wrap BlockTemplate before jobManager.js takes it: the job keeps everything the package built
  // except its network target, which becomes zero (no hash is at or under it).
  const btPath = path.join(lib, 'blockTemplate.js');
  const BlockTemplate = require(btPath);
  const bignum = require(path.join(lib, 'bignum-compat.js'));
  function SharesOnly(...a) {
    BlockTemplate.apply(this, a);
    this.target = bignum(0);
  }
  SharesOnly.prototype = BlockTemplate.prototype;
  require.cache[btPath].exports = SharesOnly;
}
const Stratum = require(path.join(lib, 'index.js'));

// Codes for the package's share errors (jobManager.js processShare); its 'share' event carries
// only the message.
function codeOf(reason) {
  if (reason === 'job not found') return 21;
  if (reason === 'duplicate share') return 22;
  if (reason.startsWith('low difficulty share')) return 23;
  return 20;
}

const pool = Stratum.createPool(
  {
    coin: { name: 'Bitcoin', symbol: 'BTC', algorithm: 'sha256', asicboost: false },
    address: args.address,
    rewardRecipients: {},
    ports: { [port]: { diff: difficulty } },
    daemons: [{ host: '127.0.0.1', port: rpcPort, user, password }],
    blockRefreshInterval: pollMs,
    jobRebroadcastTimeout: 55,
    connectionTimeout: 600,
    banning: { enabled: false },
    p2p: { enabled: false },
  },
  (ip, localPort, workerName, pass, callback) => callback({ error: null, authorized: true, disconnect: false })
);

pool.on('log', (severity, text) => process.stderr.write(`[${severity}] ${text}\n`));
pool.on('share', (isValidShare, isValidBlock, data) => {
  const line = {
    event: 'share',
    accepted: isValidShare,
    worker: data.worker,
    job: data.job,
    difficulty: data.difficulty,
  };
  if (isValidShare) {
    line.share_difficulty = Number(data.shareDiff);
    line.height = data.height;
    line.block = isValidBlock;
  } else {
    line.code = codeOf(String(data.error));
    line.reason = String(data.error);
  }
  emit(line);
});
pool.on('started', () => {
  const job = pool.jobManager.currentJob;
  emit({
    event: 'started',
    port,
    package: `stratum-pool-sha256@${pkgVersion}`,
    difficulty,
    height: job.rpcData.height,
    block_path: !!args['keep-block-path'],
  });
  // One line per job the pool sends (a new tip's job is clean).
  pool.jobManager.on('newBlock', (t) => emit({ event: 'job', job: t.jobId, clean: true, height: t.rpcData.height }));
  pool.jobManager.on('updatedBlock', (t) => emit({ event: 'job', job: t.jobId, clean: false, height: t.rpcData.height }));
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
pool.start();
