// powkit's live dashboard: polls /api/dashboard once a second (the node's snapshot, docs/METRICS.md,
// "The dashboard's data") and renders it. Read-only: it only ever GETs that one path. Text from the
// network (peer agents, worker names, ban reasons) is set with textContent, never parsed as HTML.
'use strict';
(function () {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);

  // ---- formatting ----
  const RATE_UNITS = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s', 'EH/s', 'ZH/s'];
  function fmtRate(h) {
    if (h === null || h === undefined || !isFinite(h)) return '-';
    let i = 0;
    while (Math.abs(h) >= 1000 && i < RATE_UNITS.length - 1) { h /= 1000; i++; }
    return h.toFixed(h >= 100 || i === 0 ? 0 : 2) + ' ' + RATE_UNITS[i];
  }
  // Axis ticks: three significant digits, no trailing zeros ("20 MH/s", "1.5 kH/s").
  function fmtRateTick(h) {
    if (h === null || h === undefined || !isFinite(h)) return '';
    let i = 0;
    while (Math.abs(h) >= 1000 && i < RATE_UNITS.length - 1) { h /= 1000; i++; }
    return Number(h.toPrecision(3)) + ' ' + RATE_UNITS[i];
  }
  // Stratum workers' recent rates, from the node's samples (every 5 s): over the minute before
  // sample i (or since the first sample, if younger), the change in a worker's accepted share
  // difficulty times 2^32 per second, and in its accepted shares per minute. A worker absent from
  // the older sample had nothing accepted then. A worker that stops falls to 0 within a minute.
  const WINDOW_S = 60;
  function windowStart(sm, i) {
    let j = i;
    while (j > 0 && sm[i].time - sm[j].time < WINDOW_S) j--;
    return j;
  }
  function workerRate(sm, i, n, field, scale) {
    const j = windowStart(sm, i);
    const dt = sm[i].time - sm[j].time;
    const now = sm[i].workers[n], then = sm[j].workers[n];
    if (dt <= 0 || now === undefined) return null;
    return (now[field] - (then ? then[field] : 0)) * scale / dt;
  }
  const hashRate = (sm, i, n) => workerRate(sm, i, n, 'accepted_difficulty', 4294967296);
  const sharesPerMinute = (sm, i, n) => workerRate(sm, i, n, 'accepted', 60);
  function poolRate(sm, i) {
    let sum = null;
    for (const n in sm[i].workers) {
      const r = hashRate(sm, i, n);
      if (r !== null) sum = (sum || 0) + r;
    }
    return sum;
  }
  // Long names (a worker's, chosen by whoever connects) are cut for legends.
  const label = (n) => (n.length > 24 ? n.slice(0, 23) + '\u2026' : n);

  function fmtBytes(b) {
    if (b === null || b === undefined) return '-';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b.toFixed(0) : b.toFixed(1)) + ' ' + u[i];
  }
  function fmtDuration(s) {
    if (s === null || s === undefined || !isFinite(s)) return '-';
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }
  function fmtNum(n, digits) {
    if (n === null || n === undefined || !isFinite(n)) return '-';
    if (Math.abs(n) >= 1e6 || (n !== 0 && Math.abs(n) < 1e-3)) return n.toExponential(digits === undefined ? 3 : digits);
    return n.toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 4 : digits });
  }
  const fmtInt = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'));
  const utc = (t) => (t ? new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19) : '-');
  const short = (h) => (h ? h.slice(0, 12) + '\u2026' + h.slice(-6) : '-');
  function setText(id, text) {
    const e = $(id);
    if (e && e.textContent !== String(text)) e.textContent = String(text);
  }

  // ---- tables ----
  // rows: arrays of cells; a cell is text or {text, title, cls}.
  function fillTable(id, rows, empty) {
    const body = $(id).tBodies[0];
    const frag = document.createDocumentFragment();
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = $(id).tHead.rows[0].cells.length;
      td.className = 'muted';
      td.textContent = empty;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    for (const row of rows) {
      const tr = document.createElement('tr');
      for (const cell of row) {
        const td = document.createElement('td');
        if (cell !== null && typeof cell === 'object') {
          td.textContent = cell.text;
          if (cell.title) td.title = cell.title;
          if (cell.cls) td.className = cell.cls;
        } else {
          td.textContent = cell === null || cell === undefined ? '-' : String(cell);
        }
        tr.appendChild(td);
      }
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
  }

  // ---- charts (uPlot) ----
  const charts = {};
  const COLORS = ['#4e9af1', '#f5a524', '#3ecf8e', '#e5484d', '#a78bfa', '#22d3ee', '#f472b6', '#a3e635'];
  function axisStyle() {
    return { stroke: '#9aa4b2', grid: { stroke: '#2a3140', width: 1 }, ticks: { stroke: '#2a3140', width: 1 } };
  }
  function chart(id, series, opts) {
    const el = $(id);
    const key = id + ':' + series.map((s) => s.label).join('|');
    if (charts[id] && charts[id].key === key) return charts[id].plot;
    if (charts[id]) { charts[id].plot.destroy(); }
    const plot = new uPlot({
      width: Math.max(200, el.clientWidth),
      height: 200,
      legend: { show: series.length > 1 },
      scales: { x: { time: !!opts.time }, y: opts.yRange ? { range: opts.yRange } : {} },
      axes: [Object.assign(axisStyle(), opts.xValues ? { values: opts.xValues } : {}),
        Object.assign(axisStyle(), { size: 80, values: (u, vals) => vals.map(opts.yFormat || ((v) => fmtNum(v, 2))) })],
      series: [{ label: opts.xLabel || 'x' }].concat(series.map((s, i) => Object.assign({
        stroke: COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: false,
      }, s))),
    }, [[]].concat(series.map(() => [])), el);
    charts[id] = { plot, key };
    return plot;
  }
  window.addEventListener('resize', () => {
    for (const id in charts) {
      const el = $(id);
      if (el.clientWidth > 0) charts[id].plot.setSize({ width: el.clientWidth, height: 200 });
    }
  });

  // ---- state ----
  let last = null;
  let clockOffset = 0; // server unix time minus ours

  function renderNode(s) {
    const c = s.chain;
    setText('chain-name', c.name);
    setText('height', c.height);
    setText('headers', fmtInt(c.headers));
    setText('sync', (100 * c.sync_progress).toFixed(1) + '%');
    $('tip').textContent = short(c.tip);
    $('tip').title = c.tip;
    setText('difficulty', fmtNum(c.difficulty, 4));
    setText('bits', c.bits);
    setText('net-hashrate', fmtRate(s.hashrate.network));
    setText('net-hashrate-sub', 'over the last ' + s.hashrate.window_blocks + ' blocks');
    const m = s.mining;
    const sm = s.samples;
    const last = sm.length - 1;
    const local = s.hashrate.local !== null ? s.hashrate.local : (s.pool ? poolRate(sm, last) : null);
    setText('local-hashrate', fmtRate(local));
    setText('local-hashrate-sub', m.mining ? m.backend + ', ' + m.threads + ' threads, ' + m.blocks_mined + ' blocks mined'
      : (s.pool ? 'Stratum workers, last minute; ' + s.pool.blocks + ' blocks' : 'not mining'));
    const inbound = s.peers.filter((p) => p.direction === 'inbound').length;
    setText('peer-count', s.peers.length);
    setText('peer-sub', inbound + ' in, ' + (s.peers.length - inbound) + ' out, ' + s.bans.length + ' banned');
    setText('mempool-size', fmtInt(s.mempool.size) + ' tx');
    setText('mempool-sub', fmtBytes(s.mempool.bytes) + ' of ' + fmtBytes(s.mempool.max_bytes)
      + (s.mempool.orphans ? ', ' + s.mempool.orphans + ' orphans' : ''));
    setText('transactions', fmtInt(c.transactions) + ' tx');
    setText('state-sub', fmtInt(c.accounts) + ' accounts, signatures on ' + c.sig_verifier);

    // Charts by height. One huge interval (the first block after an old genesis, a chain that
    // stalled for a day) would flatten every other bar: the axis stops at three times the 90th
    // percentile and the title says which bars run past it (the table and tooltips keep the values).
    const hs = s.blocks.map((b) => b.height);
    const intervals = s.blocks.map((b) => b.interval);
    const sorted = intervals.filter((v) => v !== null).sort((x, y) => x - y);
    const p90 = sorted.length ? sorted[Math.floor(0.9 * (sorted.length - 1))] : 0;
    const cap = Math.max(3 * p90, 10);
    const over = s.blocks.filter((b) => b.interval !== null && b.interval > cap);
    setText('intervals-clipped', over.length ? '; ' + over.length + ' above ' + fmtNum(cap, 0) + ' s cut off (height '
      + over.slice(0, 3).map((b) => b.height + ': ' + fmtDuration(b.interval)).join(', ') + (over.length > 3 ? ', ...' : '') + ')' : '');
    chart('chart-intervals', [{ label: 'interval (s)', fill: 'rgba(78,154,241,0.35)', paths: uPlot.paths.bars({ size: [0.9, 8] }), points: { show: false } }],
      { xLabel: 'height', yFormat: (v) => fmtNum(v, 0), xValues: (u, vals) => vals.map((v) => fmtNum(v, 0)),
        yRange: (u, min, max) => [Math.min(0, min), Math.min(max, cap)] })
      .setData([hs, intervals]);
    chart('chart-difficulty', [{ label: 'difficulty', paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
      { xLabel: 'height', yFormat: (v) => fmtNum(v, 3), xValues: (u, vals) => vals.map((v) => fmtNum(v, 0)) })
      .setData([hs, s.blocks.map((b) => b.difficulty)]);
    // Rates: the node's samples (every 5 s, the last hour) and the value now.
    chart('chart-hashrate', [{ label: 'network' }, { label: 'local miner' }, { label: 'Stratum workers' }],
      { time: true, xLabel: 'time', yFormat: fmtRateTick })
      .setData([sm.map((x) => x.time), sm.map((x) => x.network), sm.map((x) => x.local),
        sm.map((x, i) => (x.pool === null ? null : poolRate(sm, i)))]);

    fillTable('peers', s.peers.map((p) => [
      p.addr, p.direction + (p.handshake ? '' : ' (handshake)'), p.height === null ? '-' : p.height,
      p.ping_ms === null ? '-' : p.ping_ms.toFixed(1) + ' ms', fmtBytes(p.bytes_sent), fmtBytes(p.bytes_received),
      fmtDuration(p.conntime_s), { text: p.subver || '-', title: 'misbehaviour score ' + p.score },
    ]), 'no peers connected');
    fillTable('blocks', s.blocks.slice(-15).reverse().map((b) => [
      b.height, { text: short(b.hash), title: b.hash, cls: 'mono' }, utc(b.time),
      b.interval === null ? '-' : b.interval + ' s', b.txs === null ? '-' : b.txs, fmtNum(b.difficulty, 4),
    ]), 'no blocks');
    fillTable('reorgs', s.reorgs.map((r) => [
      utc(r.time), r.depth, r.fork_height, r.height,
      { text: short(r.old_tip), title: r.old_tip, cls: 'mono' }, { text: short(r.new_tip), title: r.new_tip, cls: 'mono' },
    ]), 'no reorgs since the node started');
    fillTable('bans', s.bans.map((b) => [b.address, b.reason, fmtDuration(b.seconds_left)]), 'no bans');
  }

  function renderPool(s) {
    const p = s.pool;
    $('pool-none').hidden = !!p;
    $('pool-body').hidden = !p;
    if (!p) return;
    const names = Object.keys(p.workers).sort();
    let accepted = 0, rejected = 0, stale = 0;
    for (const n of names) {
      const w = p.workers[n];
      accepted += w.accepted; stale += w.stale;
      for (const r in w.rejected) rejected += w.rejected[r];
    }
    const sm = s.samples;
    const last = sm.length - 1;
    // The current job's block goes on top of the tip: its parent's height is the tip's.
    setText('pool-tip', p.height === null || p.height === undefined ? '-' : p.height - 1);
    setText('pool-source', 'templates from ' + p.source);
    setText('pool-workers', p.workers_total);
    setText('pool-clients', p.clients + (p.clients === 1 ? ' connection, ' : ' connections, ') + p.subscribed + ' subscribed'
      + (p.workers_total > names.length ? '; the ' + names.length + ' latest listed' : ''));
    setText('pool-hashrate', fmtRate(poolRate(sm, last)));
    setText('pool-accepted', fmtInt(accepted));
    let total = 0;
    for (const n in sm[last].workers) total += sharesPerMinute(sm, last, n) || 0;
    setText('pool-share-rate', fmtNum(total, 1) + ' shares/min, last minute');
    setText('pool-rejected', fmtInt(rejected));
    setText('pool-stale', stale + ' stale');
    setText('pool-blocks', fmtInt(p.blocks));
    setText('pool-job', 'job ' + (p.job || '-') + ' at height ' + (p.height === null ? '-' : p.height) + ', ' + p.jobs + ' jobs sent');
    const shown = Object.keys(sm[last].workers)
      .sort((a, b) => (hashRate(sm, last, b) || 0) - (hashRate(sm, last, a) || 0)).slice(0, COLORS.length);
    if (!$('pool-view').hidden && shown.length > 0) {
      chart('chart-workers', shown.map((n) => ({ label: label(n) })), { time: true, xLabel: 'time', yFormat: fmtRateTick })
        .setData([sm.map((x) => x.time)].concat(shown.map((n) => sm.map((x, i) => hashRate(sm, i, n)))));
    }
    fillTable('workers', names.map((n) => {
      const w = p.workers[n];
      const reasons = Object.keys(w.rejected).map((r) => r + ' ' + w.rejected[r]).join(', ');
      let rej = 0;
      for (const r in w.rejected) rej += w.rejected[r];
      const hr = hashRate(sm, last, n), pm = sharesPerMinute(sm, last, n);
      return [{ text: n, title: n }, fmtRate(hr), pm === null ? '-' : fmtNum(pm, 1), fmtInt(w.accepted),
        fmtNum(w.accepted_difficulty, 3), fmtInt(rej), reasons || '-', w.stale, w.blocks,
        w.last_share ? fmtDuration(s.time - w.last_share) + ' ago' : '-'];
    }), 'no workers have connected');
  }

  // `powkit pool --dashboard`: no node behind the page ("chain": null), the pool view alone.
  let poolOnly = false;

  function render(s) {
    last = s;
    clockOffset = s.time - Date.now() / 1000;
    if (s.chain === null && !poolOnly) {
      poolOnly = true;
      $('tab-node').hidden = true;
      setText('chain-name', 'pool');
      document.title = 'powkit pool';
      route();
    }
    if (!poolOnly) renderNode(s);
    renderPool(s);
    tick();
    setText('updated', new Date().toLocaleTimeString());
    const st = $('status');
    st.textContent = 'live';
    st.className = 'status ok';
  }

  // The tip's age moves every second without waiting for a poll.
  function tick() {
    if (!last || !last.chain) return;
    const now = Date.now() / 1000 + clockOffset;
    setText('tip-age', fmtDuration(now - last.chain.tip_time));
  }
  setInterval(tick, 1000);

  async function poll() {
    try {
      const r = await fetch('api/dashboard', { cache: 'no-store' });
      if (!r.ok) {
        let why = 'HTTP ' + r.status;
        try { why += ': ' + (await r.json()).error; } catch (e) { /* not JSON */ }
        throw new Error(why);
      }
      render(await r.json());
    } catch (e) {
      const st = $('status');
      st.textContent = 'no data: ' + e.message;
      st.className = 'status bad';
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // Views: #node (default) and #pool.
  function route() {
    const pool = poolOnly || location.hash === '#pool';
    $('node-view').hidden = pool;
    $('pool-view').hidden = !pool;
    $('tab-node').classList.toggle('active', !pool);
    $('tab-pool').classList.toggle('active', pool);
    if (last) renderPool(last);
    window.dispatchEvent(new Event('resize'));
  }
  window.addEventListener('hashchange', route);
  route();
  poll();
})();
