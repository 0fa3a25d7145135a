// The operators' dashboard: admin token sign-in (kept in sessionStorage and
// sent as a bearer token on every /ops call), counts per status, the
// unsettled orders refreshing themselves with a recheck per order, the
// dead-letter count with its replay, reconciliation on demand, and two small
// hand-drawn SVG charts (orders per second, time to settle).
'use strict';

(() => {
  const {el, call, NetworkError, age, shortId, clear} = window.sf;

  const TOKEN_KEY = 'stockfence.adminToken';
  const ORDERS_EVERY_MS = 3000;
  const STATS_EVERY_MS = 5000;
  const DLQ_EVERY_MS = 10000;
  const SVG = 'http://www.w3.org/2000/svg';
  const UNSETTLED = ['PENDING', 'COMPENSATING', 'CANCELLING'];
  const ALL = ['PENDING', 'CONFIRMED', 'FAILED', 'COMPENSATING', 'CANCELLING', 'CANCELLED'];

  const state = {
    token: null,
    timers: [],
    rechecks: new Map(), // order id -> {text, until}
    failures: new Map(), // what failed to refresh -> message
  };

  const $ = (id) => document.getElementById(id);

  // ---- sign-in -------------------------------------------------------------

  function init() {
    $('signin-form').addEventListener('submit', onSignin);
    $('signout').addEventListener('click', () => signOut(''));
    $('dlq-replay').addEventListener('click', replayDeadLetters);
    $('reconcile').addEventListener('click', reconcile);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token);
    else signOut('');
  }

  async function onSignin(ev) {
    ev.preventDefault();
    const token = $('admin-token').value.trim();
    if (!token) return;
    let r;
    try {
      r = await call('GET', '/ops/stats', {token});
    } catch (e) {
      signOut('The order service could not be reached; try again.');
      return;
    }
    if (r.status === 401) {
      signOut('That admin token was refused.');
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('admin-token').value = '';
    start(token);
  }

  function start(token) {
    state.token = token;
    $('signin').hidden = true;
    $('board').hidden = false;
    $('signout').hidden = false;
    refreshOrders();
    refreshStats();
    refreshDeadLetters();
    state.timers.push(setInterval(refreshOrders, ORDERS_EVERY_MS));
    state.timers.push(setInterval(refreshStats, STATS_EVERY_MS));
    state.timers.push(setInterval(refreshDeadLetters, DLQ_EVERY_MS));
  }

  function signOut(message) {
    for (const t of state.timers) clearInterval(t);
    state.timers = [];
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('board').hidden = true;
    $('signout').hidden = true;
    $('signin').hidden = false;
    $('refreshed').textContent = '';
    const err = $('signin-error');
    err.textContent = message;
    err.hidden = !message;
  }

  // ops calls /ops/*; a 401 signs the operator out. It resolves to the
  // answer, or null when the service could not be reached.
  async function ops(method, path) {
    if (!state.token) return null;
    let r;
    try {
      r = await call(method, path, {token: state.token});
    } catch (e) {
      if (!(e instanceof NetworkError)) throw e;
      failed('network', 'The order service cannot be reached.');
      return null;
    }
    failed('network', '');
    if (r.status === 401) {
      signOut('The admin token was refused; sign in again.');
      return null;
    }
    return r;
  }

  function failed(what, message) {
    if (message) state.failures.set(what, message);
    else state.failures.delete(what);
    const banner = $('banner');
    const messages = Array.from(new Set(state.failures.values()));
    banner.textContent = messages.join(' ');
    banner.hidden = messages.length === 0;
  }

  function problemText(r, fallback) {
    return (r && r.data && r.data.detail) || fallback;
  }

  // ---- unsettled orders -------------------------------------------------------

  async function refreshOrders() {
    const r = await ops('GET', '/ops/orders?status=unsettled&limit=200');
    if (!r) return;
    if (r.status !== 200 || !r.data) {
      failed('orders', 'Unsettled orders: ' + problemText(r, 'could not be read (' + r.status + ').'));
      return;
    }
    failed('orders', '');
    $('refreshed').textContent = 'updated ' + new Date().toLocaleTimeString();
    renderOrders(r.data.orders);
  }

  function renderOrders(orders) {
    const body = $('unsettled').querySelector('tbody');
    clear(body);
    $('unsettled-empty').hidden = orders.length > 0;
    const now = Date.now();
    for (const [id, note] of state.rechecks) if (note.until < now) state.rechecks.delete(id);
    for (const o of orders) {
      const recheck = el('button', {type: 'button', class: 'small-btn recheck'}, 'Recheck');
      const note = state.rechecks.get(o.orderId);
      if (note) {
        recheck.textContent = note.text;
        recheck.disabled = true;
      }
      recheck.addEventListener('click', () => recheckOrder(o.orderId, recheck));
      const attempts = el('span', {class: 'attempts'}, o.attempts.map((a, i) =>
        el('span', {class: 'chip attempt-' + a.status, title: a.attemptId + (a.resolvedAt ? ' · resolved ' + a.resolvedAt : ' · outcome unknown')},
          '#' + (i + 1) + ' ' + a.status)));
      body.append(el('tr', {class: o.stuck ? 'stuck' : '', dataset: {orderId: o.orderId, status: o.status, stuck: o.stuck}},
        el('td', {class: 'mono', title: o.orderId}, shortId(o.orderId)),
        el('td', {}, o.customerId),
        el('td', {}, el('span', {class: 'badge status-' + o.status}, o.status)),
        el('td', {class: 'num'}, age(o.ageSeconds), o.stuck ? el('span', {class: 'flag'}, 'STUCK') : null),
        el('td', {class: 'num'}, o.checks),
        el('td', {class: 'err', title: o.lastError || ''}, o.lastError || '—'),
        el('td', {}, attempts),
        el('td', {}, recheck)));
    }
  }

  async function recheckOrder(id, button) {
    button.disabled = true;
    const r = await ops('POST', '/ops/orders/' + encodeURIComponent(id) + '/recheck');
    if (!r) {
      button.disabled = false;
      return;
    }
    let text = 'Failed';
    if (r.status === 202) text = 'Scheduled ✓';
    else if (r.status === 409) text = 'Already settled';
    else if (r.status === 404) text = 'Not found';
    state.rechecks.set(id, {text, until: Date.now() + 4000});
    button.textContent = text;
    setTimeout(refreshOrders, 500);
  }

  // ---- stats and charts ---------------------------------------------------------

  async function refreshStats() {
    const r = await ops('GET', '/ops/stats');
    if (!r) return;
    if (r.status !== 200 || !r.data) {
      failed('stats', 'Stats: ' + problemText(r, 'could not be read (' + r.status + ').'));
      return;
    }
    failed('stats', '');
    renderStats(r.data);
  }

  function renderStats(s) {
    $('count-unsettled').textContent = s.unsettled.total;
    $('count-stuck').textContent = s.unsettled.stuck;
    $('card-stuck').classList.toggle('alert', s.unsettled.stuck > 0);
    $('stuck-after').textContent = 'older than ' + age(s.stuckAfterSeconds);
    for (const st of UNSETTLED) $('count-' + st).textContent = s.unsettled.byStatus[st] || 0;

    const minutes = Math.round(s.windowSeconds / 60);
    $('window-label').textContent = minutes === 1 ? 'minute' : minutes + ' minutes';
    const chips = $('window-counts');
    clear(chips);
    chips.append(el('span', {class: 'chip'}, s.window.total + ' orders'));
    for (const st of ALL) {
      const n = s.window.byStatus[st] || 0;
      if (n > 0) chips.append(el('span', {class: 'chip status-' + st, dataset: {status: st}}, st + ' ' + n));
    }

    const settle = s.settle;
    $('settle-summary').textContent = settle.samples > 0
      ? '· p50 ' + fmtMs(settle.p50Ms) + ' · p90 ' + fmtMs(settle.p90Ms) + ' · p99 ' + fmtMs(settle.p99Ms) + ' · max ' + fmtMs(settle.maxMs) + ' (' + settle.samples + ' orders)'
      : '· no settled orders in the window';

    const xLabels = ['-' + age(s.windowSeconds), '-' + age(s.windowSeconds / 2), 'now'];
    drawChart($('chart-rate'), [{values: s.buckets.map((b) => b.ordersPerSecond), cls: 'bar'}], {bars: true, xLabels});
    drawChart($('chart-settle'), [
      {values: s.buckets.map((b) => b.settleP95Ms), cls: 'line p95'},
      {values: s.buckets.map((b) => b.settleP50Ms), cls: 'line p50'},
    ], {bars: false, xLabels});
  }

  function fmtMs(v) {
    if (v === null || v === undefined) return '–';
    return v >= 1000 ? (v / 1000).toFixed(2) + ' s' : v.toFixed(v < 10 ? 1 : 0) + ' ms';
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // niceMax rounds v up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const pow = Math.pow(10, Math.floor(Math.log10(v)));
    const n = v / pow;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * pow;
  }

  function axisLabel(v) {
    if (v >= 1000) return (v / 1000) + 'k';
    return String(Math.round(v * 100) / 100);
  }

  // drawChart draws series of per-bucket values (null: no value) as bars
  // (the first series) or lines, over a 0..max grid.
  function drawChart(root, series, {bars, xLabels}) {
    while (root.firstChild) root.removeChild(root.firstChild);
    const W = 520, H = 170, left = 44, right = 8, top = 10, bottom = 24;
    const pw = W - left - right, ph = H - top - bottom;
    const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
    const max = niceMax(Math.max(0, ...values));
    const n = Math.max(1, series[0].values.length);
    const x = (i) => left + (i + 0.5) * pw / n;
    const y = (v) => top + ph - (v / max) * ph;
    for (const f of [0, 0.5, 1]) {
      const gy = top + ph - f * ph;
      root.append(svg('line', {x1: left, x2: W - right, y1: gy, y2: gy, class: 'grid'}));
      root.append(svg('text', {x: left - 6, y: gy + 4, class: 'tick', 'text-anchor': 'end'}, axisLabel(max * f)));
    }
    xLabels.forEach((label, i) => {
      const lx = left + (i / (xLabels.length - 1)) * pw;
      const anchor = i === 0 ? 'start' : i === xLabels.length - 1 ? 'end' : 'middle';
      root.append(svg('text', {x: lx, y: H - 6, class: 'tick', 'text-anchor': anchor}, label));
    });
    if (values.length === 0) {
      root.append(svg('text', {x: left + pw / 2, y: top + ph / 2, class: 'empty', 'text-anchor': 'middle'}, 'no data yet'));
      return;
    }
    if (bars) {
      const bw = Math.max(1, pw / n - 2);
      series[0].values.forEach((v, i) => {
        if (!v) return;
        const h = Math.max(1, (v / max) * ph);
        const bar = svg('rect', {x: x(i) - bw / 2, y: top + ph - h, width: bw, height: h, class: series[0].cls});
        bar.append(svg('title', {}, v + ' orders/s'));
        root.append(bar);
      });
      return;
    }
    for (const s of series) {
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) {
          pen = false;
          return;
        }
        d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1) + ' ';
        pen = true;
        const dot = svg('circle', {cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: s.cls});
        dot.append(svg('title', {}, fmtMs(v)));
        root.append(dot);
      });
      if (d) root.append(svg('path', {d: d.trim(), class: s.cls, fill: 'none'}));
    }
  }

  // ---- dead letters -----------------------------------------------------------------

  async function refreshDeadLetters() {
    const r = await ops('GET', '/ops/dlq');
    if (!r) return;
    const count = $('dlq-count');
    if (r.status !== 200 || !r.data) {
      count.textContent = '?';
      $('dlq-note').textContent = r.status === 503 ? 'unavailable' : 'error ' + r.status;
      $('card-dlq').classList.remove('alert');
      return;
    }
    count.textContent = r.data.count;
    $('card-dlq').classList.toggle('alert', r.data.count > 0);
    $('dlq-replay').disabled = r.data.count === 0;
  }

  async function replayDeadLetters() {
    const button = $('dlq-replay');
    button.disabled = true;
    $('dlq-note').textContent = 'replaying…';
    const r = await ops('POST', '/ops/dlq/replay');
    if (!r) return;
    $('dlq-note').textContent = r.status === 200 && r.data
      ? 'replayed ' + r.data.replayed
      : problemText(r, 'replay failed (' + r.status + ')');
    refreshDeadLetters();
  }

  // ---- reconciliation -----------------------------------------------------------------

  async function reconcile() {
    const button = $('reconcile');
    const out = $('reconcile-result');
    button.disabled = true;
    button.textContent = 'Running…';
    const r = await ops('GET', '/ops/reconcile');
    button.disabled = false;
    button.textContent = 'Run reconciliation';
    if (!r) return;
    clear(out);
    out.className = '';
    if (r.status !== 200 || !r.data) {
      out.className = 'error';
      out.textContent = problemText(r, 'Reconciliation could not run (' + r.status + ').');
      return;
    }
    const rep = r.data;
    const summary = rep.checkedOrders + ' orders and ' + rep.checkedAttempts + ' attempts checked at ' + new Date().toLocaleTimeString() +
      (rep.unsettledOrders ? ' (' + rep.unsettledOrders + ' unsettled, not judged yet)' : '');
    if (rep.ok) {
      out.append(el('p', {class: 'ok', dataset: {ok: 'true'}}, '✓ Stock is conserved: every unit held is explained by one order.'),
        el('p', {class: 'muted'}, summary));
      return;
    }
    out.append(el('p', {class: 'error', dataset: {ok: 'false'}}, '✗ ' + rep.violations.length + ' violation(s) found.'),
      el('p', {class: 'muted'}, summary),
      el('table', {class: 'grid-table'},
        el('thead', {}, el('tr', {}, el('th', {}, 'Kind'), el('th', {}, 'Order'), el('th', {}, 'Attempt'), el('th', {}, 'Product'), el('th', {}, 'Detail'))),
        el('tbody', {}, rep.violations.map((v) => el('tr', {},
          el('td', {}, v.kind),
          el('td', {class: 'mono', title: v.orderId || ''}, v.orderId ? shortId(v.orderId) : '—'),
          el('td', {class: 'mono', title: v.attemptId || ''}, v.attemptId ? shortId(v.attemptId) : '—'),
          el('td', {}, v.productId === null ? '—' : v.productId),
          el('td', {}, v.detail))))));
  }

  document.addEventListener('DOMContentLoaded', init);
})();
