// Helpers shared by the storefront and the dashboard: DOM building without
// innerHTML (every text goes through textContent), calls to this origin's
// JSON API with a bearer token, and formatting.
'use strict';

window.sf = (() => {
  // el builds an element: el('td', {class: 'x', dataset: {id: 1}}, 'text', child).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (v === true) node.setAttribute(k, '');
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // NetworkError is a call that got no HTTP answer at all.
  class NetworkError extends Error {}

  // call sends one request and resolves to {status, data, headers}: data is
  // the parsed JSON body (an order, a list or a problem) or null. It rejects
  // with NetworkError only when no answer came.
  async function call(method, path, {token, body, headers} = {}) {
    const h = Object.assign({Accept: 'application/json'}, headers || {});
    if (token) h.Authorization = 'Bearer ' + token;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new NetworkError(e && e.message ? e.message : 'network error');
    }
    let data = null;
    const text = await res.text().catch(() => '');
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    return {status: res.status, data, headers: res.headers};
  }

  // retryAfter reads a Retry-After header in whole seconds (at least 1).
  function retryAfter(headers, fallback) {
    const v = headers && headers.get('Retry-After');
    const n = v ? parseInt(v, 10) : NaN;
    return Number.isFinite(n) && n > 0 ? n : (fallback || 1);
  }

  const currency = new Intl.NumberFormat('en-US', {style: 'currency', currency: 'USD'});
  function money(cents) {
    return currency.format((cents || 0) / 100);
  }

  // age formats seconds as 12s, 3m 04s or 2h 05m.
  function age(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(s / 3600) + 'h ' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
  }

  function shortId(id) {
    return id ? id.slice(0, 8) : '';
  }

  // claims decodes a JWT's payload for display only (the server verifies).
  function claims(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const json = decodeURIComponent(Array.from(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, '=')),
        (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
      return JSON.parse(json);
    } catch (e) {
      return null;
    }
  }

  // newKey is a fresh Idempotency-Key.
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  return {el, call, NetworkError, retryAfter, money, age, shortId, claims, newKey, sleep, clear};
})();
