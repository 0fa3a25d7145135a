// The storefront: catalog with live stock, a cart, placing an order with an
// Idempotency-Key per cart submission (the same key again when the shopper
// retries after a network error or a 5xx), the answer told as a shopper
// understands it, order history with cancellation.
'use strict';

(() => {
  const {el, call, NetworkError, retryAfter, money, shortId, claims, newKey, sleep, clear} = window.sf;

  const TOKEN_KEY = 'stockfence.customerToken';
  const CART_KEY = 'stockfence.cart';
  const SUBMISSION_KEY = 'stockfence.submission';
  const CATALOG_EVERY_MS = 3000;
  const PAGE_SIZE = 5;
  const MAX_QTY = 10000;
  const MAX_LINES = 100;

  const STATUS_LABELS = {
    PENDING: 'Confirming…',
    CONFIRMED: 'Confirmed',
    FAILED: 'Not placed',
    COMPENSATING: 'Being reversed',
    CANCELLING: 'Cancelling…',
    CANCELLED: 'Cancelled',
  };
  const REASON_LABELS = {
    insufficient_stock: 'not enough stock',
    unknown_product: 'an item is no longer sold',
    product_unavailable: 'the shop could not confirm it in time',
    reservation_mismatch: 'the shop could not complete it',
  };
  const SETTLED = new Set(['CONFIRMED', 'FAILED', 'CANCELLED']);

  const state = {
    token: null,
    demo: false,
    products: new Map(), // id -> product
    cards: new Map(), // id -> {card, stock, add}
    cart: new Map(), // id -> quantity, in insertion order
    // submission is the cart as last sent with its Idempotency-Key; it is
    // kept until a definite answer, so a retry sends the same key.
    submission: null,
    placing: false,
    watching: null, // id of the placed order being followed until settled
    countdown: null,
    pages: [''], // cursors of the order pages visited
    page: 0,
    ordersTimer: null,
    following: new Set(), // ids of cancellations being followed
  };

  const $ = (id) => document.getElementById(id);

  // ---- sign-in -------------------------------------------------------------

  async function init() {
    restore();
    $('signin-form').addEventListener('submit', onSignin);
    $('signout').addEventListener('click', signOut);
    $('place').addEventListener('click', () => placeOrder());
    $('older').addEventListener('click', () => turnPage(1));
    $('newer').addEventListener('click', () => turnPage(-1));
    renderCart();
    loadCatalog();
    setInterval(loadCatalog, CATALOG_EVERY_MS);

    let token = null;
    try {
      const r = await call('GET', '/demo/token');
      if (r.status === 200 && r.data && r.data.token) {
        token = r.data.token;
        state.demo = true;
      }
    } catch (e) {
      // No demo token: the shopper signs in.
    }
    if (!token) token = sessionStorage.getItem(TOKEN_KEY);
    if (token) signedIn(token);
    else showSignin('');
  }

  function signedIn(token) {
    state.token = token;
    const c = claims(token) || {};
    const until = c.exp ? ' until ' + new Date(c.exp * 1000).toLocaleString([], {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'}) : '';
    $('who').textContent = 'Signed in as ' + (c.sub || 'shopper') + (state.demo ? ' (demo)' : '') + until;
    $('signout').hidden = false;
    $('signin').hidden = true;
    renderCart();
    state.pages = [''];
    state.page = 0;
    loadOrders();
  }

  function showSignin(message) {
    state.token = null;
    $('who').textContent = 'Not signed in';
    $('signout').hidden = true;
    $('signin').hidden = false;
    const err = $('signin-error');
    err.textContent = message;
    err.hidden = !message;
    clear($('orders'));
    $('orders').append(el('p', {class: 'muted'}, 'Sign in to see your orders.'));
    renderCart();
  }

  async function onSignin(ev) {
    ev.preventDefault();
    const token = $('token-input').value.trim();
    if (token.split('.').length !== 3) {
      showSignin('That does not look like a token: it should be three parts separated by dots.');
      return;
    }
    try {
      const r = await call('GET', '/orders?limit=1', {token});
      if (r.status === 401) {
        showSignin('That token was refused: it is invalid or has expired.');
        return;
      }
    } catch (e) {
      showSignin('The shop could not be reached; try again.');
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    state.demo = false;
    signedIn(token);
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.demo = false;
    showSignin('');
  }

  // expired handles a 401 on any call: the token is no longer good.
  function expired() {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignin('Your sign-in has expired or was refused. Paste a new token to continue.');
  }

  // ---- catalog ---------------------------------------------------------------

  async function loadCatalog() {
    let r;
    try {
      r = await call('GET', '/catalog');
    } catch (e) {
      $('catalog-status').textContent = 'Offline: showing the last known stock';
      return;
    }
    if (r.status !== 200 || !r.data || !Array.isArray(r.data.products)) {
      $('catalog-status').textContent = 'Stock is being refreshed… (retrying)';
      return;
    }
    $('catalog-status').textContent = 'Live stock · updated ' + new Date().toLocaleTimeString();
    for (const p of r.data.products) state.products.set(p.id, p);
    renderCatalog(r.data.products);
    renderCart();
  }

  function renderCatalog(products) {
    const root = $('catalog');
    if (products.length === 0 && state.cards.size === 0) {
      clear(root);
      root.append(el('p', {class: 'muted'}, 'Nothing on sale right now.'));
      return;
    }
    for (const p of products) {
      let c = state.cards.get(p.id);
      if (!c) {
        const qty = el('input', {type: 'number', class: 'qty', min: 1, max: MAX_QTY, value: 1, 'aria-label': 'Quantity of ' + p.name});
        const add = el('button', {type: 'button', class: 'add'}, 'Add to cart');
        const stock = el('p', {class: 'stock'});
        const card = el('article', {class: 'product', dataset: {productId: p.id, sku: p.sku}},
          el('h3', {}, p.name),
          el('p', {class: 'sku'}, p.sku),
          el('p', {class: 'price'}, money(p.priceCents)),
          stock,
          el('div', {class: 'buy'}, qty, add));
        add.addEventListener('click', () => {
          addToCart(p.id, parseInt(qty.value, 10));
          qty.value = 1;
        });
        c = {card, stock, add};
        state.cards.set(p.id, c);
        if (root.querySelector('p.muted')) clear(root);
        root.append(c.card);
      }
      const low = p.stock > 0 && p.stock <= 5;
      c.stock.className = 'stock' + (p.stock === 0 ? ' out' : low ? ' low' : '');
      c.stock.textContent = p.stock === 0 ? 'Sold out' : low ? 'Only ' + p.stock + ' left' : p.stock + ' in stock';
      c.card.classList.toggle('soldout', p.stock === 0);
      c.add.disabled = p.stock === 0;
      c.add.textContent = p.stock === 0 ? 'Sold out' : 'Add to cart';
    }
  }

  function productName(id) {
    const p = state.products.get(id);
    return p ? p.name : 'Product #' + id;
  }

  // ---- cart ------------------------------------------------------------------

  function restore() {
    try {
      const cart = JSON.parse(sessionStorage.getItem(CART_KEY) || '[]');
      for (const [id, q] of cart) state.cart.set(id, q);
      state.submission = JSON.parse(sessionStorage.getItem(SUBMISSION_KEY) || 'null');
    } catch (e) {
      state.cart.clear();
      state.submission = null;
    }
  }

  function saveCart() {
    sessionStorage.setItem(CART_KEY, JSON.stringify(Array.from(state.cart.entries())));
  }

  function setSubmission(s) {
    state.submission = s;
    if (s) sessionStorage.setItem(SUBMISSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SUBMISSION_KEY);
  }

  function addToCart(id, qty) {
    if (!Number.isFinite(qty) || qty < 1) qty = 1;
    if (!state.cart.has(id) && state.cart.size >= MAX_LINES) return;
    state.cart.set(id, Math.min((state.cart.get(id) || 0) + qty, MAX_QTY));
    saveCart();
    renderCart();
  }

  function setQty(id, qty) {
    if (qty < 1) state.cart.delete(id);
    else state.cart.set(id, Math.min(qty, MAX_QTY));
    saveCart();
    renderCart();
  }

  function cartItems() {
    return Array.from(state.cart.entries(), ([productId, quantity]) => ({productId, quantity}));
  }

  function sameItems(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function renderCart() {
    const root = $('cart');
    clear(root);
    let total = 0;
    if (state.cart.size === 0) {
      root.append(el('p', {class: 'muted'}, 'Your cart is empty.'));
    } else {
      const list = el('ul', {class: 'cart-lines'});
      for (const [id, q] of state.cart) {
        const p = state.products.get(id);
        const line = p ? p.priceCents * q : 0;
        total += line;
        list.append(el('li', {dataset: {productId: id}},
          el('span', {class: 'name'}, productName(id)),
          el('span', {class: 'stepper'},
            el('button', {type: 'button', class: 'link', 'aria-label': 'One less', onclick: () => setQty(id, q - 1)}, '−'),
            el('span', {class: 'q'}, q),
            el('button', {type: 'button', class: 'link', 'aria-label': 'One more', onclick: () => setQty(id, q + 1)}, '+')),
          el('span', {class: 'amount'}, p ? money(line) : ''),
          el('button', {type: 'button', class: 'link remove', 'aria-label': 'Remove ' + productName(id), onclick: () => setQty(id, 0)}, '×')));
      }
      root.append(list);
    }
    $('cart-total').textContent = money(total);
    const place = $('place');
    const hint = $('place-hint');
    place.disabled = state.placing || state.watching !== null || state.cart.size === 0 || !state.token || state.countdown !== null;
    place.textContent = state.placing ? 'Placing…' : 'Place order';
    hint.textContent = !state.token ? 'Sign in to place an order.'
      : state.watching ? 'Your last order is still being confirmed.'
        : '';
  }

  function clearCart() {
    state.cart.clear();
    saveCart();
    renderCart();
  }

  // ---- placing an order -------------------------------------------------------

  async function placeOrder() {
    if (state.placing || !state.token || state.cart.size === 0) return;
    const items = cartItems();
    // A new submission gets a new key; retrying the same cart reuses it.
    if (!state.submission || !sameItems(state.submission.items, items)) {
      setSubmission({key: newKey(), items});
    }
    const sub = state.submission;
    stopCountdown();
    state.placing = true;
    renderCart();
    showResult('working', 'Placing your order…', []);
    let r;
    try {
      r = await call('POST', '/orders', {token: state.token, body: {items: sub.items}, headers: {'Idempotency-Key': sub.key}});
    } catch (e) {
      if (!(e instanceof NetworkError)) throw e;
      state.placing = false;
      renderCart();
      showRetry('We could not reach the shop',
        'Your connection dropped before we heard back. Try again: it is the same order, so you will never be charged twice.');
      return;
    }
    state.placing = false;
    renderCart();
    handlePlaced(r);
  }

  function handlePlaced(r) {
    const o = r.data;
    if (r.status === 401) {
      expired();
      showResult('error', 'Please sign in again', ['Your order was not placed yet. Sign in, then press Place order.']);
      return;
    }
    if ([200, 201, 202, 409].includes(r.status) && o && o.orderId) {
      setSubmission(null); // a definite answer: the next click is a new order
      loadOrders();
      settle(o);
      return;
    }
    if (r.status === 503) {
      showBusy(retryAfter(r.headers, 1));
      return;
    }
    if (r.status >= 500) {
      showRetry('Something went wrong on our side',
        'We could not confirm your order. Try again: it is the same order, so you will never be charged twice.');
      return;
    }
    setSubmission(null);
    if (r.status === 422 && o && o.code === 'idempotency_key_reused') {
      showResult('error', 'Your cart changed', ['Press Place order again to order what is in your cart now.']);
      return;
    }
    showResult('error', 'We could not take this order', [(o && o.detail) || 'The request was refused (' + r.status + ').']);
  }

  // settle shows an order's outcome, following it while it is not settled.
  function settle(o) {
    switch (o.status) {
      case 'CONFIRMED':
        showConfirmed(o);
        // The cart was bought, unless the shopper changed it meanwhile.
        if (sameItems(cartItems(), o.items.map((it) => ({productId: it.productId, quantity: it.quantity})))) clearCart();
        return;
      case 'FAILED':
        showFailed(o);
        return;
      case 'CANCELLING':
      case 'CANCELLED':
        showResult('info', o.status === 'CANCELLED' ? 'Order cancelled' : 'Cancelling your order…',
          ['Order #' + shortId(o.orderId) + ' ' + (o.status === 'CANCELLED' ? 'was cancelled; nothing is charged.' : 'is being cancelled.')]);
        return;
      default: // PENDING, COMPENSATING
        showPending(o, 0);
        follow(o.orderId);
    }
  }

  // follow polls a placed order that is not settled yet until it is.
  async function follow(id) {
    if (state.watching === id) return;
    state.watching = id;
    renderCart();
    const started = Date.now();
    let delay = 1000;
    try {
      for (;;) {
        await sleep(delay);
        delay = Math.min(delay * 1.5, 5000);
        if (!state.token) return;
        let r;
        try {
          r = await call('GET', '/orders/' + encodeURIComponent(id), {token: state.token});
        } catch (e) {
          continue; // offline for a moment: keep waiting
        }
        if (r.status === 401) {
          expired();
          return;
        }
        if (r.status !== 200 || !r.data) continue;
        if (SETTLED.has(r.data.status)) {
          state.watching = null;
          renderCart();
          settle(r.data);
          loadOrders();
          return;
        }
        showPending(r.data, Math.round((Date.now() - started) / 1000));
      }
    } finally {
      if (state.watching === id) state.watching = null;
      renderCart();
    }
  }

  function showConfirmed(o) {
    const lines = o.items.map((it) => it.quantity + ' × ' + productName(it.productId) +
      (it.unitPriceCents !== null ? ' — ' + money(it.unitPriceCents * it.quantity) : ''));
    showResult('confirmed', 'Order confirmed', [
      'Thank you! Order #' + shortId(o.orderId) + ' is confirmed.',
      el('strong', {class: 'total'}, 'Total ' + money(o.totalCents)),
      el('ul', {}, lines.map((l) => el('li', {}, l))),
    ]);
  }

  function showFailed(o) {
    if (o.reason === 'insufficient_stock') {
      const shortages = o.shortages || [];
      const lines = shortages.map((s) => s.available > 0
        ? el('li', {dataset: {productId: s.productId}}, 'Only ' + s.available + ' ' + productName(s.productId) + ' left — you asked for ' + s.requested + '.')
        : el('li', {dataset: {productId: s.productId}}, productName(s.productId) + ' is sold out — you asked for ' + s.requested + '.'));
      const fix = el('button', {type: 'button'}, 'Change my cart to what is left');
      fix.addEventListener('click', () => {
        for (const s of shortages) setQty(s.productId, s.available);
        showResult('info', 'Cart updated', ['Your cart now holds what is left. Press Place order to try again.']);
      });
      showResult('soldout', 'Sorry, sold out', [
        el('ul', {class: 'shortages'}, lines),
        'Nothing was charged. Your cart is kept so you can change it.',
        shortages.length ? fix : null,
      ]);
      loadCatalog();
      return;
    }
    const why = {
      unknown_product: 'An item in your cart is no longer sold. Remove it and try again.',
      product_unavailable: 'The shop could not confirm your order in time. Nothing was charged; please try again.',
    }[o.reason] || 'We could not complete your order. Nothing was charged; please try again.';
    showResult('failed', 'Your order was not placed', [why]);
  }

  function showPending(o, waited) {
    const compensating = o.status === 'COMPENSATING';
    showResult('pending', compensating ? 'We could not complete your order' : 'We are confirming your order', [
      compensating
        ? 'Order #' + shortId(o.orderId) + ' is being reversed; nothing will be charged.'
        : 'Order #' + shortId(o.orderId) + ' is received. The shop is very busy, so confirming it takes a little longer than usual.',
      el('span', {class: 'muted'}, 'You can leave this page: the order keeps going and shows under Your orders.' +
        (waited ? ' (waiting ' + waited + ' s)' : '')),
    ], true);
  }

  function showBusy(seconds) {
    stopCountdown();
    let left = seconds;
    const text = el('span', {}, '');
    const retry = el('button', {type: 'button', disabled: true}, 'Try again');
    retry.addEventListener('click', () => placeOrder());
    const tick = () => {
      text.textContent = left > 0
        ? 'So many people are shopping right now that we could not take your order. Try again in ' + left + ' s.'
        : 'You can try again now. Nothing was ordered yet.';
      retry.disabled = left > 0;
      if (left <= 0) {
        stopCountdown();
        renderCart();
      }
      left--;
    };
    showResult('busy', 'The shop is busy', [text, retry]);
    state.countdown = setInterval(tick, 1000);
    tick();
    renderCart();
  }

  function stopCountdown() {
    if (state.countdown !== null) clearInterval(state.countdown);
    state.countdown = null;
  }

  function showRetry(title, text) {
    const retry = el('button', {type: 'button'}, 'Try again');
    retry.addEventListener('click', () => placeOrder());
    showResult('error', title, [text, retry]);
  }

  function showResult(kind, title, parts, spinner) {
    const box = $('result');
    clear(box);
    box.hidden = false;
    box.dataset.state = kind;
    box.append(el('h2', {}, spinner ? el('span', {class: 'spinner', 'aria-hidden': 'true'}) : null, title));
    for (const p of parts) {
      if (p === null || p === undefined) continue;
      box.append(p instanceof Node ? (p.tagName === 'BUTTON' ? el('p', {}, p) : p) : el('p', {}, p));
    }
  }

  // ---- order history -----------------------------------------------------------

  function turnPage(step) {
    state.page = Math.max(0, state.page + step);
    loadOrders();
  }

  async function loadOrders() {
    if (!state.token) return;
    clearTimeout(state.ordersTimer);
    const cursor = state.pages[state.page] || '';
    let r;
    try {
      r = await call('GET', '/orders?limit=' + PAGE_SIZE + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''), {token: state.token});
    } catch (e) {
      state.ordersTimer = setTimeout(loadOrders, 5000);
      return;
    }
    if (r.status === 401) {
      expired();
      return;
    }
    if (r.status !== 200 || !r.data) {
      state.ordersTimer = setTimeout(loadOrders, 5000);
      return;
    }
    state.pages.length = state.page + 1;
    if (r.data.next) state.pages.push(r.data.next);
    $('older').disabled = !r.data.next;
    $('newer').disabled = state.page === 0;
    renderOrders(r.data.orders);
    // Orders still moving are shown moving.
    if (r.data.orders.some((o) => !SETTLED.has(o.status))) {
      state.ordersTimer = setTimeout(loadOrders, 2000);
    }
  }

  function renderOrders(orders) {
    const root = $('orders');
    clear(root);
    if (orders.length === 0) {
      root.append(el('p', {class: 'muted'}, state.page === 0 ? 'No orders yet.' : 'No older orders.'));
      return;
    }
    const list = el('ul', {class: 'orders'});
    for (const o of orders) list.append(orderRow(o));
    root.append(list);
  }

  function orderRow(o) {
    const note = el('p', {class: 'note'});
    const when = new Date(o.createdAt);
    const items = o.items.map((it) => it.quantity + ' × ' + productName(it.productId)).join(', ');
    let reason = '';
    if (o.status === 'FAILED' && o.reason) reason = ': ' + (REASON_LABELS[o.reason] || o.reason.replace(/_/g, ' '));
    const row = el('li', {class: 'order', dataset: {orderId: o.orderId, status: o.status}},
      el('div', {class: 'order-head'},
        el('span', {class: 'oid', title: o.orderId}, '#' + shortId(o.orderId)),
        el('span', {class: 'badge status-' + o.status}, (STATUS_LABELS[o.status] || o.status) + reason),
        el('time', {datetime: o.createdAt}, when.toLocaleString([], {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit'}))),
      el('div', {class: 'order-items'}, items),
      el('div', {class: 'order-foot'},
        el('span', {}, o.totalCents !== null ? 'Total ' + money(o.totalCents) : ''),
        o.status === 'CONFIRMED' || o.status === 'PENDING'
          ? el('button', {type: 'button', class: 'cancel', onclick: (ev) => cancelOrder(o.orderId, ev.target, note)}, 'Cancel order')
          : null),
      note);
    if (o.status === 'CANCELLING') note.textContent = 'Giving the items back to the shop…';
    if (o.status === 'CANCELLED') note.textContent = 'Cancelled: nothing is charged.';
    return row;
  }

  async function cancelOrder(id, button, note) {
    button.disabled = true;
    let r;
    try {
      r = await call('POST', '/orders/' + encodeURIComponent(id) + '/cancel', {token: state.token});
    } catch (e) {
      button.disabled = false;
      note.textContent = 'The shop could not be reached; try again.';
      return;
    }
    if (r.status === 401) {
      expired();
      return;
    }
    if (r.status === 202 || r.status === 200) {
      loadOrders();
      return;
    }
    if (r.status === 409) {
      note.textContent = 'This order can no longer be cancelled.';
      return;
    }
    button.disabled = false;
    note.textContent = (r.data && r.data.detail) || 'The order could not be cancelled right now; try again.';
  }

  document.addEventListener('DOMContentLoaded', init);
})();
